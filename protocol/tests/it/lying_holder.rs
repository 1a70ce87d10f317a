//! A holder that wants to hide its own leak: it sends the tags of its real list but evaluates
//! the query with another key, so that nothing matches. Version 1 answered "0 matches" and no
//! one could tell. In `matches` mode every evaluated chunk now carries the RFC 9497 batched DLEQ
//! proof against the epoch's public key, and the querier refuses a chunk whose proof fails.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::{
    Blinding, EpochBuilder, Holder, HolderMessage, PeerMisbehaved, PsiError, Query, QueryKeys,
    QueryMode,
};

fn mobiles(range: std::ops::Range<u32>) -> Vec<Key> {
    range
        .map(|i| Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap())
        .collect()
}

fn holder(rng: &mut StdRng, keys: &[Key]) -> Holder {
    let mut b = EpochBuilder::new(rng);
    b.add(keys);
    Holder::new(Arc::new(b.finish()))
}

/// Runs `query` with the accept and tags of `honest` and the evaluations of `liar` (the same
/// list under another key); `strip` drops the proofs as well.
fn lie(honest: &Holder, liar: &Holder, query: &Arc<Query>, strip: bool) -> Result<u64, PsiError> {
    let mut rng = rand::rng();
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, mut real) = honest.handle_start(start.clone(), &mut rng)?;
    let (_, mut fake) = liar.handle_start(start, &mut rng)?;
    let mut q = awaiting.handle_accept(accept)?;
    while let Some(m) = real.poll_message().unwrap() {
        q.handle(m)?;
    }
    while let Some(m) = q.poll_message() {
        fake.handle(m)?;
        while let Some(m) = fake.poll_message().unwrap() {
            let m = match m {
                HolderMessage::Evaluated(mut e) if strip => {
                    e.proof = None;
                    HolderMessage::Evaluated(e)
                }
                HolderMessage::Tags(_) => continue,
                other => other,
            };
            q.handle(m)?;
        }
    }
    Ok(q.finish()?.matched_keys[&KeyType::Mobile])
}

#[test]
fn a_holder_that_evaluates_with_another_key_is_caught_by_the_proof() {
    let mut rng = StdRng::seed_from_u64(57);
    let list = mobiles(0..3000);
    let honest = holder(&mut rng, &list);
    let liar = holder(&mut rng, &list);
    let mut keys = QueryKeys::new();
    for k in mobiles(2000..7000) {
        keys.add_row(&[k]);
    }
    // Both blindings: an additive query's unblinding `E − ρ·pk` takes the accept's key on
    // trust, so the proof is what keeps a liar's answer from being used.
    for blinding in [Blinding::Multiplicative, Blinding::Additive] {
        let query = Arc::new(Query::blind_as(&mut rng, keys.clone(), blinding).unwrap());

        // The honest answer: 1000 of the dump's numbers are customers.
        let r =
            suyuan_protocol::psi::run_local(&honest, &query, QueryMode::Matches, &mut rng).unwrap();
        assert_eq!(r.matched_keys[&KeyType::Mobile], 1000, "{blinding:?}");

        for strip in [false, true] {
            assert_eq!(
                lie(&honest, &liar, &query, strip),
                Err(PsiError::PeerMisbehaved(PeerMisbehaved::ProofInvalid {
                    seq: 0
                })),
                "{blinding:?}, strip the proof: {strip}"
            );
        }
    }
}
