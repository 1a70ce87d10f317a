//! `suyuan query`: blind a dump once, query every peer at once, report per peer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use suyuan_protocol::ident::{Field, KeyType, Rejection};
use suyuan_protocol::psi::{
    HolderMessage, LimitExceeded, PsiError, QuerierLimits, Query, QueryKeys, QueryMode,
    QueryResult, TagSet,
};

use crate::audit::{AuditLog, Outcome, Record, Side};
use crate::clock;
use crate::config;
use crate::identity;
use crate::input::{InputOptions, InputSummary, for_each_record};
use crate::progress::Progress;
use crate::serve::connection_identity;
use crate::store;
use crate::tag_cache::TagCache;
use crate::tls;
use crate::wire::{
    ClientFrame, FrameError, Hello, KeptTags, NODE_WIRE_VERSION, ServerFrame, query_deadline,
    read_frame, write_frame,
};

/// One peer to query: its node name (checked against its certificate) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Node name.
    pub name: String,
    /// `HOST:PORT`.
    pub address: String,
}

/// How long the sender may wait for the holder to take a chunk.
const SENDER_PATIENCE: Duration = Duration::from_secs(24 * 3600);

/// Extra wait for count mode's first evaluation: 50 µs per key, several times the evaluation
/// cost on one slow core.
fn count_mode_allowance(keys: u64) -> Duration {
    Duration::from_micros(keys.saturating_mul(50))
}

/// Peer-supplied text made safe for a terminal: control and bidi characters shown as escapes.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || config::is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses `NAME=HOST:PORT`.
pub fn parse_peer(s: &str) -> Result<PeerSpec> {
    let (name, address) = s.split_once('=').with_context(|| {
        format!("--peer {s:?}: expected NAME=HOST:PORT, e.g. bank=10.0.0.5:7788")
    })?;
    identity::check_node_name(name).with_context(|| format!("--peer {s:?}"))?;
    if !address.contains(':') {
        bail!("--peer {s:?}: the address needs a port (HOST:PORT)");
    }
    Ok(PeerSpec {
        name: name.to_string(),
        address: address.to_string(),
    })
}

/// A query run, validated.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// The police node's directory.
    pub node: PathBuf,
    /// The dump.
    pub input: PathBuf,
    /// How to read it.
    pub input_options: InputOptions,
    /// Whom to ask.
    pub peers: Vec<PeerSpec>,
    /// What to learn.
    pub mode: QueryMode,
    /// The case number.
    pub case: Option<String>,
    /// No progress output while reading and blinding the dump.
    pub quiet: bool,
}

/// The JSON report (schema in docs/operations.md; stable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Case number.
    pub case: Option<String>,
    /// Mode.
    pub mode: QueryMode,
    /// RFC 3339 UTC.
    pub created: String,
    /// The dump's data quality.
    pub dump: DumpSummary,
    /// One entry per peer, in the order given.
    pub peers: Vec<PeerReport>,
    /// How long reading and blinding the dump took (diagnostics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<QueryTiming>,
}

/// Where the querier's own time went, before any peer was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTiming {
    /// Reading, decoding and canonicalising the dump, in milliseconds.
    pub read_ms: u64,
    /// Blinding every distinct key (hash to the curve, multiply, compress), in milliseconds.
    pub blind_ms: u64,
}

/// The dump's data quality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    /// Data rows (header excluded).
    pub rows: u64,
    /// Rows that yielded no usable key.
    pub rows_without_key: u64,
    /// Distinct keys per type.
    pub keys: BTreeMap<KeyType, u64>,
    /// Rejected values per field and reason.
    pub rejected: BTreeMap<Field, BTreeMap<Rejection, u64>>,
}

/// One peer's answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// Node name.
    pub name: String,
    /// Address dialled.
    pub address: String,
    /// The epoch that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The holder's distinct keys per queried type.
    pub holder_keys: BTreeMap<KeyType, u64>,
    /// Matched distinct keys per type.
    pub matched_keys: BTreeMap<KeyType, u64>,
    /// `matches` mode: how many dump rows matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_rows: Option<u64>,
    /// `matches` mode: 1-based data-row numbers of the dump that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<u64>>,
    /// Matched rows / dump rows (`matches`); max over types of matched / dump keys (`count`).
    pub containment: f64,
    /// Why this peer gave no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Diagnostics of the exchange (absent on error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<PeerStats>,
}

/// What an exchange with one peer cost this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Wall time from connecting to the result, in milliseconds.
    pub wall_ms: u64,
    /// CPU time spent unblinding, tagging and looking up, in milliseconds.
    pub unblind_ms: u64,
    /// UDP payload bytes sent to the peer.
    pub bytes_sent: u64,
    /// UDP payload bytes received from the peer.
    pub bytes_received: u64,
    /// The holder's tags came from this node's tag cache, not the wire.
    #[serde(default)]
    pub tags_kept: bool,
    /// Datagrams sent to the peer that were lost and had to be sent again.
    #[serde(default)]
    pub datagrams_lost: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Matched rows / dump rows in `matches` mode; in `count` mode, where rows are unknown, the
/// largest share over key types of the dump's keys found at the holder.
pub fn containment(r: &QueryResult, dump_rows: u64) -> f64 {
    match &r.matched_rows {
        Some(rows) => ratio(rows.len() as u64, dump_rows),
        None => r
            .query_keys
            .iter()
            .map(|(kt, n)| ratio(r.matched_keys.get(kt).copied().unwrap_or(0), *n))
            .fold(0.0, f64::max),
    }
}

impl PeerReport {
    fn from_result(peer: &PeerSpec, r: &QueryResult, dump_rows: u64) -> Self {
        let rows: Option<Vec<u64>> = r
            .matched_rows
            .as_ref()
            .map(|rows| rows.iter().map(|i| i + 1).collect());
        let containment = containment(r, dump_rows);
        PeerReport {
            name: peer.name.clone(),
            address: peer.address.clone(),
            epoch: Some(r.epoch.to_string()),
            holder_keys: r.holder_keys.clone(),
            matched_keys: r.matched_keys.clone(),
            matched_rows: rows.as_ref().map(|r| r.len() as u64),
            rows,
            containment,
            error: None,
            stats: None,
        }
    }

    fn failed(peer: &PeerSpec, error: String) -> Self {
        PeerReport {
            name: peer.name.clone(),
            address: peer.address.clone(),
            epoch: None,
            holder_keys: BTreeMap::new(),
            matched_keys: BTreeMap::new(),
            matched_rows: None,
            rows: None,
            containment: 0.0,
            error: Some(printable(&error)),
            stats: None,
        }
    }
}

/// Runs a query against every peer concurrently. Fails only if nothing could be asked (bad
/// node directory, unreadable dump); a failed peer is reported in its entry.
pub async fn run(opts: &QueryOptions) -> Result<Report> {
    store::check_node_dir(&opts.node)?;
    let id = identity::load_node(&opts.node)?;
    let cfg = config::load(&opts.node)?;
    let timeout = cfg.network.timeout();
    if let Some(c) = &opts.case
        && !config::valid_case(c)
    {
        bail!("--case {c:?}: use 1 to 128 printable characters");
    }
    if opts.peers.is_empty() {
        bail!("no peer given: add --peer NAME=HOST:PORT");
    }
    let audit = AuditLog::new(&opts.node);
    audit
        .verify()
        .context("the audit log does not verify; refusing to query")?;

    let input = opts.input.clone();
    let input_options = opts.input_options.clone();
    let quiet = opts.quiet;
    let (summary, query, timing) =
        tokio::task::spawn_blocking(move || -> Result<(InputSummary, Query, QueryTiming)> {
            let mut progress = Progress::new(quiet);
            let t0 = std::time::Instant::now();
            progress.start("read dump", None);
            let mut keys = QueryKeys::new();
            let summary = for_each_record(&input, &input_options, |row, rk| {
                keys.add_row(&rk.keys);
                if row % 4096 == 0 {
                    progress.set(row);
                }
                Ok(())
            })?;
            progress.set(summary.quality.rows);
            progress.finish();
            progress.unit("keys");
            let n: u64 = keys.raw_counts().values().sum();
            let read = t0.elapsed();
            progress.start("blind", Some(n));
            let t1 = std::time::Instant::now();
            let query = Query::blind(&mut rand::rng(), keys).context("blinding the dump")?;
            let timing = QueryTiming {
                read_ms: read.as_millis() as u64,
                blind_ms: t1.elapsed().as_millis() as u64,
            };
            progress.set(n);
            progress.finish();
            Ok((summary, query, timing))
        })
        .await??;
    let query = Arc::new(query);
    let dump_rows = summary.quality.rows;

    let client_cfg = tls::client_config(&id, timeout)?;
    let cache = TagCache::new(&opts.node, cfg.query.tag_cache_bytes());
    let bounds = Bounds {
        timeout,
        limits: cfg.query.limits(),
    };
    let mut tasks = Vec::new();
    for peer in opts.peers.clone() {
        let query = Arc::clone(&query);
        let client_cfg = client_cfg.clone();
        let cache = cache.clone();
        let (case, mode) = (opts.case.clone(), opts.mode);
        tasks.push(tokio::spawn(async move {
            let name = peer.name.clone();
            let kept = tokio::task::spawn_blocking(move || cache.load(&name))
                .await
                .ok()
                .flatten();
            let hello = Hello {
                kept: kept.as_ref().map(|(s, digest)| KeptTags {
                    epoch: s.epoch,
                    tag_len: s.tag_len,
                    digest: *digest,
                }),
                ..Hello::new(mode, case)
            };
            let kept = kept.map(|(set, _)| set);
            let r = ask(&peer, client_cfg, hello, query, kept, bounds).await;
            (peer, r)
        }));
    }
    let mut peers = Vec::new();
    for t in tasks {
        let (peer, outcome) = t.await.context("a peer task failed")?;
        let mut rec = Record {
            case: opts.case.clone(),
            mode: Some(opts.mode),
            query_keys: Some(query.sections().iter().map(|s| s.count).sum()),
            ..Record::new(Side::Querier, peer.name.clone(), Outcome::Completed)
        };
        match outcome {
            Ok((result, holder, stats, fresh)) => {
                if let Some(set) = fresh {
                    let (cache, name) = (cache.clone(), peer.name.clone());
                    let kept = tokio::task::spawn_blocking(move || cache.store(&name, &set)).await;
                    if let Ok(Err(e)) = kept {
                        eprintln!("suyuan: warning: keeping {}'s tags: {e:#}", peer.name);
                    }
                }
                let mut report = PeerReport::from_result(&peer, &result, dump_rows);
                report.stats = Some(stats);
                rec.peer_role = Some(holder.role);
                rec.fingerprint = Some(holder.fingerprint);
                rec.epoch = report.epoch.clone();
                rec.matched_keys = Some(report.matched_keys.values().sum());
                rec.matched_rows = report.matched_rows;
                peers.push(report);
            }
            Err(failure) => {
                rec.outcome = failure.outcome;
                rec.peer_role = failure.holder.as_ref().map(|h| h.role);
                rec.fingerprint = failure.holder.map(|h| h.fingerprint);
                rec.detail = Some(failure.message.clone());
                peers.push(PeerReport::failed(&peer, failure.message));
            }
        }
        // A failed append must not throw away answers already obtained; say so and go on.
        if let Err(e) = audit.append(rec) {
            eprintln!("suyuan: warning: {e:#}");
        }
    }
    Ok(Report {
        case: opts.case.clone(),
        mode: opts.mode,
        created: clock::rfc3339(clock::now_unix()),
        dump: DumpSummary {
            rows: summary.quality.rows,
            rows_without_key: summary.quality.rows_without_key,
            keys: query
                .sections()
                .iter()
                .map(|s| (s.key_type, s.count))
                .collect(),
            rejected: summary.quality.rejected.clone(),
        },
        peers,
        timing: Some(timing),
    })
}

/// Why a peer gave no answer.
#[derive(Debug)]
struct Failure {
    outcome: Outcome,
    holder: Option<identity::PeerIdentity>,
    message: String,
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
type Answer = (
    QueryResult,
    identity::PeerIdentity,
    PeerStats,
    Option<TagSet>,
);

/// How long to wait for one holder, and how much to accept from it.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    timeout: Duration,
    limits: QuerierLimits,
}

async fn ask(
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
    let (mut endpoint, _) = crate::udp::endpoint(bind, None).map_err(|e| {
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
    write_frame(&mut send, &ClientFrame::Psi(start), timeout)
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
        Ok(Some(ServerFrame::Psi(m @ HolderMessage::Accept(_)))) => m,
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
    let tags: u64 = match &accept {
        HolderMessage::Accept(a) => {
            // The kept tags were judged against the welcome's epoch: the answer must be of it.
            if a.epoch != welcome_epoch {
                return Err(aborted(format!(
                    "{} welcomed the query with epoch {welcome_epoch} but answered with epoch {}",
                    peer.name, a.epoch
                )));
            }
            // Saturating: these counts are the holder's word, checked only below.
            a.holder_sections
                .iter()
                .fold(0u64, |t, s| t.saturating_add(s.count))
        }
        _ => 0,
    };
    let keys: u64 = query.sections().iter().map(|s| s.count).sum();
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
            timeout + count_mode_allowance(query.sections().iter().map(|s| s.count).sum())
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

/// The report as aligned text: one row per peer.
pub fn render(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let keys: Vec<String> = report
        .dump
        .keys
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "dump: {} rows, {} without a usable key; distinct keys: {}",
        report.dump.rows,
        report.dump.rows_without_key,
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        }
    );
    for (field, reasons) in &report.dump.rejected {
        for (reason, n) in reasons {
            let _ = writeln!(out, "  rejected {field}: {reason} ({n})");
        }
    }
    let _ = writeln!(out);
    let per_type = |m: &BTreeMap<KeyType, u64>| {
        if m.is_empty() {
            "-".to_string()
        } else {
            m.iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut rows = vec![vec![
        "peer".to_string(),
        "holder keys".to_string(),
        "matched keys".to_string(),
        "matched rows".to_string(),
        "containment".to_string(),
    ]];
    for p in &report.peers {
        rows.push(match &p.error {
            Some(e) => vec![p.name.clone(), format!("error: {e}")],
            None => vec![
                p.name.clone(),
                per_type(&p.holder_keys),
                per_type(&p.matched_keys),
                p.matched_rows.map_or("-".to_string(), |n| n.to_string()),
                format!("{:.1}%", 100.0 * p.containment),
            ],
        });
    }
    out.push_str(&crate::table::aligned(
        &rows,
        &[false, false, false, true, true],
    ));
    out
}

/// Writes the JSON report.
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
