//! What a querier can read of a holder's labels. Each key's labels travel sealed under a key
//! derived from that key's own OPRF output, so a querier opens the labels of the keys it holds
//! and matched, and nothing else: not the labels of the holder's other customers, and in
//! `count` mode not the labels of one session with what it derived in another.
//!
//! The attacks use every label key the querier can derive (docs/protocol.md §6), implemented
//! here from the specification. Sent as slots in the clear beside each tag (the design this
//! replaces), the labels of every customer would be read; the tests count what is read now.

use std::sync::Arc;

use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::oprf::{Element, SecretKey, VoprfServer};
use suyuan_protocol::psi::labels::{
    LABEL_STREAM_DST, LabelKind, LabelOffer, LabelPolicy, LabelSpec,
};
use suyuan_protocol::psi::{
    COUNT_TAG_DST, EpochBuilder, Holder, HolderMessage, QuerierLimits, Query, QueryKeys, QueryMode,
    QueryResult,
};

const BRANCHES: [&str; 3] = ["乌鲁木齐分行", "北京分行", "上海分行"];

fn mobile(i: u64) -> Key {
    Key::parse(KeyType::Mobile, &format!("139{i:08}")).unwrap()
}

/// 600 customers at three branches (customer `i` at `BRANCHES[i % 3]`), labels shown to all.
fn bank() -> (Holder, SecretKey) {
    let spec = LabelSpec {
        name: "branch".into(),
        kind: LabelKind::Text,
    };
    let mut b = EpochBuilder::new(&mut rand::rng())
        .with_labels(vec![spec])
        .unwrap();
    for i in 0..600 {
        b.add_labeled(&[mobile(i)], &[Some(BRANCHES[(i % 3) as usize])])
            .unwrap();
    }
    let epoch = b.finish();
    let sk = SecretKey::from_bytes(&epoch.key().to_bytes()).unwrap();
    let holder = Holder::new(Arc::new(epoch)).with_label_policy(LabelPolicy {
        visible: vec!["branch".into()],
        min_cell: 1,
        share_totals: false,
    });
    (holder, sk)
}

/// The police hold customers 0..200 and 200 strangers.
fn dump() -> Arc<Query> {
    let mut keys = QueryKeys::new();
    for i in (0..200).chain(10_000..10_200) {
        keys.add_row(&[mobile(i)]);
    }
    Arc::new(Query::blind(&mut rand::rng(), keys).unwrap())
}

/// Everything the querier saw of one session.
struct Seen {
    offer: LabelOffer,
    tag_len: usize,
    /// The holder's tags and sealed labels, in tag order.
    tags: Vec<Vec<u8>>,
    sealed: Vec<Vec<u8>>,
    evaluated: Vec<Element>,
    result: QueryResult,
}

fn session(holder: &Holder, query: &Arc<Query>, mode: QueryMode) -> Seen {
    let (start, awaiting) = query.start_asking(mode, QuerierLimits::default(), true);
    let (accept, mut hs) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let offer = accept.labels.clone().expect("labels offered");
    let tag_len = usize::from(accept.tag_len);
    let w = offer.sealed_len();
    let mut q = awaiting.handle_accept(accept).unwrap();
    let (mut tags, mut sealed, mut evaluated) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let mut progressed = false;
        if let Some(m) = q.poll_message() {
            hs.handle(m).unwrap();
            progressed = true;
        }
        while let Some(m) = hs.poll_message().unwrap() {
            match &m {
                HolderMessage::Tags(t) => {
                    tags.extend(t.tags.chunks(tag_len).map(<[u8]>::to_vec));
                    sealed.extend(t.labels.chunks(w).map(<[u8]>::to_vec));
                }
                HolderMessage::Evaluated(e) => evaluated.extend(e.elements.iter().copied()),
                _ => {}
            }
            q.handle(m).unwrap();
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    Seen {
        offer,
        tag_len,
        tags,
        sealed,
        evaluated,
        result: q.finish().unwrap(),
    }
}

/// Opens sealed labels as the specification says, or `None` if they do not open to slots of
/// the offer's values: `slots = sealed XOR SHA-512(DST || key || nonce)`.
fn open(sealed: &[u8], key: &[u8], nonce: &[u8; 16], values: u32) -> Option<Vec<u16>> {
    let ks = Sha512::new()
        .chain_update(LABEL_STREAM_DST)
        .chain_update(key)
        .chain_update(nonce)
        .finalize();
    let mut out = Vec::new();
    for (pair, k) in sealed.chunks(2).zip(ks.chunks(2)) {
        match u16::from_be_bytes([pair[0] ^ k[0], pair[1] ^ k[1]]) {
            0 => {}
            v if u32::from(v) <= values => out.push(v - 1),
            _ => return None,
        }
    }
    Some(out)
}

#[test]
fn a_querier_reads_the_labels_of_its_matched_keys_and_of_no_other_customer() {
    let (holder, sk) = bank();
    let query = dump();
    let seen = session(&holder, &query, QueryMode::Matches);
    let values = seen.offer.value_counts[0];
    let branch_id = |i: u64| {
        let name = BRANCHES[(i % 3) as usize];
        // Values travel sorted: a value's id is its rank.
        let mut sorted = BRANCHES;
        sorted.sort();
        sorted.iter().position(|b| *b == name).unwrap() as u16
    };
    // Every label key the querier can derive: bytes 32..64 of the Finalize output of each of
    // its inputs (computed here with the key, as the querier gets it through the protocol).
    let server = VoprfServer::new(sk);
    let derived: Vec<(u64, [u8; 64])> = (0..200)
        .chain(10_000..10_200)
        .map(|i| (i, server.evaluate(&mobile(i).oprf_input()).unwrap()))
        .collect();
    let l = seen.tag_len;
    let mut read_matched = 0;
    let mut read_others = 0;
    for (tag, sealed) in seen.tags.iter().zip(&seen.sealed) {
        let mine = derived.iter().find(|(_, out)| out[..l] == tag[..]);
        for (i, out) in &derived {
            let Some(slots) = open(sealed, &out[32..], &seen.offer.nonce, values) else {
                continue;
            };
            if mine.is_some_and(|(m, _)| m == i) {
                assert_eq!(slots, [branch_id(*i)]);
                read_matched += 1;
            } else if slots == [branch_id(*i)] || !slots.is_empty() {
                read_others += 1;
            }
        }
    }
    assert_eq!(
        read_matched, 200,
        "each matched key's labels open with its own key"
    );
    assert_eq!(
        read_others, 0,
        "400 other customers' labels, 400 keys tried on each: none opens"
    );
    // And the session's own answer: 200 matched, by branch.
    let labels = seen.result.labels.unwrap();
    let per_branch: Vec<u64> = (0..3u16)
        .map(|v| {
            labels
                .counts
                .get(&(0, v))
                .map_or(0, |m| m[&KeyType::Mobile])
        })
        .collect();
    assert_eq!(per_branch.iter().sum::<u64>(), 200);
    assert_eq!(labels.rows.unwrap().len(), 200);
}

#[test]
fn count_labels_of_one_session_do_not_open_in_another() {
    let (holder, _) = bank();
    let query = dump();
    let a = Scalar::from_canonical_bytes(*query.blind_secret()).unwrap();
    let unblind = a.invert();
    let sessions: Vec<Seen> = (0..2)
        .map(|_| session(&holder, &query, QueryMode::Count))
        .collect();
    // What the querier derives in each session: per evaluation, SHA-512(COUNT_TAG_DST ||
    // a⁻¹·e): its tag (bytes 0..ℓ) and its label key (bytes 32..64).
    let derived: Vec<Vec<[u8; 64]>> = sessions
        .iter()
        .map(|s| {
            s.evaluated
                .iter()
                .map(|e| {
                    let u = Element::from_point(&(unblind * e.to_point().unwrap())).0;
                    Sha512::new()
                        .chain_update(COUNT_TAG_DST)
                        .chain_update(u)
                        .finalize()
                        .into()
                })
                .collect()
        })
        .collect();
    for (s, (seen, keys)) in sessions.iter().zip(&derived).enumerate() {
        let values = seen.offer.value_counts[0];
        let l = seen.tag_len;
        // Within its session, each matched key opens: 200 labels, a histogram and no rows.
        let opened = seen
            .tags
            .iter()
            .zip(&seen.sealed)
            .filter_map(|(tag, sealed)| {
                let out = keys.iter().find(|o| o[..l] == tag[..])?;
                open(sealed, &out[32..], &seen.offer.nonce, values)
            })
            .count();
        assert_eq!(opened, 200, "session {s}");
        let labels = seen.result.labels.as_ref().unwrap();
        assert_eq!(labels.rows, None);
        assert_eq!(
            labels
                .counts
                .values()
                .map(|m| m[&KeyType::Mobile])
                .sum::<u64>(),
            200
        );
        // The other session's keys open none of this session's labels, under either nonce.
        let other = &derived[1 - s];
        let nonces = [seen.offer.nonce, sessions[1 - s].offer.nonce];
        let crossed = seen
            .sealed
            .iter()
            .flat_map(|sealed| other.iter().map(move |out| (sealed, out)))
            .filter(|(sealed, out)| {
                nonces
                    .iter()
                    .any(|n| open(sealed, &out[32..], n, values).is_some_and(|v| !v.is_empty()))
            })
            .count();
        assert_eq!(crossed, 0, "session {s}: 600 × 400 tries");
    }
}
