//! `suyuan serve`: answer queries over QUIC per policy, audit every one, stop cleanly.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{
    Epoch, EpochId, Holder, HolderLimits, HolderMessage, HolderSession, PreparedCount, PsiError,
    QuerierMessage, QueryAccept, QueryMode, QueryStart, section_counts,
};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, watch};

use crate::clock;
use crate::evidence::answer::body_digest;
use crate::evidence::warrant::{self, WarrantRefusal};
use crate::evidence::{ANSWER_CONTEXT, Answer, Signed, Transcript};
use crate::net::budget::DailyBudget;
use crate::net::cases::{CaseLookup, PublishedCases};
use crate::net::count_pool::{CountPool, DiskPool};
use crate::net::frame::{
    AbortReason, ClientFrame, FrameError, Hello, KeptTags, MAX_HELLO_LEN, NODE_WIRE_VERSION,
    Refusal, ServerFrame, Welcome, query_deadline, read_frame, read_frame_limited, write_frame,
};
use crate::net::handshake::holder::{
    Admitted, Charged, HolderEvent, HolderHandshake, kept_tags_current, kept_tags_fit,
    serving_frame,
};
use crate::net::tls;
use crate::net::tls_watch::{Signer, TlsWatch};
use crate::node_dir::audit::{AuditLog, Entry, Outcome, Record, Side};
use crate::node_dir::config::Policy;
use crate::node_dir::identity::{self, PeerIdentity};
use crate::node_dir::store::{EpochMeta, EpochStore};
use crate::node_dir::{Lock, NodeDir};

/// Connections refused before any query (failed handshakes, a member over its connection
/// cap) audited one by one per minute; beyond that they are counted, and the count is written
/// with the next one audited (or at shutdown). Anyone who can reach the port can fail a
/// handshake: without this they could grow the audit log without bound.
pub const OUTSIDER_ENTRIES_PER_MINUTE: u32 = 30;

/// Connections one member may hold open at once, beyond `max_concurrent_queries` (one
/// closing while the next opens). More could not run queries, only hold buffers.
pub const EXTRA_CONNECTIONS_PER_MEMBER: usize = 1;

/// The close reason a member over its connection cap is given.
pub const TOO_MANY_CONNECTIONS: &str = "too many connections from this member";

/// The rate limit on audit entries for refused connections.
struct OutsiderBudget {
    window: std::time::Instant,
    written: u32,
    suppressed: u64,
}

/// Epoch statements kept for welcomes and answers: the own epoch's last few and the
/// published cases'.
const STATEMENTS_KEPT: usize = 16;

/// How often `serve` looks whether an import replaced the epoch.
const EPOCH_WATCH: Duration = Duration::from_secs(1);

/// How long in-flight queries may run on after a shutdown request before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

struct LoadedEpoch {
    stamp: Option<(u64, u64, i64)>,
    /// The epoch's signed statement (a store imported before statements has none).
    statement: Option<Signed>,
    epoch: Option<Arc<Epoch>>,
    meta: Option<EpochMeta>,
}

struct State {
    store: EpochStore,
    name: String,
    policy: Policy,
    timeout: Duration,
    audit: AuditLog,
    epoch: Mutex<LoadedEpoch>,
    /// What `[metrics]` offers.
    metrics: crate::net::metrics::Metrics,
    /// Keys charged per (peer, UTC day), seeded from the audit log.
    budget: Mutex<DailyBudget>,
    slots: Arc<Semaphore>,
    /// Count sessions prepared while idle.
    pool: Arc<CountPool>,
    /// The epoch being served, for whoever watches.
    serving: watch::Sender<Option<EpochId>>,
    /// The node's key and certificate, which sign its answers (the certificate replaced when
    /// renewed).
    signer: std::sync::Mutex<Signer>,
    /// Signed statements of the epochs served lately.
    statements: std::sync::Mutex<std::collections::VecDeque<(EpochId, Signed)>>,
    shutdown: watch::Receiver<bool>,
    /// Held while serving: budgets are counted in this process alone.
    _lock: std::fs::File,
    /// Set when a stop is requested: new queries are refused, running ones may finish.
    draining: std::sync::atomic::AtomicBool,
    outsiders: std::sync::Mutex<OutsiderBudget>,
    tag_set_digests: std::sync::Mutex<DigestMemo>,
    /// Open connections per member (by certificate fingerprint).
    connections: std::sync::Mutex<HashMap<String, usize>>,
    /// The cases this node published (`suyuan publish`).
    cases: PublishedCases,
    /// The node's directory (its revocation list is read afresh for each warrant).
    node: NodeDir,
    /// This node's name and key, and the federation CA: what warrants are checked against.
    me: PeerIdentity,
    ca: rustls::pki_types::CertificateDer<'static>,
}

/// One member's open connection, counted while it lives.
struct ConnectionCount {
    state: Arc<State>,
    fingerprint: String,
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        let mut open = self.state.open_connections();
        if let Some(n) = open.get_mut(&self.fingerprint) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.fingerprint);
            }
        }
    }
}

/// Remembered [`Epoch::tag_set_digest`]s, by (epoch, key types, ℓ).
type DigestMemo = HashMap<(EpochId, Vec<KeyType>, u8), [u8; 32]>;

/// A bound, ready node.
pub struct Server {
    endpoint: quinn::Endpoint,
    state: Arc<State>,
    shutdown_tx: watch::Sender<bool>,
    buffer_warning: Option<String>,
    crl: TlsWatch,
    /// `[metrics] listen`, bound.
    metrics_listener: Option<tokio::net::TcpListener>,
}

impl Server {
    /// Loads the node in `dir` (identity, policy, audit log, epoch) and binds `listen` (or the
    /// configured address). Must run inside a tokio runtime.
    pub fn bind(dir: &Path, listen: Option<SocketAddr>) -> Result<Server> {
        let node = NodeDir::open(dir)?;
        let lock = node.lock(Lock::Serve)?;
        let id = node.identity()?;
        let cfg = node.config()?;
        let audit = node.audit();
        let entries = audit
            .verify()
            .context("the audit log does not verify; refusing to serve")?;
        let budget = budget_from_log(&entries, cfg.policy.keys_per_peer_per_day);
        let store = node.store();
        let loaded = load_epoch(&store)?;
        let listen = listen.unwrap_or(cfg.network.listen);
        let streams = u32::try_from(cfg.policy.max_concurrent_queries + 1).unwrap_or(u32::MAX);
        let server_cfg = tls::server_config(&id, cfg.network.timeout(), streams)?;
        let (endpoint, buffer_warning) = crate::net::udp::endpoint(listen, Some(server_cfg))
            .with_context(|| format!("cannot listen on {listen}"))?;
        // Bound before any thread starts, so that a bad address leaves nothing running.
        let metrics_listener = cfg.metrics.listen.map(bind_metrics).transpose()?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(cfg.policy.max_concurrent_queries));
        let disk = (cfg.serve.count_pool_disk_bytes() > 0).then(|| DiskPool {
            dir: node.path().join(crate::net::count_disk::SESSIONS_DIR),
            limit_bytes: cfg.serve.count_pool_disk_bytes(),
        });
        let pool = start_pool(
            cfg.serve.count_pool_bytes(),
            disk,
            &slots,
            cfg.policy.max_concurrent_queries,
        )?;
        pool.serve(loaded.epoch.clone());
        let (serving, _) = watch::channel(loaded.epoch.as_ref().map(|e| e.id()));
        let first: std::collections::VecDeque<(EpochId, Signed)> = loaded
            .epoch
            .as_ref()
            .zip(loaded.statement.as_ref())
            .map(|(e, s)| (e.id(), s.clone()))
            .into_iter()
            .collect();
        let state = Arc::new(State {
            signer: std::sync::Mutex::new((id.key.clone_key(), id.cert.clone())),
            serving,
            statements: std::sync::Mutex::new(first),
            store,
            name: id.me.name.clone(),
            slots,
            pool,
            policy: cfg.policy,
            timeout: cfg.network.timeout(),
            audit,
            epoch: Mutex::new(loaded),
            metrics: crate::net::metrics::Metrics::with_audit_entries(entries.len() as u64),
            budget: Mutex::new(budget),
            shutdown,
            _lock: lock,
            draining: std::sync::atomic::AtomicBool::new(false),
            outsiders: std::sync::Mutex::new(OutsiderBudget {
                window: std::time::Instant::now(),
                written: 0,
                suppressed: 0,
            }),
            tag_set_digests: std::sync::Mutex::new(HashMap::new()),
            connections: std::sync::Mutex::new(HashMap::new()),
            cases: PublishedCases::new(node.clone()),
            node: node.clone(),
            me: id.me.clone(),
            ca: id.ca.clone(),
        });
        let crl = TlsWatch::new(&node, cfg.network.timeout(), streams);
        Ok(Server {
            endpoint,
            state,
            shutdown_tx,
            buffer_warning,
            crl,
            metrics_listener,
        })
    }

    /// Set when the kernel granted too small a UDP receive buffer for a holder under load
    /// ([`crate::net::udp::small_buffer_warning`]): for an operator, not for a demo's tiny lists.
    pub fn buffer_warning(&self) -> Option<&str> {
        self.buffer_warning.as_deref()
    }

    /// The epoch being served, updated as soon as an import is noticed.
    pub fn serving(&self) -> watch::Receiver<Option<EpochId>> {
        self.state.serving.subscribe()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.endpoint.local_addr()?)
    }

    /// Where metrics are offered, if `[metrics] listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref()?.local_addr().ok()
    }

    /// The node's name and current epoch, for the start-up line.
    pub async fn describe(&self) -> String {
        let e = self.state.epoch.lock().await;
        match &e.meta {
            Some(m) => format!(
                "node {} serving epoch {} ({} keys)",
                self.state.name,
                m.id,
                m.sizes.values().sum::<u64>()
            ),
            None => format!("node {} (no customer list imported yet)", self.state.name),
        }
    }

    /// Serves until `shutdown` resolves, then lets in-flight queries finish for a grace period,
    /// aborts the rest (audited), and closes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        if let Some(listener) = self.metrics_listener.take() {
            tokio::spawn(serve_metrics(
                listener,
                Arc::clone(&self.state),
                self.shutdown_tx.subscribe(),
            ));
        }
        // SIGHUP applies the revocation list at once (it is also looked at every second).
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("listening for SIGHUP")?;
        let mut tasks = tokio::task::JoinSet::new();
        // An import is picked up within a second, not at the next query: the old key leaves
        // this process as soon as it is replaced.
        let mut watch_epoch = tokio::time::interval(EPOCH_WATCH);
        let mut last_failure: Option<String> = None;
        loop {
            tokio::select! {
                _ = watch_epoch.tick() => {
                    // Once per distinct failure, not every second.
                    let failed = self.state.current_epoch().await.err().map(|e| format!("{e:#}"));
                    if failed.is_some() && failed != last_failure {
                        tracing::warn!("{}", failed.as_deref().unwrap_or_default());
                    }
                    last_failure = failed;
                    // Destroying a large store takes a while: not on the accept loop.
                    let state = Arc::clone(&self.state);
                    tokio::spawn(async move { state.cases.sweep(clock::now_unix()).await });
                    self.crl.apply(&self.endpoint, &self.state.signer, false);
                }
                _ = hangup.recv() => self.crl.apply(&self.endpoint, &self.state.signer, true),
                incoming = self.endpoint.accept() => {
                    let Some(incoming) = incoming else { break };
                    if !incoming.remote_address_validated() {
                        // Make the client prove its address first: spoofed packets then cost
                        // nothing, and cannot fill the audit log with failed handshakes.
                        let _ = incoming.retry();
                        continue;
                    }
                    let state = Arc::clone(&self.state);
                    tasks.spawn(handle_connection(state, incoming));
                }
                () = &mut shutdown => break,
            }
            while tasks.try_join_next().is_some() {}
        }
        self.drain(tasks).await;
        Ok(())
    }

    /// No new connections or queries; queries already running get a grace period, the rest
    /// are aborted (and audited).
    async fn drain(&mut self, mut tasks: tokio::task::JoinSet<()>) {
        self.endpoint.set_server_config(None);
        self.state
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let max = self.state.policy.max_concurrent_queries as u32;
        let drained =
            tokio::time::timeout(SHUTDOWN_GRACE, self.state.slots.acquire_many(max)).await;
        drop(drained);
        let _ = self.shutdown_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        self.endpoint.close(0u32.into(), b"node shutting down");
        let suppressed = std::mem::take(&mut self.state.outsider_budget().suppressed);
        if suppressed > 0 {
            let mut r = Record::new(Side::Holder, "(outsiders)", Outcome::Refused);
            r.detail = Some(format!(
                "{suppressed} more refused connections in the last minute, not recorded one by one"
            ));
            self.state.audit(r).await;
        }
        // Tasks still running now fail fast on the closed connections and write their aborts.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// `[metrics] listen`, bound now so that a bad address fails `serve` at start.
fn bind_metrics(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let std = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    std.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

/// Answers scrapers until shutdown, one task per connection.
async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors, say: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let body = async {
                        let snapshot = state.metrics_snapshot().await;
                        state.metrics.render(&snapshot)
                    };
                    let _ = crate::net::metrics::answer(stream, body).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// A refusal as one fixed word, for a metric's label.
fn refusal_reason(r: &crate::net::frame::Refusal) -> &'static str {
    use crate::net::frame::Refusal;
    match r {
        Refusal::UnsupportedVersion(_) => "unsupported_version",
        Refusal::RoleNotAllowed(_) => "role_not_allowed",
        Refusal::ModeNotAllowed { .. } => "mode_not_allowed",
        Refusal::CaseRequired => "case_required",
        Refusal::InvalidCase => "invalid_case",
        Refusal::TooSmall { .. } => "too_small",
        Refusal::TooLarge { .. } => "too_large",
        Refusal::SectionsTooSmall { .. } => "sections_too_small",
        Refusal::BudgetExhausted { .. } => "budget_exhausted",
        Refusal::Warrant(_) => "warrant",
        Refusal::NoSuchCase(_) | Refusal::NotNamedInCase(_) => "published_case",
        _ => "other",
    }
}

/// Locks a mutex whose holder may have panicked: every value these guard is whole between
/// statements, so a panic elsewhere leaves nothing half-written to refuse.
fn unpoisoned<T>(m: &std::sync::Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pool of count sessions and its filler thread, which prepares while no query holds a
/// slot.
fn start_pool(
    limit: u64,
    disk: Option<DiskPool>,
    slots: &Arc<Semaphore>,
    max: usize,
) -> Result<Arc<CountPool>> {
    let pool = CountPool::new(limit, disk);
    let (filler, slots) = (Arc::clone(&pool), Arc::clone(slots));
    std::thread::Builder::new()
        .name("count-pool".into())
        .spawn(move || filler.fill(move || slots.available_permits() == max))
        .context("cannot start the count-session thread")?;
    Ok(pool)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.pool.stop();
    }
}

/// The daily budget with every charge the audit log records (a restart does not refill it).
fn budget_from_log(entries: &[Entry], limit: u64) -> DailyBudget {
    let mut budget = DailyBudget::new(limit);
    budget.seed(
        entries
            .iter()
            .filter(|e| e.record.outcome == Outcome::Admitted && e.record.side == Side::Holder)
            .map(|e| {
                (
                    e.record.peer.as_str(),
                    e.unix,
                    e.record.charged.unwrap_or(0),
                )
            }),
    );
    budget
}

fn load_epoch(store: &EpochStore) -> Result<LoadedEpoch> {
    let stamp = store.stamp();
    let loaded = store.read()?;
    Ok(match loaded {
        Some((epoch, meta)) => LoadedEpoch {
            stamp,
            statement: meta.statement.clone(),
            epoch: Some(Arc::new(epoch)),
            meta: Some(meta),
        },
        None => LoadedEpoch {
            stamp,
            statement: None,
            epoch: None,
            meta: None,
        },
    })
}

impl State {
    /// The current epoch, reloaded if an import replaced it since it was loaded.
    async fn current_epoch(&self) -> Result<Option<Arc<Epoch>>> {
        let mut e = self.epoch.lock().await;
        let now = self.store.stamp();
        if now != e.stamp {
            let store = self.store.clone();
            // The old epoch (and its key) is dropped here; running queries hold their own.
            *e = tokio::task::spawn_blocking(move || load_epoch(&store)).await??;
            self.pool.serve(e.epoch.clone());
            self.serving.send_replace(e.epoch.as_ref().map(|x| x.id()));
            self.remember_statement(&e);
            if let Some(m) = &e.meta {
                tracing::info!(epoch = %m.id, "serving a new epoch; the old key is dropped");
            }
        }
        Ok(e.epoch.clone())
    }

    /// Keeps the statement of a loaded epoch for the welcomes of its queries (the last few
    /// epochs: a query admitted just before an import still names its own).
    fn remember_statement(&self, e: &LoadedEpoch) {
        if let (Some(epoch), Some(s)) = (&e.epoch, &e.statement) {
            self.remember(epoch.id(), s.clone());
        }
    }

    /// Keeps an epoch's statement (the node's own and its published cases' epochs, the last
    /// [`STATEMENTS_KEPT`]).
    fn remember(&self, epoch: EpochId, statement: Signed) {
        let mut kept = unpoisoned(&self.statements);
        kept.retain(|(id, _)| *id != epoch);
        kept.push_back((epoch, statement));
        while kept.len() > STATEMENTS_KEPT {
            kept.pop_front();
        }
    }

    /// The epoch asked for: the node's own, or the dump published for a case (refused if
    /// there is none for this peer).
    async fn load_epoch_for(
        &self,
        published: Option<&str>,
        peer: &PeerIdentity,
    ) -> Result<Result<Option<Arc<Epoch>>, Refusal>> {
        let Some(case) = published else {
            return self.current_epoch().await.map(Ok);
        };
        match self
            .cases
            .epoch(case, &peer.name, clock::now_unix())
            .await?
        {
            CaseLookup::Served(epoch, statement) => {
                if let Some(s) = statement {
                    self.remember(epoch.id(), s);
                }
                Ok(Ok(Some(epoch)))
            }
            CaseLookup::Refused(r) => Ok(Err(r)),
        }
    }

    /// Judges a hello's warrant against this node, the peer and the federation CA, with the
    /// revocation list installed now (read afresh), off the async threads.
    async fn check_warrant(
        &self,
        warrant: &Signed,
        min_count: Option<u64>,
        peer: &PeerIdentity,
        hello: Option<&Hello>,
    ) -> Result<(), WarrantRefusal> {
        let (node, ca, me, querier) = (
            self.node.clone(),
            self.ca.clone(),
            self.me.clone(),
            peer.clone(),
        );
        let (case, mode) = (
            hello.and_then(|h| h.case.clone()),
            hello.map_or(QueryMode::Count, |h| h.mode),
        );
        let (signed, short) = (warrant.clone(), warrant::short(warrant));
        let judged = tokio::task::spawn_blocking(move || {
            let crls: Vec<_> = match crate::node_dir::revocation::installed(&node) {
                Ok(c) => c.into_iter().collect(),
                Err(e) => {
                    // Unreadable revocation list: fail closed, a revoked court must not pass.
                    let why = format!("the revocation list cannot be read: {e:#}");
                    return Err(WarrantRefusal::NotACourt(warrant::short(&signed), why));
                }
            };
            let want = warrant::Expected {
                ca: &ca,
                crls: &crls,
                holder: &me,
                querier: &querier,
                case: case.as_deref(),
                mode,
                now: clock::now_unix(),
                min_count,
            };
            warrant::check(&signed, &want)
        })
        .await
        .unwrap_or_else(|e| {
            Err(WarrantRefusal::Forged(
                short,
                format!("the check failed: {e}"),
            ))
        })?;
        tracing::info!(peer = %peer.name, warrant = %judged.digest, court = %judged.court.name, "warrant accepted");
        Ok(())
    }

    /// The signed statement of an epoch being served.
    fn statement(&self, epoch: EpochId) -> Option<Signed> {
        unpoisoned(&self.statements)
            .iter()
            .find(|(id, _)| *id == epoch)
            .map(|(_, s)| s.clone())
    }

    fn open_connections(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        unpoisoned(&self.connections)
    }

    /// Counts a member's new connection, or says how many it already holds when that is its
    /// cap.
    fn count_connection(self: &Arc<Self>, peer: &PeerIdentity) -> Result<ConnectionCount, usize> {
        let cap = self.policy.max_concurrent_queries + EXTRA_CONNECTIONS_PER_MEMBER;
        let mut open = self.open_connections();
        let n = open.entry(peer.fingerprint.clone()).or_insert(0);
        if *n >= cap {
            return Err(*n);
        }
        *n += 1;
        Ok(ConnectionCount {
            state: Arc::clone(self),
            fingerprint: peer.fingerprint.clone(),
        })
    }

    fn outsider_budget(&self) -> MutexGuard<'_, OutsiderBudget> {
        unpoisoned(&self.outsiders)
    }

    /// The digest of the current epoch's tags for these key types at this length, computed
    /// once (a pass over every tag, off the async threads) and then remembered: every repeated
    /// query of a querier that kept the set asks for the same one.
    async fn tag_set_digest(
        &self,
        epoch: Arc<Epoch>,
        types: Vec<KeyType>,
        tag_len: u8,
    ) -> Option<[u8; 32]> {
        let key = (epoch.id(), types, tag_len);
        if let Some(d) = self.digests().get(&key) {
            return Some(*d);
        }
        let (id, types, l) = key;
        let (types, d) = tokio::task::spawn_blocking(move || {
            let d = epoch.tag_set_digest(&types, l);
            (types, d)
        })
        .await
        .ok()?;
        // A store that cannot be read: the querier is sent the tags, which then fail loudly.
        let d = d
            .inspect_err(|e| tracing::warn!("cannot digest the epoch's tags: {e}"))
            .ok()?;
        let mut memo = self.digests();
        if memo.len() >= 64 {
            // Old epochs' entries; cheap to recompute the few that are still asked for.
            memo.clear();
        }
        memo.insert((id, types, l), d);
        Some(d)
    }

    fn digests(&self) -> MutexGuard<'_, DigestMemo> {
        unpoisoned(&self.tag_set_digests)
    }

    /// Audits a refused connection, within [`OUTSIDER_ENTRIES_PER_MINUTE`].
    async fn audit_refused_connection(&self, mut r: Record, detail: String) {
        self.metrics.refused("connection");
        let carried = {
            let mut b = self.outsider_budget();
            let mut carried = 0;
            if b.window.elapsed() >= Duration::from_secs(60) {
                carried = std::mem::take(&mut b.suppressed);
                b.window = std::time::Instant::now();
                b.written = 0;
            }
            if b.written >= OUTSIDER_ENTRIES_PER_MINUTE {
                b.suppressed += 1;
                return;
            }
            b.written += 1;
            carried
        };
        r.detail = Some(if carried > 0 {
            format!(
                "{detail} (and {carried} more refused connections in the minute before, not recorded one by one)"
            )
        } else {
            detail
        });
        self.audit(r).await;
    }

    /// Whether new queries are refused: a stop was requested.
    fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst) || *self.shutdown.borrow()
    }

    /// Charges an admitted query to the peer's daily budget and records the charge (so it
    /// survives a restart), under one lock: the budget never counts an unrecorded charge.
    async fn charge(
        &self,
        peer: &PeerIdentity,
        hello: Option<&Hello>,
        keys: u64,
        epoch: EpochId,
    ) -> Charged {
        let mut budget = self.budget.lock().await;
        let charge = match budget.charge(&peer.name, keys, clock::now_unix()) {
            Ok(c) => c,
            Err(r) => return Charged::Refused(r),
        };
        let mut rec = self.record(peer, hello, Outcome::Admitted);
        rec.query_keys = Some(keys);
        rec.charged = Some(keys);
        rec.epoch = Some(epoch.to_string());
        match self.append(rec).await {
            Ok(()) => Charged::Recorded,
            Err(e) => {
                tracing::error!("{e:#}");
                budget.refund(charge);
                Charged::Unrecorded
            }
        }
    }

    /// Appends off the async threads (the append fsyncs).
    async fn audit(&self, record: Record) {
        if let Err(e) = self.append(record).await {
            tracing::error!("{e:#}");
        }
    }

    async fn append(&self, record: Record) -> Result<()> {
        let log = self.audit.clone();
        tokio::task::spawn_blocking(move || log.append(record)).await??;
        self.metrics.audit_appended();
        Ok(())
    }

    /// The scrape-time figures of [`crate::net::metrics::Snapshot`].
    async fn metrics_snapshot(&self) -> crate::net::metrics::Snapshot {
        let now = clock::now_unix();
        let epoch = self
            .epoch
            .lock()
            .await
            .meta
            .as_ref()
            .map(|m| (m.created, m.sizes.iter().map(|(k, n)| (*k, *n)).collect()));
        let budget = self.budget.lock().await.today(now);
        let cert = unpoisoned(&self.signer).1.clone();
        crate::net::metrics::Snapshot {
            epoch,
            certificate_expires: identity::not_after(&cert).ok(),
            budget,
            now,
        }
    }

    fn record(&self, peer: &PeerIdentity, hello: Option<&Hello>, outcome: Outcome) -> Record {
        Record {
            peer_role: Some(peer.role),
            fingerprint: Some(peer.fingerprint.clone()),
            // Only a valid case number is written; anything else could bloat or garble the log.
            case: hello
                .and_then(|h| h.case.clone())
                .filter(|c| crate::node_dir::config::valid_case(c)),
            mode: hello.map(|h| h.mode),
            warrant: hello.and_then(|h| h.warrant.as_ref()).map(warrant::digest),
            published: hello.is_some_and(|h| h.published),
            ..Record::new(Side::Holder, peer.name.clone(), outcome)
        }
    }
}

async fn handle_connection(state: Arc<State>, incoming: quinn::Incoming) {
    let Some((conn, peer, _counted)) = admit_connection(&state, incoming).await else {
        return;
    };
    let mut streams = tokio::task::JoinSet::new();
    let mut shutdown = state.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = conn.accept_bi() => a,
            // Once shutting down, no new query starts on this connection.
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((send, recv)) => {
                streams.spawn(handle_stream(Arc::clone(&state), peer.clone(), send, recv));
            }
            Err(_) => break,
        }
        while streams.try_join_next().is_some() {}
    }
    while streams.join_next().await.is_some() {}
}

/// The TLS handshake, the peer's identity and its connection cap; refusals are audited
/// (within [`OUTSIDER_ENTRIES_PER_MINUTE`]).
async fn admit_connection(
    state: &Arc<State>,
    incoming: quinn::Incoming,
) -> Option<(quinn::Connection, PeerIdentity, ConnectionCount)> {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            // Not a member of the federation (or not speaking suyuan/6): nothing is served.
            tracing::warn!(%remote, error = %e, "TLS handshake failed");
            let why = format!("TLS handshake failed: {e}");
            state
                .audit_refused_connection(unknown_peer(remote), why)
                .await;
            return None;
        }
    };
    let peer = match connection_identity(&conn) {
        Ok(p) => p,
        Err(e) => {
            conn.close(1u32.into(), b"unusable certificate");
            tracing::warn!(%remote, error = %e, "certificate refused");
            let why = format!("certificate refused: {e:#}");
            state
                .audit_refused_connection(unknown_peer(remote), why)
                .await;
            return None;
        }
    };
    match state.count_connection(&peer) {
        Ok(counted) => Some((conn, peer, counted)),
        Err(open) => {
            conn.close(2u32.into(), TOO_MANY_CONNECTIONS.as_bytes());
            let r = state.record(&peer, None, Outcome::Refused);
            let why = format!("{TOO_MANY_CONNECTIONS}: {open} already open, the limit per member");
            state.audit_refused_connection(r, why).await;
            None
        }
    }
}

fn unknown_peer(remote: SocketAddr) -> Record {
    Record::new(Side::Holder, remote.to_string(), Outcome::Refused)
}

/// The peer's identity from its verified certificate chain.
pub fn connection_identity(conn: &quinn::Connection) -> Result<PeerIdentity> {
    let any = conn
        .peer_identity()
        .context("the peer presented no certificate")?;
    let chain = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| anyhow::anyhow!("unexpected peer identity type"))?;
    let leaf = chain.first().context("empty certificate chain")?;
    identity::peer_identity(leaf)
}

/// Ends a stream with a final frame (a refusal or an abort) and audits it.
async fn end_stream(
    state: &State,
    send: &mut quinn::SendStream,
    peer: &PeerIdentity,
    hello: Option<&Hello>,
    frame: ServerFrame,
) {
    let (outcome, detail) = match &frame {
        ServerFrame::Refused(r) => {
            state.metrics.refused(refusal_reason(r));
            tracing::info!(peer = %peer.name, role = %peer.role, reason = %r, "query refused");
            (Outcome::Refused, r.to_string())
        }
        ServerFrame::Abort(why) => {
            tracing::warn!(peer = %peer.name, reason = %why, "query aborted");
            (Outcome::Aborted, why.to_string())
        }
        _ => return,
    };
    let _ = write_frame(send, &frame, state.timeout).await;
    let _ = send.finish();
    let mut r = state.record(peer, hello, outcome);
    r.detail = Some(detail);
    state.audit(r).await;
}

/// A stream's opening: the handshake machine decides, this moves frames and facts to it.
/// Returns the admitted query and its slot, or `None` once the stream was ended.
async fn open_stream(
    state: &State,
    peer: &PeerIdentity,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Option<(Admitted, OwnedSemaphorePermit)> {
    let mut hs = HolderHandshake::new(&state.policy, peer.role);
    let mut slot = None;
    // A start carries only its sections: a few bytes, so a hello-sized limit too.
    let read = async |recv: &mut quinn::RecvStream| {
        read_frame_limited::<ClientFrame>(recv, state.timeout, MAX_HELLO_LEN)
            .await
            .map_err(|e| e.to_string())
    };
    while let Some(event) = hs.poll_event() {
        match event {
            HolderEvent::ReadHello => hs.handle_hello(read(recv).await, state.draining()),
            HolderEvent::TakeSlot => {
                slot = Arc::clone(&state.slots).try_acquire_owned().ok();
                hs.handle_slot(slot.is_some());
            }
            HolderEvent::CheckWarrant { warrant, min_count } => {
                let checked = state
                    .check_warrant(&warrant, min_count, peer, hs.hello())
                    .await;
                hs.handle_warrant(checked);
            }
            HolderEvent::LoadEpoch { published } => {
                match state.load_epoch_for(published.as_deref(), peer).await {
                    Ok(Ok(epoch)) => hs.handle_epoch(Ok(epoch)),
                    Ok(Err(refusal)) => hs.handle_epoch_refused(refusal),
                    Err(e) => {
                        tracing::error!("{e:#}");
                        hs.handle_epoch(Err(()));
                    }
                }
            }
            HolderEvent::ReadStart => hs.handle_start(read(recv).await),
            HolderEvent::Charge { keys, epoch } => {
                let charged = state.charge(peer, hs.hello(), keys, epoch).await;
                hs.handle_charged(charged);
            }
            HolderEvent::Refuse(r) => {
                end_stream(state, send, peer, hs.hello(), ServerFrame::Refused(r)).await;
            }
            HolderEvent::Abort(why) => {
                end_stream(state, send, peer, hs.hello(), ServerFrame::Abort(why)).await;
            }
            HolderEvent::Admitted(a) => return Some((*a, slot?)),
        }
    }
    None
}

async fn handle_stream(
    state: Arc<State>,
    peer: PeerIdentity,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let Some((admitted, slot)) = open_stream(&state, &peer, &mut send, &mut recv).await else {
        return;
    };
    let Admitted {
        hello,
        start,
        epoch,
        keys,
    } = admitted;
    tracing::info!(peer = %peer.name, role = %peer.role, mode = %hello.mode, keys, "query admitted");
    state.metrics.admitted(peer.role.as_str());
    let started = std::time::Instant::now();
    let outcome = run_query(&state, &epoch, start, &hello, &peer, &mut send, &mut recv).await;
    let mut rec = state.record(&peer, Some(&hello), Outcome::Completed);
    rec.query_keys = Some(keys);
    rec.epoch = Some(epoch.id().to_string());
    match outcome {
        Ok(evaluating) => {
            tracing::info!(peer = %peer.name, keys, elapsed = ?started.elapsed(), "query completed");
            let _ = send.finish();
            rec.evaluate_ms = Some(evaluating.as_millis() as u64);
        }
        Err(why) => {
            tracing::warn!(peer = %peer.name, reason = %why, "query aborted");
            let _ = write_frame(&mut send, &ServerFrame::Abort(why.clone()), state.timeout).await;
            let _ = send.finish();
            rec.outcome = Outcome::Aborted;
            rec.detail = Some(why.to_string());
        }
    }
    let completed = rec.outcome == Outcome::Completed;
    state.metrics.finished(completed, keys, started.elapsed());
    // The slot is free once the query is over; whoever reads the audit entry may use it.
    drop(slot);
    state.audit(rec).await;
}

/// [`serve_query`] within the query's deadline, which counts the start's keys and the
/// holder's tags of its key types.
async fn run_query(
    state: &State,
    epoch: &Arc<Epoch>,
    start: QueryStart,
    hello: &Hello,
    peer: &PeerIdentity,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<Duration, AbortReason> {
    let limits = HolderLimits {
        max_query_keys: state.policy.max_query_keys,
    };
    let holder = Holder::with_limits(Arc::clone(epoch), limits)
        .with_label_policy(state.policy.label_policy(peer.role));
    let tags: u64 = start.sections.iter().map(|s| epoch.size(s.key_type)).sum();
    let deadline = query_deadline(state.timeout, start.total_keys().saturating_add(tags));
    let serving = serve_query(state, &holder, start, hello, peer, send, recv);
    match tokio::time::timeout(deadline, serving).await {
        Ok(o) => o,
        Err(_) => Err(AbortReason::DeadlinePassed(deadline)),
    }
}

/// Runs an admitted query to the end; `Err` says why it was aborted.
async fn serve_query(
    state: &State,
    holder: &Holder,
    start: QueryStart,
    hello: &Hello,
    peer: &PeerIdentity,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<Duration, AbortReason> {
    let mut transcript = Transcript::default();
    transcript.to_holder(&QuerierMessage::Start(start.clone()));
    let query_keys = section_counts(&start.sections);
    let (session, accept) = welcome(state, holder, start, hello.kept.clone(), send).await?;
    transcript.to_querier(&HolderMessage::Accept(accept.clone()));
    let evaluating = stream_session(state, session, send, recv, &mut transcript).await?;
    let (to_holder, to_querier) = transcript.digests();
    let answer = Answer {
        node: state.name.clone(),
        querier: peer.name.clone(),
        querier_fingerprint: peer.fingerprint.clone(),
        case: hello.case.clone(),
        query_id: hex::encode(hello.query_id),
        mode: hello.mode,
        statement: state
            .statement(accept.epoch)
            .map(|s| body_digest(&s.body))
            .unwrap_or_default(),
        epoch: accept.epoch.to_string(),
        tag_len: accept.tag_len,
        query_keys,
        holder_keys: section_counts(&accept.holder_sections),
        to_holder,
        to_querier,
        time: clock::now_unix(),
        warrant: hello.warrant.as_ref().map(warrant::digest),
        published: hello.published,
    };
    let signed = {
        let signer = unpoisoned(&state.signer);
        Signed::sign(ANSWER_CONTEXT, &answer, &signer.0, &signer.1)
    };
    let receipt =
        signed.map_err(|e| AbortReason::EvaluationFailed(format!("signing the answer: {e}")))?;
    write_frame(send, &ServerFrame::Receipt(receipt), state.timeout)
        .await
        .map_err(sending)?;
    Ok(evaluating)
}

/// Starts the session, judges the querier's kept tags, sends the welcome and the accept.
async fn welcome(
    state: &State,
    holder: &Holder,
    start: QueryStart,
    kept: Option<KeptTags>,
    send: &mut quinn::SendStream,
) -> Result<(HolderSession, QueryAccept), AbortReason> {
    match start.mode {
        QueryMode::Count => welcome_count(state, holder, start, send).await,
        QueryMode::Matches => welcome_matches(state, holder, start, kept, send).await,
    }
}

async fn send_welcome(
    state: &State,
    send: &mut quinn::SendStream,
    epoch: EpochId,
    tags_kept: bool,
    preparing: u64,
) -> Result<(), AbortReason> {
    let welcome = ServerFrame::Welcome(Welcome {
        version: NODE_WIRE_VERSION,
        node: state.name.clone(),
        epoch,
        tags_kept,
        preparing,
        statement: state.statement(epoch),
    });
    write_frame(send, &welcome, state.timeout)
        .await
        .map_err(sending)
}

async fn send_accept(
    state: &State,
    send: &mut quinn::SendStream,
    accept: QueryAccept,
) -> Result<(), AbortReason> {
    write_frame(send, &ServerFrame::Psi(accept.into()), state.timeout)
        .await
        .map_err(sending)
}

/// A count session: one prepared while idle, or prepared now (the welcome goes first and says
/// over how many keys, so the querier waits for the accept that long).
async fn welcome_count(
    state: &State,
    holder: &Holder,
    start: QueryStart,
    send: &mut quinn::SendStream,
) -> Result<(HolderSession, QueryAccept), AbortReason> {
    // A start the session would refuse must not use up a prepared session.
    holder.check_start(&start).map_err(misbehaved)?;
    let epoch = Arc::clone(holder.epoch());
    let prepared = match state.pool.take(epoch.id()) {
        Some(p) => {
            send_welcome(state, send, epoch.id(), false, 0).await?;
            p
        }
        None => {
            let keys = epoch.sizes().values().sum();
            send_welcome(state, send, epoch.id(), false, keys).await?;
            let e = Arc::clone(&epoch);
            tokio::task::spawn_blocking(move || PreparedCount::prepare(&e, &mut rand::rng()))
                .await
                .map_err(|e| AbortReason::EvaluationFailed(e.to_string()))?
                // A damaged point in memory: nothing the querier did.
                .map_err(|_| AbortReason::StoreUnreadable)?
        }
    };
    let (accept, session) = holder
        .handle_start_prepared(start, prepared, &mut rand::rng())
        .map_err(misbehaved)?;
    send_accept(state, send, accept.clone()).await?;
    Ok((session, accept))
}

/// A matches session, with the querier's kept tags judged.
async fn welcome_matches(
    state: &State,
    holder: &Holder,
    start: QueryStart,
    kept: Option<KeptTags>,
    send: &mut quinn::SendStream,
) -> Result<(HolderSession, QueryAccept), AbortReason> {
    let epoch = Arc::clone(holder.epoch());
    let (accept, mut session) = holder
        .handle_start(start, &mut rand::rng())
        .map_err(misbehaved)?;
    let tags_kept = match kept {
        // Labels travel with the tags: a querier given labels gets the tags again.
        Some(k) if accept.labels.is_none() && kept_tags_fit(&k, &epoch, session.tag_len()) => {
            let types = session
                .query_sections()
                .iter()
                .map(|s| s.key_type)
                .collect();
            let digest = state
                .tag_set_digest(Arc::clone(&epoch), types, k.tag_len)
                .await;
            kept_tags_current(&k, &epoch, session.tag_len(), digest)
        }
        _ => false,
    };
    if tags_kept {
        session.skip_tags().map_err(misbehaved)?;
    }
    send_welcome(state, send, epoch.id(), tags_kept, 0).await?;
    send_accept(state, send, accept.clone()).await?;
    Ok((session, accept))
}

/// Sends tags and evaluations, takes blinded chunks, until the session is finished; returns
/// the time spent evaluating.
async fn stream_session(
    state: &State,
    mut session: HolderSession,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    transcript: &mut Transcript,
) -> Result<Duration, AbortReason> {
    let mut evaluating = Duration::ZERO;
    let mut shutdown = state.shutdown.clone();
    loop {
        while let Some(m) = session
            .poll_message()
            .map_err(|e| AbortReason::EvaluationFailed(e.to_string()))?
        {
            transcript.to_querier(&m);
            write_frame(send, &ServerFrame::Psi(m), state.timeout)
                .await
                .map_err(sending)?;
        }
        if session.is_finished() {
            return Ok(evaluating);
        }
        let frame = tokio::select! {
            f = read_frame::<ClientFrame>(recv, state.timeout) => f,
            _ = shutdown.wait_for(|s| *s) => return Err(AbortReason::ShuttingDown),
        };
        let msg = serving_frame(frame)?;
        transcript.to_holder(&msg);
        // Curve work runs off the async threads (rayon inside); the next chunk keeps arriving.
        let (s, result, spent) = tokio::task::spawn_blocking(move || {
            let t = std::time::Instant::now();
            let r = session.handle(msg);
            (session, r, t.elapsed())
        })
        .await
        .map_err(|e| AbortReason::EvaluationFailed(e.to_string()))?;
        session = s;
        evaluating += spent;
        result.map_err(misbehaved)?;
    }
}

fn misbehaved(e: PsiError) -> AbortReason {
    AbortReason::PeerMisbehaved(e.to_string())
}

fn sending(e: FrameError) -> AbortReason {
    AbortReason::Unsendable(e.to_string())
}
