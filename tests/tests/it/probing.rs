//! A querier that tries to learn about one person: the minimum query size, the mode
//! restrictions and the daily budget hold against small queries, duplicated rows, padding with
//! random keys and repeated queries. What stays possible is written in docs/threat-model.md.

use std::path::{Path, PathBuf};

use rand::RngExt;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::Outcome;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, Running, ask_one, start};
use suyuan_tests::write_text;

const POLICY: &str = "[network]\ntimeout_secs = 10\n[policy]\nmin_query_rows = 100\nrows_per_peer_per_day = 1000\n[policy.allow]\npolice = [\"count\"]\n";

/// The person the querier is curious about; a customer of the bank.
const TARGET: &str = "13912345678";

fn setup() -> (Federation, PathBuf, PathBuf) {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, POLICY);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    let mut list = format!("mobile\n{TARGET}\n");
    for i in 0..500 {
        list.push_str(&format!("1380000{i:04}\n"));
    }
    write_text(&fed.path("list.csv"), &list, false);
    suyuan_tests::fed::import(&bank, &fed.path("list.csv"));
    (fed, bank, police)
}

fn dump(fed: &Federation, name: &str, rows: &[String]) -> PathBuf {
    let text: String = std::iter::once("mobile\n".to_string())
        .chain(rows.iter().map(|r| format!("{r}\n")))
        .collect();
    let path = fed.path(name);
    write_text(&path, &text, false);
    path
}

/// `n` random numbers that are nobody's at the bank (the bank's are 1380000xxxx and TARGET).
fn padding(n: usize) -> Vec<String> {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| format!("15{:09}", rng.random_range(0..1_000_000_000u64)))
        .collect()
}

async fn ask(
    police: &Path,
    srv: &Running,
    input: PathBuf,
    mode: QueryMode,
) -> Result<query::PeerReport, String> {
    let peer = ask_one(police, &input, &srv.peer("bank"), mode, Some("2026-刑-042")).await;
    match peer.error.clone() {
        None => Ok(peer),
        Some(e) => Err(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_cannot_be_looked_up_beyond_the_budget() {
    suyuan_tests::within_one_utc_day(beyond_the_budget).await;
}

async fn beyond_the_budget() {
    let (fed, bank, police) = setup();
    let srv = start(&bank);

    // Asking about one person alone: below the minimum.
    let alone = dump(&fed, "alone.csv", &[TARGET.to_string()]);
    assert_eq!(
        ask(&police, &srv, alone, QueryMode::Count)
            .await
            .unwrap_err(),
        "bank refused: query of 1 keys is below the minimum of 100"
    );
    // The same person on 150 rows is still one key: sizes count distinct keys, not rows.
    let repeated = dump(&fed, "repeated.csv", &vec![TARGET.to_string(); 150]);
    assert_eq!(
        ask(&police, &srv, repeated, QueryMode::Count)
            .await
            .unwrap_err(),
        "bank refused: query of 1 keys is below the minimum of 100"
    );
    // Asking which rows matched: not a mode the police may use here.
    let mut rows = vec![TARGET.to_string()];
    rows.extend(padding(99));
    let padded = dump(&fed, "padded.csv", &rows);
    assert_eq!(
        ask(&police, &srv, padded.clone(), QueryMode::Matches)
            .await
            .unwrap_err(),
        "bank refused: mode matches is not allowed for role police"
    );

    // Padding the one person with 99 random numbers reaches the minimum, and the count then
    // tells whether that person is a customer: the budget is what bounds this. Each padded
    // query is charged its 100 keys, repeated or not, until the day's 1000 are spent.
    for i in 0..10 {
        let r = ask(&police, &srv, padded.clone(), QueryMode::Count)
            .await
            .unwrap_or_else(|e| panic!("padded query {i}: {e}"));
        assert_eq!(r.matched_keys.values().sum::<u64>(), 1);
    }
    assert_eq!(
        ask(&police, &srv, padded, QueryMode::Count)
            .await
            .unwrap_err(),
        "bank refused: daily budget exhausted: 1000 of 1000 keys used today, this query needs 100"
    );
    // Fresh padding does not help either.
    let mut rows = vec![TARGET.to_string()];
    rows.extend(padding(99));
    let fresh = dump(&fed, "fresh.csv", &rows);
    assert!(
        ask(&police, &srv, fresh, QueryMode::Count)
            .await
            .unwrap_err()
            .starts_with("bank refused: daily budget exhausted: 1000 of 1000 keys used today")
    );
    srv.stop().await;

    // And a restart does not refill the budget: it is rebuilt from the audit log.
    let srv = start(&bank);
    let mut rows = vec![TARGET.to_string()];
    rows.extend(padding(99));
    let again = dump(&fed, "again.csv", &rows);
    assert!(
        ask(&police, &srv, again, QueryMode::Count)
            .await
            .unwrap_err()
            .starts_with("bank refused: daily budget exhausted: 1000 of 1000 keys used today")
    );
    srv.stop().await;

    let log = NodeDir::open(&bank)
        .expect("a node directory")
        .audit()
        .verify()
        .unwrap();
    let charged: u64 = log.iter().filter_map(|e| e.record.charged).sum();
    assert_eq!(charged, 1000);
    let refused = log
        .iter()
        .filter(|e| e.record.outcome == Outcome::Refused)
        .count();
    assert_eq!(refused, 6);
}

/// One person padded with keys of another type: the minimum applies to each key type answered,
/// so the one resident ID is not counted, and a customer and a stranger get the same answer.
/// (Before: `resident_id: 1` for the customer, `0` for the stranger.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_padded_with_another_key_type_is_not_counted() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, POLICY);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    let mut rng = rand::rng();
    let people = suyuan_tests::people(&mut rng, 201);
    let (customer, stranger) = (&people[0], &people[200]);
    let mut list = String::from("mobile,resident_id\n");
    for p in &people[..200] {
        list.push_str(&format!("{},{}\n", p.mobile, p.resident_id));
    }
    write_text(&fed.path("list.csv"), &list, false);
    suyuan_tests::fed::import(&bank, &fed.path("list.csv"));
    let srv = start(&bank);

    let mut answers = Vec::new();
    for (name, person) in [("customer", customer), ("stranger", stranger)] {
        let mut text = String::from("mobile,resident_id\n");
        for m in padding(100) {
            text.push_str(&format!("{m},\n"));
        }
        text.push_str(&format!(",{}\n", person.resident_id));
        let input = fed.path(&format!("{name}.csv"));
        write_text(&input, &text, false);
        let r = ask(&police, &srv, input, QueryMode::Count)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let withheld = r.withheld.clone().expect("the small section is withheld");
        assert_eq!(
            withheld.to_string(),
            "resident_id (1 keys), below the holder's minimum of 100 keys per key type"
        );
        assert!(!r.matched_keys.contains_key(&KeyType::ResidentId), "{name}");
        answers.push((r.matched_keys, r.holder_keys, withheld));
    }
    assert_eq!(
        answers[0], answers[1],
        "a customer and a stranger look alike"
    );
    srv.stop().await;

    // The holder refused the first ask of each, naming the section, and answered the second.
    let log = NodeDir::open(&bank).unwrap().audit().verify().unwrap();
    let outcomes: Vec<(Outcome, Option<String>)> = log
        .iter()
        .map(|e| (e.record.outcome, e.record.detail.clone()))
        .collect();
    let refusal = "resident_id: 1 key below the minimum of 100 keys per key type".to_string();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.0 == Outcome::Refused && o.1.as_ref() == Some(&refusal))
            .count(),
        2,
        "{outcomes:?}"
    );
    let admitted: Vec<Option<u64>> = log
        .iter()
        .filter(|e| e.record.outcome == Outcome::Admitted)
        .map(|e| e.record.query_keys)
        .collect();
    assert_eq!(
        admitted,
        [Some(100), Some(100)],
        "only the mobile numbers were admitted"
    );
}
