//! A peer that disconnects at each step of the protocol, on either side: the other side gives a
//! clear error at once, audits what happened, and is ready for the next query.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use suyuan_node::net::frame::{
    ClientFrame, Hello, NODE_WIRE_VERSION, ServerFrame, Welcome, read_frame, write_frame,
};
use suyuan_node::net::tls;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::Outcome;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query;
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::{Holder, HolderMessage, QuerierMessage, Query, QueryKeys, QueryMode};
use suyuan_tests::fed::{Federation, ask_one, start};
use suyuan_tests::write_text;

const POLICY: &str = "[network]\ntimeout_secs = 30\n[policy]\nmin_query_rows = 1\nrequire_case = false\nmax_concurrent_queries = 1\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";

/// Keys in the dump: three blinded chunks, so that "midway" exists.
const DUMP_KEYS: u64 = 10_000;

fn mobile(i: u64) -> String {
    format!("139{i:08}")
}

fn setup() -> (Federation, PathBuf, PathBuf) {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, POLICY);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 30\n");
    let list: String = std::iter::once("mobile\n".to_string())
        .chain((0..2000).map(|i| format!("{}\n", mobile(i * 3))))
        .collect();
    write_text(&fed.path("list.csv"), &list, false);
    let dump: String = std::iter::once("mobile\n".to_string())
        .chain((0..DUMP_KEYS).map(|i| format!("{}\n", mobile(i))))
        .collect();
    write_text(&fed.path("dump.csv"), &dump, false);
    suyuan_tests::fed::import(&bank, &fed.path("list.csv"));
    (fed, bank, police)
}

async fn query(fed: &Federation, police: &Path, peer: &str) -> query::PeerReport {
    ask_one(
        police,
        &fed.path("dump.csv"),
        peer,
        QueryMode::Matches,
        None,
    )
    .await
}

fn client(police: &Path) -> quinn::Endpoint {
    suyuan_tests::fed::client(police, Duration::from_secs(5))
}

/// Where a hand-driven querier hangs up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum QuerierStep {
    Connected,
    HalfAHello,
    Hello,
    Start,
    Welcomed,
    OneChunk,
    OneEvaluation,
    AllChunks,
}

/// Drives a real query by hand up to `step`, then closes the connection without a word.
async fn querier_until(police: &Path, bank: &Path, addr: std::net::SocketAddr, step: QuerierStep) {
    let ep = client(police);
    let conn = ep.connect(addr, "bank").unwrap().await.unwrap();
    let t = Duration::from_secs(5);
    let hang_up = |conn: quinn::Connection| {
        conn.close(0u32.into(), b"");
    };
    if step == QuerierStep::Connected {
        return hang_up(conn);
    }
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    if step == QuerierStep::HalfAHello {
        send.write_all(&[0, 0, 0, 40, 0, 1]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        return hang_up(conn);
    }
    let hello = Hello::new(QueryMode::Matches, None);
    write_frame(&mut send, &ClientFrame::Hello(hello), t)
        .await
        .unwrap();
    if step == QuerierStep::Hello {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return hang_up(conn);
    }
    let mut keys = QueryKeys::new();
    for i in 0..DUMP_KEYS {
        keys.add_row(&[Key::parse(KeyType::Mobile, &mobile(i)).unwrap()]);
    }
    let q = Arc::new(Query::blind(&mut rand::rng(), keys).unwrap());
    let (start, awaiting) = q.start(QueryMode::Matches);
    let admitted = |b: &Path| {
        NodeDir::open(b)
            .expect("a node directory")
            .audit()
            .verify()
            .unwrap()
            .iter()
            .filter(|e| e.record.outcome == Outcome::Admitted)
            .count()
    };
    let before = admitted(bank);
    write_frame(&mut send, &ClientFrame::Psi(start.into()), t)
        .await
        .unwrap();
    if step == QuerierStep::Start {
        // Hang up once the holder has admitted the start (not before it has read it).
        let waited = Instant::now();
        while admitted(bank) == before && waited.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        return hang_up(conn);
    }
    let welcome: ServerFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
    assert!(matches!(welcome, ServerFrame::Welcome(_)), "{welcome:?}");
    if step == QuerierStep::Welcomed {
        return hang_up(conn);
    }
    let Some(ServerFrame::Psi(HolderMessage::Accept(accept))) =
        read_frame(&mut recv, t).await.unwrap()
    else {
        panic!("no accept");
    };
    let mut ex = awaiting.handle_accept(accept).unwrap();
    let mut sent = 0;
    while let Some(m) = ex.poll_message() {
        write_frame(&mut send, &ClientFrame::Psi(m), t)
            .await
            .unwrap();
        sent += 1;
        if sent == 1 && step == QuerierStep::OneChunk {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return hang_up(conn);
        }
        if sent == 1 && step == QuerierStep::OneEvaluation {
            loop {
                let Some(ServerFrame::Psi(m)) = read_frame(&mut recv, t).await.unwrap() else {
                    panic!("the holder ended the query");
                };
                let evaluated = matches!(m, suyuan_protocol::psi::HolderMessage::Evaluated(_));
                ex.handle(m).unwrap();
                if evaluated {
                    return hang_up(conn);
                }
            }
        }
    }
    assert_eq!(step, QuerierStep::AllChunks);
    tokio::time::sleep(Duration::from_millis(100)).await;
    hang_up(conn)
}

/// Waits until the holder's log has `n` entries.
async fn entries(bank: &Path, n: usize) -> Vec<(Outcome, String)> {
    let start = Instant::now();
    loop {
        let e = NodeDir::open(bank)
            .expect("a node directory")
            .audit()
            .verify()
            .unwrap();
        if e.len() >= n {
            return e
                .into_iter()
                .map(|e| (e.record.outcome, e.record.detail.unwrap_or_default()))
                .collect();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{e:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_querier_hanging_up_at_each_step_is_audited_and_frees_the_slot() {
    use QuerierStep::*;
    let (fed, bank, police) = setup();
    let srv = start(&bank);
    let mut seen = 0;
    for (step, audited) in [
        (Connected, &[][..]),
        (HalfAHello, &[Outcome::Aborted][..]),
        (Hello, &[Outcome::Aborted][..]),
        (Start, &[Outcome::Admitted, Outcome::Aborted][..]),
        (Welcomed, &[Outcome::Admitted, Outcome::Aborted][..]),
        (OneChunk, &[Outcome::Admitted, Outcome::Aborted][..]),
        (OneEvaluation, &[Outcome::Admitted, Outcome::Aborted][..]),
        (AllChunks, &[Outcome::Admitted, Outcome::Aborted][..]),
    ] {
        let started = Instant::now();
        querier_until(&police, &bank, srv.addr, step).await;
        let all = entries(&bank, seen + audited.len()).await;
        let new: Vec<Outcome> = all[seen..].iter().map(|e| e.0).collect();
        // Hanging up after the last chunk races the holder's last evaluation: it may finish.
        let finished = step == AllChunks && new == [Outcome::Admitted, Outcome::Completed];
        assert!(new == audited || finished, "{step:?}: {all:?}");
        if let Some((_, why)) = all[seen..].iter().find(|e| e.0 == Outcome::Aborted) {
            assert!(
                why.contains("connection lost") || why.contains("closed"),
                "{step:?}: {why}"
            );
        }
        // Noticed at once, not at the 30 s timeout.
        assert!(started.elapsed() < Duration::from_secs(15), "{step:?}");
        seen += audited.len();
        // The holder's only slot is free again: an honest query goes through.
        let r = query(&fed, &police, &srv.peer("bank")).await;
        assert_eq!(r.error, None, "after {step:?}");
        assert_eq!(r.matched_rows, Some(2000));
        seen += 2;
    }
    srv.stop().await;
}

/// Where a fake holder (a real holder session behind it) hangs up.
#[derive(Debug, Clone, Copy, PartialEq)]
enum HolderStep {
    Connected,
    Hello,
    Start,
    Welcome,
    /// After this many PSI messages (accept, then evaluations and tags).
    Psi(usize),
}

async fn holder_until(bank: &Path, step: HolderStep) -> std::net::SocketAddr {
    let id = NodeDir::open(bank).unwrap().identity().unwrap();
    let (epoch, meta) = NodeDir::open(bank)
        .unwrap()
        .store()
        .read()
        .unwrap()
        .unwrap();
    let holder = Holder::new(Arc::new(epoch));
    // The bank's own signed statement, so that the querier goes on to the exchange.
    let statement = meta.statement;
    let ep = quinn::Endpoint::server(
        tls::server_config(&id, Duration::from_secs(30), 4).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        let conn = ep.accept().await.unwrap().await.unwrap();
        let hang_up = async |conn: quinn::Connection, ep: quinn::Endpoint| {
            // Let what was written reach the querier (a close discards unsent data), then go
            // away without a word, as if the process died.
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn.close(0u32.into(), b"");
            ep.close(0u32.into(), b"");
        };
        if step == HolderStep::Connected {
            return hang_up(conn, ep).await;
        }
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let t = Duration::from_secs(5);
        let _hello: ClientFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
        if step == HolderStep::Hello {
            return hang_up(conn, ep).await;
        }
        let Some(ClientFrame::Psi(QuerierMessage::Start(start))) =
            read_frame(&mut recv, t).await.unwrap()
        else {
            panic!("no start");
        };
        if step == HolderStep::Start {
            return hang_up(conn, ep).await;
        }
        let welcome = ServerFrame::Welcome(Welcome {
            version: NODE_WIRE_VERSION,
            node: "bank".into(),
            epoch: holder.epoch().id(),
            tags_kept: false,
            preparing: 0,
            statement,
        });
        write_frame(&mut send, &welcome, t).await.unwrap();
        if step == HolderStep::Welcome {
            return hang_up(conn, ep).await;
        }
        let HolderStep::Psi(limit) = step else {
            unreachable!()
        };
        let (accept, mut session) = holder.handle_start(start, &mut rand::rng()).unwrap();
        write_frame(&mut send, &ServerFrame::Psi(accept.into()), t)
            .await
            .unwrap();
        let mut sent = 1;
        if sent == limit {
            return hang_up(conn, ep).await;
        }
        loop {
            while let Some(m) = session.poll_message().unwrap() {
                write_frame(&mut send, &ServerFrame::Psi(m), t)
                    .await
                    .unwrap();
                sent += 1;
                if sent == limit {
                    return hang_up(conn, ep).await;
                }
            }
            let Some(ClientFrame::Psi(m)) = read_frame(&mut recv, t).await.unwrap() else {
                panic!("the querier ended the query");
            };
            session.handle(m).unwrap();
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_hanging_up_at_each_step_gives_a_clear_error_at_once() {
    use HolderStep::*;
    let (fed, bank, police) = setup();
    // The whole session sends 1 accept, 3 evaluated chunks and the tags of 2000 keys: even
    // the last step cuts it short (else the query would succeed and the test fail).
    let steps = [
        Connected,
        Hello,
        Start,
        Welcome,
        Psi(1),
        Psi(2),
        Psi(3),
        Psi(4),
    ];
    for (i, step) in steps.into_iter().enumerate() {
        let addr = holder_until(&bank, step).await;
        let started = Instant::now();
        let r = query(&fed, &police, &format!("bank={addr}")).await;
        let err = r.error.unwrap_or_else(|| panic!("{step:?}: no error"));
        assert!(
            err == "bank closed the connection (no reason given)",
            "{step:?}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{step:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(r.matched_rows, None, "{step:?}: no partial answer");
        // The police log records every attempt, and still verifies.
        let log = NodeDir::open(&police)
            .expect("a node directory")
            .audit()
            .verify()
            .unwrap();
        assert_eq!(log.len(), i + 1, "{step:?}");
        // Before the welcome the query never started; after it, it was cut short (unless the
        // hang-up overtook the welcome itself, which QUIC may discard unsent).
        let outcome = log[i].record.outcome;
        let ok = match step {
            Connected | Hello | Start => outcome == Outcome::Failed,
            _ => outcome == Outcome::Aborted || outcome == Outcome::Failed,
        };
        assert!(ok, "{step:?}: {outcome:?}: {err}");
    }
}
