//! A police node and institutions over real QUIC on 127.0.0.1: results against ground truth,
//! a peer that is down, and the audit trail on both sides.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use suyuan_node::lists::InputOptions;
use suyuan_node::lists::import;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::{Outcome, Side};
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query::{self, QueryOptions, parse_peer};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, start};
use suyuan_tests::{messy_id, messy_mobile, people, write_text};

const HOLDER_TOML: &str = "[network]\ntimeout_secs = 3\n[policy]\nmin_query_rows = 1\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_query_matches_ground_truth_across_institutions() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, HOLDER_TOML);
    let telecom = fed.node("telecom", Role::Institution, HOLDER_TOML);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 3\n");

    let mut rng = StdRng::seed_from_u64(42);
    let everyone = people(&mut rng, 3000);
    // The bank: people 0..1500, mobile and ID, UTF-8 CSV with Chinese headers.
    let mut text = String::from("客户姓名,手机号码,证件号码\n");
    for (i, p) in everyone[..1500].iter().enumerate() {
        text.push_str(&format!("客户{i},{},{}\n", p.mobile, p.resident_id));
    }
    write_text(&fed.path("bank.csv"), &text, false);
    // The telecom: people 1000..2500, mobile only, GB18030 TSV with other headers.
    let mut text = String::from("用户名\t联系电话\t套餐\n");
    for (i, p) in everyone[1000..2500].iter().enumerate() {
        text.push_str(&format!("用户{i}\t{}\t畅享套餐\n", p.mobile));
    }
    write_text(&fed.path("telecom.tsv"), &text, true);
    import::run(
        &bank,
        &fed.path("bank.csv"),
        &InputOptions::default(),
        &mut suyuan_node::Silent,
    )
    .unwrap();
    import::run(
        &telecom,
        &fed.path("telecom.tsv"),
        &InputOptions::default(),
        &mut suyuan_node::Silent,
    )
    .unwrap();

    // The dump: people 500..2900, messy, with junk rows; truth by construction.
    let mut dump = String::from("姓名,电话,身份证\n");
    let (mut truth_bank, mut truth_telecom) = (BTreeSet::new(), BTreeSet::new());
    let mut dump_mobiles = HashSet::new();
    let mut dump_ids = HashSet::new();
    let mut row = 0u64;
    for (person, p) in everyone.iter().enumerate().take(2900).skip(500) {
        let (with_m, with_id) = match rng.random_range(0..3) {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        let m = if with_m {
            messy_mobile(&mut rng, &p.mobile)
        } else {
            String::new()
        };
        let id = if with_id {
            messy_id(&mut rng, &p.resident_id)
        } else {
            String::new()
        };
        dump.push_str(&format!("某人,\"{m}\",{id}\n"));
        row += 1;
        if with_m {
            dump_mobiles.insert(p.mobile.clone());
        }
        if with_id {
            dump_ids.insert(p.resident_id.clone());
        }
        if person < 1500 {
            truth_bank.insert(row);
        }
        if (1000..2500).contains(&person) && with_m {
            truth_telecom.insert(row);
        }
        if person % 50 == 0 {
            dump.push_str("坏行,12345,11010519491231002\n");
            row += 1;
        }
    }
    write_text(&fed.path("dump.csv"), &dump, false);

    let bank_srv = start(&bank);
    let telecom_srv = start(&telecom);
    let opts = |mode| QueryOptions {
        case: Some("2026-京-0042".to_string()),
        ..QueryOptions::new(
            &police,
            &fed.path("dump.csv"),
            vec![
                parse_peer(&bank_srv.peer("bank")).unwrap(),
                parse_peer(&telecom_srv.peer("telecom")).unwrap(),
                // Nothing listens here: a peer that is down.
                parse_peer("courier=127.0.0.1:9").unwrap(),
            ],
            mode,
        )
    };

    let report = query::run(&opts(QueryMode::Matches), suyuan_node::Silent)
        .await
        .unwrap();
    assert_eq!(report.dump.rows, row);
    let bank_r = &report.peers[0];
    let telecom_r = &report.peers[1];
    let courier_r = &report.peers[2];
    assert_eq!(bank_r.error, None);
    let rows = |r: &query::PeerReport| r.rows.clone().unwrap().into_iter().collect::<BTreeSet<_>>();
    assert_eq!(rows(bank_r), truth_bank);
    assert_eq!(rows(telecom_r), truth_telecom);
    assert_eq!(bank_r.matched_rows, Some(truth_bank.len() as u64));
    assert!((bank_r.row_share.unwrap() - truth_bank.len() as f64 / row as f64).abs() < 1e-12);
    assert_eq!(bank_r.containment, bank_r.row_share.unwrap());
    let err = courier_r.error.as_deref().unwrap();
    assert!(
        err.starts_with("courier did not answer at 127.0.0.1:9"),
        "{err}"
    );

    // Count mode: per-type counts equal a plain intersection of the canonical values.
    let report = query::run(&opts(QueryMode::Count), suyuan_node::Silent)
        .await
        .unwrap();
    let bank_m: HashSet<String> = everyone[..1500].iter().map(|p| p.mobile.clone()).collect();
    let bank_i: HashSet<String> = everyone[..1500]
        .iter()
        .map(|p| p.resident_id.clone())
        .collect();
    let tel_m: HashSet<String> = everyone[1000..2500]
        .iter()
        .map(|p| p.mobile.clone())
        .collect();
    let expect = |pairs: &[(KeyType, usize)]| {
        pairs
            .iter()
            .map(|(k, n)| (*k, *n as u64))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(
        report.peers[0].matched_keys,
        expect(&[
            (KeyType::Mobile, dump_mobiles.intersection(&bank_m).count()),
            (KeyType::ResidentId, dump_ids.intersection(&bank_i).count()),
        ])
    );
    assert_eq!(
        report.peers[1].matched_keys,
        expect(&[
            (KeyType::Mobile, dump_mobiles.intersection(&tel_m).count()),
            (KeyType::ResidentId, 0),
        ])
    );
    assert_eq!(report.peers[0].rows, None);
    assert_eq!(report.peers[1].holder_keys[&KeyType::Mobile], 1500);
    assert_eq!(
        report.dump.keys[&KeyType::Mobile],
        dump_mobiles.len() as u64
    );

    // The JSON report round-trips and carries the documented fields.
    let json = serde_json::to_value(&report).unwrap();
    for field in ["case", "mode", "created", "dump", "peers"] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert_eq!(
        json["peers"][2]["error"].as_str().unwrap(),
        report.peers[2].error.as_deref().unwrap()
    );

    bank_srv.stop().await;
    telecom_srv.stop().await;

    // Both sides audited every query; both chains verify.
    let bank_log = NodeDir::open(&bank).unwrap().audit().verify().unwrap();
    let outcomes: Vec<Outcome> = bank_log.iter().map(|e| e.record.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Admitted,
            Outcome::Completed,
            Outcome::Admitted,
            Outcome::Completed
        ]
    );
    assert!(
        bank_log
            .iter()
            .all(|e| e.record.case.as_deref() == Some("2026-京-0042"))
    );
    assert_eq!(bank_log[0].record.peer, "police");
    assert_eq!(bank_log[0].record.peer_role, Some(Role::Police));
    let police_log = NodeDir::open(&police).unwrap().audit().verify().unwrap();
    assert_eq!(police_log.len(), 6);
    assert!(police_log.iter().all(|e| e.record.side == Side::Querier));
    let failed: Vec<&str> = police_log
        .iter()
        .filter(|e| e.record.outcome == Outcome::Failed)
        .map(|e| e.record.peer.as_str())
        .collect();
    assert_eq!(failed, ["courier", "courier"]);
}

/// A new import is picked up by a running `serve` within a second or two, with no query to
/// trigger it: the old epoch and its key leave the serving process at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_import_replaces_the_served_epoch_without_waiting_for_a_query() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, HOLDER_TOML);
    write_text(&fed.path("a.csv"), "mobile\n13800000001\n", false);
    write_text(&fed.path("b.csv"), "mobile\n13800000002\n", false);
    suyuan_tests::fed::import(&bank, &fed.path("a.csv"));
    let srv = start(&bank);
    let mut serving = srv.serving();
    let first = serving.borrow_and_update().expect("an epoch");
    suyuan_tests::fed::import(&bank, &fed.path("b.csv"));
    tokio::time::timeout(std::time::Duration::from_secs(5), serving.changed())
        .await
        .expect("picked up within 5 s")
        .unwrap();
    let second = serving.borrow().expect("an epoch");
    assert_ne!(first, second);
    let stored = NodeDir::open(&bank)
        .unwrap()
        .store()
        .read()
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(second, stored.id());
    srv.stop().await;
}
