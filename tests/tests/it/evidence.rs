//! A holder's signature covers what it sent, never the count, which only the querier learns.
//! A querier that inflates a count and signs its own report passes `suyuan verify` on
//! signatures alone; with the query's evidence and the dump, every figure is recomputed from
//! the holder's signed messages, and the lie is named.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use suyuan_node::evidence::{Evidence, Signed};
use suyuan_node::lists::InputOptions;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query::verify::{self, REPORT_CONTEXT, unsigned, verify_evidence};
use suyuan_node::query::{self, QueryOptions, Report};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, import, start};
use suyuan_tests::write_text;

fn mobiles(from: u64, to: u64) -> String {
    let mut s = String::from("mobile\n");
    for i in from..to {
        s.push_str(&format!("139{i:08}\n"));
    }
    s
}

async fn ask(police: &Path, dump: &Path, peer: &str, mode: QueryMode, ev: &Path) -> Report {
    query::run(
        &QueryOptions {
            case: Some("2026-刑-9".into()),
            evidence: Some(ev.to_path_buf()),
            ..QueryOptions::new(police, dump, vec![query::parse_peer(peer).unwrap()], mode)
        },
        suyuan_node::Silent,
    )
    .await
    .unwrap()
}

/// `verify_evidence` of `report` with the evidence file `ev` and the dump `dump`.
fn recompute(report: &Report, ev: &Path, dump: &Path) -> Result<Vec<(String, u64)>, String> {
    let evidence = Evidence::read(ev).unwrap();
    let (keys, summary) =
        query::read_dump(dump, &InputOptions::default(), &mut suyuan_node::Silent).unwrap();
    verify_evidence(report, &evidence, keys, summary.quality.rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_querier_that_inflates_a_count_is_caught_by_the_evidence() {
    let fed = Federation::new();
    let bank = fed.node(
        "bank",
        Role::Institution,
        "[policy]\nmin_query_keys = 10\n[policy.allow]\npolice = [\"count\", \"matches\"]\n",
    );
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    write_text(&fed.path("list.csv"), &mobiles(0, 200), false);
    write_text(&fed.path("dump.csv"), &mobiles(140, 290), false);
    // The same size, other people: it blinds to other messages.
    write_text(&fed.path("other.csv"), &mobiles(1140, 1290), false);
    import(&bank, &fed.path("list.csv"));
    let server = start(&bank);
    let ca = CertificateDer::from_pem_file(fed.ca.join("ca.crt")).unwrap();
    let police_id = NodeDir::open(&police).unwrap().identity().unwrap();
    for mode in [QueryMode::Count, QueryMode::Matches] {
        let ev = fed.path(&format!("{mode}.evidence"));
        let dump = fed.path("dump.csv");
        let report = ask(&police, &dump, &server.peer("bank"), mode, &ev).await;
        assert_eq!(report.peers[0].error, None, "{mode}");
        assert_eq!(report.peers[0].matched_keys[&KeyType::Mobile], 60);
        verify::verify(&report, &ca).unwrap();
        assert_eq!(
            recompute(&report, &ev, &dump),
            Ok(vec![("bank".to_string(), 60)]),
            "{mode}"
        );
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::metadata(&ev).unwrap().permissions().mode();
        assert_eq!(perms & 0o777, 0o600, "the evidence holds the blind");

        // The querier inflates the count and signs its own report: signatures alone pass it.
        let mut lie = unsigned(&report);
        *lie.peers[0].matched_keys.get_mut(&KeyType::Mobile).unwrap() = 100;
        if let Some(rows) = &mut lie.peers[0].matched_rows {
            *rows += 40;
        }
        // Its attribution no longer follows from the figures: refused on signatures alone.
        let sign = |r: &Report| {
            Some(Signed::sign(REPORT_CONTEXT, r, &police_id.key, &police_id.cert).unwrap())
        };
        lie.signature = sign(&unsigned(&lie));
        let population = lie.population.unwrap();
        assert_eq!(
            verify::verify(&lie, &ca).unwrap_err(),
            format!(
                "bank: the attribution does not follow from its figures and the population of {population}"
            )
        );
        // Nor may a report drop the population its verdicts were computed against.
        let mut unpopulated = unsigned(&report);
        unpopulated.population = None;
        unpopulated.signature = sign(&unpopulated);
        assert_eq!(
            verify::verify(&unpopulated, &ca).unwrap_err(),
            "bank: an attribution without the population it was computed against"
        );
        // A careful liar recomputes the attribution too: signatures alone pass that.
        lie = unsigned(&lie);
        suyuan_node::query::attribution::apply(&mut lie, population);
        lie.signature = sign(&lie);
        verify::verify(&lie, &ca).expect("a querier's own signature verifies");
        let e = recompute(&lie, &ev, &dump).unwrap_err();
        assert!(
            e.starts_with(
                "bank: matched keys recomputed from bank's signed messages differ from the report's"
            ),
            "{e}"
        );

        // A share edited alone (the figure the report shows) is caught too.
        let mut share = unsigned(&report);
        for v in share.peers[0].key_share.values_mut() {
            *v = 0.99;
        }
        share.signature = sign(&share);
        verify::verify(&share, &ca).expect("a querier's own signature verifies");
        let e = recompute(&share, &ev, &dump).unwrap_err();
        assert!(e.starts_with("bank: key shares recomputed"), "{e}");
        // Another dump of the same size does not give the messages bank signed as received.
        let e = recompute(&report, &ev, &fed.path("other.csv")).unwrap_err();
        assert_eq!(
            e,
            "bank: the messages the dump and the evidence's blind give are not the ones bank signed as received"
        );
        // A dump of another size is named as such.
        let e = recompute(&report, &ev, &fed.path("list.csv")).unwrap_err();
        assert!(e.starts_with("the dump given has 200 rows"), "{e}");

        // One altered byte in a holder message: not what bank signed as sent.
        let mut bytes = std::fs::read(&ev).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = fed.path("altered.evidence");
        std::fs::write(&altered, &bytes).unwrap();
        assert_eq!(
            recompute(&report, &altered, &dump).unwrap_err(),
            "bank: the messages in the evidence are not the ones bank signed as sent"
        );
    }
    // The evidence of one query does not vouch for another's report.
    let first = fed.path("count.evidence");
    let dump = fed.path("dump.csv");
    let again = ask(
        &police,
        &dump,
        &server.peer("bank"),
        QueryMode::Count,
        &fed.path("again.evidence"),
    )
    .await;
    assert_eq!(
        recompute(&again, &first, &dump).unwrap_err(),
        "bank: the evidence is of another query"
    );
    server.stop().await;
}
