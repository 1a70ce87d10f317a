//! Load at small sizes (the large runs are `suyuan bench --concurrent`): 32 queries at once from
//! 4 police nodes against one holder all complete, each with the right answer, none starved.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::Outcome;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query::{self, QueryOptions, parse_peer};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, start};
use suyuan_tests::write_text;

const QUERIES: usize = 32;
const POLICE: usize = 4;

fn mobile(i: u64) -> String {
    format!("137{i:08}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_queries_from_four_police_nodes_all_complete_correctly() {
    let fed = Federation::new();
    let bank = fed.node(
        "bank",
        Role::Institution,
        "[network]\ntimeout_secs = 120\n[policy]\nmin_query_rows = 1000\nmax_concurrent_queries = 32\n[policy.allow]\npolice = [\"count\", \"matches\"]\n",
    );
    // Customers: every multiple of 3 below 12000.
    let customers: HashSet<u64> = (0..4000).map(|i| i * 3).collect();
    let list: String = std::iter::once("mobile\n".to_string())
        .chain(customers.iter().map(|&i| format!("{}\n", mobile(i))))
        .collect();
    write_text(&fed.path("list.csv"), &list, false);
    suyuan_tests::fed::import(&bank, &fed.path("list.csv"));
    let police: Vec<_> = (0..POLICE)
        .map(|p| {
            fed.node(
                &format!("police-{p}"),
                Role::Police,
                "[network]\ntimeout_secs = 120\n",
            )
        })
        .collect();
    // Query q asks about 3000 numbers starting at 100·q: overlapping windows, each its own
    // answer, and large enough that the queries really run at the same time.
    let mut expected = Vec::new();
    for q in 0..QUERIES as u64 {
        let window: Vec<u64> = (100 * q..100 * q + 3000).collect();
        let dump: String = std::iter::once("mobile\n".to_string())
            .chain(window.iter().map(|&i| format!("{}\n", mobile(i))))
            .collect();
        write_text(&fed.path(&format!("dump-{q}.csv")), &dump, false);
        expected.push(window.iter().filter(|i| customers.contains(i)).count() as u64);
    }
    let srv = start(&bank);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for q in 0..QUERIES {
        let opts = QueryOptions {
            case: Some(format!("load-{q}")),
            ..QueryOptions::new(
                &police[q % POLICE],
                &fed.path(&format!("dump-{q}.csv")),
                vec![parse_peer(&srv.peer("bank")).unwrap()],
                if q % 2 == 0 {
                    QueryMode::Count
                } else {
                    QueryMode::Matches
                },
            )
        };
        tasks.spawn(async move {
            let t = Instant::now();
            let r = query::run(&opts, suyuan_node::Silent).await.unwrap();
            (q, r, t.elapsed())
        });
    }
    let mut done = Vec::new();
    while let Some(j) = tasks.join_next().await {
        let (q, report, took) = j.unwrap();
        let peer = &report.peers[0];
        assert_eq!(peer.error, None, "query {q}");
        assert_eq!(
            peer.matched_keys.get(&KeyType::Mobile).copied(),
            Some(expected[q]),
            "query {q}"
        );
        if q % 2 == 1 {
            assert_eq!(peer.matched_rows, Some(expected[q]), "query {q}");
        }
        done.push((q, took));
    }
    assert_eq!(done.len(), QUERIES);
    // None starved: the slowest took at most the whole run, and the whole run was bounded.
    let total = started.elapsed();
    assert!(total < Duration::from_secs(120), "{total:?}");
    srv.stop().await;

    // The holder audited every query: admitted and completed, 32 of each, none refused.
    let log = NodeDir::open(&bank).unwrap().audit().verify().unwrap();
    let count = |o: Outcome| log.iter().filter(|e| e.record.outcome == o).count();
    assert_eq!(count(Outcome::Admitted), QUERIES);
    assert_eq!(count(Outcome::Completed), QUERIES);
    assert_eq!(log.len(), 2 * QUERIES);
    let peers: HashSet<&str> = log.iter().map(|e| e.record.peer.as_str()).collect();
    assert_eq!(peers.len(), POLICE);
}
