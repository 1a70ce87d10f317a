//! `suyuan bench`: the whole path, holder and querier as separate processes over QUIC on
//! 127.0.0.1, against the curve's floor measured in the same run.

pub mod link;
pub mod load;

use std::fmt::Write as _;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use serde::{Deserialize, Serialize};
use suyuan_protocol::oprf::{Mode, hash_to_group};
use suyuan_protocol::psi::{Blinding, QueryMode};

use crate::node_dir::NodeDir;
use crate::node_dir::config::NODE_TOML;
use crate::node_dir::identity::{self, Role};
use crate::query::report::{PeerStats, QueryTiming};
use crate::query::{self, PeerSpec, QueryOptions};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Rows (one mobile number each) of the holder's list.
    pub holder_rows: u64,
    /// Rows (one mobile number each) of the dump.
    pub dump_rows: u64,
    /// Share of dump rows that are holder customers.
    pub overlap: f64,
    /// The mode to run.
    pub mode: QueryMode,
    /// How to blind the dump (`None`: as `suyuan query` does in that mode).
    pub blinding: Option<Blinding>,
    /// Threads for each process (rayon and tokio); all cores if `None`.
    pub threads: Option<usize>,
    /// Working directory (default: a new one under the temp directory).
    pub dir: Option<PathBuf>,
    /// Run the query a second time, which uses the tag set kept from the first.
    pub repeat: bool,
    /// Holders queried at once (each a process with its own key and the same list).
    pub holders: usize,
    /// The rate of the shaped link between the two namespaces (`--link`), if any.
    pub link: Option<link::Rate>,
    /// Inside `--link`: the namespace the holders run in (this process runs in the querier's).
    pub holder_netns: Option<String>,
}

/// Most holders `--holders` starts.
pub const MAX_HOLDERS: usize = 8;

/// The second run of the same query (`--repeat`): the holder's tags come from the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatReport {
    /// Query wall time: read + blind + exchange, ms.
    pub query_ms: u64,
    /// Connect to result, ms.
    pub exchange_ms: u64,
    /// UDP bytes querier → holder.
    pub bytes_up: u64,
    /// UDP bytes holder → querier.
    pub bytes_down: u64,
    /// Whether the kept tags were used (they must be).
    pub tags_kept: bool,
    /// Matched keys reported (must equal the first run's).
    pub matched: u64,
}

/// Everything measured, for `--json` and docs/benchmarks.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The curve path every process took: `lanes8` (eight points per instruction, IFMA) or
    /// `dalek` (on CPUs without IFMA, or with `SUYUAN_CURVE=dalek`).
    #[serde(default)]
    pub curve: String,
    /// How the dump was blinded.
    #[serde(default = "multiplicative")]
    pub blinding: Blinding,
    /// The link between querier and holder: `loopback`, or the rate of `--link` (`100mbit`).
    #[serde(default)]
    pub link: String,
    /// The payload floor carried at the link's rate (0 on loopback), ms.
    #[serde(default)]
    pub payload_at_line_rate_ms: u64,
    /// Holder rows (= keys).
    pub holder_rows: u64,
    /// Dump rows (= keys).
    pub dump_rows: u64,
    /// Overlap asked for.
    pub overlap: f64,
    /// Mode run.
    pub mode: QueryMode,
    /// Threads per process.
    pub threads: usize,
    /// Cores the two processes can use together: min(2 × threads, cores of the machine).
    pub cores_in_use: usize,
    /// Import wall time (a separate process), ms.
    pub import_ms: u64,
    /// Import keys per second.
    pub import_keys_per_s: f64,
    /// Querier: reading and canonicalising the dump, ms.
    pub read_ms: u64,
    /// Querier: planning the query before the exchange (the whole blinding, in reports
    /// written before it ran beside the exchange), ms.
    pub blind_ms: u64,
    /// Querier: the blinding, beside the exchange, ms.
    #[serde(default)]
    pub blinding_ms: u64,
    /// Querier: connect to result (transfer, holder evaluation, unblinding overlap), ms.
    pub exchange_ms: u64,
    /// Holder: time inside its evaluation calls (from its audit log), ms.
    pub evaluate_ms: u64,
    /// Querier: time inside its unblinding, tagging and intersecting calls, ms.
    pub unblind_ms: u64,
    /// Query wall time: read + blind + exchange, ms.
    pub query_ms: u64,
    /// Query wall time per dump key, µs.
    pub query_us_per_key: f64,
    /// UDP bytes querier → holder.
    pub bytes_up: u64,
    /// UDP bytes holder → querier.
    pub bytes_down: u64,
    /// The protocol's payload floor: 32 bytes up and down per dump key, ℓ per holder tag.
    pub payload_floor_bytes: u64,
    /// Datagrams querier → holder that were lost and sent again.
    #[serde(default)]
    pub datagrams_lost_up: u64,
    /// Peak resident memory of the querier process, bytes.
    pub querier_peak_rss: u64,
    /// Peak resident memory of the holder process (the largest, with several), bytes.
    pub holder_peak_rss: u64,
    /// Holders queried at once.
    #[serde(default = "one")]
    pub holders: usize,
    /// Exchange wall time with each holder, ms.
    #[serde(default)]
    pub exchange_ms_per_holder: Vec<u64>,
    /// Querier CPU time (user + system) from reading the dump to the last answer, ms.
    #[serde(default)]
    pub querier_cpu_ms: u64,
    /// The querier's own floor per dump key, one thread: H + (1 + holders) multiplications, µs.
    #[serde(default)]
    pub querier_cpu_floor_us_per_key: f64,
    /// One thread: hash-to-group, µs.
    pub floor_hash_to_group_us: f64,
    /// One thread: variable-base scalar multiplication, µs.
    pub floor_scalar_mul_us: f64,
    /// Query floor per dump key: (H + (1 + 2 × holders) multiplications) / cores in use, µs.
    pub query_floor_us_per_key: f64,
    /// Import floor per key: (H + 1 multiplication) / threads (one process), µs.
    pub import_floor_us_per_key: f64,
    /// Query wall time over its floor.
    pub query_ratio: f64,
    /// Import wall time over its floor.
    pub import_ratio: f64,
    /// Matched keys reported (checked against the overlap).
    pub matched: u64,
    /// `--repeat`: the same query again, with the kept tag set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatReport>,
    /// Count mode: keys the first holder prepared its session over during the query (0: the
    /// bench waited for its pool, and the session was prepared ahead).
    #[serde(default)]
    pub holder_prepared_keys: u64,
}

fn one() -> usize {
    1
}

/// CPU time (user + system) this process has used, from /proc (Linux; 0 elsewhere).
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces:
            // utime and stime are the 12th and 13th of them, in USER_HZ (100 on Linux).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Peak resident set size of a process, from /proc (Linux).
pub(crate) fn peak_rss(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Timings of the curve primitives on one thread, µs each: nine runs of 512 of each.
#[derive(Default)]
struct FloorSamples {
    hash_to_group: Vec<f64>,
    scalar_mul: Vec<f64>,
}

impl FloorSamples {
    fn sample(&mut self) {
        let k = Scalar::from(0x1234_5678_9abc_def1u64);
        for run in 0..9u64 {
            let t = Instant::now();
            let points: Vec<RistrettoPoint> = (0..512u64)
                .map(|i| {
                    hash_to_group(
                        Mode::Oprf,
                        &[
                            b"mobile\x00",
                            format!("{}", 13_000_000_000 + run * 512 + i).as_bytes(),
                        ],
                    )
                })
                .collect();
            self.hash_to_group
                .push(t.elapsed().as_secs_f64() * 1e6 / 512.0);
            let t = Instant::now();
            let acc = points
                .iter()
                .fold(RistrettoPoint::default(), |a, p| a + k * p);
            std::hint::black_box(acc);
            self.scalar_mul
                .push(t.elapsed().as_secs_f64() * 1e6 / 512.0);
        }
    }

    /// Medians over every sample: taken before and after the runs, so a slow spell of this
    /// shared machine during either moves the floor less.
    fn medians(mut self) -> (f64, f64) {
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        (
            median(&mut self.hash_to_group),
            median(&mut self.scalar_mul),
        )
    }
}

/// A fresh CA under `dir` with holder nodes (admitting researchers' queries of up to
/// `max_rows` keys, `concurrent` at once) and researcher nodes, replacing any earlier ones.
pub(crate) fn fresh_federation(
    dir: &Path,
    holders: &[String],
    researchers: &[String],
    timeout_secs: u64,
    max_rows: u64,
    concurrent: usize,
) -> Result<()> {
    let ca = dir.join("ca");
    for name in std::iter::once(&"ca".to_string())
        .chain(holders)
        .chain(researchers)
    {
        let d = dir.join(name);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
    }
    identity::ca_init(&ca, "bench CA")?;
    for name in holders {
        let d = dir.join(name);
        identity::ca_issue(&ca, name, Role::Institution, &d)?;
        std::fs::write(
            d.join(NODE_TOML),
            format!(
                "[network]\ntimeout_secs = {timeout_secs}\n[policy]\nmin_query_keys = 1\nmax_query_keys = {max_rows}\nkeys_per_peer_per_day = {max_rows}\nrequire_case = false\nmax_concurrent_queries = {concurrent}\n[policy.allow]\nresearcher = [\"count\", \"matches\"]\n"
            ),
        )?;
    }
    for name in researchers {
        let d = dir.join(name);
        identity::ca_issue(&ca, name, Role::Researcher, &d)?;
        std::fs::write(
            d.join(NODE_TOML),
            format!("[network]\ntimeout_secs = {timeout_secs}\n"),
        )?;
    }
    Ok(())
}

/// Dump rows that are holder customers, as [`write_lists`] writes them.
pub(crate) fn shared_rows(o: &BenchOptions) -> u64 {
    ((o.dump_rows as f64 * o.overlap).round() as u64).min(o.holder_rows)
}

/// `--dir`, or a new directory under the temp directory named `name-PID`, with the holder's
/// list and the dump written into it.
pub(crate) fn working_dir(o: &BenchOptions, name: &str) -> Result<PathBuf> {
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("{name}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    write_lists(&dir, o)?;
    Ok(dir)
}

fn write_lists(dir: &Path, o: &BenchOptions) -> Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(dir.join("holder.csv"))?);
    writeln!(w, "mobile")?;
    for i in 0..o.holder_rows {
        writeln!(w, "{}", 13_000_000_000 + i)?;
    }
    w.flush()?;
    let shared = shared_rows(o);
    let mut w = BufWriter::new(std::fs::File::create(dir.join("dump.csv"))?);
    writeln!(w, "mobile")?;
    for j in 0..o.dump_rows {
        let m = if j < shared {
            13_000_000_000 + j
        } else {
            15_000_000_000 + j
        };
        writeln!(w, "{m}")?;
    }
    w.flush()?;
    Ok(())
}

/// Kills the holder process when dropped, so nothing is left running.
pub(crate) struct Holder(pub(crate) Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn suyuan(threads: usize) -> Result<Command> {
    let mut c = Command::new(std::env::current_exe().context("locating the suyuan binary")?);
    c.env("RAYON_NUM_THREADS", threads.to_string());
    // The bench reads its holders' logs at -v: a RUST_LOG of the caller's must not hide them.
    c.env_remove("RUST_LOG");
    Ok(c)
}

/// `suyuan import` of `list` into `node`, as a process of its own.
pub(crate) fn import_list(threads: usize, node: &Path, list: &Path) -> Result<()> {
    let status = suyuan(threads)?
        .args(["--quiet", "import", "--node"])
        .arg(node)
        .arg("--input")
        .arg(list)
        .stdout(Stdio::null())
        .status()
        .context("running the import")?;
    if !status.success() {
        bail!("the import failed");
    }
    Ok(())
}

/// `suyuan serve` of `node` on an ephemeral loopback port, as a process of its own (killed
/// when the returned guard drops), and the address it listens on, read from its `--addr-file`.
/// Its log goes to `NODE.log`.
pub(crate) fn start_holder(
    threads: usize,
    node: &Path,
    netns: Option<&str>,
) -> Result<(Holder, String)> {
    let addr_file = node.with_extension("addr");
    let _ = std::fs::remove_file(&addr_file);
    let log = std::fs::File::create(node.with_extension("log"))
        .context("creating the holder's log file")?;
    // Inside `--link`, in the holder's namespace, on its end of the pair.
    let (mut command, listen) = match netns {
        None => (suyuan(threads)?, "127.0.0.1:0".to_string()),
        Some(ns) => {
            let mut c = link::Link::exec_in(ns);
            let plain = suyuan(threads)?;
            c.arg(plain.get_program());
            c.envs(plain.get_envs().filter_map(|(k, v)| Some((k, v?))));
            c.env_remove("RUST_LOG");
            (c, format!("{}:0", link::HOLDER_ADDR))
        }
    };
    let child = command
        .args(["--quiet", "-v", "serve", "--listen", &listen, "--node"])
        .arg(node)
        .arg("--addr-file")
        .arg(&addr_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the holder")?;
    let mut holder = Holder(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(addr) = std::fs::read_to_string(&addr_file) {
            return Ok((holder, addr.trim().to_string()));
        }
        if let Some(status) = holder.0.try_wait()? {
            bail!("the holder exited before listening ({status})");
        }
        if Instant::now() > deadline {
            bail!("the holder did not start listening within a minute");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the holder serving `node` logs that its pool of count sessions is full, so no
/// preparation runs beside the query (16 sessions over `holder_rows` keys take about 16 × 15
/// µs per key on one core).
fn wait_for_pool(holder: &mut Holder, node: &Path, holder_rows: u64) -> Result<()> {
    let log = node.with_extension("log");
    let allowed = Duration::from_secs(120) + Duration::from_micros(holder_rows.saturating_mul(400));
    let deadline = Instant::now() + allowed;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("the pool of count sessions is full") {
            return Ok(());
        }
        if let Some(status) = holder.0.try_wait()? {
            bail!(
                "the holder exited while preparing count sessions ({status}); see {}",
                log.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the holder prepared no count session within {} s; see {}",
                allowed.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the benchmark. Must run inside a tokio runtime, with rayon's global pool already sized.
pub async fn run(o: &BenchOptions) -> Result<BenchReport> {
    check(o)?;
    let threads = o.threads.unwrap_or_else(rayon::current_num_threads);
    let dir = working_dir(o, "suyuan-bench")?;
    let mut floor = FloorSamples::default();
    floor.sample();
    let holder_names: Vec<String> = (1..=o.holders)
        .map(|i| match i {
            1 => "holder".to_string(),
            _ => format!("holder{i}"),
        })
        .collect();
    let holder_dirs: Vec<PathBuf> = holder_names.iter().map(|n| dir.join(n)).collect();
    let big = o.holder_rows.max(o.dump_rows) * 2;
    let researchers = ["researcher".to_string()];
    fresh_federation(&dir, &holder_names, &researchers, 120, big, 4)?;
    let import = import_all(threads, &holder_dirs, &dir.join("holder.csv"))?;
    let mut holders = Vec::new();
    let mut peers = Vec::new();
    for (name, d) in holder_names.iter().zip(&holder_dirs) {
        let (holder, addr) = start_holder(threads, d, o.holder_netns.as_deref())?;
        holders.push(holder);
        peers.push(PeerSpec {
            name: name.clone(),
            address: addr,
            key: None,
        });
    }
    // A node fills its pool of count sessions once it is idle: measure the query (in count
    // mode, on a session prepared ahead) with nothing preparing beside it, as in steady state.
    for (holder, d) in holders.iter_mut().zip(&holder_dirs) {
        wait_for_pool(holder, d, o.holder_rows)?;
    }
    let query_opts = QueryOptions {
        blinding: o.blinding,
        ..QueryOptions::new(
            &dir.join("researcher"),
            &dir.join("dump.csv"),
            peers,
            o.mode,
        )
    };
    let measured = measure(o, &query_opts, &holders, &holder_dirs[0]).await?;
    drop(holders);
    floor.sample();
    Ok(figures(o, threads, import, &measured, floor.medians()))
}

fn check(o: &BenchOptions) -> Result<()> {
    if !(0.0..=1.0).contains(&o.overlap) {
        bail!("--overlap must be between 0 and 1");
    }
    if o.holder_rows == 0 || o.dump_rows == 0 {
        bail!("--holder-rows and --dump-rows must be at least 1");
    }
    if !(1..=MAX_HOLDERS).contains(&o.holders) {
        bail!("--holders must be between 1 and {MAX_HOLDERS}");
    }
    // Before anything is generated or imported.
    query::check_blinding(o.mode, o.blinding)
}

/// Each import in a process of its own; the first is timed (the others are the same work).
fn import_all(threads: usize, holder_dirs: &[PathBuf], list: &Path) -> Result<Duration> {
    let mut import = Duration::ZERO;
    for (i, d) in holder_dirs.iter().enumerate() {
        let t = Instant::now();
        import_list(threads, d, list)?;
        if i == 0 {
            import = t.elapsed();
        }
    }
    Ok(import)
}

/// What the query (and its repeat) measured, checked against the constructed overlap.
struct Measured {
    timing: QueryTiming,
    /// The first holder's exchange.
    stats: PeerStats,
    exchange_ms_per_holder: Vec<u64>,
    evaluate_ms: u64,
    querier_cpu: Duration,
    holder_rss: u64,
    matched: u64,
    repeat: Option<RepeatReport>,
}

async fn measure(
    o: &BenchOptions,
    query_opts: &QueryOptions,
    holders: &[Holder],
    first_holder: &Path,
) -> Result<Measured> {
    let cpu_before = cpu_time();
    let report = query::run(query_opts, crate::Silent).await?;
    let querier_cpu = cpu_time().saturating_sub(cpu_before);
    let repeat = match o.repeat {
        true => Some(repeat_query(query_opts).await?),
        false => None,
    };
    let holder_rss = holders
        .iter()
        .map(|h| peak_rss(&h.0.id().to_string()))
        .max()
        .unwrap_or(0);
    // Every holder has the same list: every answer must be the constructed overlap.
    let expected = shared_rows(o);
    let mut exchange_ms_per_holder = Vec::new();
    for peer in &report.peers {
        if let Some(e) = &peer.error {
            bail!("the query failed: {e}");
        }
        let matched: u64 = peer.matched_keys.values().sum();
        if matched != expected {
            bail!(
                "{} reported {matched} matched keys; the lists share {expected}",
                peer.name
            );
        }
        exchange_ms_per_holder.push(peer.stats.map_or(0, |s| s.wall_ms));
    }
    let evaluate_ms = NodeDir::open(first_holder)?
        .audit()
        .verify()?
        .iter()
        // The first query's (with --repeat, the second one's entry comes after it).
        .find_map(|e| e.record.evaluate_ms)
        .unwrap_or(0);
    Ok(Measured {
        timing: report.timing.context("no query timing")?,
        stats: report.peers[0].stats.context("no exchange statistics")?,
        exchange_ms_per_holder,
        evaluate_ms,
        querier_cpu,
        holder_rss,
        matched: expected,
        repeat,
    })
}

/// The same query again: the holder's tags now come from the kept set.
async fn repeat_query(query_opts: &QueryOptions) -> Result<RepeatReport> {
    let again = query::run(query_opts, crate::Silent).await?;
    let peer = &again.peers[0];
    if let Some(e) = &peer.error {
        bail!("the repeated query failed: {e}");
    }
    let stats = peer.stats.context("no exchange statistics")?;
    let timing = again.timing.context("no query timing")?;
    Ok(RepeatReport {
        query_ms: timing.read_ms + timing.blind_ms + stats.wall_ms,
        exchange_ms: stats.wall_ms,
        bytes_up: stats.bytes_sent,
        bytes_down: stats.bytes_received,
        tags_kept: stats.tags_kept,
        matched: peer.matched_keys.values().sum(),
    })
}

/// The figures, each beside its floor: `(h, m)` are one thread's hash-to-group and scalar
/// multiplication, in µs.
fn figures(
    o: &BenchOptions,
    threads: usize,
    import: Duration,
    x: &Measured,
    (h, m): (f64, f64),
) -> BenchReport {
    // The exchanges run at once: the query ends with the slowest.
    let exchange_ms = x.exchange_ms_per_holder.iter().copied().max().unwrap_or(0);
    let query_ms = x.timing.read_ms + x.timing.blind_ms + exchange_ms;
    let n = o.holders as f64;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let cores_in_use = ((1 + o.holders) * threads).min(cores).max(1);
    let query_floor = (h + (1.0 + 2.0 * n) * m) / cores_in_use as f64;
    let import_floor = (h + m) / threads as f64;
    let query_us = query_ms as f64 * 1000.0 / o.dump_rows as f64;
    let import_us = import.as_secs_f64() * 1e6 / o.holder_rows as f64;
    let tag_len = suyuan_protocol::psi::tag_len(o.dump_rows, o.holder_rows) as u64;
    BenchReport {
        // Its children inherit `SUYUAN_CURVE`, so they took the same path.
        curve: suyuan_protocol::oprf::curve_path().into(),
        blinding: o.blinding.unwrap_or(Blinding::for_mode(o.mode)),
        link: o.link.map_or("loopback".into(), |r| r.to_string()),
        payload_at_line_rate_ms: o.link.map_or(0, |r| {
            (r.seconds_for(64 * o.dump_rows + tag_len * o.holder_rows) * 1000.0) as u64
        }),
        holder_rows: o.holder_rows,
        dump_rows: o.dump_rows,
        overlap: o.overlap,
        mode: o.mode,
        threads,
        cores_in_use,
        import_ms: import.as_millis() as u64,
        import_keys_per_s: o.holder_rows as f64 / import.as_secs_f64().max(1e-9),
        read_ms: x.timing.read_ms,
        blind_ms: x.timing.blind_ms,
        blinding_ms: x.timing.blinding_ms.unwrap_or(0),
        exchange_ms,
        evaluate_ms: x.evaluate_ms,
        unblind_ms: x.stats.unblind_ms,
        query_ms,
        query_us_per_key: query_us,
        bytes_up: x.stats.bytes_sent,
        bytes_down: x.stats.bytes_received,
        payload_floor_bytes: 64 * o.dump_rows + tag_len * o.holder_rows,
        datagrams_lost_up: x.stats.datagrams_lost,
        querier_peak_rss: peak_rss("self"),
        holder_peak_rss: x.holder_rss,
        holders: o.holders,
        exchange_ms_per_holder: x.exchange_ms_per_holder.clone(),
        querier_cpu_ms: x.querier_cpu.as_millis() as u64,
        querier_cpu_floor_us_per_key: h + (1.0 + n) * m,
        floor_hash_to_group_us: h,
        floor_scalar_mul_us: m,
        query_floor_us_per_key: query_floor,
        import_floor_us_per_key: import_floor,
        query_ratio: query_us / query_floor,
        import_ratio: import_us / import_floor,
        matched: x.matched,
        repeat: x.repeat.clone(),
        holder_prepared_keys: x.stats.holder_prepared_keys,
    }
}

/// The report as lines for a terminal.
pub fn render(r: &BenchReport) -> String {
    let mut out = timings(r);
    // In count mode evaluation and unblinding follow each other, so what is left of the
    // exchange is transfer and waiting; in matches mode they overlap and the difference means
    // nothing.
    if r.mode == QueryMode::Count && r.holders == 1 {
        let rest = r
            .exchange_ms
            .saturating_sub(r.evaluate_ms)
            .saturating_sub(r.unblind_ms);
        let _ = writeln!(
            out,
            "  transfer+waiting {rest:>9} ms  (the exchange minus both sides' computing)"
        );
    }
    if r.mode == QueryMode::Count {
        let _ = match r.holder_prepared_keys {
            0 => writeln!(
                out,
                "  count session    prepared ahead, in the holder's pool"
            ),
            n => writeln!(
                out,
                "  count session    prepared during the query, over {n} keys"
            ),
        };
    }
    out.push_str(&costs(r));
    if r.payload_at_line_rate_ms > 0 {
        let _ = writeln!(
            out,
            "link {:<12} the payload floor alone takes {} ms at line rate; the query took {:.2}x that",
            r.link,
            r.payload_at_line_rate_ms,
            r.query_ms as f64 / r.payload_at_line_rate_ms as f64
        );
    }
    if let Some(x) = &r.repeat {
        let _ = writeln!(
            out,
            "repeat query      {:>10} ms  (exchange {} ms), {:.1} MiB up, {:.1} MiB down, tags {}; matched keys {}",
            x.query_ms,
            x.exchange_ms,
            mib(x.bytes_up),
            mib(x.bytes_down),
            if x.tags_kept { "kept" } else { "downloaded" },
            x.matched
        );
    }
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The headline, import and query lines.
fn timings(r: &BenchReport) -> String {
    format!(
        "suyuan bench: holder {} rows, dump {} rows, overlap {}, mode {} ({} blinding), {} thread(s) per process, {} core(s) in use, curve path {}, link {}\n\
         import            {:>10} ms  {:>10.0} keys/s   {:.2}x its floor ({:.2} µs/key)\n\
         query (wall)      {:>10} ms  {:>10.2} µs/key   {:.2}x its floor ({:.2} µs/key)\n\
         \x20 read+canonicalise {:>8} ms\n\
         \x20 blind: plan      {:>9} ms, then blinding {} ms beside the exchange\n\
         \x20 exchange (wall)  {:>9} ms  (inside: holder evaluating {} ms, querier unblinding+tagging+intersecting {} ms)\n",
        r.holder_rows,
        r.dump_rows,
        r.overlap,
        r.mode,
        r.blinding,
        r.threads,
        r.cores_in_use,
        r.curve,
        r.link,
        r.import_ms,
        r.import_keys_per_s,
        r.import_ratio,
        r.import_floor_us_per_key,
        r.query_ms,
        r.query_us_per_key,
        r.query_ratio,
        r.query_floor_us_per_key,
        r.read_ms,
        r.blind_ms,
        r.blinding_ms,
        r.exchange_ms,
        r.evaluate_ms,
        r.unblind_ms,
    )
}

/// Wire, CPU, holders, memory, the floor and the answer.
fn costs(r: &BenchReport) -> String {
    let querier_cpu_us = r.querier_cpu_ms as f64 * 1000.0 / r.dump_rows.max(1) as f64;
    let mut out = format!(
        "wire              {:>10.1} MiB up, {:.1} MiB down ({:.3}x the payload floor of {:.1} MiB; {} datagrams up lost and resent)\n\
         querier CPU       {:>10} ms  {:>10.2} µs/key   {:.2}x its floor (hash-to-group + {} multiplications: {:.2} µs/key)\n",
        mib(r.bytes_up),
        mib(r.bytes_down),
        (r.bytes_up + r.bytes_down) as f64 / r.payload_floor_bytes.max(1) as f64,
        mib(r.payload_floor_bytes),
        r.datagrams_lost_up,
        r.querier_cpu_ms,
        querier_cpu_us,
        querier_cpu_us / r.querier_cpu_floor_us_per_key.max(1e-9),
        1 + r.holders,
        r.querier_cpu_floor_us_per_key,
    );
    if r.holders > 1 {
        let each: Vec<String> = r
            .exchange_ms_per_holder
            .iter()
            .map(u64::to_string)
            .collect();
        let _ = writeln!(
            out,
            "holders           {} at once, exchanges {} ms",
            r.holders,
            each.join(" / ")
        );
    }
    let _ = write!(
        out,
        "peak RSS          querier {:.0} MiB, holder {:.0} MiB\n\
         floor (1 thread)  hash-to-group {:.2} µs, scalar multiplication {:.2} µs\n\
         matched keys      {}\n",
        mib(r.querier_peak_rss),
        mib(r.holder_peak_rss),
        r.floor_hash_to_group_us,
        r.floor_scalar_mul_us,
        r.matched,
    );
    out
}

/// Reports written before the bench said its blinding used the multiplicative one.
fn multiplicative() -> Blinding {
    Blinding::Multiplicative
}
