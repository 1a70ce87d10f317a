//! Published cases over real QUIC: an institution learns which of its own rows a seized dump
//! holds (and nothing else of it), another police unit links its seizure in count mode, and
//! every refusal (not published, not named, closed, expired, mode) with its exact message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use suyuan_node::lists::InputOptions;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::node_dir::published::{self, Publication};
use suyuan_node::query::{self, QueryOptions, Report, parse_peer};
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, Running, start};
use suyuan_tests::write_text;

const CASE: &str = "2026-京-0042";

const POLICE_TOML: &str = "[network]\ntimeout_secs = 10\n[policy]\nmin_query_keys = 100\n[policy.allow]\ninstitution = [\"matches\"]\npolice = [\"count\"]\n";

/// A CSV of mobiles `range`, with a name column, in GB18030 when asked.
fn list(fed: &Federation, file: &str, range: std::ops::Range<u32>, gb: bool) -> PathBuf {
    let mut text = String::from("姓名,手机号\n");
    for i in range {
        text.push_str(&format!("客户{i},1390000{i:04}\n"));
    }
    write_text(&fed.path(file), &text, gb);
    fed.path(file)
}

fn publish(fed: &Federation, police: &Path, case: &str, allow: &[&str], now: u64, days: u64) {
    let dump = list(fed, "dump.csv", 2000..6000, false);
    published::publish(
        police,
        &Publication {
            case: case.into(),
            input: dump,
            options: InputOptions::default(),
            valid_for: days * 86400,
            allow: allow.iter().map(|s| s.to_string()).collect(),
        },
        now,
        &mut suyuan_node::Silent,
    )
    .unwrap();
}

async fn check(node: &Path, input: &Path, srv: &Running, mode: QueryMode, case: &str) -> Report {
    query::run(
        &QueryOptions {
            case: Some(case.into()),
            published: true,
            ..QueryOptions::new(
                node,
                input,
                vec![parse_peer(&srv.peer("police")).unwrap()],
                mode,
            )
        },
        suyuan_node::Silent,
    )
    .await
    .unwrap()
}

fn now() -> u64 {
    suyuan_node::clock::now_unix()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_institution_finds_exactly_its_exposed_rows_in_its_own_encoding() {
    let fed = Federation::new();
    let police = fed.node("police", Role::Police, POLICE_TOML);
    publish(&fed, &police, CASE, &[], now(), 90);
    let bank = fed.node("bank", Role::Institution, "[network]\ntimeout_secs = 10\n");
    // The bank's customers: 0..3000, in GB18030; 1000 of them (2000..3000) are in the dump.
    let customers = list(&fed, "customers.csv", 0..3000, true);
    let srv = start(&police);
    let report = check(&bank, &customers, &srv, QueryMode::Matches, CASE).await;
    let p = &report.peers[0];
    assert_eq!(p.error, None);
    let rows = p.rows.clone().unwrap();
    let expected: Vec<u64> = (2001..=3000).collect();
    assert_eq!(rows, expected);
    assert!(report.published);
    // It verifies, held by the police node that published it.
    let ca = NodeDir::open(&bank).unwrap().identity().unwrap().ca;
    query::verify::verify(&report, &ca).unwrap();
    // exposed.csv: those rows of its own file, same encoding and columns, `row` first.
    let out = fed.path("exposed.csv");
    assert_eq!(
        suyuan_node::lists::exposed::write(&customers, &rows, &out).unwrap(),
        1000
    );
    let mut want = String::from("row,姓名,手机号\n");
    for i in 2000..3000u32 {
        want.push_str(&format!("{},客户{i},1390000{i:04}\n", i + 1));
    }
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got, encoding_rs::GB18030.encode(&want).0.into_owned());
    // Both sides audited the check as one of a published case.
    for node in [&police, &bank] {
        let entries = NodeDir::open(node).unwrap().audit().verify().unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e.record.published && e.record.case.as_deref() == Some(CASE)),
            "{}",
            node.display()
        );
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_unit_links_its_seizure_in_count_mode_with_both_containments() {
    let fed = Federation::new();
    let police = fed.node("police", Role::Police, POLICE_TOML);
    publish(&fed, &police, CASE, &[], now(), 90);
    let police2 = fed.node("police2", Role::Police, "[network]\ntimeout_secs = 10\n");
    // The second seizure: 5000..6500 (1000 inside the first, which holds 4000).
    let seizure = list(&fed, "seizure2.csv", 5000..6500, false);
    let srv = start(&police);
    let report = check(&police2, &seizure, &srv, QueryMode::Count, CASE).await;
    let p = &report.peers[0];
    assert_eq!(p.error, None);
    let kt = suyuan_protocol::ident::KeyType::Mobile;
    assert_eq!(p.matched_keys[&kt], 1000);
    assert!((p.key_share[&kt] - 1000.0 / 1500.0).abs() < 1e-12);
    assert!((p.holder_share[&kt] - 1000.0 / 4000.0).abs() < 1e-12);
    assert_eq!(p.rows, None);
    let lines = query::report::check_lines(&report, p);
    assert_eq!(
        lines,
        vec![format!(
            "mobile: 1000 keys in common: 66.7% of this seizure is inside case \"{CASE}\"; 25.0% of case \"{CASE}\" is in this seizure"
        )]
    );
    // A published case is asked only of a police node: an institution answering is refused.
    let bank = fed.node("bank", Role::Institution, POLICE_TOML);
    let bank_srv = start(&bank);
    let r = query::run(
        &QueryOptions {
            case: Some(CASE.into()),
            published: true,
            ..QueryOptions::new(
                &police2,
                &seizure,
                vec![parse_peer(&bank_srv.peer("bank")).unwrap()],
                QueryMode::Count,
            )
        },
        suyuan_node::Silent,
    )
    .await
    .unwrap();
    assert_eq!(
        r.peers[0].error.as_deref(),
        Some(
            "bank is not a police node (its certificate says institution); only police nodes publish cases; not asked"
        )
    );
    bank_srv.stop().await;
    // Police may only count here: rows are refused.
    let r = check(&police2, &seizure, &srv, QueryMode::Matches, CASE).await;
    let e = r.peers[0].error.clone().unwrap();
    assert!(
        e.ends_with("refused: mode matches is not allowed for role police"),
        "{e}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_not_published_not_named_closed_or_expired_are_refused() {
    let fed = Federation::new();
    let police = fed.node("police", Role::Police, POLICE_TOML);
    let t = now();
    publish(&fed, &police, CASE, &["bank"], t, 90);
    let bank = fed.node("bank", Role::Institution, "[network]\ntimeout_secs = 10\n");
    let telecom = fed.node(
        "telecom",
        Role::Institution,
        "[network]\ntimeout_secs = 10\n",
    );
    let customers = list(&fed, "customers.csv", 0..3000, false);
    let srv = start(&police);
    let error = |r: Report| r.peers[0].error.clone().unwrap_or_default();
    let e = error(check(&telecom, &customers, &srv, QueryMode::Matches, CASE).await);
    assert!(
        e.ends_with(&format!(
            "refused: case \"{CASE}\" is not published for this node"
        )),
        "{e}"
    );
    let e = error(check(&bank, &customers, &srv, QueryMode::Matches, "2026-京-0043").await);
    assert!(
        e.ends_with("refused: no dump is published here for case \"2026-京-0043\""),
        "{e}"
    );
    // The bank may check it; then it is closed and no one may.
    let r = check(&bank, &customers, &srv, QueryMode::Matches, CASE).await;
    assert_eq!(r.peers[0].matched_rows, Some(1000));
    let dir = NodeDir::open(&police).unwrap();
    assert!(published::close(&dir, CASE).unwrap());
    let e = error(check(&bank, &customers, &srv, QueryMode::Matches, CASE).await);
    assert!(
        e.ends_with(&format!(
            "refused: no dump is published here for case \"{CASE}\""
        )),
        "{e}"
    );
    // Published two days ago for one day: refused, and the serving node destroys it.
    publish(&fed, &police, CASE, &[], t - 2 * 86400, 1);
    let e = error(check(&bank, &customers, &srv, QueryMode::Matches, CASE).await);
    assert!(e.contains("no dump is published here"), "{e}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let left = || -> BTreeSet<_> {
        std::fs::read_dir(police.join(published::PUBLISHED_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    while !left().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not swept: {:?}",
            left()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(published::list(&dir).unwrap().is_empty());
    srv.stop().await;
}
