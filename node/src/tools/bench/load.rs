//! `suyuan bench --concurrent N`: one holder process under load from N query processes at
//! once, spread over several querier identities. Measures what an operator sizes a node by:
//! the whole run's wall time and throughput, each query's wall time (slowest over median shows
//! starvation), refusals, and the holder's peak memory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use suyuan_protocol::psi::QueryMode;

use crate::node_dir::NodeDir;
use crate::node_dir::audit::Outcome;
use crate::query;
use crate::tools::bench::{
    BenchOptions, Holder, fresh_federation, import_list, peak_rss, shared_rows, start_holder,
    suyuan, working_dir,
};

/// What a load run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Holder rows (= keys).
    pub holder_rows: u64,
    /// Rows (= keys) of each query's dump.
    pub dump_rows: u64,
    /// Mode of every query.
    pub mode: QueryMode,
    /// Queries started at once.
    pub concurrent: usize,
    /// Distinct querier identities they came from.
    pub queriers: usize,
    /// Threads per process.
    pub threads: usize,
    /// First start to last finish, ms.
    pub wall_ms: u64,
    /// Dump keys answered per second over the whole run.
    pub keys_per_s: f64,
    /// Per-query wall time (process start to exit), ms: fastest, median, slowest.
    pub query_ms_min: u64,
    /// Median of the per-query wall times.
    pub query_ms_median: u64,
    /// Slowest query.
    pub query_ms_max: u64,
    /// Queries the holder refused (busy or otherwise); 0 when the policy admits them all.
    pub refused: usize,
    /// Queries that ended without an answer (refused ones included).
    pub failed: usize,
    /// Queries whose answer differed from the expected count.
    pub wrong: usize,
    /// Peak resident memory of the holder, bytes.
    pub holder_peak_rss: u64,
}

/// Runs `concurrent` queries of `o.dump_rows` keys each at once against one holder.
pub fn run(o: &BenchOptions, concurrent: usize, queriers: usize) -> Result<LoadReport> {
    if concurrent == 0 || queriers == 0 || queriers > concurrent {
        bail!("--concurrent must be at least 1 and --queriers between 1 and --concurrent");
    }
    let threads = o.threads.unwrap_or_else(rayon::current_num_threads);
    let dir = working_dir(o, "suyuan-load")?;
    let shared = shared_rows(o);
    let holder_dir = dir.join("holder");
    let querier_dirs = federation(&dir, o, concurrent, queriers)?;
    import_list(threads, &holder_dir, &dir.join("holder.csv"))?;
    let (holder, addr) = start_holder(threads, &holder_dir, None)?;

    let started = Instant::now();
    let query = |i: usize| {
        let mut c = suyuan(threads)?;
        c.args(["--quiet", "query", "--mode", o.mode.as_str(), "--node"])
            .arg(&querier_dirs[i % queriers])
            .arg("--input")
            .arg(dir.join("dump.csv"))
            .args(["--peer", &format!("holder={addr}"), "--json"])
            .arg(dir.join(format!("report-{i}.json")));
        Ok(c)
    };
    let mut times = run_all(concurrent, query)?;
    let wall = started.elapsed();
    let holder_rss = peak_rss(&holder.0.id().to_string());
    drop(holder);
    times.sort_unstable();
    let reports: Vec<PathBuf> = (0..concurrent)
        .map(|i| dir.join(format!("report-{i}.json")))
        .collect();
    let (wrong, failed) = check_answers(&reports, shared)?;
    let refused = NodeDir::open(&holder_dir)?
        .audit()
        .verify()?
        .iter()
        .filter(|e| e.record.outcome == Outcome::Refused)
        .count();
    Ok(LoadReport {
        holder_rows: o.holder_rows,
        dump_rows: o.dump_rows,
        mode: o.mode,
        concurrent,
        queriers,
        threads,
        wall_ms: wall.as_millis() as u64,
        keys_per_s: (concurrent as u64 * o.dump_rows) as f64 / wall.as_secs_f64().max(1e-9),
        query_ms_min: times[0],
        query_ms_median: times[times.len() / 2],
        query_ms_max: times[times.len() - 1],
        refused,
        failed,
        wrong,
        holder_peak_rss: holder_rss,
    })
}

/// One holder admitting `concurrent` queries at once, and `queriers` querier nodes; their
/// directories.
fn federation(
    dir: &Path,
    o: &BenchOptions,
    concurrent: usize,
    queriers: usize,
) -> Result<Vec<PathBuf>> {
    let querier_names: Vec<String> = (0..queriers).map(|i| format!("researcher-{i}")).collect();
    let big = (o.holder_rows.max(o.dump_rows) * 2).saturating_mul(concurrent as u64);
    let holder = ["holder".to_string()];
    fresh_federation(dir, &holder, &querier_names, 600, big, concurrent)?;
    Ok(querier_names.iter().map(|n| dir.join(n)).collect())
}

/// Starts `count` query processes at once and waits for all; each one's wall time, ms.
fn run_all(count: usize, query: impl Fn(usize) -> Result<Command>) -> Result<Vec<u64>> {
    let mut running = Vec::new();
    for i in 0..count {
        let child = query(i)?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting a query")?;
        running.push((Holder(child), Instant::now(), None::<Duration>));
    }
    // Poll so that each query's own wall time is known, not only the batch's.
    while running.iter().any(|r| r.2.is_none()) {
        for r in running.iter_mut().filter(|r| r.2.is_none()) {
            if r.0.0.try_wait()?.is_some() {
                r.2 = Some(r.1.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(running
        .iter()
        .map(|r| r.2.map_or(0, |d| d.as_millis() as u64))
        .collect())
}

/// Reads every query's report: how many answers were wrong and how many queries failed.
fn check_answers(reports: &[PathBuf], shared: u64) -> Result<(usize, usize)> {
    let mut wrong = 0;
    let mut failed = 0;
    for out in reports {
        let text = std::fs::read_to_string(out)
            .with_context(|| format!("a query wrote no report ({})", out.display()))?;
        let report: query::Report = serde_json::from_str(&text)?;
        match report.peers.first() {
            Some(p) if p.error.is_none() => {
                let matched: u64 = p.matched_keys.values().sum();
                wrong += usize::from(matched != shared);
            }
            _ => failed += 1,
        }
    }
    Ok((wrong, failed))
}

/// The report as lines for a terminal.
pub fn render(r: &LoadReport) -> String {
    format!(
        "suyuan bench (load): {} queries at once from {} queriers, each {} keys ({}), against a holder of {} rows; {} thread(s) per process\n\
         whole run        {:>10} ms  {:>10.0} keys/s\n\
         each query       {:>10} ms fastest, {} ms median, {} ms slowest ({:.2}x the median)\n\
         failed           {:>10} ({} refused by the holder)\n\
         wrong answers    {:>10}\n\
         holder peak RSS  {:>10.0} MiB\n",
        r.concurrent,
        r.queriers,
        r.dump_rows,
        r.mode,
        r.holder_rows,
        r.threads,
        r.wall_ms,
        r.keys_per_s,
        r.query_ms_min,
        r.query_ms_median,
        r.query_ms_max,
        r.query_ms_max as f64 / r.query_ms_median.max(1) as f64,
        r.failed,
        r.refused,
        r.wrong,
        r.holder_peak_rss as f64 / (1 << 20) as f64
    )
}
