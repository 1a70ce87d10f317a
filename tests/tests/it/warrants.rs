//! The disclosure ladder over real QUIC: a count, a court's warrant granted on the holder's
//! signed count, rows disclosed with it and refused without it; every refusal reason of a
//! warrant with its exact message, in both audit logs with the warrant's digest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use suyuan_node::evidence::Signed;
use suyuan_node::evidence::warrant::{self, Grant, WARRANT_CONTEXT, Warrant};
use suyuan_node::net::frame::{ClientFrame, Hello, ServerFrame, read_frame, write_frame};
use suyuan_node::net::server::TOO_MANY_CONNECTIONS;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::Outcome;
use suyuan_node::node_dir::identity::{NodeIdentity, Role};
use suyuan_node::query::{self, QueryOptions, Report, parse_peer};
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, Running, import, start};
use suyuan_tests::write_text;

const CASE: &str = "2026-京-0042";

/// The bank holds mobiles 0..3000, the dump 2000..6000: 1000 in common (rows 1..=1000).
fn lists(fed: &Federation) -> (PathBuf, PathBuf) {
    let mut bank = String::from("手机号\n");
    for i in 0..3000 {
        bank.push_str(&format!("1390000{i:04}\n"));
    }
    let mut dump = String::from("mobile\n");
    for i in 2000..6000 {
        dump.push_str(&format!("1390000{i:04}\n"));
    }
    write_text(&fed.path("bank.csv"), &bank, false);
    write_text(&fed.path("dump.csv"), &dump, false);
    (fed.path("bank.csv"), fed.path("dump.csv"))
}

const BANK_TOML: &str = "[network]\ntimeout_secs = 10\n[policy]\nmin_query_keys = 100\n[policy.allow]\npolice = [\"count\", \"matches\"]\ninstitution = [\"matches\"]\n[policy.warrant]\nmatches = true\nreceipt = true\nmin_count = 500\n";

struct Setup {
    fed: Federation,
    police: PathBuf,
    court: NodeIdentity,
    bank: Running,
    dump: PathBuf,
}

fn setup() -> Setup {
    let fed = Federation::new();
    let (bank_csv, dump) = lists(&fed);
    let bank = fed.node("bank", Role::Institution, BANK_TOML);
    import(&bank, &bank_csv);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    let court = fed.node("court", Role::Court, "");
    let court = NodeDir::open(&court).unwrap().identity().unwrap();
    let bank = start(&bank);
    Setup {
        fed,
        police,
        court,
        bank,
        dump,
    }
}

async fn ask(s: &Setup, mode: QueryMode, warrants: Vec<PathBuf>) -> anyhow::Result<Report> {
    query::run(
        &QueryOptions {
            case: Some(CASE.into()),
            warrants,
            ..QueryOptions::new(
                &s.police,
                &s.dump,
                vec![parse_peer(&s.bank.peer("bank")).unwrap()],
                mode,
            )
        },
        suyuan_node::Silent,
    )
    .await
}

fn grant(receipt: Option<warrant::Receipt>) -> Grant {
    Grant {
        case: CASE.into(),
        holder: "bank".into(),
        querier: Some("police".into()),
        mode: QueryMode::Matches,
        valid_for: 86400,
        basis: "刑事诉讼法第一百四十三条".into(),
        receipt,
    }
}

fn write_warrant(fed: &Federation, name: &str, signed: &Signed) -> PathBuf {
    let path = fed.path(name);
    std::fs::write(&path, serde_json::to_string(signed).unwrap()).unwrap();
    path
}

fn now() -> u64 {
    suyuan_node::clock::now_unix()
}

/// The holder's audit entries that name a warrant: (outcome, digest, detail).
fn warrant_entries(node: &Path) -> Vec<(Outcome, String, Option<String>)> {
    NodeDir::open(node)
        .unwrap()
        .audit()
        .verify()
        .unwrap()
        .into_iter()
        .filter_map(|e| Some((e.record.outcome, e.record.warrant?, e.record.detail)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_disclosed_on_a_warrant_granted_on_the_holders_signed_count() {
    let s = setup();
    // Without a warrant: refused, with the reason.
    let r = ask(&s, QueryMode::Matches, vec![]).await.unwrap();
    let e = r.peers[0].error.clone().unwrap();
    assert!(
        e.ends_with("refused: a warrant is required for matches queries"),
        "{e}"
    );
    // The count, then the warrant on it.
    let count = ask(&s, QueryMode::Count, vec![]).await.unwrap();
    assert_eq!(count.peers[0].matched_keys.values().sum::<u64>(), 1000);
    let receipt = warrant::receipt(&count, "bank", CASE, &s.court.ca).unwrap();
    assert_eq!(receipt.count, 1000);
    assert_eq!(receipt.querier, "police");
    let (_, signed) = warrant::issue(&s.court, grant(Some(receipt)), now()).unwrap();
    let path = write_warrant(&s.fed, "warrant.json", &signed);
    let rows = ask(&s, QueryMode::Matches, vec![path]).await.unwrap();
    let p = &rows.peers[0];
    assert_eq!(p.error, None);
    let expected: Vec<u64> = (1..=1000).collect();
    assert_eq!(p.rows.as_ref().unwrap(), &expected);
    assert_eq!(p.warrant.as_ref(), Some(&signed));
    // The report, warrant included, verifies; a warrant swapped in afterwards does not.
    let ca = s.court.ca.clone();
    query::verify::verify(&rows, &ca).unwrap();
    let mut forged = rows.clone();
    let (_, other) = warrant::issue(&s.court, grant(None), now()).unwrap();
    forged.peers[0].warrant = Some(other);
    let e = query::verify::verify(&forged, &ca).unwrap_err();
    assert!(e.contains("differs from what police signed"), "{e}");
    // Nor can the querier swap a warrant in and sign the report again: the bank signed which
    // warrant it answered on.
    let police_id = NodeDir::open(&s.police).unwrap().identity().unwrap();
    forged.signature = Some(
        Signed::sign(
            query::verify::REPORT_CONTEXT,
            &query::verify::unsigned(&forged),
            &police_id.key,
            &police_id.cert,
        )
        .unwrap(),
    );
    let e = query::verify::verify(&forged, &ca).unwrap_err();
    assert_eq!(
        e,
        "bank: the warrant differs from the one bank signed that it answered on"
    );
    // Both audit logs name the warrant: the holder's admitted and completed entries, the
    // querier's completed one.
    let d = warrant::digest(&signed);
    let bank_dir = s.fed.path("bank");
    let held: Vec<_> = warrant_entries(&bank_dir)
        .into_iter()
        .filter(|(_, digest, _)| *digest == d)
        .map(|(o, _, _)| o)
        .collect();
    assert_eq!(held, vec![Outcome::Admitted, Outcome::Completed]);
    let asked: Vec<_> = warrant_entries(&s.police)
        .into_iter()
        .filter(|(_, digest, _)| *digest == d)
        .map(|(o, _, _)| o)
        .collect();
    assert_eq!(asked, vec![Outcome::Completed]);
    s.bank.stop().await;
}

/// Sends a hello carrying `warrant` by hand (the querier's own checks would stop most of these
/// before they leave) and returns the holder's refusal as text.
async fn refusal(s: &Setup, querier: &Path, mode: QueryMode, warrant: &Signed) -> String {
    let ep = suyuan_tests::fed::client(querier, Duration::from_secs(10));
    let hello = Hello {
        warrant: Some(warrant.clone()),
        ..Hello::new(mode, Some(CASE.into()))
    };
    // The holder frees a connection's place once the previous close reaches it; until then it
    // closes a new one at once as one too many, so ask again for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let answer = loop {
        match exchange(&ep, s.bank.addr, &hello).await {
            Err(e) if e.contains(TOO_MANY_CONNECTIONS) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other.unwrap(),
        }
    };
    match answer {
        ServerFrame::Refused(r) => r.to_string(),
        other => panic!("not refused: {other:?}"),
    }
}

/// One hello on a connection of its own, and the holder's first answer.
async fn exchange(
    ep: &quinn::Endpoint,
    addr: std::net::SocketAddr,
    hello: &Hello,
) -> Result<ServerFrame, String> {
    // Every cause, down to the holder's reason for closing.
    let why = |e: anyhow::Error| format!("{e:#}");
    let conn = ep.connect(addr, "bank").map_err(|e| why(e.into()))?;
    let conn = conn.await.map_err(|e| why(e.into()))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| why(e.into()))?;
    let t = Duration::from_secs(10);
    let asked = write_frame(&mut send, &ClientFrame::Hello(hello.clone()), t).await;
    asked.map_err(|e| why(e.into()))?;
    let answer = read_frame(&mut recv, t).await.map_err(|e| why(e.into()))?;
    conn.close(0u32.into(), b"done");
    answer.ok_or_else(|| "the holder closed the stream without an answer".into())
}

/// A warrant as the court would sign it, with its terms changed by `edit`.
fn signed_with(court: &NodeIdentity, edit: impl FnOnce(&mut Warrant)) -> Signed {
    let (mut w, _) = warrant::issue(court, grant(None), now()).unwrap();
    edit(&mut w);
    Signed::sign(WARRANT_CONTEXT, &w, &court.key, &court.cert).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_warrant_is_refused_with_its_reason_and_audited() {
    let s = setup();
    let police_id = NodeDir::open(&s.police).unwrap().identity().unwrap();
    let count = ask(&s, QueryMode::Count, vec![]).await.unwrap();
    let receipt = warrant::receipt(&count, "bank", CASE, &s.court.ca).unwrap();
    let good = |edit: &dyn Fn(&mut Warrant)| {
        let (mut w, _) = warrant::issue(&s.court, grant(Some(receipt.clone())), now()).unwrap();
        edit(&mut w);
        Signed::sign(WARRANT_CONTEXT, &w, &s.court.key, &s.court.cert).unwrap()
    };
    let mut altered = good(&|_| {});
    altered.body = altered.body.replace("\"matches\"", "\"count\"");
    let by_police = {
        let (w, _) = warrant::issue(&s.court, grant(None), now()).unwrap();
        Signed::sign(WARRANT_CONTEXT, &w, &police_id.key, &police_id.cert).unwrap()
    };
    let cases: Vec<(Signed, String)> = vec![
        (
            altered.clone(),
            "forged or damaged (the signature does not verify)".into(),
        ),
        (
            by_police.clone(),
            "not signed by a court of this federation (signed by police (police))".into(),
        ),
        (
            good(&|w| w.holder = "telecom".into()),
            "addressed to telecom, not to this node".into(),
        ),
        (
            good(&|w| w.case = "2025-沪-0001".into()),
            format!("granted in case \"2025-沪-0001\", not in case \"{CASE}\""),
        ),
        (
            good(&|w| w.querier = Some("police2".into())),
            "granted to police2, not to police".into(),
        ),
        (
            good(&|w| {
                w.issued -= 10 * 86400;
                w.expires = w.issued + 86400;
            }),
            "not valid now".into(),
        ),
        (
            signed_with(&s.court, |_| {}),
            "the policy asks for the signed count it was granted on, and it has none".into(),
        ),
        (
            good(&|w| w.receipt.as_mut().unwrap().count = 400),
            "granted on a count of 400, below this node's minimum of 500".into(),
        ),
        (
            good(&|w| {
                let r = w.receipt.as_mut().unwrap();
                r.answer.body = r.answer.body.replace("\"count\"", "\"matches\"");
            }),
            "its receipt does not verify: the signature does not verify".into(),
        ),
    ];
    for (signed, why) in &cases {
        let got = refusal(&s, &s.police, QueryMode::Matches, signed).await;
        let head = format!("warrant {}: ", warrant::short(signed));
        assert!(
            got.starts_with(&head) && got.contains(why.as_str()),
            "{got}\nwanted: {head}{why}"
        );
    }
    // A warrant naming no querier is for the police only: an institution admitted by the
    // policy cannot use it.
    let telecom = s.fed.node("telecom", Role::Institution, "");
    let unnamed = signed_with(&s.court, |w| {
        w.querier = None;
        w.receipt = Some(receipt.clone());
    });
    let got = refusal(&s, &telecom, QueryMode::Matches, &unnamed).await;
    assert!(
        got.ends_with("granted to any police node, not to telecom"),
        "{got}"
    );
    // A warrant for matches used for a count is refused too.
    let got = refusal(&s, &s.police, QueryMode::Count, &good(&|_| {})).await;
    assert!(got.contains("allows matches queries, not count"), "{got}");
    // Every refused warrant is in the holder's log, by digest, with its reason (the holder
    // audits after it answers: stopped, it has written everything).
    s.bank.stop().await;
    let logged = warrant_entries(&s.fed.path("bank"));
    for (signed, why) in &cases {
        let d = warrant::digest(signed);
        assert!(
            logged
                .iter()
                .any(|(o, digest, detail)| *o == Outcome::Refused
                    && *digest == d
                    && detail.as_deref().is_some_and(|t| t.contains(why.as_str()))),
            "{why} not audited"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_querier_checks_its_warrants_before_asking() {
    let s = setup();
    let (_, for_telecom) = warrant::issue(
        &s.court,
        Grant {
            holder: "telecom".into(),
            ..grant(None)
        },
        now(),
    )
    .unwrap();
    let path = write_warrant(&s.fed, "w1.json", &for_telecom);
    let e = ask(&s, QueryMode::Matches, vec![path.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: addressed to telecom, who is not among the peers asked",
            path.display()
        )
    );
    let (_, ok) = warrant::issue(&s.court, grant(None), now()).unwrap();
    let path = write_warrant(&s.fed, "w2.json", &ok);
    let e = ask(&s, QueryMode::Count, vec![path.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("allows matches queries, not count"), "{e}");
    let e = ask(&s, QueryMode::Matches, vec![path.clone(), path.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("a second warrant for bank"), "{e}");
    std::fs::write(&path, "{\"body\": 1}").unwrap();
    let e = ask(&s, QueryMode::Matches, vec![path.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a suyuan warrant"), "{e}");
    // None of these reached the bank.
    let entries = NodeDir::open(&s.fed.path("bank"))
        .unwrap()
        .audit()
        .verify()
        .unwrap();
    assert!(entries.is_empty(), "{entries:?}");
    s.bank.stop().await;
}
