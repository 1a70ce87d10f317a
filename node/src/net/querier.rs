//! The querier's side of one query: connect to a holder, check who it is, send the hello and
//! the blinded keys, unblind the answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use suyuan_protocol::psi::{
    HolderMessage, LimitExceeded, PsiError, QuerierLimits, Query, QueryMode, QueryResult, TagSet,
};

use crate::net::frame::{
    ClientFrame, FrameError, Hello, NODE_WIRE_VERSION, ServerFrame, query_deadline, read_frame,
    write_frame,
};
use crate::net::server::connection_identity;
use crate::node_dir::audit::Outcome;
use crate::node_dir::identity;
use crate::query::{PeerSpec, PeerStats};
use crate::text::printable;

/// How long the sender may wait for the holder to take a chunk.
const SENDER_PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// Extra wait for count mode's first evaluation: 50 µs per key, several times the evaluation
/// cost on one slow core.
fn count_mode_allowance(keys: u64) -> Duration {
    Duration::from_micros(keys.saturating_mul(50))
}

/// Why a peer gave no answer.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) outcome: Outcome,
    pub(crate) holder: Option<identity::PeerIdentity>,
    pub(crate) message: String,
}

fn failed(outcome: Outcome, holder: Option<&identity::PeerIdentity>, message: String) -> Failure {
    Failure {
        outcome,
        holder: holder.cloned(),
        message,
    }
}

/// Certificate problems surface as TLS alerts (QUIC crypto errors 0x100..=0x1ff).
fn tls_alert(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => u64::from(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        _ => return false,
    };
    (0x100..=0x1ff).contains(&code)
}

fn describe_connection_error(peer: &PeerSpec, e: &quinn::ConnectionError) -> String {
    if tls_alert(e) {
        format!(
            "{} did not accept us as a member of this federation, or is not one ({e})",
            peer.name
        )
    } else {
        match e {
            quinn::ConnectionError::TimedOut => {
                format!("{} stopped answering (timed out)", peer.name)
            }
            quinn::ConnectionError::ApplicationClosed(c) if c.reason.is_empty() => {
                format!("{} closed the connection (no reason given)", peer.name)
            }
            quinn::ConnectionError::ApplicationClosed(c) => {
                // The peer's words, shown but never interpreted by a terminal.
                let reason: String = String::from_utf8_lossy(&c.reason)
                    .chars()
                    .take(200)
                    .collect();
                format!(
                    "{} closed the connection: {}",
                    peer.name,
                    printable(&reason)
                )
            }
            other => format!("{}: connection lost: {other}", peer.name),
        }
    }
}

fn describe_frame_error(peer: &PeerSpec, e: FrameError) -> String {
    match e {
        FrameError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(c))) => {
            describe_connection_error(peer, &c)
        }
        FrameError::Write(quinn::WriteError::ConnectionLost(c)) => {
            describe_connection_error(peer, &c)
        }
        FrameError::Timeout(t) => format!("{} stalled: no answer within {t:?}", peer.name),
        other => format!("{}: {other}", peer.name),
    }
}

async fn resolve(address: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await
        .with_context(|| format!("cannot resolve {address}"))?
        .next()
        .with_context(|| format!("{address} resolves to no address"))
}

/// Asks one peer. Everything that can go wrong becomes a [`Failure`] naming the peer.
/// What one peer answered: the result, who answered, the exchange's figures, and the tag set
/// to keep when it was downloaded (not when a kept one was used).
pub(crate) type Answer = (
    QueryResult,
    identity::PeerIdentity,
    PeerStats,
    Option<TagSet>,
);

/// How long to wait for one holder, and how much to accept from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) timeout: Duration,
    pub(crate) limits: QuerierLimits,
}

pub(crate) async fn ask(
    peer: &PeerSpec,
    client_cfg: quinn::ClientConfig,
    hello: Hello,
    query: Arc<Query>,
    kept: Option<TagSet>,
    bounds: Bounds,
) -> Result<Answer, Failure> {
    let addr = resolve(&peer.address)
        .await
        .map_err(|e| failed(Outcome::Failed, None, format!("{}: {e:#}", peer.name)))?;
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0"
            .parse()
            .map_err(|_| failed(Outcome::Failed, None, "bad bind address".into()))?
    } else {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| failed(Outcome::Failed, None, "bad bind address".into()))?
    };
    let (mut endpoint, _) = crate::net::udp::endpoint(bind, None).map_err(|e| {
        failed(
            Outcome::Failed,
            None,
            format!("{}: cannot open a socket: {e}", peer.name),
        )
    })?;
    endpoint.set_default_client_config(client_cfg);
    let result = ask_on(&endpoint, peer, addr, hello, query, kept, bounds).await;
    endpoint.close(0u32.into(), b"done");
    // Let the close reach the holder, so it does not wait for an idle timeout.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    result
}

async fn ask_on(
    endpoint: &quinn::Endpoint,
    peer: &PeerSpec,
    addr: SocketAddr,
    hello: Hello,
    query: Arc<Query>,
    kept: Option<TagSet>,
    bounds: Bounds,
) -> Result<Answer, Failure> {
    let Bounds { timeout, limits } = bounds;
    let started = std::time::Instant::now();
    let connecting = endpoint
        .connect(addr, &peer.name)
        .map_err(|e| failed(Outcome::Failed, None, format!("{}: {e}", peer.name)))?;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            return Err(failed(
                Outcome::Failed,
                None,
                format!(
                    "{} did not answer at {} within {timeout:?}",
                    peer.name, peer.address
                ),
            ));
        }
        Ok(Err(e)) => {
            let msg = if tls_alert(&e) || e.to_string().contains("certificate") {
                format!("{} is not a member of this federation: {e}", peer.name)
            } else if matches!(e, quinn::ConnectionError::TimedOut) {
                // QUIC's idle timeout equals ours and may fire first: the same story.
                format!(
                    "{} did not answer at {} within {timeout:?}",
                    peer.name, peer.address
                )
            } else {
                describe_connection_error(peer, &e)
            };
            return Err(failed(Outcome::Failed, None, msg));
        }
        Ok(Ok(c)) => c,
    };
    tracing::debug!(peer = %peer.name, %addr, "connected");
    let holder = connection_identity(&conn)
        .map_err(|e| failed(Outcome::Failed, None, format!("{}: {e:#}", peer.name)))?;
    if holder.role != identity::Role::Institution {
        // Only institutions hold customer lists; a police node answering would be a mix-up.
        let msg = format!(
            "{} is a {} node, not an institution; not queried",
            peer.name, holder.role
        );
        conn.close(2u32.into(), b"not an institution");
        return Err(failed(Outcome::Failed, Some(&holder), msg));
    }
    let mode = hello.mode;
    let (mut send, mut recv) = match tokio::time::timeout(timeout, conn.open_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let msg = describe_connection_error(peer, &e);
            return Err(failed(Outcome::Failed, Some(&holder), msg));
        }
        Err(_) => {
            let msg = format!("{} allowed no query stream within {timeout:?}", peer.name);
            return Err(failed(Outcome::Failed, Some(&holder), msg));
        }
    };
    let (start, awaiting) = query.start_with(mode, limits);
    let f = |e: FrameError| {
        failed(
            Outcome::Failed,
            Some(&holder),
            describe_frame_error(peer, e),
        )
    };
    write_frame(&mut send, &ClientFrame::Hello(hello), timeout)
        .await
        .map_err(f)?;
    write_frame(&mut send, &ClientFrame::Psi(start.into()), timeout)
        .await
        .map_err(f)?;

    // The holder's first answer says whether the query is admitted.
    let (tags_kept, welcome_epoch) = match read_frame::<ServerFrame>(&mut recv, timeout)
        .await
        .map_err(f)?
    {
        Some(ServerFrame::Welcome(w)) if w.version == NODE_WIRE_VERSION && w.node == peer.name => {
            (w.tags_kept, w.epoch)
        }
        Some(ServerFrame::Welcome(w)) => {
            return Err(failed(
                Outcome::Aborted,
                Some(&holder),
                format!(
                    "{} sent a welcome for node \"{}\" in wire version {} (expected {} in version {NODE_WIRE_VERSION})",
                    peer.name,
                    printable(&w.node),
                    w.version,
                    peer.name
                ),
            ));
        }
        Some(ServerFrame::Refused(r)) => {
            return Err(failed(
                Outcome::Refused,
                Some(&holder),
                format!("{} refused: {r}", peer.name),
            ));
        }
        Some(ServerFrame::Abort(why)) => {
            return Err(failed(
                Outcome::Aborted,
                Some(&holder),
                format!("{} aborted the query: {why}", peer.name),
            ));
        }
        Some(ServerFrame::Psi(_)) => {
            return Err(failed(
                Outcome::Aborted,
                Some(&holder),
                format!("{} answered before admitting the query", peer.name),
            ));
        }
        None => {
            return Err(failed(
                Outcome::Aborted,
                Some(&holder),
                format!("{} closed the query without an answer", peer.name),
            ));
        }
    };
    let aborted = |m: String| failed(Outcome::Aborted, Some(&holder), m);
    let accept = match read_frame::<ServerFrame>(&mut recv, timeout).await {
        Ok(Some(ServerFrame::Psi(HolderMessage::Accept(a)))) => a,
        Ok(Some(ServerFrame::Abort(why))) => {
            return Err(aborted(format!("{} aborted the query: {why}", peer.name)));
        }
        Ok(_) => {
            return Err(aborted(format!(
                "{} did not accept the query as the protocol requires",
                peer.name
            )));
        }
        Err(e) => return Err(aborted(describe_frame_error(peer, e))),
    };
    // The whole exchange has a deadline, known once the holder's size is.
    // The kept tags were judged against the welcome's epoch: the answer must be of it.
    if accept.epoch != welcome_epoch {
        return Err(aborted(format!(
            "{} welcomed the query with epoch {welcome_epoch} but answered with epoch {}",
            peer.name, accept.epoch
        )));
    }
    // Saturating: the holder's word, checked only below.
    let tags = accept.total_keys();
    let keys = query.total_keys();
    let deadline = query_deadline(timeout, keys.saturating_add(tags));
    let deadline_at = std::time::Instant::now() + deadline;
    let mut session = awaiting.handle_accept(accept).map_err(|e| {
        let hint = match e {
            PsiError::Limit(LimitExceeded::HolderSetTooLarge { .. }) => {
                " ([query] max_holder_keys in node.toml)"
            }
            _ => "",
        };
        aborted(format!("{}: {e}{hint}", peer.name))
    })?;
    if tags_kept {
        // The holder checked our kept set's digest against its current tags and sends none.
        let set = kept.ok_or_else(|| {
            aborted(format!(
                "{} said our kept tags are current, but we offered none",
                peer.name
            ))
        })?;
        session
            .use_tag_set(set)
            .map_err(|e| aborted(format!("{}: {e}", peer.name)))?;
    }

    // Send every chunk from a task of its own while the answers stream back.
    let chunks = session.take_outgoing();
    let sender = tokio::spawn(async move {
        for m in chunks {
            // The holder reads chunks only after streaming all its tags, which may take longer
            // than one timeout; a dead holder is noticed by the receiving side and QUIC.
            write_frame(&mut send, &ClientFrame::Psi(m), SENDER_PATIENCE).await?;
        }
        let _ = send.finish();
        Ok::<_, FrameError>(send)
    });
    let mut unblind = Duration::ZERO;
    let result = loop {
        if session.is_complete() {
            let done = if tags_kept {
                session.finish().map(|r| (r, None))
            } else {
                session.finish_keeping_tags().map(|(r, t)| (r, Some(t)))
            };
            break done.map_err(|e| aborted(format!("{}: {e}", peer.name)));
        }
        // In count mode the holder answers only once it has every element: the first answer
        // after the tags may take the whole evaluation, so that wait scales with the query.
        let wait = if mode == QueryMode::Count && session.tags_done() && !session.any_evaluated() {
            timeout + count_mode_allowance(query.total_keys())
        } else {
            timeout
        };
        let left = deadline_at.saturating_duration_since(std::time::Instant::now());
        let past = || {
            format!(
                "{} ran past the query's deadline of {deadline:?}",
                peer.name
            )
        };
        if left.is_zero() {
            break Err(aborted(past()));
        }
        let msg = match read_frame::<ServerFrame>(&mut recv, wait.min(left)).await {
            Ok(Some(ServerFrame::Psi(m))) => m,
            Ok(Some(ServerFrame::Abort(why))) => {
                break Err(aborted(format!("{} aborted the query: {why}", peer.name)));
            }
            Ok(Some(_)) => break Err(aborted(format!("{} sent an unexpected frame", peer.name))),
            Ok(None) => break Err(aborted(format!("{} closed the query midway", peer.name))),
            Err(FrameError::Timeout(_)) if wait > left => break Err(aborted(past())),
            Err(e) => break Err(aborted(describe_frame_error(peer, e))),
        };
        let handled = tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            let r = session.handle(msg);
            (session, r, t.elapsed())
        })
        .await;
        match handled {
            Ok((s, Ok(()), spent)) => {
                session = s;
                unblind += spent;
            }
            Ok((_, Err(e), _)) => break Err(aborted(format!("{}: {e}", peer.name))),
            Err(e) => break Err(aborted(format!("{}: unblinding failed: {e}", peer.name))),
        }
    };
    sender.abort();
    let _ = sender.await;
    let connection = conn.stats();
    let stats = PeerStats {
        wall_ms: started.elapsed().as_millis() as u64,
        unblind_ms: unblind.as_millis() as u64,
        bytes_sent: connection.udp_tx.bytes,
        bytes_received: connection.udp_rx.bytes,
        tags_kept,
        datagrams_lost: connection.path.lost_packets,
    };
    conn.close(0u32.into(), b"done");
    result.map(|(r, fresh)| (r, holder, stats, fresh))
}
