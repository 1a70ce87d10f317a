//! A holder's tag set as a querier received it, kept so that a repeated query to the same epoch
//! need not download it again. Both sides compute the same digest over it: the holder from its
//! stored tags, the querier from what it kept, so a stale or damaged copy is never used.

use sha2::{Digest, Sha256};

use super::{Epoch, EpochId, Section};
use crate::ident::KeyType;

/// Domain-separation prefix of [`TagSet::digest`].
pub const TAG_SET_DST: &[u8] = b"suyuan-tagset-v2";

/// Tags of one epoch for some key types, each truncated to `tag_len` bytes, sorted per type.
/// Built by [`crate::psi::Exchanging::tag_set`] or [`TagSet::new`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TagSet {
    /// The epoch they belong to.
    pub epoch: EpochId,
    /// Bytes per tag.
    pub tag_len: u8,
    /// Key types, strictly ascending, and their counts.
    pub sections: Vec<Section>,
    /// Per section, `count · tag_len` bytes: the tags concatenated.
    pub tags: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TagSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagSet")
            .field("epoch", &self.epoch)
            .field("tag_len", &self.tag_len)
            .field("sections", &self.sections)
            .finish_non_exhaustive()
    }
}

impl TagSet {
    /// A set read back from storage; `None` unless [`TagSet::is_well_formed`].
    pub fn new(
        epoch: EpochId,
        tag_len: u8,
        sections: Vec<Section>,
        tags: Vec<Vec<u8>>,
    ) -> Option<Self> {
        let set = TagSet {
            epoch,
            tag_len,
            sections,
            tags,
        };
        set.is_well_formed().then_some(set)
    }

    /// Whether the shape is coherent: sections strictly ascending, each the right byte length.
    pub fn is_well_formed(&self) -> bool {
        let l = self.tag_len as usize;
        (1..=super::TAG_STORED_LEN).contains(&l)
            && self.sections.len() == self.tags.len()
            && self
                .sections
                .windows(2)
                .all(|w| w[0].key_type < w[1].key_type)
            && self
                .sections
                .iter()
                .zip(&self.tags)
                .all(|(s, t)| (s.count as u128) * (l as u128) == t.len() as u128)
    }

    /// `SHA-256(TAG_SET_DST || epoch || tag_len || for each section: type code || count (u64
    /// BE) || tags)`.
    pub fn digest(&self) -> [u8; 32] {
        digest(
            self.epoch,
            self.tag_len,
            self.sections
                .iter()
                .zip(&self.tags)
                .map(|(s, t)| (s.key_type, s.count, t.chunks_exact(self.tag_len as usize))),
        )
    }

    /// Bytes of tags held.
    pub fn byte_len(&self) -> usize {
        self.tags.iter().map(Vec::len).sum()
    }
}

impl Epoch {
    /// [`TagSet::digest`] of this epoch's tags for `key_types`, truncated to `tag_len`: what a
    /// querier that kept them from an earlier query must hold. Reads the tags in blocks, so an
    /// epoch kept in a store is not loaded for it.
    pub fn tag_set_digest(
        &self,
        key_types: &[KeyType],
        tag_len: u8,
    ) -> Result<[u8; 32], super::PsiError> {
        const BLOCK: u64 = 1 << 16;
        let l = (tag_len as usize).min(super::TAG_STORED_LEN);
        let mut h = TagSetHasher::new(self.id(), tag_len);
        let mut flat = Vec::with_capacity(BLOCK as usize * l);
        for &kt in key_types {
            let n = self.size(kt);
            h.section(kt, n);
            for start in (0..n).step_by(BLOCK as usize) {
                flat.clear();
                for t in self.read_tags(kt, start..(start + BLOCK).min(n))? {
                    flat.extend_from_slice(&t[..l]);
                }
                h.tags(&flat);
            }
        }
        Ok(h.finish())
    }
}

/// [`TagSet::digest`] computed as the tags go by: a querier that writes the tags to disk as
/// they arrive, and a holder reading them from its store, need not hold them all.
#[derive(Clone)]
pub struct TagSetHasher(Sha256);

impl TagSetHasher {
    /// Starts the digest of a set of `epoch` with tags of `tag_len` bytes.
    pub fn new(epoch: EpochId, tag_len: u8) -> Self {
        let mut h = Sha256::new();
        h.update(TAG_SET_DST);
        h.update(epoch.0);
        h.update([tag_len]);
        TagSetHasher(h)
    }

    /// Starts the next section, of `count` tags.
    pub fn section(&mut self, key_type: KeyType, count: u64) {
        self.0.update([key_type.code()]);
        self.0.update(count.to_be_bytes());
    }

    /// The section's next tags, concatenated.
    pub fn tags(&mut self, flat: &[u8]) {
        self.0.update(flat);
    }

    /// The digest.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

fn digest<'a, T: Iterator<Item = &'a [u8]>>(
    epoch: EpochId,
    tag_len: u8,
    sections: impl Iterator<Item = (KeyType, u64, T)>,
) -> [u8; 32] {
    let mut h = TagSetHasher::new(epoch, tag_len);
    for (kt, count, tags) in sections {
        h.section(kt, count);
        for t in tags {
            h.tags(t);
        }
    }
    h.finish()
}
