//! Hostile frames, a holder that stalls or vanishes: clear errors, no crash, no hang.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use suyuan_node::net::frame::{
    ClientFrame, Hello, NODE_WIRE_VERSION, ServerFrame, read_frame, write_frame,
};
use suyuan_node::net::tls;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::Outcome;
use suyuan_node::node_dir::identity::Role;
use suyuan_node::query;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::oprf::Element;
use suyuan_protocol::psi::{BlindedChunk, QuerierMessage, QueryMode, QueryStart, Section};
use suyuan_tests::fed::{Federation, ask_one, start};
use suyuan_tests::write_text;

const POLICY: &str = "[network]\ntimeout_secs = 2\n[policy]\nmin_query_rows = 1\nrequire_case = false\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";

fn setup() -> (Federation, PathBuf, PathBuf) {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, POLICY);
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 2\n");
    let mut list = String::from("mobile\n");
    for i in 0..100 {
        list.push_str(&format!("1390000{i:04}\n"));
    }
    write_text(&fed.path("list.csv"), &list, false);
    suyuan_tests::fed::import(&bank, &fed.path("list.csv"));
    (fed, bank, police)
}

async fn query(fed: &Federation, police: &Path, peer: &str) -> query::PeerReport {
    ask_one(
        police,
        &fed.path("list.csv"),
        peer,
        QueryMode::Matches,
        None,
    )
    .await
}

fn client(police: &Path) -> quinn::Endpoint {
    suyuan_tests::fed::client(police, Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_do_not_crash_the_node() {
    let (fed, bank, police) = setup();
    let srv = start(&bank);

    // Raw UDP noise at the port.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..50u8 {
        udp.send_to(&[i; 1200], srv.addr).unwrap();
    }

    let ep = client(&police);
    let conn = ep.connect(srv.addr, "bank").unwrap().await.unwrap();
    let hello = || ClientFrame::Hello(Hello::new(QueryMode::Matches, None));
    let mut attacks: Vec<Vec<u8>> = vec![
        (0..300).map(|i| (i * 7) as u8).collect(),        // noise
        vec![0xff, 0xff, 0xff, 0xff, 0, 1, 2],            // a 4 GiB frame announced
        [&20u32.to_be_bytes()[..], &[0xab; 20]].concat(), // a frame of garbage
        [&5u32.to_be_bytes()[..], &[1, 2]].concat(),      // a frame cut short
    ];
    // A hello, then a chunk where the query start belongs.
    let mut framed = Vec::new();
    for f in [
        hello(),
        ClientFrame::Psi(QuerierMessage::Blinded(BlindedChunk {
            seq: 0,
            elements: vec![Element([0; 32])],
        })),
    ] {
        let body = suyuan_protocol::codec::encode(&f).unwrap();
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
    }
    attacks.push(framed);
    // A hello, then a start declaring 2^64 - 1 keys, then invalid points.
    let mut framed = Vec::new();
    for f in [
        hello(),
        ClientFrame::Psi(QuerierMessage::Start(QueryStart {
            version: 1,
            mode: QueryMode::Matches,
            sections: vec![Section {
                key_type: KeyType::Mobile,
                count: u64::MAX,
            }],
            labels: false,
        })),
    ] {
        let body = suyuan_protocol::codec::encode(&f).unwrap();
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(&body);
    }
    attacks.push(framed);
    for bytes in &attacks {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
        let _ = send.finish();
        // Whatever the node answers, it answers promptly and ends the stream.
        let answer = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20)).await;
        assert!(
            answer.is_ok(),
            "the node hung on {:?}",
            &bytes[..8.min(bytes.len())]
        );
    }
    // A stream opened and abandoned mid-frame.
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0, 0, 1]).await.unwrap();
    drop(send);
    conn.close(0u32.into(), b"bye");

    // The node still answers a real query correctly.
    let r = query(&fed, &police, &srv.peer("bank")).await;
    assert_eq!(r.error, None);
    assert_eq!(r.matched_rows, Some(100));
    srv.stop().await;

    let entries = NodeDir::open(&bank).unwrap().audit().verify().unwrap();
    let aborted = entries
        .iter()
        .filter(|e| e.record.outcome == Outcome::Aborted)
        .count();
    assert!(aborted >= 5, "{entries:#?}");
    assert!(entries.iter().any(|e| e.record.detail.as_deref()
        == Some("query of 18446744073709551615 keys is above the maximum of 50000000")));
}

/// What the fake holder does after its welcome.
#[derive(Clone, Copy, PartialEq)]
enum Fake {
    Stall,
    Vanish,
    /// Accepts with an epoch other than the welcome's.
    SwitchEpoch,
}

/// A fake holder with a real identity that admits the query and then misbehaves.
async fn fake_holder(
    bank: &Path,
    fake: Fake,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let id = NodeDir::open(bank).unwrap().identity().unwrap();
    let ep = quinn::Endpoint::server(
        tls::server_config(&id, Duration::from_secs(30), 4).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let conn = ep.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let t = Duration::from_secs(5);
        let _hello: ClientFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
        let _start: ClientFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
        write_frame(
            &mut send,
            &ServerFrame::Welcome(suyuan_node::net::frame::Welcome {
                version: NODE_WIRE_VERSION,
                node: "bank".into(),
                epoch: suyuan_protocol::psi::EpochId([0; 16]),
                tags_kept: false,
                preparing: 0,
                statement: None,
            }),
            t,
        )
        .await
        .unwrap();
        match fake {
            Fake::Vanish => {
                // As if the process died: the connection goes away without a word.
                conn.close(0u32.into(), b"");
                ep.close(0u32.into(), b"");
            }
            Fake::Stall => tokio::time::sleep(Duration::from_secs(20)).await,
            Fake::SwitchEpoch => {
                let accept = suyuan_protocol::psi::QueryAccept {
                    version: suyuan_protocol::psi::PROTOCOL_VERSION,
                    epoch: suyuan_protocol::psi::EpochId([1; 16]),
                    tag_len: 8,
                    public_key: suyuan_protocol::oprf::SecretKey::random(&mut rand::rng())
                        .public_key()
                        .to_element(),
                    holder_sections: Vec::new(),
                    labels: None,
                };
                let frame = ServerFrame::Psi(suyuan_protocol::psi::HolderMessage::Accept(accept));
                write_frame(&mut send, &frame, t).await.unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        drop(conn);
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stalls_gives_a_clear_error_within_the_timeout() {
    let (fed, bank, police) = setup();
    let (addr, task) = fake_holder(&bank, Fake::Stall).await;
    let started = Instant::now();
    let r = query(&fed, &police, &format!("bank={addr}")).await;
    assert_eq!(
        r.error.as_deref(),
        Some("bank stalled: no answer within 2s")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    task.abort();
    let log = NodeDir::open(&police).unwrap().audit().verify().unwrap();
    assert_eq!(log[0].record.outcome, Outcome::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_vanishes_mid_query_gives_a_clear_error() {
    let (fed, bank, police) = setup();
    let (addr, task) = fake_holder(&bank, Fake::Vanish).await;
    let started = Instant::now();
    let r = query(&fed, &police, &format!("bank={addr}")).await;
    let err = r.error.unwrap();
    assert!(
        err.starts_with("bank closed the connection") || err.starts_with("bank: connection lost"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_accept_names_another_epoch_than_its_welcome_is_aborted() {
    let (fed, bank, police) = setup();
    let (addr, task) = fake_holder(&bank, Fake::SwitchEpoch).await;
    let r = query(&fed, &police, &format!("bank={addr}")).await;
    assert_eq!(
        r.error.as_deref(),
        Some(
            "bank welcomed the query with epoch 00000000000000000000000000000000 \
             but answered with epoch 01010101010101010101010101010101"
        )
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_querier_that_trickles_chunks_hits_the_query_deadline() {
    use std::sync::Arc;
    use suyuan_protocol::ident::Key;
    use suyuan_protocol::psi::{Query, QueryKeys};
    let (_fed, bank, police) = setup();
    let srv = start(&bank);
    // Five chunks of blinded keys, one every 1.8 s: each inside the 2 s timeout, but the whole
    // is slower than the deadline of 2 s + 200 µs × (20 480 keys + 100 tags) ≈ 6.1 s.
    let mut keys = QueryKeys::new();
    for i in 0..20_480u64 {
        keys.add_row(&[Key::parse(KeyType::Mobile, &format!("137{i:08}")).unwrap()]);
    }
    let q = Arc::new(Query::blind(&mut rand::rng(), keys).unwrap());
    let (start_msg, awaiting) = q.start(QueryMode::Matches);
    let ep = client(&police);
    let conn = ep.connect(srv.addr, "bank").unwrap().await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let t = Duration::from_secs(5);
    let hello = Hello::new(QueryMode::Matches, None);
    write_frame(&mut send, &ClientFrame::Hello(hello), t)
        .await
        .unwrap();
    write_frame(&mut send, &ClientFrame::Psi(start_msg.into()), t)
        .await
        .unwrap();
    let welcome: ServerFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
    assert!(matches!(welcome, ServerFrame::Welcome(_)), "{welcome:?}");
    let Some(ServerFrame::Psi(suyuan_protocol::psi::HolderMessage::Accept(accept))) =
        read_frame(&mut recv, t).await.unwrap()
    else {
        panic!("no accept");
    };
    let chunks: Vec<_> = awaiting
        .handle_accept(accept)
        .unwrap()
        .take_outgoing()
        .collect();
    assert_eq!(chunks.len(), 5);
    let started = Instant::now();
    // Read whatever the holder sends, so that only the trickle slows the query down.
    let reader = tokio::spawn(async move {
        loop {
            match read_frame::<ServerFrame>(&mut recv, Duration::from_secs(20)).await {
                Ok(Some(ServerFrame::Abort(why))) => return Some(why.to_string()),
                Ok(Some(_)) => {}
                _ => return None,
            }
        }
    });
    for (i, c) in chunks.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(1800)).await;
        }
        if write_frame(&mut send, &ClientFrame::Psi(c), t)
            .await
            .is_err()
        {
            break;
        }
    }
    let why = reader.await.unwrap().expect("the holder aborts the query");
    assert!(
        why.starts_with("the query ran past its deadline of 6.1"),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    srv.stop().await;
    let log = NodeDir::open(&bank).unwrap().audit().verify().unwrap();
    let last = log.last().unwrap();
    assert_eq!(last.record.outcome, Outcome::Aborted);
    assert_eq!(last.record.detail.as_deref(), Some(why.as_str()));
}
