//! Labels over real QUIC: a bank imports its list with branch and opening-month labels, the
//! police ask with `--labels` in both modes, and every reported cell equals a plain computation
//! over the two files; cells under the bank's `min_label_cell` and values too rare in its list
//! are withheld and counted; a role the policy shows no label gets none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use suyuan_node::evidence::Evidence;
use suyuan_node::lists::{InputOptions, parse_label};
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query::verify::verify_evidence;
use suyuan_node::query::{self, PeerReport, QueryOptions, Report};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, start};
use suyuan_tests::write_text;

const BRANCHES: [&str; 4] = ["乌鲁木齐分行", "北京分行", "上海分行", "拉萨支行"];

/// Customer `i`'s branch: 乌鲁木齐 for 0..300, 北京 for 300..500, 上海 for 500..598, 拉萨 (two
/// customers, rarer than the bank's minimum cell) for 598..600.
fn branch(i: u64) -> &'static str {
    match i {
        0..300 => BRANCHES[0],
        300..500 => BRANCHES[1],
        500..598 => BRANCHES[2],
        _ => BRANCHES[3],
    }
}

fn mobile(i: u64) -> String {
    format!("139{i:08}")
}

/// Customer `i` opened an account in month `i % 3` of 2019, written three ways.
fn opened(i: u64) -> String {
    match i % 3 {
        0 => "2019-01-15".into(),
        1 => "2019/2/3 09:30:00".into(),
        _ => "2019年3月8日".into(),
    }
}

fn month(i: u64) -> String {
    format!("2019-{:02}", i % 3 + 1)
}

async fn ask(police: &Path, dump: &Path, peer: &str, mode: QueryMode, ev: &Path) -> Report {
    query::run(
        &QueryOptions {
            case: Some("2026-刑-13".into()),
            evidence: Some(ev.to_path_buf()),
            labels: true,
            ..QueryOptions::new(police, dump, vec![query::parse_peer(peer).unwrap()], mode)
        },
        suyuan_node::Silent,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_of_matched_keys_agree_with_a_plain_computation() {
    let fed = Federation::new();
    let bank = fed.node(
        "bank",
        Role::Institution,
        "[policy]\nmin_query_keys = 10\nmin_label_cell = 5\nshare_label_totals = true\n\
         [policy.allow]\npolice = [\"count\", \"matches\"]\nresearcher = [\"count\"]\n\
         [policy.labels]\npolice = [\"branch\", \"opened\"]\n",
    );
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    let researcher = fed.node("lab", Role::Researcher, "[network]\ntimeout_secs = 10\n");

    // The bank: 600 customers; customer 7 also has an account at 北京分行.
    let mut list = String::from("手机号码,开户网点,开户日期\n");
    for i in 0..600 {
        list.push_str(&format!("{},{},{}\n", mobile(i), branch(i), opened(i)));
    }
    list.push_str(&format!("{},{},{}\n", mobile(7), BRANCHES[1], opened(7)));
    write_text(&fed.path("list.csv"), &list, false);
    // Canaries planted in two partner exports: held like any record, not among the list's rows.
    write_text(
        &fed.path("canaries.csv"),
        "export,mobile\npartner-A,17000000001\npartner-A,17000000002\npartner-A,17000000003\n\
         partner-B,17000000011\npartner-B,17000000012\n",
        false,
    );
    let opts = InputOptions {
        labels: vec![
            parse_label("branch=开户网点").unwrap(),
            parse_label("opened=开户日期:month").unwrap(),
        ],
        canaries: Some(fed.path("canaries.csv")),
        ..InputOptions::default()
    };
    let import = |o: &InputOptions| {
        suyuan_node::lists::import::run(&bank, &fed.path("list.csv"), o, &mut suyuan_node::Silent)
    };
    // The name is kept for them.
    let clash = InputOptions {
        labels: vec![parse_label("canary=开户网点").unwrap()],
        ..opts.clone()
    };
    let err = import(&clash).unwrap_err();
    assert!(
        format!("{err:#}").contains("the name is kept for --canaries"),
        "{err:#}"
    );
    let (_, meta) = import(&opts).unwrap();
    assert_eq!(meta.rows, 601, "the canaries are not rows of the list");
    let c = meta.canaries.as_ref().unwrap();
    assert_eq!(
        (c.records, c.exports.clone()),
        (5, vec!["partner-A".to_string(), "partner-B".to_string()])
    );
    assert_eq!(
        meta.sizes[&KeyType::Mobile],
        605,
        "they are keys of the epoch"
    );

    // The dump: every third customer, customer 7 and one of 拉萨支行's two, and strangers.
    let held: Vec<u64> = (0..600)
        .filter(|i| i % 3 == 0 || *i == 7 || *i == 598)
        .collect();
    let mut dump = String::from("mobile\n");
    let mut rows: Vec<Option<u64>> = Vec::new();
    for (n, i) in held.iter().enumerate() {
        dump.push_str(&mobile(*i));
        dump.push('\n');
        rows.push(Some(*i));
        if n % 2 == 0 {
            dump.push_str(&mobile(5000 + n as u64));
            dump.push('\n');
            rows.push(None);
        }
    }
    // Two of partner-A's canaries reached the dump (fewer than the minimum cell: never withheld).
    dump.push_str("17000000001\n17000000003\n");
    rows.push(None);
    rows.push(None);
    write_text(&fed.path("dump.csv"), &dump, false);

    // What the report must say, computed plainly: per value, the matched dump keys held by a
    // record with it; cells under 5 and the value only two customers have are withheld.
    let mut branch_count: BTreeMap<String, u64> = BTreeMap::new();
    let mut month_count: BTreeMap<String, u64> = BTreeMap::new();
    for i in &held {
        let mut bs = BTreeSet::from([branch(*i)]);
        if *i == 7 {
            bs.insert(BRANCHES[1]);
        }
        for b in bs {
            *branch_count.entry(b.into()).or_default() += 1;
        }
        *month_count.entry(month(*i)).or_default() += 1;
    }
    // 拉萨支行 is rarer in the bank's list than its minimum: never named, one cell withheld.
    let rare = branch_count.remove(BRANCHES[3]).unwrap();
    assert!(rare > 0, "the rare branch is among the matches");
    let mut suppressed = BTreeMap::from([("branch".to_string(), 1u64)]);
    let mut mobiles = |label: &str, m: BTreeMap<String, u64>| {
        let mut shown = BTreeMap::new();
        for (v, n) in m {
            if n >= 5 {
                shown.insert(v, BTreeMap::from([(KeyType::Mobile, n)]));
            } else {
                *suppressed.entry(label.to_string()).or_default() += 1;
            }
        }
        shown
    };
    let expected = BTreeMap::from([
        (
            "branch".to_string(),
            mobiles("branch", branch_count.clone()),
        ),
        ("opened".to_string(), mobiles("opened", month_count)),
    ]);
    // Customers 7 and 598 are the only matched ones who opened in February: under 5.
    assert_eq!(suppressed["opened"], 1);

    let server = start(&bank);
    for mode in [QueryMode::Count, QueryMode::Matches] {
        let ev = fed.path(&format!("{mode}.evidence"));
        let report = ask(
            &police,
            &fed.path("dump.csv"),
            &server.peer("bank"),
            mode,
            &ev,
        )
        .await;
        // The evidence recomputes every label cell from the bank's signed messages, and names
        // a report whose labels were altered.
        let recompute = |r: &Report| {
            let (keys, summary) = query::read_dump(
                &fed.path("dump.csv"),
                &InputOptions::default(),
                &mut suyuan_node::Silent,
            )
            .unwrap();
            verify_evidence(r, &Evidence::read(&ev).unwrap(), keys, summary.quality.rows)
        };
        recompute(&report).unwrap();
        let mut altered = report.clone();
        if let Some(cells) = altered.peers[0].labels.get_mut("branch") {
            for per_type in cells.values_mut() {
                *per_type.get_mut(&KeyType::Mobile).unwrap() += 1;
            }
        }
        let err = recompute(&altered).unwrap_err();
        assert!(
            err.starts_with("bank: labels recomputed from bank's signed messages differ"),
            "{err}"
        );
        let p: PeerReport = report.peers[0].clone();
        assert_eq!(p.error, None, "{mode}");
        assert_eq!(p.matched_keys[&KeyType::Mobile], held.len() as u64 + 2);
        assert_eq!(
            p.canary_hits,
            [suyuan_node::query::labels::CanaryHit {
                export: "partner-A".into(),
                keys: 2
            }],
            "{mode}"
        );
        assert!(!p.labels.contains_key("canary"));
        assert_eq!(p.labels, expected, "{mode}");
        assert_eq!(p.labels_suppressed, suppressed, "{mode}");
        assert_eq!(p.label_min_cell, Some(5));
        // The bank's totals of the reported values, and each value's test against them: of
        // the matched keys, 乌鲁木齐分行 (300 of 600 customers) carries about half, as chance
        // would have it: the dump is every third customer, whatever the branch.
        let list_branch = |b: &str| {
            (0..600).filter(|i| branch(*i) == b).count() as u64 + u64::from(b == BRANCHES[1])
        };
        for b in branch_count.keys() {
            assert_eq!(
                p.label_totals["branch"][b][&KeyType::Mobile],
                list_branch(b),
                "{b}"
            );
            let t = &p.label_lift["branch"][b];
            assert_eq!(t.test.observed, branch_count[b]);
            assert_eq!(t.test.dump, held.len() as u64);
            assert_eq!((t.test.holder, t.list), (list_branch(b), 600));
            assert!(t.log10_p_corrected > -3.0, "{b}: no branch stands out here");
        }
        assert!(
            !p.label_totals["branch"].contains_key(BRANCHES[3]),
            "never named"
        );
        assert_eq!(p.labels_unreadable, 0);
        match mode {
            QueryMode::Count => assert_eq!(p.row_labels, None),
            QueryMode::Matches => {
                let row_labels = p.row_labels.unwrap();
                // Customer 598's values are withheld; the two canary rows name their export.
                assert_eq!(row_labels.len(), held.len() - 1 + 2);
                for (r, i) in rows.iter().enumerate() {
                    let got = row_labels.get(&(r + 1).to_string());
                    if r + 2 >= rows.len() {
                        let want =
                            BTreeMap::from([("canary".to_string(), vec!["partner-A".to_string()])]);
                        assert_eq!(got, Some(&want), "canary row {}", r + 1);
                        continue;
                    }
                    let Some(i) = i else {
                        assert_eq!(got, None, "a stranger's row {}", r + 1);
                        continue;
                    };
                    if *i == 598 {
                        assert_eq!(got, None);
                        continue;
                    }
                    let got = got.unwrap();
                    let mut want_branches: Vec<String> = vec![branch(*i).to_string()];
                    if *i == 7 {
                        want_branches.push(BRANCHES[1].to_string());
                    }
                    want_branches.retain(|b| b != BRANCHES[3]);
                    want_branches.sort();
                    assert_eq!(
                        got.get("branch").cloned().unwrap_or_default(),
                        want_branches
                    );
                    let want_month: Vec<String> = Some(month(*i))
                        .filter(|m| m != "2019-02")
                        .into_iter()
                        .collect();
                    assert_eq!(got.get("opened").cloned().unwrap_or_default(), want_month);
                }
            }
        }
    }

    // A researcher may count, but the policy shows it no label of the list.
    let r = query::run(
        &QueryOptions {
            case: Some("2026-研-1".into()),
            labels: true,
            ..QueryOptions::new(
                &researcher,
                &fed.path("dump.csv"),
                vec![query::parse_peer(&server.peer("bank")).unwrap()],
                QueryMode::Count,
            )
        },
        suyuan_node::Silent,
    )
    .await
    .unwrap()
    .peers
    .remove(0);
    assert_eq!(r.error, None);
    // The policy shows it no label; canaries, which are nobody, are shown to whoever asks.
    assert!(r.labels.is_empty() && r.label_totals.is_empty());
    assert_eq!(r.canary_hits.len(), 1);
    server.stop().await;
}
