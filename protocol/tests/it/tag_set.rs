//! A querier keeps a holder's tag set and the next query to the same epoch uses it instead of
//! the download: same answer, no tags on the wire, and a stale or altered set is never used.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::{
    EpochBuilder, Holder, HolderMessage, Misuse, PsiError, Query, QueryKeys, QueryMode,
    QueryResult, TagSet, run_local, tag_len,
};

fn mobile(i: u64) -> Key {
    Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap()
}

fn holder(rng: &mut StdRng, ids: impl Iterator<Item = u64>) -> Holder {
    let mut b = EpochBuilder::new(rng);
    let keys: Vec<Key> = ids.map(mobile).collect();
    b.add(&keys);
    Holder::new(Arc::new(b.finish()))
}

fn query(rng: &mut StdRng, ids: impl Iterator<Item = u64>) -> Arc<Query> {
    let mut q = QueryKeys::new();
    for i in ids {
        q.add_row(&[mobile(i)]);
    }
    Arc::new(Query::blind(rng, q).unwrap())
}

/// One session in memory; with `kept`, the holder is told (as the node tells it, after
/// checking the digest) to send no tags and the querier uses the kept set. Returns the result,
/// the tag set the querier ends with, and how many tag chunks crossed.
fn run(
    holder: &Holder,
    query: &Arc<Query>,
    mode: QueryMode,
    kept: Option<&TagSet>,
) -> Result<(QueryResult, TagSet, usize), PsiError> {
    let (start, awaiting) = query.start(mode);
    let (accept, mut session) = holder.handle_start(start, &mut rand::rng())?;
    if let Some(set) = kept {
        let types: Vec<KeyType> = set.sections.iter().map(|s| s.key_type).collect();
        let theirs = holder.epoch().tag_set_digest(&types, set.tag_len)?;
        assert_eq!(
            theirs,
            set.digest(),
            "the node only skips on a matching digest"
        );
        session.skip_tags()?;
    }
    let mut ex = awaiting.handle_accept(accept)?;
    if let Some(set) = kept {
        ex.use_tag_set(set.clone())?;
    }
    let mut tag_chunks = 0;
    loop {
        let mut progressed = false;
        if let Some(m) = ex.poll_message() {
            session.handle(m)?;
            progressed = true;
        }
        while let Some(m) = session.poll_message().unwrap() {
            tag_chunks += usize::from(matches!(m, HolderMessage::Tags(_)));
            ex.handle(m)?;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    let copied = ex.tag_set().unwrap();
    let (result, set) = ex.finish_keeping_tags()?;
    assert_eq!(copied, set);
    Ok((result, set, tag_chunks))
}

#[test]
fn count_sessions_keep_no_tags_their_tags_are_new_each_time() {
    let mut rng = StdRng::seed_from_u64(8);
    let h = holder(&mut rng, (0..900).step_by(2));
    let q = query(&mut rng, 300..800);
    let (_, set, _) = run(&h, &q, QueryMode::Matches, None).unwrap();
    let err = run(&h, &q, QueryMode::Count, Some(&set)).unwrap_err();
    assert_eq!(err, PsiError::Misuse(Misuse::NoKeptTagsInCountMode));
}

#[test]
fn a_kept_tag_set_gives_the_same_answer_without_a_download() {
    let mut rng = StdRng::seed_from_u64(7);
    let h = holder(&mut rng, (0..9000).step_by(2));
    let q = query(&mut rng, 3000..8000);
    {
        let mode = QueryMode::Matches;
        let (first, set, chunks) = run(&h, &q, mode, None).unwrap();
        assert!(chunks > 0);
        assert_eq!(
            set.digest(),
            h.epoch()
                .tag_set_digest(&[KeyType::Mobile], set.tag_len)
                .unwrap()
        );
        // A new query (fresh blind) of the same size, with the kept set.
        let q2 = query(&mut rng, 3000..8000);
        let (second, _, chunks) = run(&h, &q2, mode, Some(&set)).unwrap();
        assert_eq!(chunks, 0, "no tag crossed");
        assert_eq!(second, first);
        assert_eq!(second, run_local(&h, &q2, mode, &mut rand::rng()).unwrap());
        assert_eq!(first.matched_keys[&KeyType::Mobile], 2500);
    }
}

#[test]
fn longer_kept_tags_serve_a_query_with_shorter_ones() {
    let mut rng = StdRng::seed_from_u64(8);
    let h = holder(&mut rng, 0..6000);
    // 6000 × 6000 keys need 9-byte tags; 1000 × 6000 need only 8.
    let big = query(&mut rng, 3000..9000);
    let small = query(&mut rng, 5500..6500);
    assert_eq!((tag_len(6000, 6000), tag_len(1000, 6000)), (9, 8));
    let (_, set, _) = run(&h, &big, QueryMode::Matches, None).unwrap();
    assert_eq!(set.tag_len, 9);
    let (r, _, chunks) = run(&h, &small, QueryMode::Matches, Some(&set)).unwrap();
    assert_eq!(chunks, 0);
    assert_eq!(
        r,
        run_local(&h, &small, QueryMode::Matches, &mut rand::rng()).unwrap()
    );
    assert_eq!(r.matched_keys[&KeyType::Mobile], 500);
}

#[test]
fn a_stale_or_altered_set_is_never_used() {
    let mut rng = StdRng::seed_from_u64(9);
    let h = holder(&mut rng, 0..2000);
    let q = query(&mut rng, 1000..3000);
    let (_, set, _) = run(&h, &q, QueryMode::Matches, None).unwrap();

    // One tag altered: the holder's digest no longer matches, so the node would not skip.
    let mut altered = set.clone();
    altered.tags[0][3] ^= 1;
    assert_ne!(
        altered.digest(),
        h.epoch()
            .tag_set_digest(&[KeyType::Mobile], altered.tag_len)
            .unwrap()
    );
    // A new epoch (re-import): another id, another digest, and the querier refuses the set.
    let h2 = holder(&mut rng, 0..2000);
    assert_ne!(
        set.digest(),
        h2.epoch()
            .tag_set_digest(&[KeyType::Mobile], set.tag_len)
            .unwrap()
    );
    let (start, awaiting) = q.start(QueryMode::Matches);
    let (accept, mut session) = h2.handle_start(start, &mut rand::rng()).unwrap();
    let mut ex = awaiting.handle_accept(accept).unwrap();
    assert!(matches!(
        ex.use_tag_set(set.clone()),
        Err(PsiError::Misuse(Misuse::TagSetMismatch))
    ));
    // Once tags have begun to arrive, no set can be swapped in, and no skip either.
    let first_tags = session.poll_message().unwrap().unwrap();
    ex.handle(first_tags).unwrap();
    let (_, h2set, _) = run(&h2, &q, QueryMode::Matches, None).unwrap();
    assert!(matches!(
        ex.use_tag_set(h2set.clone()),
        Err(PsiError::Misuse(Misuse::TagSetMismatch))
    ));
    assert!(matches!(
        session.skip_tags(),
        Err(PsiError::Misuse(Misuse::TagSetMismatch))
    ));
    // Shorter kept tags than the query needs do not fit either.
    let mut short = h2set.clone();
    short.tag_len = 7;
    short.tags = short
        .tags
        .iter()
        .map(|t| t.chunks(8).flat_map(|c| &c[..7]).copied().collect())
        .collect();
    let (start, awaiting) = q.start(QueryMode::Matches);
    let (accept, _) = h2.handle_start(start, &mut rand::rng()).unwrap();
    let mut ex3 = awaiting.handle_accept(accept).unwrap();
    assert!(matches!(
        ex3.use_tag_set(short),
        Err(PsiError::Misuse(Misuse::TagSetMismatch))
    ));
}
