//! The querier's job (`suyuan query`): read and blind a dump once, ask every peer at once,
//! audit each answer, and report per peer ([`report`], [`html`]).

pub mod attribution;
pub mod html;
pub mod labels;
pub mod report;
pub mod verify;
pub mod warrants;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{Blinding, Query, QueryKeys, QueryMode, section_counts};

use crate::Progress;
use crate::clock;
use crate::evidence::directory::{self, Directory};
use crate::evidence::{Evidence, Signed};
use crate::lists::{InputOptions, InputSummary, for_each_record};
use crate::net::failure::{FailureKind, QueryFailure};
use crate::net::frame::{Hello, KeptTags, Refusal};
use crate::net::querier::{self, Bounds};
use crate::net::tls;
use crate::node_dir::NodeDir;
use crate::node_dir::audit::{AuditLog, Outcome, Record, Side};
use crate::node_dir::config::{self, NodeConfig};
use crate::node_dir::identity::{self, NodeIdentity};
use crate::node_dir::tag_cache::TagCache;

pub use report::{DumpSummary, PeerReport, PeerStats, QueryTiming, Report, Withheld, containment};

/// One peer to query: its node name (checked against its certificate) and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// Node name.
    pub name: String,
    /// `HOST:PORT`.
    pub address: String,
    /// The key it must answer with (SHA-256 of its certificate's public key), when a federation
    /// directory lists it.
    pub key: Option<String>,
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
        key: None,
    })
}

/// The peers to ask: `--peer` values (`NAME=HOST:PORT`, or a bare `NAME` looked up in the
/// directory) and, with `all_institutions`, every institution the directory lists. Members
/// found in the directory must answer with the key it lists.
pub fn resolve_peers(
    raw: &[String],
    directory: Option<&Directory>,
    all_institutions: bool,
) -> Result<Vec<PeerSpec>> {
    let listed = |m: &directory::Member| PeerSpec {
        name: m.name.clone(),
        address: m.address.clone(),
        key: Some(m.key.clone()),
    };
    let mut peers: Vec<PeerSpec> = Vec::new();
    if all_institutions {
        let dir = directory.context("--all-institutions needs --directory FILE")?;
        peers.extend(dir.institutions().map(listed));
    }
    for r in raw {
        let spec = match (r.contains('='), directory) {
            (true, _) => parse_peer(r)?,
            (false, Some(dir)) => listed(dir.member(r)?),
            (false, None) => {
                bail!("--peer {r:?}: expected NAME=HOST:PORT (a bare name needs --directory FILE)")
            }
        };
        match peers.iter().find(|p| p.name == spec.name) {
            Some(p) if p.address != spec.address => bail!(
                "{} is given twice, at {} and at {}: give it once",
                spec.name,
                p.address,
                spec.address
            ),
            Some(_) => {}
            None => peers.push(spec),
        }
    }
    if peers.is_empty() {
        bail!(
            "no peer given: add --peer NAME=HOST:PORT, or --directory FILE with --all-institutions or --peer NAME"
        );
    }
    Ok(peers)
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
    /// The population the dump is taken to be drawn from, for the attribution of each answer
    /// ([`attribution::DEFAULT_POPULATION`] if `None`).
    pub population: Option<u64>,
    /// Write the query's evidence here (`suyuan query --evidence`): its blind and every
    /// holder's messages, so that `suyuan verify --evidence` can recompute the answers.
    pub evidence: Option<PathBuf>,
    /// Ask each holder for the labels of the matched keys (`suyuan query --labels`).
    pub labels: bool,
    /// Court warrants to send, at most one per holder (`suyuan query --warrant`).
    pub warrants: Vec<PathBuf>,
    /// Ask the dump each peer published for the case, not its own list (`suyuan check`).
    pub published: bool,
    /// How to blind the dump; `None`: additively in `matches` mode, multiplicatively in
    /// `count` mode ([`QueryOptions::blinding`]).
    pub blinding: Option<Blinding>,
}

impl QueryOptions {
    /// A query of `input` from the node in `node` to `peers` in `mode`: no case, no evidence,
    /// no labels or warrants, the default population, the holders' own lists. Set the rest
    /// with struct update syntax.
    pub fn new(node: &Path, input: &Path, peers: Vec<PeerSpec>, mode: QueryMode) -> Self {
        QueryOptions {
            node: node.to_path_buf(),
            input: input.to_path_buf(),
            input_options: InputOptions::default(),
            peers,
            mode,
            case: None,
            population: None,
            evidence: None,
            labels: false,
            warrants: Vec::new(),
            published: false,
            blinding: None,
        }
    }

    /// The blinding this query uses: the one asked for, else additive in `matches` mode (each
    /// further holder then costs a fixed-base multiplication per key) and multiplicative in
    /// `count` mode (the only one sorted evaluations allow).
    pub fn blinding(&self) -> Blinding {
        self.blinding.unwrap_or(Blinding::for_mode(self.mode))
    }
}

/// Refuses a blinding `mode` cannot use: a count holder sorts its answers, which only one
/// blind for all keys can undo (each holder would refuse the query at its accept otherwise).
pub fn check_blinding(mode: QueryMode, blinding: Option<Blinding>) -> Result<()> {
    if mode == QueryMode::Count && blinding == Some(Blinding::Additive) {
        bail!(
            "--blinding additive needs --mode matches: a count holder sorts its answers, which only one blind for all keys can undo"
        );
    }
    Ok(())
}

/// A dump read and blinded, ready to be sent to every peer.
#[derive(Debug)]
pub struct BlindedDump {
    summary: InputSummary,
    query: Arc<Query>,
    timing: QueryTiming,
}

/// Runs a query against every peer concurrently. Fails only if nothing could be asked (bad
/// node directory, unreadable dump); a failed peer is reported in its entry.
pub async fn run(opts: &QueryOptions, mut progress: impl Progress + 'static) -> Result<Report> {
    let job = QueryJob::open(opts)?;
    let input = opts.input.clone();
    let input_options = opts.input_options.clone();
    let blinding = opts.blinding();
    let dump = tokio::task::spawn_blocking(move || {
        blind_dump(&input, &input_options, blinding, &mut progress)
    })
    .await??;
    job.ask(dump).await
}

/// Reads the dump and plans its query under a fresh blind, as `blinding` says (blocking): the
/// distinct keys of every type, the rows, the secret. The blinding itself runs beside the
/// exchange ([`QueryJob::ask`]), so that the holders evaluate the first chunks while the last
/// are blinded.
pub fn blind_dump(
    input: &Path,
    options: &InputOptions,
    blinding: Blinding,
    progress: &mut dyn Progress,
) -> Result<BlindedDump> {
    let t0 = std::time::Instant::now();
    let (keys, summary) = read_dump(input, options, progress)?;
    progress.unit("keys");
    let n: u64 = keys.raw_counts().values().sum();
    let read = t0.elapsed();
    progress.start("plan", Some(n));
    let t1 = std::time::Instant::now();
    let query = Query::plan_as(&mut rand::rng(), keys, blinding).context("planning the query")?;
    let timing = QueryTiming {
        read_ms: read.as_millis() as u64,
        blind_ms: t1.elapsed().as_millis() as u64,
        blinding_ms: None,
    };
    progress.set(n);
    progress.finish();
    Ok(BlindedDump {
        summary,
        query: Arc::new(query),
        timing,
    })
}

/// Reads the dump's keys row by row, as a query reads them.
pub fn read_dump(
    input: &Path,
    options: &InputOptions,
    progress: &mut dyn Progress,
) -> Result<(QueryKeys, InputSummary)> {
    progress.start("read dump", None);
    let mut keys = QueryKeys::new();
    let summary = for_each_record(input, options, |row, rk| {
        keys.add_row(&rk.keys);
        if row % 4096 == 0 {
            progress.set(row);
        }
        Ok(())
    })?;
    progress.set(summary.quality.rows);
    progress.finish();
    Ok((keys, summary))
}

/// A holder's refusal of sections below its minimum: the query without them, and what was left
/// out. `None` for any other outcome, or when no section would be left.
fn without_small_sections(
    query: &Query,
    outcome: &Result<querier::Reply, QueryFailure>,
) -> Option<(Arc<Query>, Withheld)> {
    let Err(QueryFailure {
        kind: FailureKind::Refused(Refusal::SectionsTooSmall { sections, min }),
        ..
    }) = outcome
    else {
        return None;
    };
    let types: Vec<KeyType> = sections.iter().map(|s| s.key_type).collect();
    let fewer = query.without(&types)?;
    let withheld = Withheld {
        keys: section_counts(sections),
        min: *min,
    };
    Some((Arc::new(fewer), withheld))
}

/// The dump's part of the report.
fn dump_summary(dump: &BlindedDump) -> DumpSummary {
    let summary = &dump.summary;
    DumpSummary {
        rows: summary.quality.rows,
        rows_without_key: summary.quality.rows_without_key,
        keys: section_counts(dump.query.sections()),
        rejected: summary.quality.rejected.clone(),
    }
}

/// What every peer's task needs, cloned into each.
#[derive(Clone)]
struct PeerAsking {
    me: identity::PeerIdentity,
    client_cfg: quinn::ClientConfig,
    cache: TagCache,
    bounds: Bounds,
    case: Option<String>,
    mode: QueryMode,
    query_id: [u8; 16],
    query: Arc<Query>,
    /// Per holder, the warrant to send it.
    warrants: Arc<BTreeMap<String, Signed>>,
    published: bool,
}

type PeerOutcome = (
    PeerSpec,
    Result<querier::Reply, QueryFailure>,
    Option<Withheld>,
);

impl PeerAsking {
    /// Asks one peer, with the tags kept from it in `matches` mode; once more without the
    /// sections it will not count, if it says so.
    async fn ask(self, peer: PeerSpec) -> PeerOutcome {
        let name = peer.name.clone();
        let cache = self.cache.clone();
        // Only `matches` answers reuse a holder's tags: a count session's are its own. Evidence
        // needs every tag as the holder sent it: none are reused then.
        let in_memory = self.bounds.tags_in_memory;
        let kept = match self.mode {
            // Labels travel with the tags: a query asking for them takes the tags afresh.
            QueryMode::Matches if !self.bounds.record && !self.bounds.labels => {
                tokio::task::spawn_blocking(move || {
                    // Described first (its digest checked in one pass), loaded only if small.
                    let file = cache.peek(&name)?;
                    let bytes = file.sections.iter().map(|s| s.count).sum::<u64>()
                        * u64::from(file.tag_len);
                    let set = (bytes <= in_memory)
                        .then(|| cache.load(&name).map(|(set, _)| set))
                        .flatten();
                    Some((set, file))
                })
                .await
                .ok()
                .flatten()
            }
            QueryMode::Matches | QueryMode::Count => None,
        };
        let hello = Hello {
            kept: kept.as_ref().map(|(_, k)| KeptTags {
                epoch: k.epoch,
                tag_len: k.tag_len,
                digest: k.digest,
            }),
            query_id: self.query_id,
            warrant: self.warrants.get(&peer.name).cloned(),
            published: self.published,
            ..Hello::new(self.mode, self.case.clone())
        };
        let (kept_set, kept_file) = match kept {
            Some((Some(set), _)) => (Some(set), None),
            Some((None, file)) => (None, Some(file)),
            None => (None, None),
        };
        let tags = querier::HolderTags {
            kept: kept_set,
            kept_file,
            spill_dir: self.cache.dir().to_path_buf(),
        };
        let (me, cfg, bounds) = (&self.me, self.client_cfg.clone(), self.bounds);
        let r = querier::ask(&peer, me, cfg, hello, Arc::clone(&self.query), tags, bounds).await;
        let Some((fewer, withheld)) = without_small_sections(&self.query, &r) else {
            return (peer, r, None);
        };
        // Kept tags cover the sections asked before; download this answer's afresh.
        let hello = Hello {
            query_id: self.query_id,
            warrant: self.warrants.get(&peer.name).cloned(),
            published: self.published,
            ..Hello::new(self.mode, self.case.clone())
        };
        let cfg = self.client_cfg.clone();
        let tags = querier::HolderTags {
            kept: None,
            kept_file: None,
            spill_dir: self.cache.dir().to_path_buf(),
        };
        let r = querier::ask(&peer, me, cfg, hello, fewer, tags, bounds).await;
        (peer, r, Some(withheld))
    }
}

/// A querier node ready to ask: its identity, configuration and verified audit log.
pub struct QueryJob {
    opts: QueryOptions,
    node: NodeDir,
    id: NodeIdentity,
    cfg: NodeConfig,
    audit: AuditLog,
    warrants: Arc<BTreeMap<String, Signed>>,
}

impl QueryJob {
    /// Checks everything that does not need the dump: the node directory, the case number,
    /// the peers, the audit log.
    pub fn open(opts: &QueryOptions) -> Result<Self> {
        let node = NodeDir::open(&opts.node)?;
        let id = node.identity()?;
        if let Some(w) = identity::expiry_warning(&id, clock::now_unix()) {
            tracing::warn!("{w}");
        }
        let cfg = node.config()?;
        if let Some(c) = &opts.case
            && !config::valid_case(c)
        {
            bail!("--case {c:?}: use 1 to 128 printable characters");
        }
        if opts.peers.is_empty() {
            bail!("no peer given: add --peer NAME=HOST:PORT");
        }
        check_blinding(opts.mode, opts.blinding)?;
        let audit = node.audit();
        audit
            .verify()
            .context("the audit log does not verify; refusing to query")?;
        let warrants = Arc::new(warrants::load(opts, &id, clock::now_unix())?);
        Ok(QueryJob {
            opts: opts.clone(),
            node,
            id,
            cfg,
            audit,
            warrants,
        })
    }

    /// Asks every peer at once; audits and reports each answer in the order given.
    pub async fn ask(&self, mut dump: BlindedDump) -> Result<Report> {
        let opts = &self.opts;
        // The blinding, chunk by chunk in the order they are sent, beside the exchanges.
        let blinder = {
            let query = Arc::clone(&dump.query);
            tokio::task::spawn_blocking(move || {
                let t = std::time::Instant::now();
                query.blind_all();
                t.elapsed()
            })
        };
        let timeout = self.cfg.network.timeout();
        let cache = self.node.tag_cache(self.cfg.query.tag_cache_bytes());
        let asking = PeerAsking {
            me: self.id.me.clone(),
            client_cfg: tls::client_config(&self.id, timeout)?,
            cache: cache.clone(),
            bounds: Bounds {
                timeout,
                limits: self.cfg.query.limits(),
                record: opts.evidence.is_some(),
                labels: opts.labels,
                tags_in_memory: self.cfg.query.tags_in_memory_bytes(),
            },
            case: opts.case.clone(),
            mode: opts.mode,
            // One id for this query, named in every holder's signed answer.
            query_id: rand::random(),
            query: Arc::clone(&dump.query),
            warrants: Arc::clone(&self.warrants),
            published: opts.published,
        };
        let mut evidence = self.open_evidence(&dump, asking.query_id)?;
        let tasks: Vec<_> = opts
            .peers
            .iter()
            .map(|peer| tokio::spawn(asking.clone().ask(peer.clone())))
            .collect();
        let mut peers = Vec::new();
        let blinding = blinder.await.context("the blinding failed")?;
        dump.timing.blinding_ms = Some(blinding.as_millis() as u64);
        for t in tasks {
            let (peer, mut outcome, withheld) = t.await.context("a peer task failed")?;
            if let (Some(ev), Ok(reply)) = (&mut evidence, &mut outcome)
                && let Some(messages) = reply.received.take()
            {
                ev.peers.push((peer.name.clone(), messages));
            }
            let report = self.record(&peer, outcome, withheld, &cache, &dump).await;
            peers.push(report);
        }
        let report = self.signed_report(&dump, peers)?;
        if let (Some(path), Some(evidence)) = (&opts.evidence, evidence) {
            // The answers are in hand: a failure here must not lose them (the report is still
            // returned), but it must be seen.
            let path = path.clone();
            match tokio::task::spawn_blocking(move || evidence.write(&path)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("the evidence was not written: {e}"),
                Err(e) => tracing::error!("the evidence was not written: {e}"),
            }
        }
        Ok(report)
    }

    /// With `--evidence`, the file is created before any holder is asked (answers that could
    /// not be kept as evidence are better not obtained), and the evidence starts.
    fn open_evidence(&self, dump: &BlindedDump, query_id: [u8; 16]) -> Result<Option<Evidence>> {
        let Some(path) = &self.opts.evidence else {
            return Ok(None);
        };
        crate::evidence::bundle::private_file(path)
            .with_context(|| format!("cannot create the evidence file {}", path.display()))?;
        Ok(Some(Evidence::new(&dump.query, query_id, self.opts.mode)))
    }

    /// The report of `peers`, attributed against the population and signed by this node: the
    /// querier answers for its counts and rows.
    fn signed_report(&self, dump: &BlindedDump, peers: Vec<PeerReport>) -> Result<Report> {
        let opts = &self.opts;
        let mut report = Report {
            case: opts.case.clone(),
            mode: opts.mode,
            created: clock::rfc3339(clock::now_unix()),
            dump: dump_summary(dump),
            peers,
            timing: Some(dump.timing),
            population: None,
            signature: None,
            published: opts.published,
        };
        let population = opts.population.unwrap_or(attribution::DEFAULT_POPULATION);
        attribution::apply(&mut report, population);
        report.signature = Some(
            Signed::sign(verify::REPORT_CONTEXT, &report, &self.id.key, &self.id.cert)
                .context("signing the report")?,
        );
        Ok(report)
    }

    /// One peer's answer as a report entry, audited; a downloaded tag set is kept.
    async fn record(
        &self,
        peer: &PeerSpec,
        outcome: Result<querier::Reply, QueryFailure>,
        withheld: Option<Withheld>,
        cache: &TagCache,
        dump: &BlindedDump,
    ) -> PeerReport {
        let opts = &self.opts;
        let warrant = self.warrants.get(&peer.name);
        let mut rec = Record {
            case: opts.case.clone(),
            mode: Some(opts.mode),
            query_keys: Some(dump.query.total_keys()),
            warrant: warrant.map(crate::evidence::warrant::digest),
            published: opts.published,
            ..Record::new(Side::Querier, peer.name.clone(), Outcome::Completed)
        };
        let report = match outcome {
            Ok(querier::Reply {
                result,
                holder,
                stats,
                fresh,
                statement,
                receipt,
                ..
            }) => {
                if let Some(fresh) = fresh {
                    let (cache, name) = (cache.clone(), peer.name.clone());
                    let kept = tokio::task::spawn_blocking(move || match fresh {
                        querier::Fresh::Set(set) => cache.store(&name, &set),
                        querier::Fresh::File(file) => cache.adopt(&name, &file.take()),
                    })
                    .await;
                    if let Ok(Err(e)) = kept {
                        tracing::warn!("keeping {}'s tags: {e:#}", peer.name);
                    }
                }
                let mut report = PeerReport::from_result(peer, &result, dump.summary.quality.rows);
                report.stats = Some(stats);
                if let Some(w) = &withheld {
                    rec.detail = Some(format!("not counted: {w}"));
                }
                report.withheld = withheld;
                report.statement = Some(statement);
                report.answer = Some(receipt);
                report.warrant = warrant.cloned();
                rec.peer_role = Some(holder.role);
                rec.fingerprint = Some(holder.fingerprint);
                rec.epoch = report.epoch.clone();
                rec.matched_keys = Some(report.matched_keys.values().sum());
                rec.matched_rows = report.matched_rows;
                report
            }
            Err(failure) => {
                let message = failure.to_string();
                rec.outcome = failure.outcome();
                rec.peer_role = failure.holder.as_ref().map(|h| h.role);
                rec.fingerprint = failure.holder.map(|h| h.fingerprint);
                rec.detail = Some(message.clone());
                PeerReport::failed(peer, message)
            }
        };
        // A failed append must not throw away answers already obtained; say so and go on.
        if let Err(e) = self.audit.append(rec) {
            // Through anyhow: `{:#}` then shows the I/O error's cause too.
            tracing::warn!("{:#}", anyhow::Error::from(e));
        }
        report
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    #[test]
    fn a_peer_given_twice_at_two_addresses_is_refused() {
        let raw = [
            "bank=10.0.0.5:7788".to_string(),
            "bank=10.0.0.6:7788".into(),
        ];
        let e = resolve_peers(&raw, None, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "bank is given twice, at 10.0.0.5:7788 and at 10.0.0.6:7788: give it once"
        );
        let same = [
            "bank=10.0.0.5:7788".to_string(),
            "bank=10.0.0.5:7788".into(),
        ];
        assert_eq!(resolve_peers(&same, None, false).unwrap().len(), 1);
        let e = resolve_peers(&["bank".into()], None, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a bare name needs --directory FILE"), "{e}");
    }
}
