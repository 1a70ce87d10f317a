//! A stolen certificate stops working wherever the CA's new revocation list is installed: a
//! serving node refuses it from the next handshake on, without a restart, and a querier refuses
//! a revoked holder even if that holder never installed the list. Lists of another CA, or older
//! than the installed one, are refused.

use std::time::{Duration, Instant};

use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::node_dir::revocation;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, ask_one, import, start};
use suyuan_tests::write_text;

const HOLDER: &str =
    "[policy]\nmin_query_keys = 1\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";
const QUERIER: &str = "[network]\ntimeout_secs = 5\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_refused_both_ways_without_a_restart() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, HOLDER);
    let police = fed.node("police", Role::Police, QUERIER);
    let thief = fed.node("thief", Role::Police, QUERIER);
    write_text(
        &fed.path("list.csv"),
        "mobile\n13900000001\n13900000002\n",
        false,
    );
    write_text(&fed.path("dump.csv"), "mobile\n13900000002\n", false);
    import(&bank, &fed.path("list.csv"));
    let server = start(&bank);
    let dump = fed.path("dump.csv");
    let ask = |node: std::path::PathBuf| {
        let (dump, peer) = (dump.clone(), server.peer("bank"));
        async move { ask_one(&node, &dump, &peer, QueryMode::Count, Some("c-1")).await }
    };
    assert_eq!(
        ask(thief.clone()).await.error,
        None,
        "answered before the revocation"
    );

    // The thief's certificate is revoked; the bank installs the list while it serves.
    let (list, info) = revocation::ca_revoke(&fed.ca, "thief", None, "key stolen", 30).unwrap();
    assert_eq!((info.number, info.revoked), (1, 1));
    let (_, warnings) = revocation::install(&NodeDir::open(&bank).unwrap(), &list).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        if let Some(e) = ask(thief.clone()).await.error {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the running holder never applied the list"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refused.starts_with("bank did not accept us"), "{refused}");
    assert_eq!(
        ask(police.clone()).await.error,
        None,
        "other members are still answered"
    );
    let log = NodeDir::open(&bank).unwrap().audit().verify().unwrap();
    assert!(
        log.iter().any(|e| e
            .record
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("TLS handshake failed") && d.contains("Revoked"))),
        "the refusal is audited with its reason"
    );

    // The bank's own certificate is revoked: a querier with the list refuses the bank, which
    // never installed that list.
    let (list, info) =
        revocation::ca_revoke(&fed.ca, "bank", None, "left the federation", 30).unwrap();
    assert_eq!((info.number, info.revoked), (2, 2));
    revocation::install(&NodeDir::open(&police).unwrap(), &list).unwrap();
    let e = ask(police.clone()).await.error.expect("refused");
    assert!(
        e.starts_with("bank is not a member of this federation"),
        "{e}"
    );
    assert!(e.contains("Revoked"), "{e}");
    server.stop().await;
}

#[test]
fn lists_of_another_ca_or_older_ones_are_refused() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, HOLDER);
    let node = NodeDir::open(&bank).unwrap();
    let (first, _) = revocation::ca_crl(&fed.ca, 30).unwrap();
    let kept = fed.path("first.pem");
    std::fs::copy(&first, &kept).unwrap();
    let (second, info) = revocation::ca_crl(&fed.ca, 30).unwrap();
    assert_eq!(info.number, 2);
    revocation::install(&node, &second).unwrap();
    let e = revocation::install(&node, &kept).unwrap_err().to_string();
    assert!(
        e.ends_with(
            "list number 1 is not newer than the installed one (number 2); refusing to go back"
        ),
        "{e}"
    );
    let other = Federation::new();
    let (foreign, _) = revocation::ca_crl(&other.ca, 30).unwrap();
    let e = revocation::install(&node, &foreign)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a revocation list of this federation's CA"),
        "{e}"
    );
    let e = revocation::ca_revoke(&fed.ca, "nobody", None, "gone", 30)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no certificate of nobody to revoke"), "{e}");
    let e = revocation::ca_revoke(&fed.ca, "bank", None, " ", 30)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "--reason: say why in 1 to 256 printable characters");
}
