use std::collections::BTreeMap;

use rustls::pki_types::CertificateRevocationListDer;
use rustls::pki_types::pem::PemObject;

use super::*;
use crate::node_dir::NodeDir;
use crate::node_dir::identity::{self, NodeIdentity};

/// Certificates are valid from their issue: the tests run at the real time.
/// One instant for the whole run, so that "a second before issue" is one.
fn now() -> u64 {
    static NOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NOW.get_or_init(crate::clock::now_unix)
}

struct Fed {
    _dir: tempfile::TempDir,
    ca_dir: std::path::PathBuf,
    court: NodeIdentity,
    bank: NodeIdentity,
    police: NodeIdentity,
    telecom: NodeIdentity,
}

fn fed() -> Fed {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    identity::ca_init(&ca_dir, "test CA").unwrap();
    let id = |name: &str, role| {
        let out = dir.path().join(name);
        identity::ca_issue(&ca_dir, name, role, &out).unwrap();
        NodeDir::open(&out).unwrap().identity().unwrap()
    };
    Fed {
        court: id("court", Role::Court),
        bank: id("bank", Role::Institution),
        police: id("police", Role::Police),
        telecom: id("telecom", Role::Institution),
        ca_dir,
        _dir: dir,
    }
}

fn grant(receipt: Option<Receipt>) -> Grant {
    Grant {
        case: "2026-京-0042".into(),
        holder: "bank".into(),
        querier: Some("police".into()),
        mode: QueryMode::Matches,
        valid_for: 30 * 86400,
        basis: "刑事诉讼法第一百四十三条".into(),
        receipt,
    }
}

/// A count answer signed by `by`, as its node would sign it at the end of a session.
fn count_answer(by: &NodeIdentity, case: &str, querier: &str, mode: QueryMode) -> Signed {
    let a = Answer {
        node: by.me.name.clone(),
        querier: querier.into(),
        querier_fingerprint: "00".into(),
        case: Some(case.into()),
        query_id: "11".repeat(16),
        mode,
        statement: "22".repeat(32),
        epoch: "33".repeat(16),
        tag_len: 16,
        query_keys: BTreeMap::new(),
        holder_keys: BTreeMap::new(),
        to_holder: "44".repeat(32),
        to_querier: "55".repeat(32),
        time: now() - 3600,
        warrant: None,
        published: false,
    };
    Signed::sign(ANSWER_CONTEXT, &a, &by.key, &by.cert).unwrap()
}

fn receipt(answer: Signed, count: u64) -> Receipt {
    Receipt {
        answer,
        count,
        report: "66".repeat(32),
        querier: "police".into(),
    }
}

fn expected<'a>(f: &'a Fed, mode: QueryMode, min: Option<u64>) -> Expected<'a> {
    Expected {
        ca: &f.court.ca,
        crls: &[],
        holder: &f.bank.me,
        querier: &f.police.me,
        case: Some("2026-京-0042"),
        mode,
        now: now(),
        min_count: min,
    }
}

#[test]
fn a_warrant_for_this_holder_case_mode_and_querier_is_accepted() {
    let f = fed();
    let (w, signed) = issue(&f.court, grant(None), now()).unwrap();
    let ok = check(&signed, &expected(&f, QueryMode::Matches, None)).unwrap();
    assert_eq!(ok.warrant, w);
    assert_eq!(ok.court.name, "court");
    assert_eq!(ok.digest, digest(&signed));
    assert_eq!(ok.digest.len(), 64);
}

#[test]
fn every_term_of_the_warrant_is_held_to() {
    let f = fed();
    let (_, signed) = issue(&f.court, grant(None), now()).unwrap();
    let d = short(&signed);
    let mut want = expected(&f, QueryMode::Matches, None);
    want.holder = &f.telecom.me;
    assert_eq!(
        check(&signed, &want).unwrap_err(),
        WarrantRefusal::Misdirected {
            digest: d.clone(),
            holder: "bank".into()
        }
    );
    let mut want = expected(&f, QueryMode::Matches, None);
    want.case = Some("2026-沪-0001");
    assert_eq!(
        check(&signed, &want).unwrap_err().to_string(),
        format!("warrant {d}: granted in case \"2026-京-0042\", not in case \"2026-沪-0001\"")
    );
    assert!(matches!(
        check(&signed, &expected(&f, QueryMode::Count, None)).unwrap_err(),
        WarrantRefusal::AnotherMode { .. }
    ));
    let mut want = expected(&f, QueryMode::Matches, None);
    want.querier = &f.telecom.me;
    assert_eq!(
        check(&signed, &want).unwrap_err(),
        WarrantRefusal::AnotherQuerier {
            digest: d.clone(),
            granted: "police".into(),
            asked: "telecom".into()
        }
    );
    for now in [now() - 1, now() + 30 * 86400] {
        let mut want = expected(&f, QueryMode::Matches, None);
        want.now = now;
        assert!(matches!(
            check(&signed, &want).unwrap_err(),
            WarrantRefusal::Expired { .. }
        ));
    }
    let mut want = expected(&f, QueryMode::Matches, None);
    want.now = now() + 30 * 86400 - 1;
    assert!(check(&signed, &want).is_ok());
}

#[test]
fn a_forged_or_altered_warrant_is_refused() {
    let f = fed();
    let (mut w, signed) = issue(&f.court, grant(None), now()).unwrap();
    // Altered after signing: the expiry pushed out.
    w.expires += 365 * 86400;
    let altered = Signed {
        body: serde_json::to_string(&w).unwrap(),
        ..signed.clone()
    };
    let e = check(&altered, &expected(&f, QueryMode::Matches, None)).unwrap_err();
    assert!(
        matches!(&e, WarrantRefusal::Forged(_, why) if why == "the signature does not verify"),
        "{e}"
    );
    // Signed by the police itself, naming the court.
    let forged = Signed::sign(WARRANT_CONTEXT, &w, &f.police.key, &f.police.cert).unwrap();
    let e = check(&forged, &expected(&f, QueryMode::Matches, None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "warrant {}: not signed by a court of this federation (signed by police (police))",
            short(&forged)
        )
    );
    // A signed answer is not a warrant, though the same key signed both.
    let answer = count_answer(&f.court, "2026-京-0042", "police", QueryMode::Count);
    assert!(matches!(
        check(&answer, &expected(&f, QueryMode::Matches, None)).unwrap_err(),
        WarrantRefusal::Forged(..)
    ));
    // A court of another federation.
    let other = fed();
    let (_, foreign) = issue(&other.court, grant(None), now()).unwrap();
    assert!(matches!(
        check(&foreign, &expected(&f, QueryMode::Matches, None)).unwrap_err(),
        WarrantRefusal::NotACourt(..)
    ));
}

#[test]
fn a_revoked_court_signs_no_warrant() {
    let f = fed();
    let (_, signed) = issue(&f.court, grant(None), now()).unwrap();
    let (crl_path, _) =
        crate::node_dir::revocation::ca_revoke(&f.ca_dir, "court", None, "key lost", 30).unwrap();
    let crl = CertificateRevocationListDer::from_pem_file(&crl_path).unwrap();
    let mut want = expected(&f, QueryMode::Matches, None);
    want.now = crate::clock::now_unix();
    let crls = [crl];
    let (_, fresh) = issue(&f.court, grant(None), want.now).unwrap();
    assert!(check(&fresh, &want).is_ok());
    want.crls = &crls;
    let e = check(&fresh, &want).unwrap_err();
    assert!(
        matches!(&e, WarrantRefusal::NotACourt(_, why) if why.contains("Revoked")),
        "{e}"
    );
    drop(signed);
}

#[test]
fn a_receipt_must_be_this_holders_count_for_this_querier_and_case_and_large_enough() {
    let f = fed();
    let own = count_answer(&f.bank, "2026-京-0042", "police", QueryMode::Count);
    let (_, signed) = issue(&f.court, grant(Some(receipt(own.clone(), 6156))), now()).unwrap();
    assert!(check(&signed, &expected(&f, QueryMode::Matches, Some(3000))).is_ok());
    let d = short(&signed);
    assert_eq!(
        check(&signed, &expected(&f, QueryMode::Matches, Some(10_000))).unwrap_err(),
        WarrantRefusal::ReceiptTooSmall {
            digest: d,
            count: 6156,
            min: 10_000
        }
    );
    let (_, bare) = issue(&f.court, grant(None), now()).unwrap();
    assert_eq!(
        check(&bare, &expected(&f, QueryMode::Matches, Some(3000))).unwrap_err(),
        WarrantRefusal::ReceiptMissing(short(&bare))
    );
    // Not the bank's own answer, not a count, another case, another querier.
    let cases = [
        (
            count_answer(&f.telecom, "2026-京-0042", "police", QueryMode::Count),
            "is an answer of telecom, not of this node",
        ),
        (
            count_answer(&f.bank, "2026-京-0042", "police", QueryMode::Matches),
            "is the answer to a matches query, not a count of this node's list",
        ),
        (
            count_answer(&f.bank, "2025-京-0001", "police", QueryMode::Count),
            "is of case Some(\"2025-京-0001\"), not \"2026-京-0042\"",
        ),
        (
            count_answer(&f.bank, "2026-京-0042", "telecom", QueryMode::Count),
            "is of a query by telecom, not by police",
        ),
    ];
    for (answer, why) in cases {
        let (_, signed) = issue(&f.court, grant(Some(receipt(answer, 9000))), now()).unwrap();
        assert_eq!(
            check(&signed, &expected(&f, QueryMode::Matches, Some(3000))).unwrap_err(),
            WarrantRefusal::ReceiptInvalid(short(&signed), why.into())
        );
    }
}

#[test]
fn only_a_court_issues_and_only_with_a_basis() {
    let f = fed();
    let e = issue(&f.police, grant(None), now())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "police is a police node: only a node issued with --role court signs warrants"
    );
    let mut g = grant(None);
    g.basis = "  ".into();
    assert!(
        issue(&f.court, g, now())
            .unwrap_err()
            .to_string()
            .starts_with("--basis")
    );
    let mut g = grant(None);
    g.basis = "第一条\u{1b}[2J".into();
    let e = issue(&f.court, g, now()).unwrap_err().to_string();
    assert!(e.contains("control characters"), "{e}");
    // The longest basis allowed, in three-byte characters, with a receipt: still fits a hello.
    let mut g = grant(Some(receipt(
        count_answer(&f.bank, "2026-京-0042", "police", QueryMode::Count),
        6000,
    )));
    g.basis = "法".repeat(MAX_BASIS_CHARS);
    assert!(issue(&f.court, g, now()).is_ok());
    let mut g = grant(Some(receipt(
        count_answer(&f.bank, "2026-京-0042", "police", QueryMode::Count),
        6000,
    )));
    g.querier = Some("telecom".into());
    assert!(
        issue(&f.court, g, now())
            .unwrap_err()
            .to_string()
            .contains("same querier")
    );
    // Without --querier, the receipt's querier is the warrant's.
    let mut g = grant(Some(receipt(
        count_answer(&f.bank, "2026-京-0042", "police", QueryMode::Count),
        6000,
    )));
    g.querier = None;
    assert_eq!(
        issue(&f.court, g, now()).unwrap().0.querier.as_deref(),
        Some("police")
    );
}
