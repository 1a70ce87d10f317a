//! PSI sessions against a plain set computation, and every refusal a peer can provoke.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::oprf::Element;
use suyuan_protocol::psi::{
    BlindedChunk, Blinding, EpochBuilder, EpochId, EvaluatedChunk, Holder, HolderLimits,
    HolderMessage, LimitExceeded, MAX_CHUNK_ELEMENTS, Misuse, PROTOCOL_VERSION, PeerMisbehaved,
    PsiError, QuerierMessage, Query, QueryAccept, QueryKeys, QueryMode, QueryStart, Section,
    run_local,
};

/// A small universe of valid keys of three types, indexed by number.
fn key(i: u32) -> Key {
    match i % 3 {
        0 => Key::parse(KeyType::Mobile, &format!("138{:08}", i)).unwrap(),
        1 => Key::parse(KeyType::Email, &format!("user{i}@example.cn")).unwrap(),
        _ => {
            // A valid Luhn number built from i.
            let body = format!("6222{:011}", i);
            let sum: u32 = body
                .chars()
                .rev()
                .enumerate()
                .map(|(j, c)| {
                    let d = c.to_digit(10).unwrap();
                    if j % 2 == 0 {
                        let x = d * 2;
                        if x > 9 { x - 9 } else { x }
                    } else {
                        d
                    }
                })
                .sum();
            Key::parse(
                KeyType::BankCard,
                &format!("{body}{}", (10 - sum % 10) % 10),
            )
            .unwrap()
        }
    }
}

fn holder_of(rng: &mut StdRng, ids: &[u32]) -> Holder {
    let mut b = EpochBuilder::new(rng);
    let keys: Vec<Key> = ids.iter().map(|&i| key(i)).collect();
    // Two batches, to exercise streaming.
    let (a, c) = keys.split_at(keys.len() / 2);
    b.add(a);
    b.add(c);
    Holder::new(Arc::new(b.finish()))
}

fn query_of(rng: &mut StdRng, rows: &[Vec<u32>]) -> Arc<Query> {
    let mut q = QueryKeys::new();
    for r in rows {
        let keys: Vec<Key> = r.iter().map(|&i| key(i)).collect();
        q.add_row(&keys);
    }
    Arc::new(Query::blind(rng, q).unwrap())
}

/// What a correct system must report, by plain set computation.
fn expected(holder: &[u32], rows: &[Vec<u32>]) -> (BTreeMap<KeyType, u64>, Vec<u64>) {
    let h: HashSet<Key> = holder.iter().map(|&i| key(i)).collect();
    let q: HashSet<Key> = rows.iter().flatten().map(|&i| key(i)).collect();
    let mut per_type = BTreeMap::new();
    for k in q.iter() {
        per_type.entry(k.key_type()).or_insert(0u64);
        if h.contains(k) {
            *per_type.get_mut(&k.key_type()).unwrap() += 1;
        }
    }
    let rows = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|&i| h.contains(&key(i))))
        .map(|(i, _)| i as u64)
        .collect();
    (per_type, rows)
}

fn check(seed: u64, holder_ids: &[u32], rows: &[Vec<u32>]) {
    let mut rng = StdRng::seed_from_u64(seed);
    let holder = holder_of(&mut rng, holder_ids);
    let query = query_of(&mut rng, rows);
    let (per_type, matched_rows) = expected(holder_ids, rows);
    for mode in [QueryMode::Count, QueryMode::Matches] {
        let r = run_local(&holder, &query, mode, &mut rand::rng()).unwrap();
        assert_eq!(r.matched_keys, per_type, "{mode}");
        assert_eq!(r.epoch, holder.epoch().id());
        let distinct: BTreeSet<Key> = rows.iter().flatten().map(|&i| key(i)).collect();
        assert_eq!(r.query_keys.values().sum::<u64>(), distinct.len() as u64);
        match mode {
            QueryMode::Matches => assert_eq!(r.matched_rows.as_deref(), Some(&matched_rows[..])),
            QueryMode::Count => assert_eq!(r.matched_rows, None),
        }
        // With the holder's tags kept outside the session and merged at the end: the same.
        let (outside, _) = run_outside(&holder, &query, mode, seed as usize % 7 + 1);
        assert_eq!(outside, r, "{mode}, tags kept outside");
    }
}

/// A session whose holder tags the caller keeps (as a node spills them to disk) and feeds
/// back, `piece` tags at a time, once every evaluation is in; also returns the tags kept.
fn run_outside(
    holder: &Holder,
    query: &Arc<Query>,
    mode: QueryMode,
    piece: usize,
) -> (suyuan_protocol::psi::QueryResult, Vec<Vec<u8>>) {
    let (start, awaiting) = query.start(mode);
    let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let sections = accept.holder_sections.clone();
    let l = usize::from(accept.tag_len);
    let mut q = awaiting.handle_accept(accept).unwrap();
    q.keep_tags_outside().unwrap();
    let mut kept = vec![Vec::new(); sections.len()];
    let mut take = |q: &mut suyuan_protocol::psi::Exchanging| {
        while let Some(t) = q.take_tags() {
            let i = sections
                .iter()
                .position(|x| x.key_type == t.key_type)
                .unwrap();
            kept[i].extend_from_slice(&t.tags);
        }
    };
    while let Some(m) = q.poll_message() {
        s.handle(m).unwrap();
    }
    while let Some(m) = s.poll_message().unwrap() {
        q.handle(m).unwrap();
        take(&mut q);
    }
    assert!(q.is_complete());
    assert!(q.tag_set().is_none());
    for (i, tags) in kept.iter().enumerate() {
        for p in tags.chunks(piece * l) {
            q.merge_tags(i, p).unwrap();
        }
    }
    (q.finish().unwrap(), kept)
}

#[test]
fn tags_kept_outside_are_checked_as_they_come_and_merged_only_whole() {
    let mut rng = StdRng::seed_from_u64(31);
    // Mobile numbers only (i % 3 == 0), over two tag chunks.
    let holder = holder_of(&mut rng, &(0..30_000).step_by(3).collect::<Vec<u32>>());
    let query = query_of(
        &mut rng,
        &(0..3000).map(|i| vec![i * 15]).collect::<Vec<_>>(),
    );
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept.clone()).unwrap();
    q.keep_tags_outside().unwrap();
    // A holder sending a chunk whose first tag is below the previous chunk's last: refused,
    // though the session no longer holds the previous chunk.
    let Some(HolderMessage::Tags(first)) = s.poll_message().unwrap() else {
        panic!("tags first")
    };
    let mut low = first.clone();
    low.tags.truncate(usize::from(accept.tag_len));
    q.handle(HolderMessage::Tags(first)).unwrap();
    assert_eq!(q.take_tags().map(|t| !t.tags.is_empty()), Some(true));
    assert_eq!(
        misbehaved(q.handle(HolderMessage::Tags(low)).unwrap_err()),
        PeerMisbehaved::TagsNotSorted(KeyType::Mobile)
    );
    // A set kept outside from an earlier query must fit: this epoch, these sections, tags at
    // least ℓ long; and count mode keeps none.
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept.clone()).unwrap();
    let (l, sections) = (accept.tag_len, accept.holder_sections.clone());
    for (epoch, tag_len) in [(EpochId([9; 16]), l), (accept.epoch, l - 1)] {
        assert!(matches!(
            q.use_tags_kept_outside(epoch, tag_len, &sections),
            Err(PsiError::Misuse(Misuse::TagSetMismatch))
        ));
    }
    q.use_tags_kept_outside(accept.epoch, 16, &sections)
        .unwrap();
    assert!(q.tags_done(), "no tag is expected from the holder");
    let (start, awaiting) = query.start(QueryMode::Count);
    let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept.clone()).unwrap();
    assert!(matches!(
        q.use_tags_kept_outside(accept.epoch, 16, &accept.holder_sections),
        Err(PsiError::Misuse(Misuse::NoKeptTagsInCountMode))
    ));

    // Once a tag is in, tags can no longer be kept outside (nor a kept set used).
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept).unwrap();
    let first = s.poll_message().unwrap().unwrap();
    q.handle(first).unwrap();
    assert!(q.keep_tags_outside().is_err());

    // The merge waits for every evaluation, takes no more tags than the holder announced,
    // and the result waits for the whole merge.
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let l = usize::from(accept.tag_len);
    let mut q = awaiting.handle_accept(accept).unwrap();
    q.keep_tags_outside().unwrap();
    let mut kept = Vec::new();
    while let Some(HolderMessage::Tags(t)) = s.poll_message().unwrap() {
        q.handle(HolderMessage::Tags(t)).unwrap();
        kept.extend(q.take_tags().unwrap().tags);
        if q.tags_done() {
            break;
        }
    }
    assert!(matches!(
        q.merge_tags(0, &kept[..l]),
        Err(PsiError::Misuse(Misuse::Incomplete(_)))
    ));
    while let Some(m) = q.poll_message() {
        s.handle(m).unwrap();
    }
    while let Some(m) = s.poll_message().unwrap() {
        q.handle(m).unwrap();
    }
    q.merge_tags(0, &kept[..kept.len() - l]).unwrap();
    let mut extra = kept[kept.len() - l..].to_vec();
    extra.extend_from_slice(&kept[..l]);
    assert!(matches!(
        q.merge_tags(0, &extra),
        Err(PsiError::Misuse(Misuse::TagSetMismatch))
    ));
    let Err(PsiError::Misuse(Misuse::Incomplete(why))) = q.finish() else {
        panic!("a result before the whole merge")
    };
    assert_eq!(why, "the holder's tags are not all merged");
}

#[test]
fn edge_sets_match_plain_intersection() {
    let some: Vec<u32> = (0..50).collect();
    check(1, &[], &[]); // both empty
    check(2, &some, &[]); // empty query
    check(3, &[], &[vec![1], vec![2, 3]]); // empty holder
    check(4, &some, &[vec![100], vec![101, 102]]); // disjoint
    check(5, &some, &some.iter().map(|&i| vec![i]).collect::<Vec<_>>()); // identical
    check(
        6,
        &[1, 1, 2, 2, 3],
        &[vec![1, 1], vec![1], vec![], vec![2, 7], vec![7]],
    ); // duplicates, keyless row
}

#[test]
fn sets_larger_than_a_chunk_match_plain_intersection() {
    let holder: Vec<u32> = (0..9000).step_by(2).collect();
    let rows: Vec<Vec<u32>> = (3000..13_000).map(|i| vec![i, i + 50_000]).collect();
    assert!(rows.len() > 2 * MAX_CHUNK_ELEMENTS);
    check(7, &holder, &rows);
}

#[test]
fn a_query_without_a_section_matches_the_plain_intersection_of_the_rest() {
    let mut rng = StdRng::seed_from_u64(21);
    let holder_ids: Vec<u32> = (0..6000).step_by(3).chain(1..40).collect();
    let holder = holder_of(&mut rng, &holder_ids);
    // Rows of one type each, rows of two types, and rows longer than a chunk in all.
    let rows: Vec<Vec<u32>> = (0..5000).map(|i| vec![i, i + 7]).collect();
    let query = query_of(&mut rng, &rows);
    // i % 3 == 1 is an e-mail address: drop that section.
    let kept: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| r.iter().copied().filter(|i| i % 3 != 1).collect())
        .collect();
    let (per_type, matched_rows) = expected(&holder_ids, &kept);
    let fewer = Arc::new(query.without(&[KeyType::Email]).unwrap());
    assert_eq!(fewer.rows(), query.rows());
    assert!(
        fewer
            .sections()
            .iter()
            .all(|s| s.key_type != KeyType::Email)
    );
    for mode in [QueryMode::Count, QueryMode::Matches] {
        let r = run_local(&holder, &fewer, mode, &mut rand::rng()).unwrap();
        assert_eq!(r.matched_keys, per_type, "{mode}");
        if mode == QueryMode::Matches {
            assert_eq!(r.matched_rows.as_deref(), Some(&matched_rows[..]));
        }
    }
    let all: Vec<KeyType> = query.sections().iter().map(|s| s.key_type).collect();
    assert!(query.without(&all).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_sets_match_plain_intersection(
        seed in any::<u64>(),
        holder in prop::collection::vec(0u32..300, 0..200),
        rows in prop::collection::vec(prop::collection::vec(0u32..300, 0..4), 0..200),
    ) {
        check(seed, &holder, &rows);
    }

    #[test]
    fn count_output_does_not_depend_on_input_order(
        seed in any::<u64>(),
        holder in prop::collection::vec(0u32..200, 1..100),
        rows in prop::collection::vec(0u32..200, 1..150),
        rotate in 0usize..150,
    ) {
        // Same blind (same seed) and same keys in another order: identical bytes on the wire.
        let mut rng = StdRng::seed_from_u64(seed);
        let h = holder_of(&mut rng, &holder);
        let mut rotated = rows.clone();
        let k = rotate % rotated.len();
        rotated.rotate_left(k);
        rotated.reverse();
        let streams: Vec<Vec<HolderMessage>> = [rows, rotated].iter().map(|r| {
            let mut rng = StdRng::seed_from_u64(seed ^ 0xabcd);
            let rows: Vec<Vec<u32>> = r.iter().map(|&i| vec![i]).collect();
            let q = query_of(&mut rng, &rows);
            let (start, _) = q.start(QueryMode::Count);
            // The holder's session factor too.
            let mut holder_rng = StdRng::seed_from_u64(seed ^ 0x1234);
            let (accept, mut s) = h.handle_start(start, &mut holder_rng).unwrap();
            let (_, awaiting) = q.start(QueryMode::Count);
            let mut ex = awaiting.handle_accept(accept).unwrap();
            while let Some(m) = ex.poll_message() { s.handle(m).unwrap(); }
            std::iter::from_fn(|| s.poll_message().unwrap()).collect()
        }).collect();
        prop_assert_eq!(&streams[0], &streams[1]);
    }
}

#[test]
fn a_query_never_matches_tags_of_another_epoch() {
    let mut rng = StdRng::seed_from_u64(9);
    let ids: Vec<u32> = (0..100).collect();
    let old = holder_of(&mut rng, &ids);
    let new = holder_of(&mut rng, &ids);
    let query = query_of(&mut rng, &ids.iter().map(|&i| vec![i]).collect::<Vec<_>>());

    // Evaluations from the new epoch's key, tags from the old epoch.
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, mut s_new) = new.handle_start(start.clone(), &mut rand::rng()).unwrap();
    let (_, mut s_old) = old.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept).unwrap();
    while let Some(HolderMessage::Tags(t)) = s_old.poll_message().unwrap() {
        q.handle(HolderMessage::Tags(t)).unwrap();
    }
    while let Some(m) = q.poll_message() {
        s_new.handle(m).unwrap();
    }
    while let Some(m) = s_new.poll_message().unwrap() {
        if let HolderMessage::Evaluated(_) = m {
            q.handle(m).unwrap();
        }
    }
    let r = q.finish().unwrap();
    assert_eq!(r.matched_keys.values().sum::<u64>(), 0);
    assert_eq!(r.matched_rows, Some(vec![]));
    // Same keys, same epoch: everything matches.
    let r = run_local(&new, &query, QueryMode::Matches, &mut rand::rng()).unwrap();
    assert_eq!(r.matched_keys.values().sum::<u64>(), 100);
}

// ---- refusals: nothing a peer sends makes a session panic ----

fn setup(n_query: u32) -> (Holder, Arc<Query>) {
    let mut rng = StdRng::seed_from_u64(42);
    let holder = holder_of(&mut rng, &(0..30).collect::<Vec<_>>());
    let rows: Vec<Vec<u32>> = (0..n_query).map(|i| vec![i * 3]).collect(); // mobiles only
    (holder, query_of(&mut rng, &rows))
}

fn misbehaved(e: PsiError) -> PeerMisbehaved {
    match e {
        PsiError::PeerMisbehaved(m) => m,
        other => panic!("expected PeerMisbehaved, got {other:?}"),
    }
}

fn start_msg(sections: Vec<Section>) -> QueryStart {
    QueryStart {
        version: PROTOCOL_VERSION,
        mode: QueryMode::Matches,
        sections,
        labels: false,
    }
}

#[test]
fn holder_refuses_bad_starts() {
    let (holder, query) = setup(10);
    let mobile = |count| Section {
        key_type: KeyType::Mobile,
        count,
    };
    let email = |count| Section {
        key_type: KeyType::Email,
        count,
    };
    let (mut s, _) = query.start(QueryMode::Count);
    s.version = 1;
    assert_eq!(
        misbehaved(holder.handle_start(s, &mut rand::rng()).unwrap_err()),
        PeerMisbehaved::UnsupportedVersion {
            got: 1,
            supported: 3
        }
    );
    for bad in [
        vec![email(1), mobile(1)],
        vec![mobile(1), mobile(1)],
        vec![mobile(0)],
    ] {
        assert_eq!(
            misbehaved(
                holder
                    .handle_start(start_msg(bad), &mut rand::rng())
                    .unwrap_err()
            ),
            PeerMisbehaved::BadSections
        );
    }
    // A declared size past any limit, without overflow.
    let err = holder
        .handle_start(
            start_msg(vec![mobile(u64::MAX), email(u64::MAX)]),
            &mut rand::rng(),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        PsiError::Limit(LimitExceeded::QueryTooLarge { .. })
    ));
    let small = Holder::with_limits(
        Arc::clone(holder.epoch()),
        HolderLimits { max_query_keys: 5 },
    );
    assert_eq!(
        small
            .handle_start(start_msg(vec![mobile(6)]), &mut rand::rng())
            .unwrap_err()
            .to_string(),
        "limit exceeded: query of 6 keys exceeds the limit of 5"
    );
}

/// A holder session past the accept, and the querier's chunks.
fn open(
    holder: &Holder,
    query: &Arc<Query>,
    mode: QueryMode,
) -> (suyuan_protocol::psi::HolderSession, Vec<BlindedChunk>) {
    let (start, awaiting) = query.start(mode);
    let (accept, s) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept).unwrap();
    let chunks = std::iter::from_fn(|| q.poll_message())
        .map(|m| match m {
            QuerierMessage::Blinded(c) => c,
            _ => unreachable!(),
        })
        .collect();
    (s, chunks)
}

#[test]
fn holder_refuses_bad_chunks() {
    let (holder, query) = setup(5000); // two chunks: 4096 + 904
    let (mut s, chunks) = open(&holder, &query, QueryMode::Matches);
    assert_eq!(chunks.len(), 2);

    // Out of order.
    let err = s
        .handle(QuerierMessage::Blinded(chunks[1].clone()))
        .unwrap_err();
    assert_eq!(
        misbehaved(err),
        PeerMisbehaved::ChunkOutOfOrder {
            expected: 0,
            got: 1
        }
    );
    // Oversize and empty.
    let mut big = chunks[0].clone();
    big.elements.push(big.elements[0]);
    assert_eq!(
        misbehaved(s.handle(QuerierMessage::Blinded(big)).unwrap_err()),
        PeerMisbehaved::BadChunkSize {
            len: MAX_CHUNK_ELEMENTS + 1,
            max: MAX_CHUNK_ELEMENTS
        }
    );
    let empty = BlindedChunk {
        seq: 0,
        elements: vec![],
    };
    assert!(matches!(
        misbehaved(s.handle(QuerierMessage::Blinded(empty)).unwrap_err()),
        PeerMisbehaved::BadChunkSize { len: 0, .. }
    ));
    // Short chunk.
    let mut short = chunks[0].clone();
    short.elements.pop();
    assert_eq!(
        misbehaved(s.handle(QuerierMessage::Blinded(short)).unwrap_err()),
        PeerMisbehaved::WrongChunkLength {
            seq: 0,
            expected: 4096,
            got: 4095
        }
    );
    // Invalid points: the identity, a non-canonical encoding, a non-point.
    for (bad, pos) in [([0u8; 32], 7usize), ([0xff; 32], 100), ([1u8; 32], 4000)] {
        let mut c = chunks[0].clone();
        c.elements[pos] = Element(bad);
        assert_eq!(
            misbehaved(s.handle(QuerierMessage::Blinded(c)).unwrap_err()),
            PeerMisbehaved::InvalidElement { index: pos as u64 }
        );
    }
    // The real chunks still work after the refusals, then nothing more is accepted.
    s.handle(QuerierMessage::Blinded(chunks[0].clone()))
        .unwrap();
    s.handle(QuerierMessage::Blinded(chunks[1].clone()))
        .unwrap();
    assert!(matches!(
        misbehaved(
            s.handle(QuerierMessage::Blinded(chunks[1].clone()))
                .unwrap_err()
        ),
        PeerMisbehaved::TooManyElements { declared: 5000 }
    ));
    let (start, _) = query.start(QueryMode::Matches);
    assert!(matches!(
        misbehaved(s.handle(start.into()).unwrap_err()),
        PeerMisbehaved::UnexpectedMessage {
            got: "QueryStart",
            ..
        }
    ));
}

/// The querier side after accept, with the holder's whole honest stream.
fn querier_and_stream(
    mode: QueryMode,
) -> (
    suyuan_protocol::psi::Exchanging,
    Vec<HolderMessage>,
    HolderMessage,
) {
    let (holder, query) = setup(5000);
    let (start, awaiting) = query.start(mode);
    let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept.clone()).unwrap();
    while let Some(m) = q.poll_message() {
        s.handle(m).unwrap();
    }
    let stream = std::iter::from_fn(|| s.poll_message().unwrap()).collect();
    (q, stream, accept.into())
}

#[test]
fn querier_refuses_bad_accepts() {
    let (holder, query) = setup(10);
    let (start, _) = query.start(QueryMode::Matches);
    let (good, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let try_accept = |a: QueryAccept| query.start(QueryMode::Matches).1.handle_accept(a);

    let mut a = good.clone();
    a.version = 9;
    assert!(matches!(
        misbehaved(try_accept(a).unwrap_err()),
        PeerMisbehaved::UnsupportedVersion { got: 9, .. }
    ));
    let mut a = good.clone();
    a.tag_len = 4; // a holder trying to raise the false-match rate
    assert_eq!(
        misbehaved(try_accept(a).unwrap_err()),
        PeerMisbehaved::WrongTagLength {
            got: 4,
            expected: 8
        }
    );
    let mut a = good.clone();
    a.holder_sections[0].key_type = KeyType::Email;
    assert_eq!(
        misbehaved(try_accept(a).unwrap_err()),
        PeerMisbehaved::SectionsMismatch
    );
    let mut a = good.clone();
    a.holder_sections[0].count = u64::MAX;
    assert!(matches!(
        try_accept(a).unwrap_err(),
        PsiError::Limit(LimitExceeded::HolderSetTooLarge { .. })
    ));
}

#[test]
fn querier_refuses_bad_streams() {
    for mode in [QueryMode::Matches, QueryMode::Count] {
        let (_, stream, accept) = querier_and_stream(mode);
        let tags: Vec<&HolderMessage> = stream
            .iter()
            .filter(|m| matches!(m, HolderMessage::Tags(_)))
            .collect();
        let evals: Vec<&HolderMessage> = stream
            .iter()
            .filter(|m| matches!(m, HolderMessage::Evaluated(_)))
            .collect();
        assert_eq!(tags.len(), 1);
        assert_eq!(evals.len(), 2);
        let HolderMessage::Tags(t) = tags[0].clone() else {
            unreachable!()
        };

        // Evaluations before the tags.
        let (mut q, ..) = querier_and_stream(mode);
        assert!(matches!(
            misbehaved(q.handle(evals[0].clone()).unwrap_err()),
            PeerMisbehaved::UnexpectedMessage {
                expected: "TagChunk",
                got: "EvaluatedChunk"
            }
        ));
        // A second accept.
        assert!(matches!(
            misbehaved(q.handle(accept.clone()).unwrap_err()),
            PeerMisbehaved::UnexpectedMessage {
                got: "QueryAccept",
                ..
            }
        ));
        // Ragged, unsorted, wrong-type and surplus tags.
        let mut ragged = t.clone();
        ragged.tags.pop();
        assert!(matches!(
            misbehaved(q.handle(HolderMessage::Tags(ragged)).unwrap_err()),
            PeerMisbehaved::RaggedTagChunk { .. }
        ));
        let mut unsorted = t.clone();
        unsorted.tags.reverse();
        assert_eq!(
            misbehaved(q.handle(HolderMessage::Tags(unsorted)).unwrap_err()),
            PeerMisbehaved::TagsNotSorted(KeyType::Mobile)
        );
        let mut other = t.clone();
        other.key_type = KeyType::Email;
        assert_eq!(
            misbehaved(q.handle(HolderMessage::Tags(other)).unwrap_err()),
            PeerMisbehaved::UnexpectedTags(KeyType::Email)
        );
        q.handle(HolderMessage::Tags(t.clone())).unwrap();
        assert!(matches!(
            misbehaved(q.handle(HolderMessage::Tags(t.clone())).unwrap_err()),
            PeerMisbehaved::UnexpectedMessage {
                got: "TagChunk",
                ..
            }
        ));
        // finish too early.
        let (q2, ..) = querier_and_stream(mode);
        assert_eq!(
            q2.finish().unwrap_err().to_string(),
            "misuse: the session is not complete: tags missing"
        );

        // Evaluations out of order, with an invalid point, then the honest ones, then a second reply.
        let HolderMessage::Evaluated(e0) = evals[0].clone() else {
            unreachable!()
        };
        let HolderMessage::Evaluated(e1) = evals[1].clone() else {
            unreachable!()
        };
        assert_eq!(
            misbehaved(q.handle(HolderMessage::Evaluated(e1.clone())).unwrap_err()),
            PeerMisbehaved::ChunkOutOfOrder {
                expected: 0,
                got: 1
            }
        );
        // The identity at position 0 (all zeros sorts first, so count mode's order check passes).
        let mut bad = e0.clone();
        bad.elements[0] = Element([0u8; 32]);
        assert_eq!(
            misbehaved(q.handle(HolderMessage::Evaluated(bad)).unwrap_err()),
            PeerMisbehaved::InvalidElement { index: 0 }
        );
        if mode == QueryMode::Matches {
            let mut short = e0.clone();
            short.elements.pop();
            assert!(matches!(
                misbehaved(q.handle(HolderMessage::Evaluated(short)).unwrap_err()),
                PeerMisbehaved::WrongChunkLength { seq: 0, .. }
            ));
        }
        let empty = EvaluatedChunk {
            seq: 0,
            elements: vec![],
            proof: None,
        };
        assert!(matches!(
            misbehaved(q.handle(HolderMessage::Evaluated(empty)).unwrap_err()),
            PeerMisbehaved::BadChunkSize { len: 0, .. }
        ));
        if mode == QueryMode::Count {
            let mut reordered = e0.clone();
            reordered.elements.reverse();
            assert_eq!(
                misbehaved(q.handle(HolderMessage::Evaluated(reordered)).unwrap_err()),
                PeerMisbehaved::EvaluationsNotSorted
            );
            // One matching evaluation repeated to inflate the count: equal neighbours.
            let mut repeated = e0.clone();
            repeated.elements[1] = repeated.elements[0];
            assert_eq!(
                misbehaved(q.handle(HolderMessage::Evaluated(repeated)).unwrap_err()),
                PeerMisbehaved::EvaluationsNotSorted
            );
        }
        q.handle(HolderMessage::Evaluated(e0)).unwrap();
        if mode == QueryMode::Count {
            let mut long = e1.clone();
            long.elements.extend(e1.elements.iter().take(10));
            assert!(matches!(
                misbehaved(q.handle(HolderMessage::Evaluated(long)).unwrap_err()),
                PeerMisbehaved::TooManyElements { declared: 5000 }
            ));
        }
        q.handle(HolderMessage::Evaluated(e1.clone())).unwrap();
        assert!(q.is_complete());
        let mut again = e1;
        again.seq = 2;
        assert!(matches!(
            misbehaved(q.handle(HolderMessage::Evaluated(again)).unwrap_err()),
            PeerMisbehaved::UnexpectedMessage {
                expected: "end of stream",
                ..
            }
        ));
        let r = q.finish().unwrap();
        assert_eq!(r.matched_keys[&KeyType::Mobile], 10); // ids 0,3,..,27 are the holder's mobiles
    }
}

#[test]
fn matches_answer_to_an_unsent_chunk_is_refused() {
    let (holder, query) = setup(5000);
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept).unwrap();
    // Drain tags into q; send nothing yet.
    while let Some(m) = s.poll_message().unwrap() {
        q.handle(m).unwrap();
    }
    let forged = EvaluatedChunk {
        seq: 0,
        elements: vec![Element(query_any_point()); MAX_CHUNK_ELEMENTS],
        proof: None,
    };
    assert!(matches!(
        misbehaved(q.handle(HolderMessage::Evaluated(forged)).unwrap_err()),
        PeerMisbehaved::UnexpectedMessage { .. }
    ));
}

fn query_any_point() -> [u8; 32] {
    // The ristretto255 base point's encoding: a valid element the querier never sent.
    hex::decode("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")
        .unwrap()
        .try_into()
        .unwrap()
}

#[test]
fn a_preparation_gives_up_when_told_and_is_whole_otherwise() {
    use std::cell::Cell;
    use suyuan_protocol::psi::{PREPARE_BLOCK, PreparedCount};
    let mut rng = StdRng::seed_from_u64(31);
    let ids: Vec<u32> = (0..(PREPARE_BLOCK as u32 * 3 + 5)).collect();
    let holder = holder_of(&mut rng, &ids);
    // Told to stop after two looks: nothing comes out.
    let looks = Cell::new(0);
    let stopped = PreparedCount::prepare_while(holder.epoch(), &mut rng, || {
        looks.set(looks.get() + 1);
        looks.get() <= 2
    })
    .unwrap();
    assert!(stopped.is_none());
    assert_eq!(looks.get(), 3);
    let whole = PreparedCount::prepare_while(holder.epoch(), &mut rng, || true)
        .unwrap()
        .unwrap();
    assert_eq!(
        whole.size_bytes(),
        16 * holder.epoch().sizes().values().sum::<u64>()
    );
}

/// Runs one count session on a prepared session; the result and every tag byte the holder sent.
fn count_on_prepared(
    holder: &Holder,
    query: &Arc<Query>,
    prepared: suyuan_protocol::psi::PreparedCount,
) -> (suyuan_protocol::psi::QueryResult, HashSet<Vec<u8>>) {
    let (start, awaiting) = query.start(QueryMode::Count);
    let (accept, mut session) = holder
        .handle_start_prepared(start, prepared, &mut rand::rng())
        .unwrap();
    let len = usize::from(accept.tag_len);
    let mut querier = awaiting.handle_accept(accept).unwrap();
    let mut tags = HashSet::new();
    loop {
        let mut progressed = false;
        if let Some(m) = querier.poll_message() {
            session.handle(m).unwrap();
            progressed = true;
        }
        while let Some(m) = session.poll_message().unwrap() {
            if let HolderMessage::Tags(t) = &m {
                tags.extend(t.tags.chunks(len).map(<[u8]>::to_vec));
            }
            querier.handle(m).unwrap();
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    (querier.finish().unwrap(), tags)
}

#[test]
fn sessions_prepared_in_one_pass_each_count_right_and_share_no_tag() {
    use suyuan_protocol::psi::PreparedCount;
    let mut rng = StdRng::seed_from_u64(41);
    let ids: Vec<u32> = (0..5000).collect();
    let holder = holder_of(&mut rng, &ids);
    let rows: Vec<Vec<u32>> = (2500..4000).map(|i| vec![i * 2]).collect();
    let query = query_of(&mut rng, &rows);
    let (per_type, _) = expected(&ids, &rows);
    let sessions = PreparedCount::prepare_many_while(holder.epoch(), 4, &mut rng, || true)
        .unwrap()
        .unwrap();
    assert_eq!(sessions.len(), 4);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for prepared in sessions {
        let (r, tags) = count_on_prepared(&holder, &query, prepared);
        assert_eq!(r.matched_keys, per_type);
        assert_eq!(tags.len(), ids.len());
        assert!(
            seen.is_disjoint(&tags),
            "a tag came back in another session"
        );
        seen.extend(tags);
    }
}

#[test]
fn a_query_rebuilt_from_its_blind_sends_the_same_elements() {
    let mut rng = StdRng::seed_from_u64(43);
    let holder = holder_of(&mut rng, &(0..300).collect::<Vec<u32>>());
    let rows: Vec<Vec<u32>> = (100..400).map(|i| vec![i, i + 1000]).collect();
    let keys = |rows: &[Vec<u32>]| {
        let mut q = QueryKeys::new();
        for r in rows {
            q.add_row(&r.iter().map(|&i| key(i)).collect::<Vec<_>>());
        }
        q
    };
    let original = Arc::new(Query::blind(&mut rng, keys(&rows)).unwrap());
    let rebuilt = Arc::new(Query::reblind(&original.blind_secret(), keys(&rows)).unwrap());
    let chunks = |q: &Arc<Query>| {
        let (start, awaiting) = q.start(QueryMode::Matches);
        let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
        let mut session = awaiting.handle_accept(accept).unwrap();
        session.take_outgoing().collect::<Vec<_>>()
    };
    assert_eq!(chunks(&original), chunks(&rebuilt));
    // Another dump under the same blind sends other elements.
    let other = Arc::new(Query::reblind(&original.blind_secret(), keys(&rows[1..])).unwrap());
    assert_ne!(chunks(&original), chunks(&other));
    for bad in [[0u8; 32], [0xff; 32]] {
        assert!(matches!(
            Query::reblind(&bad, keys(&rows)),
            Err(PsiError::Misuse(suyuan_protocol::psi::Misuse::InvalidBlind))
        ));
    }
}

fn keys_of(rows: &[Vec<u32>]) -> QueryKeys {
    let mut q = QueryKeys::new();
    for r in rows {
        q.add_row(&r.iter().map(|&i| key(i)).collect::<Vec<_>>());
    }
    q
}

/// Additive blinding (`H(x) + ρᵢ·G`, unblinded by `E − ρᵢ·pk`) finds what the plain set
/// computation finds, and what the multiplicative blinding finds, key for key and row for row:
/// small and empty sets, sets over several chunks, and a query without one of its sections
/// (whose blinds keep their first positions).
#[test]
fn additive_blinding_matches_the_plain_intersection_and_the_multiplicative_path() {
    let cases: Vec<(Vec<u32>, Vec<Vec<u32>>)> = vec![
        ((0..50).collect(), vec![]),
        (
            (0..50).collect(),
            vec![vec![1, 1], vec![], vec![2, 70], vec![70]],
        ),
        (
            (0..9000).step_by(2).collect(),
            (3000..12_000).map(|i| vec![i, i + 50_000]).collect(),
        ),
    ];
    for (seed, (holder_ids, rows)) in cases.into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(80 + seed as u64);
        let holder = holder_of(&mut rng, &holder_ids);
        let (per_type, matched_rows) = expected(&holder_ids, &rows);
        let additive =
            Arc::new(Query::blind_as(&mut rng, keys_of(&rows), Blinding::Additive).unwrap());
        assert_eq!(additive.blinding(), Blinding::Additive);
        let multiplicative = query_of(&mut rng, &rows);
        let a = run_local(&holder, &additive, QueryMode::Matches, &mut rand::rng()).unwrap();
        let m = run_local(
            &holder,
            &multiplicative,
            QueryMode::Matches,
            &mut rand::rng(),
        )
        .unwrap();
        assert_eq!(a.matched_keys, per_type, "case {seed}");
        assert_eq!(
            a.matched_rows.as_deref(),
            Some(&matched_rows[..]),
            "case {seed}"
        );
        assert_eq!(a.matched_keys, m.matched_keys);
        assert_eq!(a.matched_rows, m.matched_rows);
    }

    // Without the e-mail section (i % 3 == 1): the other sections' blinds are found again.
    let mut rng = StdRng::seed_from_u64(90);
    let holder_ids: Vec<u32> = (0..6000).step_by(3).chain(1..40).collect();
    let holder = holder_of(&mut rng, &holder_ids);
    let rows: Vec<Vec<u32>> = (0..5000).map(|i| vec![i, i + 7]).collect();
    let query = Query::blind_as(&mut rng, keys_of(&rows), Blinding::Additive).unwrap();
    let fewer = Arc::new(query.without(&[KeyType::Email]).unwrap());
    let kept: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| r.iter().copied().filter(|i| i % 3 != 1).collect())
        .collect();
    let (per_type, matched_rows) = expected(&holder_ids, &kept);
    let r = run_local(&holder, &fewer, QueryMode::Matches, &mut rand::rng()).unwrap();
    assert_eq!(r.matched_keys, per_type);
    assert_eq!(r.matched_rows.as_deref(), Some(&matched_rows[..]));
}

/// The attack additive blinding must resist: a holder who can guess some of the dump's keys
/// subtracts `H(guess)` from every blinded element. Had all elements one blind `ρ`, every
/// right guess would give the same `ρ·G` and the repeated value would name the matching keys.
/// With a blind per position, no difference repeats.
#[test]
fn a_holder_guessing_keys_finds_no_common_blind_in_an_additive_query() {
    use curve25519_dalek::ristretto::CompressedRistretto;
    let mut rng = StdRng::seed_from_u64(91);
    // The dump: 40 mobile numbers, every one of them among the holder's guesses.
    let ids: Vec<u32> = (0..120).step_by(3).collect();
    let rows: Vec<Vec<u32>> = ids.iter().map(|&i| vec![i]).collect();
    let query = Arc::new(Query::blind_as(&mut rng, keys_of(&rows), Blinding::Additive).unwrap());
    let holder = holder_of(&mut rng, &[0]);
    let (start, awaiting) = query.start(QueryMode::Matches);
    let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut q = awaiting.handle_accept(accept).unwrap();
    let blinded: Vec<[u8; 32]> = q
        .take_outgoing()
        .flat_map(|m| match m {
            QuerierMessage::Blinded(c) => c.elements.into_iter().map(|e| e.0).collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(blinded.len(), ids.len());
    let guesses: Vec<_> = (0..200u32)
        .filter(|i| i % 3 == 0)
        .map(|i| {
            let k = key(i);
            // The OPRF input of a key: its type's name, a zero byte, its canonical value.
            let prefix = [k.key_type().as_str().as_bytes(), &[0]].concat();
            suyuan_protocol::oprf::hash_to_group(
                suyuan_protocol::oprf::Mode::Voprf,
                &[&prefix, k.value().as_bytes()],
            )
        })
        .collect();
    // Whether some difference `B − H(guess)` repeats.
    let attack = |blinded: &[curve25519_dalek::ristretto::RistrettoPoint]| {
        let mut seen = HashSet::new();
        blinded
            .iter()
            .flat_map(|b| guesses.iter().map(move |g| (b - g).compress().to_bytes()))
            .any(|d| !seen.insert(d))
    };
    // The attack works on one blind for all (which also shows the guesses are right).
    let rho = curve25519_dalek::scalar::Scalar::from(123_456_789u64);
    let g = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    let one_blind: Vec<_> = guesses[..ids.len()].iter().map(|h| h + rho * g).collect();
    assert!(attack(&one_blind));
    // And finds nothing in the query.
    let blinded: Vec<_> = blinded
        .iter()
        .map(|b| CompressedRistretto(*b).decompress().unwrap())
        .collect();
    assert!(
        !attack(&blinded),
        "a difference repeats: the blinds are not independent"
    );
}

#[test]
fn an_additive_query_is_refused_in_count_mode_and_rebuilt_from_its_seed() {
    let mut rng = StdRng::seed_from_u64(92);
    let holder = holder_of(&mut rng, &(0..300).collect::<Vec<u32>>());
    let rows: Vec<Vec<u32>> = (100..400).map(|i| vec![i, i + 1000]).collect();
    let query = Arc::new(Query::blind_as(&mut rng, keys_of(&rows), Blinding::Additive).unwrap());
    let (start, awaiting) = query.start(QueryMode::Count);
    let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
    assert!(matches!(
        awaiting.handle_accept(accept),
        Err(PsiError::Misuse(
            suyuan_protocol::psi::Misuse::AdditiveBlindingInCountMode
        ))
    ));

    let chunks = |q: &Arc<Query>| {
        let (start, awaiting) = q.start(QueryMode::Matches);
        let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
        let mut session = awaiting.handle_accept(accept).unwrap();
        session.take_outgoing().collect::<Vec<_>>()
    };
    let secret = query.blind_secret();
    let rebuilt = Arc::new(Query::reblind_as(&secret, keys_of(&rows), Blinding::Additive).unwrap());
    assert_eq!(chunks(&query), chunks(&rebuilt));
    // The same seed read as a multiplicative blind gives other elements, and another seed too.
    if let Ok(other) = Query::reblind(&secret, keys_of(&rows)) {
        assert_ne!(chunks(&query), chunks(&Arc::new(other)));
    }
    let fresh = Arc::new(Query::blind_as(&mut rng, keys_of(&rows), Blinding::Additive).unwrap());
    assert_ne!(chunks(&query), chunks(&fresh));
}

/// A query planned and blinded beside its sessions (`plan_as`, then `blind_all` on another
/// thread) sends what the same query blinded first sends, chunk for chunk, and answers the
/// same; a chunk not yet blinded is reported as not ready, and sending it blinds it.
#[test]
fn a_query_blinded_beside_its_sessions_sends_and_finds_the_same() {
    let mut rng = StdRng::seed_from_u64(93);
    let holder_ids: Vec<u32> = (0..9000).step_by(2).collect();
    let holder = holder_of(&mut rng, &holder_ids);
    let rows: Vec<Vec<u32>> = (3000..12_000).map(|i| vec![i, i + 50_000]).collect();
    let (per_type, matched_rows) = expected(&holder_ids, &rows);
    for blinding in [Blinding::Multiplicative, Blinding::Additive] {
        let planned = Arc::new(Query::plan_as(&mut rng, keys_of(&rows), blinding).unwrap());
        let chunks = planned.total_keys().div_ceil(MAX_CHUNK_ELEMENTS as u64) as u32;
        assert!(chunks > 2);
        assert!((0..chunks).all(|c| !planned.chunk_ready(c)));
        // The same secret, blinded at once.
        let secret = planned.blind_secret();
        let whole = Arc::new(Query::reblind_as(&secret, keys_of(&rows), blinding).unwrap());
        assert!((0..chunks).all(|c| whole.chunk_ready(c)));

        let (start, awaiting) = planned.start(QueryMode::Matches);
        let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
        let mut session = awaiting.handle_accept(accept).unwrap();
        let mut outgoing = session.take_outgoing();
        assert!(!outgoing.ready());
        let blinder = {
            let planned = Arc::clone(&planned);
            std::thread::spawn(move || planned.blind_all())
        };
        let sent: Vec<_> = outgoing.by_ref().collect();
        blinder.join().unwrap();
        assert!(outgoing.ready());
        let (start, awaiting) = whole.start(QueryMode::Matches);
        let (accept, _) = holder.handle_start(start, &mut rand::rng()).unwrap();
        let expected_chunks: Vec<_> = awaiting
            .handle_accept(accept)
            .unwrap()
            .take_outgoing()
            .collect();
        assert_eq!(sent, expected_chunks, "{blinding:?}");

        // And a whole session on a freshly planned query, its chunks blinded as they are sent.
        let fresh = Arc::new(Query::plan_as(&mut rng, keys_of(&rows), blinding).unwrap());
        let r = run_local(&holder, &fresh, QueryMode::Matches, &mut rand::rng()).unwrap();
        assert_eq!(r.matched_keys, per_type);
        assert_eq!(r.matched_rows.as_deref(), Some(&matched_rows[..]));
    }
}
