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

/// The bank's list (two customers) imported, and a dump of one of them.
fn lists(fed: &Federation, bank: &std::path::Path) {
    write_text(
        &fed.path("list.csv"),
        "mobile\n13900000001\n13900000002\n",
        false,
    );
    write_text(&fed.path("dump.csv"), "mobile\n13900000002\n", false);
    import(bank, &fed.path("list.csv"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_member_is_refused_both_ways_without_a_restart() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, HOLDER);
    let police = fed.node("police", Role::Police, QUERIER);
    let thief = fed.node("thief", Role::Police, QUERIER);
    lists(&fed, &bank);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_earlier_statements_still_hold() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use suyuan_node::node_dir::identity;
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, HOLDER);
    let police = fed.node("police", Role::Police, QUERIER);
    // The epoch statement is signed under the first certificate.
    lists(&fed, &bank);
    let server = start(&bank);
    let before = NodeDir::open(&bank).unwrap().identity().unwrap();
    let (fingerprint, until) = identity::ca_renew(&fed.ca, &bank, 90).unwrap();
    assert_ne!(fingerprint, before.me.fingerprint);
    let days = (until - suyuan_node::clock::now_unix()) / 86_400;
    assert!((89..=91).contains(&days), "{days}");
    assert!(bank.join("node.crt.previous").exists());
    let after = NodeDir::open(&bank).unwrap().identity().unwrap();
    assert_eq!(
        (&after.me.key, &after.me.name),
        (&before.me.key, &before.me.name)
    );
    // Within a second the running holder answers with the new certificate; its statement
    // (signed under the old one, by the same key) still holds, and the report verifies.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = suyuan_node::query::run(
            &suyuan_node::query::QueryOptions {
                case: Some("c-2".into()),
                ..suyuan_node::query::QueryOptions::new(
                    &police,
                    &fed.path("dump.csv"),
                    vec![suyuan_node::query::parse_peer(&server.peer("bank")).unwrap()],
                    QueryMode::Matches,
                )
            },
            suyuan_node::Silent,
        )
        .await
        .unwrap();
        let p = &report.peers[0];
        // A loaded machine may time a query out while the holder switches; the next one must
        // succeed under the new certificate before the deadline.
        if let Some(e) = &p.error {
            assert!(
                Instant::now() < deadline,
                "no answer under the new certificate: {e}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let answered = p.answer.as_ref().unwrap().certificate().unwrap();
        if identity::fingerprint(&answered) == fingerprint {
            let stated = p.statement.as_ref().unwrap().certificate().unwrap();
            assert_eq!(identity::fingerprint(&stated), before.me.fingerprint);
            let ca = CertificateDer::from_pem_file(fed.ca.join("ca.crt")).unwrap();
            suyuan_node::query::verify::verify(&report, &ca).unwrap();
            // Revoking the bank revokes both of its certificates, and its key cannot be
            // renewed back to life.
            let (_, info) = revocation::ca_revoke(&fed.ca, "bank", None, "closed", 30).unwrap();
            assert_eq!(info.revoked, 2);
            let e = identity::ca_renew(&fed.ca, &bank, 90)
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                "bank's key is revoked: issue a new identity with `suyuan ca issue` instead"
            );
            // Nor does this CA renew another federation's certificate.
            let other = Federation::new();
            let stranger = other.node("bank", Role::Institution, HOLDER);
            let e = identity::ca_renew(&fed.ca, &stranger, 90)
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a certificate of this CA"), "{e}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running holder never took the new certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[test]
fn a_certificate_near_its_end_is_warned_about() {
    use suyuan_node::node_dir::identity;
    let fed = Federation::new();
    let out = fed.path("short");
    identity::ca_issue_for(&fed.ca, "short", Role::Police, &out, 10).unwrap();
    let id = NodeDir::open(&out).unwrap().identity().unwrap();
    let now = suyuan_node::clock::now_unix();
    let w = identity::expiry_warning(&id, now).expect("10 days left");
    assert!(
        w.starts_with("this node's certificate (short) expires on "),
        "{w}"
    );
    assert!(
        w.contains("days left): ask the CA for a new one (`suyuan ca renew`)"),
        "{w}"
    );
    let w = identity::expiry_warning(&id, now + 30 * 86_400).unwrap();
    assert!(w.contains("expired on"), "{w}");
    let long = fed.path("long");
    identity::ca_issue(&fed.ca, "long", Role::Police, &long).unwrap();
    let id = NodeDir::open(&long).unwrap().identity().unwrap();
    assert_eq!(identity::expiry_warning(&id, now), None);
    let e = identity::ca_issue_for(&fed.ca, "zero", Role::Police, &fed.path("zero"), 0)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "--days must be between 1 and 3650");
}
