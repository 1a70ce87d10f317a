//! Every refusal reaches the querier as its exact message and lands in the holder's audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use suyuan_node::net::frame::{
    AbortReason, ClientFrame, Hello, ServerFrame, read_frame, write_frame,
};
use suyuan_node::net::tls;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::Outcome;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query::{self, QueryOptions, parse_peer};
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::{Query, QueryKeys, QueryMode};
use suyuan_tests::fed::{Federation, Running, start};
use suyuan_tests::write_text;

fn mobiles(n: usize) -> String {
    let mut s = String::from("mobile\n");
    for i in 0..n {
        s.push_str(&format!("1390000{i:04}\n"));
    }
    s
}

async fn ask(
    fed: &Federation,
    node: &Path,
    srv: &Running,
    dump: &str,
    mode: QueryMode,
    case: Option<&str>,
) -> Result<(), String> {
    let report = query::run(
        &QueryOptions {
            case: case.map(str::to_string),
            ..QueryOptions::new(
                node,
                &fed.path(dump),
                vec![parse_peer(&srv.peer("bank")).unwrap()],
                mode,
            )
        },
        suyuan_node::Silent,
    )
    .await
    .unwrap();
    match &report.peers[0].error {
        None => Ok(()),
        Some(e) => Err(e.clone()),
    }
}

/// Polls `done` until it holds, failing after `limit`.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "not done within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holder_entries(bank: &Path) -> Vec<(Outcome, String)> {
    NodeDir::open(bank)
        .expect("a node directory")
        .audit()
        .verify()
        .unwrap()
        .into_iter()
        .map(|e| (e.record.outcome, e.record.detail.unwrap_or_default()))
        .collect()
}

/// [`holder_entries`] of a running holder: empty while a line is half written.
fn entries_so_far(bank: &Path) -> Vec<(Outcome, String)> {
    NodeDir::open(bank)
        .expect("a node directory")
        .audit()
        .verify()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.record.outcome, e.record.detail.unwrap_or_default()))
        .collect()
}

fn setup(policy: &str) -> (Federation, PathBuf) {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, policy);
    write_text(&fed.path("customers.csv"), &mobiles(50), false);
    suyuan_tests::fed::import(&bank, &fed.path("customers.csv"));
    write_text(&fed.path("dump10.csv"), &mobiles(10), false);
    write_text(&fed.path("dump5.csv"), &mobiles(5), false);
    (fed, bank)
}

const POLICY: &str = "[network]\ntimeout_secs = 3\n[policy]\nmin_query_rows = 10\nrows_per_peer_per_day = 25\n[policy.allow]\npolice = [\"count\"]\ninstitution = []\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refusals_with_exact_errors_and_audit() {
    suyuan_tests::within_one_utc_day(policy_refusals).await;
}

async fn policy_refusals() {
    let (fed, bank) = setup(POLICY);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 3\n");
    let shop = fed.node("shop", Role::Institution, "");
    let srv = start(&bank);
    let case = Some("2026-001");

    let refusals = [
        (
            ask(&fed, &police, &srv, "dump10.csv", QueryMode::Matches, case).await,
            "mode matches is not allowed for role police",
        ),
        (
            ask(&fed, &police, &srv, "dump10.csv", QueryMode::Count, None).await,
            "a case number is required",
        ),
        (
            ask(&fed, &police, &srv, "dump5.csv", QueryMode::Count, case).await,
            "query of 5 keys is below the minimum of 10",
        ),
        (
            ask(&fed, &shop, &srv, "dump10.csv", QueryMode::Count, case).await,
            "role institution may not query this node",
        ),
    ];
    for (got, want) in &refusals {
        assert_eq!(got.as_ref().unwrap_err(), &format!("bank refused: {want}"));
    }

    // The daily budget: 25 keys; two queries of 10 pass, the third is refused.
    ask(&fed, &police, &srv, "dump10.csv", QueryMode::Count, case)
        .await
        .unwrap();
    ask(&fed, &police, &srv, "dump10.csv", QueryMode::Count, case)
        .await
        .unwrap();
    let budget = "daily budget exhausted: 20 of 25 keys used today, this query needs 10";
    assert_eq!(
        ask(&fed, &police, &srv, "dump10.csv", QueryMode::Count, case)
            .await
            .unwrap_err(),
        format!("bank refused: {budget}")
    );
    // ... and still after a restart.
    srv.stop().await;
    let srv = start(&bank);
    assert_eq!(
        ask(&fed, &police, &srv, "dump10.csv", QueryMode::Count, case)
            .await
            .unwrap_err(),
        format!("bank refused: {budget}")
    );
    srv.stop().await;

    let entries = holder_entries(&bank);
    for (_, want) in &refusals {
        assert!(
            entries.contains(&(Outcome::Refused, want.to_string())),
            "no audit entry for {want}"
        );
    }
    let budget_refusals = entries
        .iter()
        .filter(|e| **e == (Outcome::Refused, budget.to_string()))
        .count();
    assert_eq!(budget_refusals, 2);
    let admitted = entries.iter().filter(|e| e.0 == Outcome::Admitted).count();
    assert_eq!(admitted, 2);
}

/// A police client speaking the wire by hand: a hello for `hello_mode`, then a query start of
/// ten keys for `start_mode`. Returns the open stream.
async fn raw_query(
    police: &Path,
    addr: std::net::SocketAddr,
    hello_mode: QueryMode,
    start_mode: QueryMode,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let id = NodeDir::open(police).unwrap().identity().unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(tls::client_config(&id, Duration::from_secs(10)).unwrap());
    let conn = ep.connect(addr, "bank").unwrap().await.unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    let mut keys = QueryKeys::new();
    for i in 0..10 {
        keys.add_row(&[Key::parse(KeyType::Mobile, &format!("1380000{i:04}")).unwrap()]);
    }
    let q = Arc::new(Query::blind(&mut rand::rng(), keys).unwrap());
    let (start, _) = q.start(start_mode);
    let hello = Hello::new(hello_mode, Some("c".into()));
    let t = Duration::from_secs(5);
    write_frame(&mut send, &ClientFrame::Hello(hello), t)
        .await
        .unwrap();
    write_frame(&mut send, &ClientFrame::Psi(start.into()), t)
        .await
        .unwrap();
    (ep, conn, send, recv)
}

/// A police client that opens a query and then stalls, holding one of the holder's slots.
async fn stalled_query(
    police: &Path,
    addr: std::net::SocketAddr,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let (ep, conn, send, mut recv) =
        raw_query(police, addr, QueryMode::Count, QueryMode::Count).await;
    let first: ServerFrame = read_frame(&mut recv, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, ServerFrame::Welcome(_)), "{first:?}");
    (ep, conn, send, recv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_concurrent_queries_is_busy_not_a_hang() {
    let (fed, bank) = setup(
        "[network]\ntimeout_secs = 3\n[policy]\nmin_query_rows = 10\nmax_concurrent_queries = 1\n[policy.allow]\npolice = [\"count\"]\n",
    );
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 3\n");
    let srv = start(&bank);
    let held = stalled_query(&police, srv.addr).await;
    let started = std::time::Instant::now();
    let err = ask(
        &fed,
        &police,
        &srv,
        "dump10.csv",
        QueryMode::Count,
        Some("c"),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        "bank refused: busy: 1 queries already in progress, retry later"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(held);
    // The stalled query times out on the holder side and is audited as aborted once its slot
    // is free.
    until(Duration::from_secs(10), || {
        entries_so_far(&bank)
            .iter()
            .any(|e| e.0 == Outcome::Aborted)
    })
    .await;
    ask(
        &fed,
        &police,
        &srv,
        "dump10.csv",
        QueryMode::Count,
        Some("c"),
    )
    .await
    .unwrap();
    srv.stop().await;
    let entries = holder_entries(&bank);
    assert!(
        entries
            .iter()
            .any(|e| e.0 == Outcome::Refused && e.1.starts_with("busy: 1 queries"))
    );
    assert!(
        entries.iter().any(|e| e.0 == Outcome::Aborted),
        "{entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_get_nothing() {
    let (fed, bank) = setup(POLICY);
    let srv = start(&bank);

    // A police node of another federation that trusts ours: our holder rejects its certificate.
    let other = Federation::new();
    let intruder = other.node("police", Role::Police, "[network]\ntimeout_secs = 3\n");
    std::fs::copy(fed.ca.join("ca.crt"), intruder.join("ca.crt")).unwrap();
    let err = ask(
        &fed,
        &intruder,
        &srv,
        "dump10.csv",
        QueryMode::Count,
        Some("c"),
    )
    .await
    .unwrap_err();
    assert!(err.contains("member of this federation"), "{err}");
    assert!(err.starts_with("bank "), "{err}");

    // A node of another federation that does not trust ours: it refuses our holder.
    let stranger = other.node("stranger", Role::Police, "[network]\ntimeout_secs = 3\n");
    let err = ask(
        &fed,
        &stranger,
        &srv,
        "dump10.csv",
        QueryMode::Count,
        Some("c"),
    )
    .await
    .unwrap_err();
    assert!(
        err.starts_with("bank is not a member of this federation"),
        "{err}"
    );

    // A client with no certificate at all.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(NodeDir::open(&bank).unwrap().identity().unwrap().ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![tls::ALPN.to_vec()];
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(cfg).unwrap(),
    )));
    let outcome = async {
        let conn = ep.connect(srv.addr, "bank").unwrap().await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(b"hello?").await?;
        let mut buf = [0u8; 1];
        recv.read_exact(&mut buf).await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    assert!(
        outcome.is_err(),
        "a client without a certificate was served"
    );
    let tls_refusals = || {
        entries_so_far(&bank)
            .into_iter()
            .filter(|(o, d)| *o == Outcome::Refused && d.starts_with("TLS handshake failed"))
            .count()
    };
    until(Duration::from_secs(5), || tls_refusals() >= 3).await;
    srv.stop().await;
    assert_eq!(tls_refusals(), 3, "{:?}", holder_entries(&bank));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_contradicts_its_hello_is_aborted() {
    let (fed, bank) = setup(POLICY);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 3\n");
    let srv = start(&bank);
    // Only one server per node directory.
    let again = suyuan_node::net::server::Server::bind(&bank, Some("127.0.0.1:0".parse().unwrap()));
    let err = again.err().unwrap().to_string();
    assert!(
        err.starts_with("another `suyuan serve` is already running on"),
        "{err}"
    );

    // Admitted for count, then asking for matches: the holder stops before any answer.
    let (_ep, _conn, _send, mut recv) =
        raw_query(&police, srv.addr, QueryMode::Count, QueryMode::Matches).await;
    let t = Duration::from_secs(5);
    let answer: ServerFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
    let why = "the query start asks for mode matches after a hello for mode count";
    let typed = AbortReason::ModeMismatch {
        hello: QueryMode::Count,
        start: QueryMode::Matches,
    };
    assert_eq!(typed.to_string(), why);
    assert_eq!(answer, ServerFrame::Abort(typed));
    let rest: Option<ServerFrame> = read_frame(&mut recv, t).await.unwrap();
    assert_eq!(rest, None);
    srv.stop().await;
    assert!(holder_entries(&bank).contains(&(Outcome::Aborted, why.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_failed_handshakes_cannot_grow_the_audit_log_without_bound() {
    use suyuan_node::net::server::OUTSIDER_ENTRIES_PER_MINUTE;
    let (fed, bank) = setup(POLICY);
    let srv = start(&bank);
    let other = Federation::new();
    let intruder = other.node("police", Role::Police, "[network]\ntimeout_secs = 3\n");
    std::fs::copy(fed.ca.join("ca.crt"), intruder.join("ca.crt")).unwrap();
    let id = NodeDir::open(&intruder).unwrap().identity().unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(tls::client_config(&id, Duration::from_secs(3)).unwrap());
    let attempts = OUTSIDER_ENTRIES_PER_MINUTE as usize + 12;
    for _ in 0..attempts {
        let r = async {
            let conn = ep.connect(srv.addr, "bank")?.await?;
            conn.accept_uni().await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        assert!(r.is_err());
    }
    // The entries one by one land first; the holder counts the rest as it writes them and
    // finishes every connection's task before writing the count at shutdown.
    until(Duration::from_secs(5), || {
        entries_so_far(&bank)
            .iter()
            .filter(|(_, d)| d.starts_with("TLS handshake failed"))
            .count()
            >= OUTSIDER_ENTRIES_PER_MINUTE as usize
    })
    .await;
    srv.stop().await;
    let entries = holder_entries(&bank);
    let one_by_one = entries
        .iter()
        .filter(|(_, d)| d.starts_with("TLS handshake failed"))
        .count();
    assert_eq!(
        one_by_one, OUTSIDER_ENTRIES_PER_MINUTE as usize,
        "{entries:?}"
    );
    assert_eq!(
        entries.last().unwrap(),
        &(
            Outcome::Refused,
            "12 more refused connections in the last minute, not recorded one by one".to_string()
        )
    );
}

/// A querier refuses a holder announcing more keys than its `[query] max_holder_keys`, before
/// any tag arrives, and says which setting to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_larger_than_the_querier_accepts_is_refused() {
    let (fed, bank) = setup(POLICY);
    let srv = start(&bank);
    let small = fed.node(
        "police",
        Role::Police,
        "[network]\ntimeout_secs = 3\n[query]\nmax_holder_keys = 49\n",
    );
    assert_eq!(
        ask(
            &fed,
            &small,
            &srv,
            "dump10.csv",
            QueryMode::Count,
            Some("C-1")
        )
        .await,
        Err(
            "bank: limit exceeded: holder set of 50 keys exceeds the limit of 49 \
             ([query] max_holder_keys in node.toml)"
                .to_string()
        )
    );
    // Exactly at the limit is accepted.
    let enough = fed.node(
        "police2",
        Role::Police,
        "[network]\ntimeout_secs = 3\n[query]\nmax_holder_keys = 50\n",
    );
    assert_eq!(
        ask(
            &fed,
            &enough,
            &srv,
            "dump10.csv",
            QueryMode::Count,
            Some("C-2")
        )
        .await,
        Ok(())
    );
    srv.stop().await;
}

/// A member may hold at most `max_concurrent_queries` + 1 connections: the next is closed with
/// the reason and audited, other members are not affected, and a closed one frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_over_its_connection_cap_is_refused() {
    use suyuan_node::net::server::TOO_MANY_CONNECTIONS;
    let (fed, bank) = setup(
        "[network]\ntimeout_secs = 5\n[policy]\nmin_query_rows = 10\nmax_concurrent_queries = 2\nrequire_case = false\n[policy.allow]\npolice = [\"count\"]\n",
    );
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 5\n");
    let other = fed.node("police2", Role::Police, "[network]\ntimeout_secs = 5\n");
    let srv = start(&bank);
    let ep = suyuan_tests::fed::client(&police, Duration::from_secs(5));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(ep.connect(srv.addr, "bank").unwrap().await.unwrap());
    }
    // The holder counts a connection when its side of the handshake ends, a moment after ours;
    // it answers a stream only after counting, so one answer on each proves all three counted.
    for conn in &held {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let hello = Hello {
            version: 0,
            ..Hello::new(QueryMode::Count, None)
        };
        let t = Duration::from_secs(5);
        write_frame(&mut send, &ClientFrame::Hello(hello), t)
            .await
            .unwrap();
        let answer: ServerFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
        assert!(matches!(answer, ServerFrame::Refused(_)), "{answer:?}");
    }
    let fourth = ep.connect(srv.addr, "bank").unwrap().await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), fourth.closed())
        .await
        .expect("the fourth connection is closed by the holder");
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.reason.as_ref(), TOO_MANY_CONNECTIONS.as_bytes());
        }
        other => panic!("closed otherwise: {other}"),
    }
    // Held connections stay usable, and another member is not affected.
    assert!(held.iter().all(|c| c.close_reason().is_none()));
    assert_eq!(
        ask(&fed, &other, &srv, "dump10.csv", QueryMode::Count, None).await,
        Ok(())
    );
    // Closing one frees its place for a real query.
    held.pop().unwrap().close(0u32.into(), b"done");
    // The holder frees the place once the close reaches it; until then a query is refused
    // the same way (and audited), so ask again for a while.
    let mut late = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let answered = loop {
        match ask(&fed, &police, &srv, "dump10.csv", QueryMode::Count, None).await {
            Err(e) if e.contains(TOO_MANY_CONNECTIONS) && std::time::Instant::now() < deadline => {
                late += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other,
        }
    };
    assert_eq!(answered, Ok(()));
    drop(held);
    srv.stop().await;
    let refused: Vec<_> = holder_entries(&bank)
        .into_iter()
        .filter(|(o, d)| *o == Outcome::Refused && d.starts_with(TOO_MANY_CONNECTIONS))
        .collect();
    let expected = (
        Outcome::Refused,
        format!("{TOO_MANY_CONNECTIONS}: 3 already open, the limit per member"),
    );
    assert_eq!(refused, vec![expected; 1 + late]);
}
