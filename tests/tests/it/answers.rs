//! A holder's signed answer is evidence only if it says what happened. A holder that runs the
//! session honestly but signs an answer that says something else (other sizes, other message
//! digests) is refused by the querier, which names the field; the honest answer passes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use suyuan_node::evidence::answer::body_digest;
use suyuan_node::evidence::{ANSWER_CONTEXT, Answer, Signed, Transcript};
use suyuan_node::net::frame::{
    ClientFrame, NODE_WIRE_VERSION, ServerFrame, Welcome, read_frame, write_frame,
};
use suyuan_node::net::tls;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::identity::Role;
use suyuan_protocol::psi::{Holder, HolderMessage, QuerierMessage, QueryMode, section_counts};
use suyuan_tests::fed::{Federation, ask_one};
use suyuan_tests::write_text;

/// What the fake holder changes in the answer it signs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lie {
    None,
    HolderKeys,
    ToQuerier,
    /// Claims a warrant the querier never sent.
    Warrant,
}

/// A holder that serves one real matches session from `bank`'s store and signs an answer,
/// altered as `lie` says.
async fn holder(bank: &Path, police: &Path, lie: Lie) -> std::net::SocketAddr {
    let node = NodeDir::open(bank).unwrap();
    let id = node.identity().unwrap();
    let querier = NodeDir::open(police).unwrap().identity().unwrap().me;
    let (epoch, meta) = node.store().read().unwrap().unwrap();
    let statement = meta.statement.expect("a signed statement");
    let holder = Holder::new(Arc::new(epoch));
    let ep = quinn::Endpoint::server(
        tls::server_config(&id, Duration::from_secs(30), 4).unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        let conn = ep.accept().await.unwrap().await.unwrap();
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let t = Duration::from_secs(10);
        let Some(ClientFrame::Hello(hello)) = read_frame(&mut recv, t).await.unwrap() else {
            panic!("no hello");
        };
        let Some(ClientFrame::Psi(QuerierMessage::Start(start))) =
            read_frame(&mut recv, t).await.unwrap()
        else {
            panic!("no start");
        };
        let mut transcript = Transcript::default();
        transcript.to_holder(&QuerierMessage::Start(start.clone()));
        let query_keys = section_counts(&start.sections);
        let (accept, mut session) = holder.handle_start(start, &mut rand::rng()).unwrap();
        let welcome = ServerFrame::Welcome(Welcome {
            version: NODE_WIRE_VERSION,
            node: "bank".into(),
            epoch: accept.epoch,
            tags_kept: false,
            preparing: 0,
            statement: Some(statement.clone()),
        });
        write_frame(&mut send, &welcome, t).await.unwrap();
        transcript.to_querier(&HolderMessage::Accept(accept.clone()));
        write_frame(&mut send, &ServerFrame::Psi(accept.clone().into()), t)
            .await
            .unwrap();
        loop {
            while let Some(m) = session.poll_message().unwrap() {
                transcript.to_querier(&m);
                write_frame(&mut send, &ServerFrame::Psi(m), t)
                    .await
                    .unwrap();
            }
            if session.is_finished() {
                break;
            }
            let Some(ClientFrame::Psi(m)) = read_frame(&mut recv, t).await.unwrap() else {
                panic!("the querier ended the query");
            };
            transcript.to_holder(&m);
            session.handle(m).unwrap();
        }
        let (to_holder, mut to_querier) = transcript.digests();
        let mut holder_keys = section_counts(&accept.holder_sections);
        match lie {
            Lie::None => {}
            Lie::HolderKeys => *holder_keys.values_mut().next().unwrap() += 1,
            Lie::ToQuerier => to_querier = "00".repeat(32),
            Lie::Warrant => {}
        }
        let answer = Answer {
            node: "bank".into(),
            querier: querier.name.clone(),
            querier_fingerprint: querier.fingerprint.clone(),
            case: hello.case.clone(),
            query_id: hello.query_id.iter().map(|b| format!("{b:02x}")).collect(),
            mode: hello.mode,
            statement: body_digest(&statement.body),
            epoch: accept.epoch.to_string(),
            tag_len: accept.tag_len,
            query_keys,
            holder_keys,
            to_holder,
            to_querier,
            time: 1_800_000_000,
            warrant: (lie == Lie::Warrant).then(|| "ab".repeat(32)),
            published: false,
        };
        let receipt = Signed::sign(ANSWER_CONTEXT, &answer, &id.key, &id.cert).unwrap();
        write_frame(&mut send, &ServerFrame::Receipt(receipt), t)
            .await
            .unwrap();
        let _ = send.finish();
        // Keep the connection until the querier has read everything and closed it.
        let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_answer_that_says_something_else_is_refused() {
    let fed = Federation::new();
    let bank = fed.node("bank", Role::Institution, "[policy]\nmin_query_keys = 1\n");
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 10\n");
    write_text(
        &fed.path("list.csv"),
        "mobile\n13900000001\n13900000002\n",
        false,
    );
    write_text(
        &fed.path("dump.csv"),
        "mobile\n13900000002\n13900000003\n",
        false,
    );
    suyuan_tests::fed::import(&bank, &fed.path("list.csv"));
    for (lie, expected) in [
        (Lie::None, None),
        (
            Lie::HolderKeys,
            Some("bank's signed answer: its signed answer differs from this query in holder_keys"),
        ),
        (
            Lie::ToQuerier,
            Some("bank's signed answer: its signed answer differs from this query in to_querier"),
        ),
        (
            Lie::Warrant,
            Some("bank's signed answer: its signed answer differs from this query in warrant"),
        ),
    ] {
        let addr = holder(&bank, &police, lie).await;
        let peer = ask_one(
            &police,
            &fed.path("dump.csv"),
            &format!("bank={addr}"),
            QueryMode::Matches,
            Some("2026-刑-7"),
        )
        .await;
        assert_eq!(peer.error.as_deref(), expected, "{lie:?}");
        if lie == Lie::None {
            assert_eq!(peer.matched_rows, Some(1));
            assert!(peer.answer.is_some() && peer.statement.is_some());
        }
    }
}
