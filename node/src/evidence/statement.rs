//! The epoch statement: at import, the node signs what it will serve — its name, the epoch,
//! the epoch's public key `k·G`, its distinct keys per type, and per type and tag length the
//! digest of its tags — and the time. A querier checks every answer against it: the accept's
//! key and sizes, and in `matches` mode the tags themselves. A holder that later serves other
//! tags or another key under this epoch is caught; one that tagged another list from the start
//! is committed to it, in writing (`docs/threat-model.md`).

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{Epoch, QueryAccept, Section, TAG_STORED_LEN, TagSet, TagSetHasher};

use super::Signed;

/// The context string every epoch statement is signed under.
pub const STATEMENT_CONTEXT: &str = "suyuan epoch statement v1";

/// Shortest tag length a session uses; the statement has a digest per length from here to 16.
const MIN_TAG_LEN: u8 = 8;

/// What a node commits to when it imports a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStatement {
    /// The node's name (as its certificate says).
    pub node: String,
    /// The epoch id, hex.
    pub epoch: String,
    /// The epoch's public key `k·G`, hex.
    pub public_key: String,
    /// Distinct keys per type.
    pub keys: BTreeMap<KeyType, u64>,
    /// Per type, the digest (`TagSet::digest` of that type alone, hex) of its tags truncated to
    /// ℓ = 8, 9, …, 16 bytes, in that order.
    pub tag_digests: BTreeMap<KeyType, Vec<String>>,
    /// Unix time of the import.
    pub created: u64,
}

/// How an answer differs from the statement it was given under.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementMismatch {
    /// The statement is of another node.
    #[error("the epoch statement is signed for node {0}")]
    OtherNode(String),
    /// The statement is of another epoch.
    #[error("the epoch statement is for epoch {statement}, the answer for {answer}")]
    OtherEpoch {
        /// The statement's epoch.
        statement: String,
        /// The accept's epoch.
        answer: String,
    },
    /// The accept's public key is not the signed one.
    #[error("the answer's public key is not the one the holder signed for its epoch")]
    OtherKey,
    /// A section's size differs from the signed count.
    #[error("the holder announced {answer} {key_type} keys; its epoch statement says {statement}")]
    OtherSize {
        /// The key type.
        key_type: KeyType,
        /// The signed count.
        statement: u64,
        /// The accept's count.
        answer: u64,
    },
    /// The tags received are not the ones the statement commits to.
    #[error("the {key_type} tags received are not the ones the holder signed for its epoch")]
    OtherTags {
        /// The key type.
        key_type: KeyType,
    },
}

impl EpochStatement {
    /// The statement of `epoch`, served by `node`, imported at `created`; fails only if the
    /// epoch's store cannot be read.
    pub fn of(
        epoch: &Epoch,
        node: &str,
        created: u64,
    ) -> Result<EpochStatement, suyuan_protocol::psi::PsiError> {
        // Every length's digest in one pass over the tags (a store is read once, not 13 times).
        const BLOCK: u64 = 1 << 16;
        let mut tag_digests = BTreeMap::new();
        for (kt, n) in epoch.sizes() {
            let mut hashers: Vec<(usize, TagSetHasher)> = (MIN_TAG_LEN..=TAG_STORED_LEN as u8)
                .map(|l| {
                    let mut h = TagSetHasher::new(epoch.id(), l);
                    h.section(kt, n);
                    (usize::from(l), h)
                })
                .collect();
            for start in (0..n).step_by(BLOCK as usize) {
                let tags = epoch.read_tags(kt, start..(start + BLOCK).min(n))?;
                hashers.par_iter_mut().for_each(|(l, h)| {
                    let flat: Vec<u8> = tags.iter().flat_map(|t| &t[..*l]).copied().collect();
                    h.tags(&flat);
                });
            }
            let digests = hashers
                .into_iter()
                .map(|(_, h)| hex::encode(h.finish()))
                .collect();
            tag_digests.insert(kt, digests);
        }
        Ok(EpochStatement {
            node: node.to_string(),
            epoch: epoch.id().to_string(),
            public_key: hex::encode(epoch.key().public_key().to_element().0),
            keys: epoch.sizes(),
            tag_digests,
            created,
        })
    }

    /// Reads a signed statement (the signature checked with the certificate it carries).
    pub fn open(signed: &Signed) -> Result<EpochStatement, super::SignatureError> {
        signed.open(STATEMENT_CONTEXT)
    }

    /// The accept of a session agrees with the statement: node, epoch, key, and every section's
    /// size (a type the statement does not list has 0 keys).
    pub fn check_accept(&self, node: &str, accept: &QueryAccept) -> Result<(), StatementMismatch> {
        if self.node != node {
            return Err(StatementMismatch::OtherNode(self.node.clone()));
        }
        if self.epoch != accept.epoch.to_string() {
            return Err(StatementMismatch::OtherEpoch {
                statement: self.epoch.clone(),
                answer: accept.epoch.to_string(),
            });
        }
        if self.public_key != hex::encode(accept.public_key.0) {
            return Err(StatementMismatch::OtherKey);
        }
        for Section { key_type, count } in &accept.holder_sections {
            let signed = self.keys.get(key_type).copied().unwrap_or(0);
            if signed != *count {
                return Err(StatementMismatch::OtherSize {
                    key_type: *key_type,
                    statement: signed,
                    answer: *count,
                });
            }
        }
        Ok(())
    }

    /// The tags a `matches` session received (or kept) are the signed ones, type by type.
    pub fn check_tags(&self, set: &TagSet) -> Result<(), StatementMismatch> {
        for (section, tags) in set.sections.iter().zip(&set.tags) {
            let one = TagSet::new(set.epoch, set.tag_len, vec![*section], vec![tags.clone()]);
            match one {
                Some(one) => self.check_section(set.tag_len, section, &one.digest())?,
                None => {
                    return Err(StatementMismatch::OtherTags {
                        key_type: section.key_type,
                    });
                }
            }
        }
        Ok(())
    }

    /// [`EpochStatement::check_tags`] for one section, by its digest alone
    /// ([`TagSet::digest`] of a set of that section only): a querier that wrote the tags to
    /// disk as they came digested them on the way.
    pub fn check_section(
        &self,
        tag_len: u8,
        section: &Section,
        digest: &[u8; 32],
    ) -> Result<(), StatementMismatch> {
        let kt = section.key_type;
        let expected = self
            .tag_digests
            .get(&kt)
            .and_then(|d| d.get(usize::from(tag_len.saturating_sub(MIN_TAG_LEN))));
        let fits = match expected {
            Some(e) => *e == hex::encode(digest),
            // A type the holder has none of: nothing may have been received.
            None => section.count == 0,
        };
        if fits {
            Ok(())
        } else {
            Err(StatementMismatch::OtherTags { key_type: kt })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use suyuan_protocol::ident::Key;
    use suyuan_protocol::psi::{EpochBuilder, Holder, Query, QueryKeys, QueryMode};

    use super::*;
    use crate::evidence::SignatureError;
    use crate::node_dir::NodeDir;
    use crate::node_dir::identity::{self, NodeIdentity, Role};

    fn node(dir: &std::path::Path) -> NodeIdentity {
        identity::ca_init(&dir.join("ca"), "test CA").unwrap();
        identity::ca_issue(
            &dir.join("ca"),
            "bank",
            Role::Institution,
            &dir.join("bank"),
        )
        .unwrap();
        NodeDir::open(&dir.join("bank"))
            .unwrap()
            .identity()
            .unwrap()
    }

    fn epoch(n: u32) -> Epoch {
        let mut b = EpochBuilder::new(&mut rand::rng());
        let keys: Vec<Key> = (0..n)
            .map(|i| Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap())
            .collect();
        b.add(&keys);
        b.finish()
    }

    #[test]
    fn a_signed_statement_opens_and_an_altered_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let id = node(dir.path());
        let e = epoch(50);
        let st = EpochStatement::of(&e, "bank", 1_700_000_000).unwrap();
        let signed = Signed::sign(STATEMENT_CONTEXT, &st, &id.key, &id.cert).unwrap();
        assert_eq!(EpochStatement::open(&signed).unwrap(), st);
        // One more key claimed: the signature no longer holds.
        let mut forged = signed.clone();
        forged.body = forged.body.replace("\"mobile\":50", "\"mobile\":51");
        assert_ne!(forged.body, signed.body);
        assert_eq!(
            EpochStatement::open(&forged).unwrap_err(),
            SignatureError::BadSignature
        );
        // A signature under another context is not a statement's.
        let other = Signed::sign("suyuan other v1", &st, &id.key, &id.cert).unwrap();
        assert_eq!(
            EpochStatement::open(&other).unwrap_err(),
            SignatureError::BadSignature
        );
    }

    #[test]
    fn an_answer_is_held_to_the_key_sizes_and_tags_of_its_statement() {
        let e = Arc::new(epoch(300));
        let st = EpochStatement::of(&e, "bank", 0).unwrap();
        let holder = Holder::new(Arc::clone(&e));
        let mut keys = QueryKeys::new();
        for i in 100..400u32 {
            keys.add_row(&[Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap()]);
        }
        let query = Arc::new(Query::blind(&mut rand::rng(), keys).unwrap());
        let (start, awaiting) = query.start(QueryMode::Matches);
        let (accept, mut session) = holder.handle_start(start, &mut rand::rng()).unwrap();
        assert_eq!(st.check_accept("bank", &accept), Ok(()));
        assert_eq!(
            st.check_accept("shop", &accept),
            Err(StatementMismatch::OtherNode("bank".into()))
        );
        // Another epoch's key, or another size, under this statement.
        let other = EpochStatement::of(&epoch(300), "bank", 0).unwrap();
        let mut lying = accept.clone();
        lying.epoch = e.id();
        lying.public_key = suyuan_protocol::oprf::Element(
            hex::decode(&other.public_key).unwrap().try_into().unwrap(),
        );
        assert_eq!(
            st.check_accept("bank", &lying),
            Err(StatementMismatch::OtherKey)
        );
        let mut bigger = accept.clone();
        bigger.holder_sections[0].count = 301;
        assert_eq!(
            st.check_accept("bank", &bigger),
            Err(StatementMismatch::OtherSize {
                key_type: KeyType::Mobile,
                statement: 300,
                answer: 301
            })
        );
        // The received tags are the signed ones; one altered tag is not.
        let mut ex = awaiting.handle_accept(accept).unwrap();
        loop {
            let mut moved = false;
            while let Some(m) = ex.poll_message() {
                session.handle(m).unwrap();
                moved = true;
            }
            while let Some(m) = session.poll_message().unwrap() {
                ex.handle(m).unwrap();
                moved = true;
            }
            if !moved {
                break;
            }
        }
        let (r, set) = ex.finish_keeping_tags().unwrap();
        assert_eq!(r.matched_keys[&KeyType::Mobile], 200);
        assert_eq!(st.check_tags(&set), Ok(()));
        // The last tag raised to all ones: still sorted, no longer the holder's.
        let mut tags = set.tags.clone();
        let n = tags[0].len();
        tags[0][n - usize::from(set.tag_len)..].fill(0xff);
        let altered = TagSet::new(set.epoch, set.tag_len, set.sections.clone(), tags).unwrap();
        assert_eq!(
            st.check_tags(&altered),
            Err(StatementMismatch::OtherTags {
                key_type: KeyType::Mobile
            })
        );
    }
}
