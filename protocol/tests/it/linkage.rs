//! The attack of issue 12 on `count` mode, as a querier that follows the protocol would run it:
//! ⌈log₂ n⌉ + 1 count sessions over n keys, session j holding the keys whose index has bit j
//! set and the last one every key, each with a fresh blind and every message well formed. It
//! unblinds what each session returns, links equal values across sessions by their pattern of
//! appearances, and reads each value's match status from the session's tags.
//!
//! Under one key per epoch the pattern names the key, and the attack recovers every key's
//! status: the full `matches` answer from `count` sessions. With a fresh factor per count
//! session no value appears twice, and the attacker does no better than guessing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use curve25519_dalek::scalar::Scalar;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::oprf::Element;
use suyuan_protocol::psi::{
    BlindedChunk, EpochBuilder, Holder, HolderMessage, MAX_CHUNK_ELEMENTS, PROTOCOL_VERSION,
    QuerierMessage, QueryMode, QueryStart, Section,
};

use super::spec;

/// What one count session showed the attacker: each unblinded value, and whether its tag was
/// among the holder's.
fn count_session(holder: &Holder, keys: &[&Key], rng: &mut StdRng) -> Vec<([u8; 32], bool)> {
    let a = Scalar::random(rng);
    let blinded: Vec<Element> = keys
        .iter()
        .map(|k| Element::from_point(&(a * spec::hash(k))))
        .collect();
    let start = QueryStart {
        version: PROTOCOL_VERSION,
        mode: QueryMode::Count,
        sections: vec![Section {
            key_type: KeyType::Mobile,
            count: keys.len() as u64,
        }],
        labels: false,
    };
    let (accept, mut session) = holder.handle_start(start, rng).unwrap();
    let l = usize::from(accept.tag_len);
    let mut tags = HashSet::new();
    let mut evaluated = Vec::new();
    let mut take = |m: HolderMessage| match m {
        HolderMessage::Tags(t) => tags.extend(t.tags.chunks(l).map(<[u8]>::to_vec)),
        HolderMessage::Evaluated(e) => evaluated.extend(e.elements),
        HolderMessage::Accept(_) => unreachable!("one accept"),
        HolderMessage::LabelValues(_) => unreachable!("no labels asked for"),
    };
    for (seq, chunk) in blinded.chunks(MAX_CHUNK_ELEMENTS).enumerate() {
        let msg = QuerierMessage::Blinded(BlindedChunk {
            seq: seq as u32,
            elements: chunk.to_vec(),
        });
        session.handle(msg).unwrap();
        while let Some(m) = session.poll_message().unwrap() {
            take(m);
        }
    }
    assert!(session.is_finished());
    let unblind = a.invert();
    evaluated
        .iter()
        .map(|e| {
            let u = Element::from_point(&(unblind * e.to_point().unwrap())).0;
            let tag = spec::count_tag(&u);
            (u, tags.contains(&tag[..l]))
        })
        .collect()
}

/// The attack's outcome.
struct Linked {
    /// Unblinded values seen in more than one session.
    repeated_values: usize,
    /// Keys whose status the attacker read off a linked value.
    resolved: usize,
    /// Keys whose guessed status is right (resolved ones, and the rest guessed by the
    /// majority that the all-keys session's count shows).
    right: usize,
}

fn attack(holder: &Holder, universe: &[Key], truth: &[bool], rng: &mut StdRng) -> Linked {
    let n = universe.len();
    let bits = usize::BITS - (n - 1).leading_zeros();
    let all = bits as usize; // the pattern bit of the session of every key
    let mut seen: BTreeMap<[u8; 32], (u32, bool)> = BTreeMap::new();
    let mut repeated_values = 0;
    let mut all_count = 0;
    for j in 0..=all {
        let keys: Vec<&Key> = (0..n)
            .filter(|i| j == all || i >> j & 1 == 1)
            .map(|i| &universe[i])
            .collect();
        for (u, hit) in count_session(holder, &keys, rng) {
            let e = seen.entry(u).or_insert((0, hit));
            if e.0 != 0 {
                repeated_values += 1;
            }
            e.0 |= 1 << j;
            if j == all && hit {
                all_count += 1;
            }
        }
    }
    // A pattern with the all-keys bit, held by one value only, names the key whose index is
    // its other bits.
    let mut by_pattern: BTreeMap<u32, Vec<bool>> = BTreeMap::new();
    for (pattern, hit) in seen.values() {
        by_pattern.entry(*pattern).or_default().push(*hit);
    }
    let majority = 2 * all_count > n;
    let mut guess = vec![None; n];
    for (pattern, hits) in &by_pattern {
        let index = (pattern & !(1 << all)) as usize;
        if pattern >> all & 1 == 1 && hits.len() == 1 && index < n {
            guess[index] = Some(hits[0]);
        }
    }
    Linked {
        repeated_values,
        resolved: guess.iter().filter(|g| g.is_some()).count(),
        right: guess
            .iter()
            .zip(truth)
            .filter(|(g, t)| g.unwrap_or(majority) == **t)
            .count(),
    }
}

#[test]
fn count_sessions_cannot_be_linked_to_recover_which_keys_matched() {
    let mut rng = StdRng::seed_from_u64(12);
    let n = 2000;
    let universe: Vec<Key> = (0..n)
        .map(|i| Key::parse(KeyType::Mobile, &format!("139{:08}", 1000 + i * 7)).unwrap())
        .collect();
    // The holder holds exactly half of them, and keys of its own.
    let mut truth = vec![false; n];
    truth[..n / 2].fill(true);
    truth.shuffle(&mut rng);
    let mut held: Vec<Key> = (0..n)
        .filter(|&i| truth[i])
        .map(|i| universe[i].clone())
        .collect();
    held.extend((0..500).map(|i| Key::parse(KeyType::Mobile, &format!("137{:08}", i)).unwrap()));
    let mut b = EpochBuilder::new(&mut rng);
    b.add(&held);
    let holder = Holder::new(Arc::new(b.finish()));

    let linked = attack(&holder, &universe, &truth, &mut rng);
    assert_eq!(
        linked.repeated_values, 0,
        "a value reappeared in another session"
    );
    assert_eq!(linked.resolved, 0);
    // Chance: the majority guess is right for exactly half of the keys.
    assert_eq!(linked.right, n / 2);
}
