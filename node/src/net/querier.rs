//! The querier's side of one query: connect to a holder, check who it is, send the hello and
//! the blinded keys, unblind the answers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use suyuan_protocol::psi::{
    Exchanging, HolderMessage, QuerierLimits, QuerierMessage, Query, QueryAccept, QueryMode,
    QueryResult, QueryStart, TagSet, section_counts,
};

use crate::evidence::answer::body_digest;
use crate::evidence::{ANSWER_CONTEXT, Answer, EpochStatement, Signed, Transcript};

use crate::net::failure::{
    FailureKind, QueryFailure, connect_failure, connection_failure, frame_failure,
};
use crate::net::frame::{
    ClientFrame, FrameError, Hello, ServerFrame, query_deadline, read_frame, write_frame,
};
use crate::net::handshake::querier::{QuerierHandshake, Welcomed};
use crate::net::server::connection_identity;
use crate::net::tag_spill::{FreshFile, SpillError, Spilled, TagSpill};
use crate::node_dir::identity;
use crate::node_dir::tag_cache::KeptFile;
use crate::query::{PeerSpec, PeerStats};

/// How long the sender may wait for the holder to take a chunk.
const SENDER_PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// Extra wait for count mode's first evaluation: 50 µs per key, several times the evaluation
/// cost on one slow core.
fn count_mode_allowance(keys: u64) -> Duration {
    Duration::from_micros(keys.saturating_mul(50))
}

async fn resolve(address: &str) -> Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await
        .with_context(|| format!("cannot resolve {address}"))?
        .next()
        .with_context(|| format!("{address} resolves to no address"))
}

/// What one peer answered: the result, who answered, the exchange's figures, and the tag set
/// to keep when it was downloaded (not when a kept one was used).
/// One holder's complete answer.
pub(crate) struct Reply {
    pub(crate) result: QueryResult,
    pub(crate) holder: identity::PeerIdentity,
    pub(crate) stats: PeerStats,
    /// The tags received in `matches` mode, to keep (none when kept tags were used).
    pub(crate) fresh: Option<Fresh>,
    pub(crate) statement: Signed,
    pub(crate) receipt: Signed,
    /// Every holder message as digested, when [`Bounds::record`] asked for them.
    pub(crate) received: Option<Vec<Vec<u8>>>,
}

/// How long to wait for one holder, how much to accept from it, and what to keep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) timeout: Duration,
    pub(crate) limits: QuerierLimits,
    /// Keep every holder message, for an evidence file (`suyuan query --evidence`).
    pub(crate) record: bool,
    /// Ask for the labels of matched keys (`suyuan query --labels`).
    pub(crate) labels: bool,
    /// Most bytes of a holder's tags held in memory; a larger stream is written to disk
    /// ([`super::tag_spill`]).
    pub(crate) tags_in_memory: u64,
}

/// A holder's tags received in `matches` mode, for the cache to keep: in memory, or the file
/// they were written to.
#[derive(Debug)]
pub(crate) enum Fresh {
    /// Held in memory.
    Set(TagSet),
    /// Written to disk as they came, in the cache's format.
    File(FreshFile),
}

/// The holder's tags this side already has, and where a large stream of them is written.
#[derive(Debug, Clone)]
pub(crate) struct HolderTags {
    /// Kept from an earlier query (`matches` mode), loaded.
    pub(crate) kept: Option<TagSet>,
    /// Kept from an earlier query, too large to load: merged against where it lies.
    pub(crate) kept_file: Option<KeptFile>,
    /// The directory a stream larger than [`Bounds::tags_in_memory`] is written to.
    pub(crate) spill_dir: PathBuf,
}

/// Asks one peer. Everything that can go wrong becomes a [`QueryFailure`] naming the peer.
pub(crate) async fn ask(
    peer: &PeerSpec,
    me: &identity::PeerIdentity,
    client_cfg: quinn::ClientConfig,
    hello: Hello,
    query: Arc<Query>,
    tags: HolderTags,
    bounds: Bounds,
) -> Result<Reply, QueryFailure> {
    let fail = |kind| failure(peer, None, false, kind);
    let addr = resolve(&peer.address)
        .await
        .map_err(|e| fail(FailureKind::Resolve(format!("{e:#}"))))?;
    let bind = if addr.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let bind: SocketAddr = bind
        .parse()
        .map_err(|_| fail(FailureKind::BadBindAddress))?;
    let (mut endpoint, _) = crate::net::udp::endpoint(bind, None)
        .map_err(|e| fail(FailureKind::Socket(format!("cannot open a socket: {e}"))))?;
    endpoint.set_default_client_config(client_cfg);
    let asking = Asking {
        peer,
        me,
        hello,
        query,
        tags,
        bounds,
    };
    let result = asking.ask_on(&endpoint, addr).await;
    endpoint.close(0u32.into(), b"done");
    // Let the close reach the holder, so it does not wait for an idle timeout.
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    result
}

fn failure(
    peer: &PeerSpec,
    holder: Option<&identity::PeerIdentity>,
    welcomed: bool,
    kind: FailureKind,
) -> QueryFailure {
    QueryFailure {
        peer: peer.name.clone(),
        holder: holder.cloned(),
        welcomed,
        kind,
    }
}

/// A document signed with the key the holder authenticated with in TLS, under a certificate
/// of the same name (the one it answered with, or an earlier one of the same key: a renewal
/// keeps the key); the signature itself is checked when it is opened.
fn signed_by(signed: &Signed, holder: &identity::PeerIdentity) -> Result<(), String> {
    let cert = signed.certificate().map_err(|e| e.to_string())?;
    let signer = identity::peer_identity(&cert).map_err(|e| format!("{e:#}"))?;
    if signer.key == holder.key && signer.name == holder.name && signer.role == holder.role {
        Ok(())
    } else {
        Err("signed with another key than the one it answered with".into())
    }
}

/// The holder's signed epoch statement, from the certificate we reached it by, and the
/// accept's epoch, key and sizes as it signed them.
fn check_statement(
    welcomed: &Welcomed,
    holder: &identity::PeerIdentity,
    accept: &QueryAccept,
) -> Result<(Signed, EpochStatement), FailureKind> {
    let signed = welcomed.statement.clone().ok_or(FailureKind::NoStatement)?;
    signed_by(&signed, holder).map_err(FailureKind::StatementUnsigned)?;
    let statement =
        EpochStatement::open(&signed).map_err(|e| FailureKind::StatementUnsigned(e.to_string()))?;
    statement
        .check_accept(&holder.name, accept)
        .map_err(FailureKind::Statement)?;
    Ok((signed, statement))
}

/// The holder's tags outside the session: written during this query, or kept from an
/// earlier one.
enum Outside {
    None,
    Written(TagSpill),
    Kept(Spilled),
}

/// The result of a complete session; in `matches` mode its tags (received or kept) checked
/// against the statement, and handed back to keep when they were downloaded. Tags outside the
/// session are merged, and checked by the digests taken as they were fed to the merge.
fn finish(
    mut session: Exchanging,
    outside: Outside,
    statement: &EpochStatement,
    tags_kept: bool,
) -> Result<(QueryResult, Option<Fresh>), FailureKind> {
    let spill_failed = |e: SpillError| match e {
        SpillError::Psi(e) => FailureKind::Psi(e),
        io => FailureKind::Spill(io.to_string()),
    };
    let file = match outside {
        Outside::None => None,
        Outside::Written(sp) => Some(sp.finish().map_err(spill_failed)?),
        Outside::Kept(k) => Some(k),
    };
    if let Some(file) = file {
        let digests = file.merge_into(&mut session).map_err(spill_failed)?;
        if session.mode() == QueryMode::Matches {
            for (s, d) in session.holder_sections().iter().zip(&digests) {
                statement
                    .check_section(session.tag_len(), s, d)
                    .map_err(FailureKind::Statement)?;
            }
        }
        let result = session.finish().map_err(FailureKind::Psi)?;
        // A `matches` stream written now is kept for the next query; a count session's tags
        // are its own, and a kept file stays where it is.
        let fresh = (result.mode == QueryMode::Matches && !tags_kept)
            .then(|| Fresh::File(file.into_fresh()));
        return Ok((result, fresh));
    }
    if session.mode() == QueryMode::Count {
        // Count sessions' tags are the session's own: nothing to compare or keep.
        return session
            .finish()
            .map(|r| (r, None))
            .map_err(FailureKind::Psi);
    }
    let (r, set) = session.finish_keeping_tags().map_err(FailureKind::Psi)?;
    statement.check_tags(&set).map_err(FailureKind::Statement)?;
    Ok((r, (!tags_kept).then_some(Fresh::Set(set))))
}

/// The first field in which two answers differ, by name.
pub(crate) fn first_difference(a: &Answer, b: &Answer) -> Option<&'static str> {
    let fields: [(&'static str, bool); 17] = [
        ("node", a.node == b.node),
        ("querier", a.querier == b.querier),
        (
            "querier_fingerprint",
            a.querier_fingerprint == b.querier_fingerprint,
        ),
        ("case", a.case == b.case),
        ("query_id", a.query_id == b.query_id),
        ("mode", a.mode == b.mode),
        ("statement", a.statement == b.statement),
        ("epoch", a.epoch == b.epoch),
        ("tag_len", a.tag_len == b.tag_len),
        ("query_keys", a.query_keys == b.query_keys),
        ("holder_keys", a.holder_keys == b.holder_keys),
        ("to_holder", a.to_holder == b.to_holder),
        ("to_querier", a.to_querier == b.to_querier),
        ("time", a.time == b.time),
        ("warrant", a.warrant == b.warrant),
        ("published", a.published == b.published),
        ("(all)", a == b),
    ];
    fields.iter().find(|(_, same)| !same).map(|(name, _)| *name)
}

/// One query to one peer.
struct Asking<'a> {
    peer: &'a PeerSpec,
    /// This node, as the holder's signed answer must name it.
    me: &'a identity::PeerIdentity,
    hello: Hello,
    query: Arc<Query>,
    tags: HolderTags,
    bounds: Bounds,
}

/// The exchange after the accept.
struct Exchange {
    session: Exchanging,
    /// The holder's tags being written to disk, when they are too many to hold.
    spill: Option<TagSpill>,
    /// The holder's tags kept on disk from an earlier query, when the holder took them.
    kept: Option<Spilled>,
    recv: quinn::RecvStream,
    sender: tokio::task::JoinHandle<Result<(quinn::SendStream, Transcript), FrameError>>,
    tags_kept: bool,
    /// Keys the holder said it was preparing a count session over (0: it had one ready).
    preparing: u64,
    deadline: Duration,
    signed: Signed,
    statement: EpochStatement,
    /// The digests of both streams so far (the blinded chunks go into the sender's copy).
    transcript: Transcript,
    accept: QueryAccept,
}

/// The result, the tags to keep, the statement, the receipt and the messages kept.
type Finished = Result<
    (
        QueryResult,
        Option<Fresh>,
        Signed,
        Signed,
        Option<Vec<Vec<u8>>>,
    ),
    QueryFailure,
>;

/// Sends every blinded chunk from a task of its own while the answers stream back.
fn spawn_sender(
    session: &mut Exchanging,
    mut send: quinn::SendStream,
    mut transcript: Transcript,
) -> tokio::task::JoinHandle<Result<(quinn::SendStream, Transcript), FrameError>> {
    let mut chunks = session.take_outgoing();
    tokio::spawn(async move {
        loop {
            // The query is blinded beside this exchange: wait for the next chunk rather than
            // compute it on the runtime's thread.
            while !chunks.ready() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let Some(m) = chunks.next() else { break };
            transcript.to_holder(&m);
            // The holder reads chunks only after streaming all its tags, which may take longer
            // than one timeout; a dead holder is noticed by the receiver and by QUIC.
            write_frame(&mut send, &ClientFrame::Psi(m), SENDER_PATIENCE).await?;
        }
        let _ = send.finish();
        Ok::<_, FrameError>((send, transcript))
    })
}

/// The holder's next PSI message within `wait` and the query's deadline.
async fn next_message(
    recv: &mut quinn::RecvStream,
    wait: Duration,
    deadline_at: std::time::Instant,
    deadline: Duration,
) -> Result<HolderMessage, FailureKind> {
    let left = deadline_at.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(FailureKind::DeadlinePassed(deadline));
    }
    match read_frame::<ServerFrame>(recv, wait.min(left)).await {
        Ok(Some(ServerFrame::Psi(m))) => Ok(m),
        Ok(Some(ServerFrame::Abort(why))) => Err(FailureKind::Aborted(why)),
        Ok(Some(_)) => Err(FailureKind::UnexpectedFrame),
        Ok(None) => Err(FailureKind::ClosedMidway),
        Err(FrameError::Timeout(_)) if wait > left => Err(FailureKind::DeadlinePassed(deadline)),
        Err(e) => Err(frame_failure(e)),
    }
}

impl Asking<'_> {
    async fn ask_on(
        self,
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
    ) -> Result<Reply, QueryFailure> {
        let started = std::time::Instant::now();
        let (conn, holder) = self.connect(endpoint, addr).await?;
        let (result, unblind, tags_kept, preparing) = match self.open(&conn, &holder).await {
            Ok(ex) => {
                let (tags_kept, preparing) = (ex.tags_kept, ex.preparing);
                let (r, unblind) = self.exchange(ex, &holder).await;
                (r, unblind, tags_kept, preparing)
            }
            Err(e) => (Err(e), Duration::ZERO, false, 0),
        };
        let connection = conn.stats();
        let stats = PeerStats {
            wall_ms: started.elapsed().as_millis() as u64,
            unblind_ms: unblind.as_millis() as u64,
            bytes_sent: connection.udp_tx.bytes,
            bytes_received: connection.udp_rx.bytes,
            tags_kept,
            datagrams_lost: connection.path.lost_packets,
            holder_prepared_keys: preparing,
        };
        conn.close(0u32.into(), b"done");
        result.map(|(result, fresh, statement, receipt, received)| Reply {
            result,
            holder,
            stats,
            fresh,
            statement,
            receipt,
            received,
        })
    }

    /// Connects and checks who answered.
    async fn connect(
        &self,
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
    ) -> Result<(quinn::Connection, identity::PeerIdentity), QueryFailure> {
        let (peer, timeout) = (self.peer, self.bounds.timeout);
        let fail = |kind| failure(peer, None, false, kind);
        let connecting = endpoint
            .connect(addr, &peer.name)
            .map_err(|e| fail(FailureKind::Connect(e.to_string())))?;
        let conn = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => {
                return Err(fail(FailureKind::NoAnswerWithin {
                    address: peer.address.clone(),
                    timeout,
                }));
            }
            Ok(Err(e)) => return Err(fail(connect_failure(&e, &peer.address, timeout))),
            Ok(Ok(c)) => c,
        };
        tracing::debug!(peer = %peer.name, %addr, "connected");
        let holder = connection_identity(&conn)
            .map_err(|e| fail(FailureKind::Certificate(format!("{e:#}"))))?;
        // Only institutions hold customer lists, and only police nodes publish seizures; any
        // other answering would be a mix-up.
        if self.hello.published && holder.role != identity::Role::Police {
            conn.close(2u32.into(), b"not a police node");
            let kind = FailureKind::NotPolice(holder.role);
            return Err(failure(peer, Some(&holder), false, kind));
        }
        if !self.hello.published && holder.role != identity::Role::Institution {
            conn.close(2u32.into(), b"not an institution");
            let kind = FailureKind::NotAnInstitution(holder.role);
            return Err(failure(peer, Some(&holder), false, kind));
        }
        if let Some(listed) = &peer.key
            && *listed != holder.key
        {
            // The directory pins the member's key: another certificate of the name is not it.
            conn.close(2u32.into(), b"not the listed key");
            return Err(failure(
                peer,
                Some(&holder),
                false,
                FailureKind::UnlistedKey,
            ));
        }
        Ok((conn, holder))
    }

    /// Opens the query stream: hello and start out, welcome and accept in, kept tags used.
    async fn open(
        &self,
        conn: &quinn::Connection,
        holder: &identity::PeerIdentity,
    ) -> Result<Exchange, QueryFailure> {
        let (peer, timeout) = (self.peer, self.bounds.timeout);
        let before = |kind| failure(peer, Some(holder), false, kind);
        let after = |kind| failure(peer, Some(holder), true, kind);
        let (start, awaiting) =
            self.query
                .start_asking(self.hello.mode, self.bounds.limits, self.bounds.labels);
        let mut transcript = match self.bounds.record {
            true => Transcript::recording(),
            false => Transcript::default(),
        };
        transcript.to_holder(&QuerierMessage::Start(start.clone()));
        let (send, mut recv) = self.send_opening(conn, start).await.map_err(before)?;
        // The holder's first answer says whether the query is admitted.
        let offered = self.tags.kept.is_some() || self.tags.kept_file.is_some();
        let mut handshake = QuerierHandshake::new(&peer.name, offered);
        let first = read_frame::<ServerFrame>(&mut recv, timeout)
            .await
            .map_err(|e| before(frame_failure(e)))?;
        let welcomed = handshake.handle_welcome(first).map_err(before)?;
        // A holder preparing a count session says over how many keys: wait that much longer.
        let wait = timeout + count_mode_allowance(welcomed.preparing);
        let second = read_frame::<ServerFrame>(&mut recv, wait)
            .await
            .map_err(|e| after(frame_failure(e)))?;
        let accept = handshake.handle_accept(second).map_err(after)?;
        let (signed, statement) = check_statement(&welcomed, holder, &accept).map_err(after)?;
        transcript.to_querier(&HolderMessage::Accept(accept.clone()));
        let accepted = accept.clone();
        // The whole exchange has a deadline, known once the holder's size is (saturating:
        // the holder's word, checked by the session).
        let elements = self.query.total_keys().saturating_add(accept.total_keys());
        let deadline = query_deadline(timeout, elements);
        let mut session = awaiting
            .handle_accept(accept)
            .map_err(|e| after(FailureKind::Psi(e)))?;
        let mut kept = None;
        if welcomed.tags_kept {
            // The holder checked our kept set's digest against its current tags; none come.
            match (&self.tags.kept, &self.tags.kept_file) {
                (Some(set), _) => session.use_tag_set(set.clone()),
                (None, Some(k)) => {
                    let file =
                        Spilled::kept(k).map_err(|e| after(FailureKind::Spill(e.to_string())))?;
                    kept = Some(file);
                    session.use_tags_kept_outside(k.epoch, k.tag_len, &k.sections)
                }
                (None, None) => return Err(after(FailureKind::KeptTagsNotOffered)),
            }
            .map_err(|e| after(FailureKind::Psi(e)))?;
        }
        let spill = self
            .spill(&mut session, &accepted, welcomed.tags_kept)
            .map_err(after)?;
        let sender = spawn_sender(&mut session, send, transcript.clone());
        Ok(Exchange {
            session,
            spill,
            kept,
            recv,
            sender,
            tags_kept: welcomed.tags_kept,
            preparing: welcomed.preparing,
            deadline,
            signed,
            statement,
            transcript,
            accept: accepted,
        })
    }

    /// Whether the holder's tags go to disk: a stream larger than this side holds in memory
    /// (labels travel with the tags and stay in memory; kept tags are already here).
    fn spill(
        &self,
        session: &mut Exchanging,
        accept: &QueryAccept,
        tags_kept: bool,
    ) -> Result<Option<TagSpill>, FailureKind> {
        let bytes = accept
            .total_keys()
            .saturating_mul(u64::from(accept.tag_len));
        if tags_kept || self.bounds.labels || bytes <= self.bounds.tags_in_memory {
            return Ok(None);
        }
        session.keep_tags_outside().map_err(FailureKind::Psi)?;
        let spill = TagSpill::create(
            &self.tags.spill_dir,
            accept.epoch,
            accept.tag_len,
            &accept.holder_sections,
        )
        .map_err(|e| FailureKind::Spill(e.to_string()))?;
        Ok(Some(spill))
    }

    /// Opens the stream and sends the hello and the query start.
    async fn send_opening(
        &self,
        conn: &quinn::Connection,
        start: QueryStart,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), FailureKind> {
        let timeout = self.bounds.timeout;
        let (mut send, recv) = match tokio::time::timeout(timeout, conn.open_bi()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connection_failure(&e)),
            Err(_) => return Err(FailureKind::NoStream(timeout)),
        };
        let hello = ClientFrame::Hello(self.hello.clone());
        write_frame(&mut send, &hello, timeout)
            .await
            .map_err(frame_failure)?;
        write_frame(&mut send, &ClientFrame::Psi(start.into()), timeout)
            .await
            .map_err(frame_failure)?;
        Ok((send, recv))
    }

    /// Takes the holder's tags and evaluations to the result; also returns the unblinding time.
    async fn exchange(
        &self,
        ex: Exchange,
        holder: &identity::PeerIdentity,
    ) -> (Finished, Duration) {
        let Exchange {
            mut session,
            mut spill,
            kept,
            mut recv,
            mut sender,
            tags_kept,
            deadline,
            signed,
            statement,
            mut transcript,
            accept,
            ..
        } = ex;
        let aborted = |kind| failure(self.peer, Some(holder), true, kind);
        let deadline_at = std::time::Instant::now() + deadline;
        let mut unblind = Duration::ZERO;
        let result = loop {
            if session.is_complete() {
                let outside = match (spill.take(), kept) {
                    (Some(sp), _) => Outside::Written(sp),
                    (None, Some(k)) => Outside::Kept(k),
                    (None, None) => Outside::None,
                };
                let finished = tokio::task::spawn_blocking(move || {
                    let t = std::time::Instant::now();
                    (finish(session, outside, &statement, tags_kept), t.elapsed())
                })
                .await;
                let done = match finished {
                    Ok((Ok(d), spent)) => {
                        unblind += spent;
                        d
                    }
                    Ok((Err(kind), _)) => break Err(aborted(kind)),
                    Err(e) => break Err(aborted(FailureKind::UnblindingFailed(e.to_string()))),
                };
                // The sender is done once every chunk is answered: its digest of them.
                let sent = match tokio::time::timeout(self.bounds.timeout, &mut sender).await {
                    Ok(Ok(Ok((_, t)))) => t,
                    _ => break Err(aborted(FailureKind::ClosedMidway)),
                };
                let receipt = self
                    .receipt(&mut recv, holder, &signed, &accept, &sent, &transcript)
                    .await
                    .map_err(aborted);
                let received = transcript.received();
                break receipt.map(|r| (done.0, done.1, signed, r, received));
            }
            let wait = self.patience(&session);
            let msg = match next_message(&mut recv, wait, deadline_at, deadline).await {
                Ok(m) => m,
                Err(kind) => break Err(aborted(kind)),
            };
            transcript.to_querier(&msg);
            let mut spilling = spill.take();
            let handled = tokio::task::spawn_blocking(move || {
                let t = std::time::Instant::now();
                let r = session
                    .handle(msg)
                    .map_err(FailureKind::Psi)
                    .and_then(|()| {
                        // Checked chunks the session handed back go to disk.
                        while let (Some(sp), Some(chunk)) = (spilling.as_mut(), session.take_tags())
                        {
                            sp.write(&chunk)
                                .map_err(|e| FailureKind::Spill(e.to_string()))?;
                        }
                        Ok(())
                    });
                (session, spilling, r, t.elapsed())
            })
            .await;
            match handled {
                Ok((s, sp, Ok(()), spent)) => {
                    session = s;
                    spill = sp;
                    unblind += spent;
                }
                // A stream being written is removed with its `TagSpill`.
                Ok((_, _, Err(kind), _)) => break Err(aborted(kind)),
                Err(e) => break Err(aborted(FailureKind::UnblindingFailed(e.to_string()))),
            }
        };
        // (Once polled to the end above, a handle must not be awaited again.)
        if !sender.is_finished() {
            sender.abort();
            let _ = sender.await;
        }
        (result, unblind)
    }

    /// The holder's signed answer, the frame after its last PSI message: signed by the
    /// certificate it answered with, and saying what this side saw.
    async fn receipt(
        &self,
        recv: &mut quinn::RecvStream,
        holder: &identity::PeerIdentity,
        statement: &Signed,
        accept: &QueryAccept,
        sent: &Transcript,
        received: &Transcript,
    ) -> Result<Signed, FailureKind> {
        let signed = match read_frame::<ServerFrame>(recv, self.bounds.timeout).await {
            Ok(Some(ServerFrame::Receipt(s))) => s,
            Ok(Some(ServerFrame::Abort(why))) => return Err(FailureKind::Aborted(why)),
            Ok(_) => {
                return Err(FailureKind::Receipt(
                    "no signed answer after the last message".into(),
                ));
            }
            Err(e) => return Err(frame_failure(e)),
        };
        let bad = |why: String| FailureKind::Receipt(why);
        signed_by(&signed, holder).map_err(bad)?;
        let answer: Answer = signed
            .open(ANSWER_CONTEXT)
            .map_err(|e| bad(e.to_string()))?;
        let expected = Answer {
            node: holder.name.clone(),
            querier: self.me.name.clone(),
            querier_fingerprint: self.me.fingerprint.clone(),
            case: self.hello.case.clone(),
            query_id: hex::encode(self.hello.query_id),
            mode: self.hello.mode,
            statement: body_digest(&statement.body),
            epoch: accept.epoch.to_string(),
            tag_len: accept.tag_len,
            query_keys: section_counts(self.query.sections()),
            holder_keys: section_counts(&accept.holder_sections),
            to_holder: sent.digests().0,
            to_querier: received.digests().1,
            time: answer.time,
            warrant: self
                .hello
                .warrant
                .as_ref()
                .map(crate::evidence::warrant::digest),
            published: self.hello.published,
        };
        match first_difference(&expected, &answer) {
            None => Ok(signed),
            Some(field) => Err(bad(format!(
                "its signed answer differs from this query in {field}"
            ))),
        }
    }

    /// How long to wait for the holder's next frame. In count mode the holder answers only
    /// once it has every element: the first answer after the tags may take the whole
    /// evaluation, so that wait scales with the query.
    fn patience(&self, session: &Exchanging) -> Duration {
        let timeout = self.bounds.timeout;
        if self.hello.mode == QueryMode::Count && session.tags_done() && !session.any_evaluated() {
            timeout + count_mode_allowance(self.query.total_keys())
        } else {
            timeout
        }
    }
}
