//! A police node asking the same holder again within one epoch uses the tag set it kept, over
//! real QUIC: the same answer, far fewer bytes; a new epoch, a damaged or an altered kept set
//! is never used, and the answer stays right.

use std::path::{Path, PathBuf};

use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::node_dir::tag_cache::CACHE_DIR;
use suyuan_node::query;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, Running, ask_one, import, start};
use suyuan_tests::write_text;

const HOLDER_KEYS: u64 = 20_000;

fn list(fed: &Federation, name: &str, ids: impl Iterator<Item = u64>) -> PathBuf {
    let text: String = std::iter::once("mobile\n".to_string())
        .chain(ids.map(|i| format!("138{i:08}\n")))
        .collect();
    let path = fed.path(name);
    write_text(&path, &text, false);
    path
}

async fn ask(fed: &Federation, police: &Path, srv: &Running) -> query::PeerReport {
    let peer = ask_one(
        police,
        &fed.path("dump.csv"),
        &srv.peer("bank"),
        QueryMode::Matches,
        None,
    )
    .await;
    assert_eq!(peer.error, None);
    peer
}

fn matched(r: &query::PeerReport) -> u64 {
    r.matched_keys[&KeyType::Mobile]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_query_uses_the_kept_tags_and_never_a_stale_set() {
    let fed = Federation::new();
    let policy = "[network]\ntimeout_secs = 10\n[policy]\nmin_query_keys = 1\nrequire_case = false\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";
    let bank = fed.node("bank", Role::Institution, policy);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    import(&bank, &list(&fed, "a.csv", 0..HOLDER_KEYS));
    // 1000 dump keys, 500 of them customers of list a.
    list(&fed, "dump.csv", HOLDER_KEYS - 500..HOLDER_KEYS + 500);
    let srv = start(&bank);

    let first = ask(&fed, &police, &srv).await;
    let s1 = first.stats.unwrap();
    assert!(!s1.tags_kept);
    assert_eq!(matched(&first), 500);
    assert!(
        fed.path("police")
            .join(CACHE_DIR)
            .join("bank.tags")
            .exists()
    );

    // Again: the same answer, and the 20000 tags (8 bytes each) did not cross again.
    let second = ask(&fed, &police, &srv).await;
    let s2 = second.stats.unwrap();
    assert!(s2.tags_kept);
    assert_eq!(second.matched_keys, first.matched_keys);
    assert_eq!(second.rows, first.rows);
    assert!(
        s2.bytes_received + HOLDER_KEYS * 8 * 9 / 10 < s1.bytes_received,
        "{} then {}",
        s1.bytes_received,
        s2.bytes_received
    );

    // A new epoch: the kept set is not used, and the answer is the new list's.
    srv.stop().await;
    import(&bank, &list(&fed, "b.csv", HOLDER_KEYS..2 * HOLDER_KEYS));
    let srv = start(&bank);
    let third = ask(&fed, &police, &srv).await;
    assert!(!third.stats.unwrap().tags_kept);
    assert_eq!(matched(&third), 500);
    assert_ne!(third.rows, first.rows);
    assert!(ask(&fed, &police, &srv).await.stats.unwrap().tags_kept);

    // A kept set altered consistently (its own digest redone): the holder's digest differs,
    // so it sends its tags, and the answer is still right.
    let cache = NodeDir::open(&police).unwrap().tag_cache(1 << 30);
    let (mut set, _) = cache.load("bank").unwrap();
    set.tags[0][5] ^= 0x40;
    cache.store("bank", &set).unwrap();
    let fourth = ask(&fed, &police, &srv).await;
    assert!(!fourth.stats.unwrap().tags_kept);
    assert_eq!(fourth.rows, third.rows);

    // A kept file damaged on disk: dropped by the querier, never offered.
    let file = police.join(CACHE_DIR).join("bank.tags");
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let fifth = ask(&fed, &police, &srv).await;
    assert!(!fifth.stats.unwrap().tags_kept);
    assert_eq!(fifth.rows, third.rows);

    // Cleared: the next query downloads again.
    assert_eq!(cache.clear().unwrap().0, 1);
    assert!(!ask(&fed, &police, &srv).await.stats.unwrap().tags_kept);
    srv.stop().await;
}

/// A querier holding less of a holder's tags in memory than the holder sends writes them to
/// disk as they come and merges them at the end: the same answer in both modes as a querier
/// holding them, the holder's statement still checked. The file written in `matches` mode is
/// kept, and the next query merges against it where it lies, cut to a shorter ℓ too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_written_to_disk_give_the_answer_of_tags_held_in_memory() {
    let fed = Federation::new();
    let policy = "[network]\ntimeout_secs = 10\n[policy]\nmin_query_keys = 1\nrequire_case = false\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";
    let bank = fed.node("bank", Role::Institution, policy);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    let disk = fed.node(
        "police2",
        Role::Police,
        "[network]\ntimeout_secs = 10\n[query]\ntags_in_memory_mib = 0\n",
    );
    import(&bank, &list(&fed, "a.csv", 0..HOLDER_KEYS));
    list(&fed, "dump.csv", HOLDER_KEYS - 500..HOLDER_KEYS + 500);
    // 100 dump keys: ℓ = 8 bytes where 1000 gave 9, so a kept set's tags are cut.
    list(&fed, "small.csv", HOLDER_KEYS - 50..HOLDER_KEYS + 50);
    let srv = start(&bank);
    let ask = |node: &Path, dump: &str, mode| {
        let (node, dump, peer) = (node.to_path_buf(), fed.path(dump), srv.peer("bank"));
        async move { ask_one(&node, &dump, &peer, mode, None).await }
    };
    let files = || -> Vec<String> {
        let mut f: Vec<String> = std::fs::read_dir(disk.join(CACHE_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        f.sort();
        f
    };
    for mode in [QueryMode::Count, QueryMode::Matches] {
        let held = ask(&police, "dump.csv", mode).await;
        let written = ask(&disk, "dump.csv", mode).await;
        assert_eq!(written.error, None, "{mode}");
        assert!(!written.stats.as_ref().unwrap().tags_kept, "{mode}");
        assert_eq!(matched(&written), 500, "{mode}");
        assert_eq!(written.matched_keys, held.matched_keys, "{mode}");
        assert_eq!(written.rows, held.rows, "{mode}");
    }
    // The count session's file is gone; the matches stream is the kept set.
    assert_eq!(files(), ["bank.tags", "bank.used"]);

    // Again: the kept file is offered and merged where it lies, with no tags on the wire.
    let first = ask(&disk, "dump.csv", QueryMode::Matches).await;
    assert!(first.stats.as_ref().unwrap().tags_kept);
    assert_eq!(matched(&first), 500);
    let small_held = ask(&police, "small.csv", QueryMode::Matches).await;
    let small = ask(&disk, "small.csv", QueryMode::Matches).await;
    assert_eq!(small.error, None);
    assert!(small.stats.as_ref().unwrap().tags_kept, "cut to ℓ = 8");
    assert_eq!(matched(&small), 50);
    assert_eq!(small.rows, small_held.rows);
    assert_eq!(files(), ["bank.tags", "bank.used"]);
    srv.stop().await;
}
