//! The command line: flags, one function per command, and everything `suyuan` prints.

mod progress;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use progress::Bar;
use suyuan_node::lists::import;
use suyuan_node::lists::{InputOptions, parse_override};
use suyuan_node::net::server::Server;
use suyuan_node::node_dir::audit::{AuditLog, Entry};
use suyuan_node::node_dir::config::{self, DEFAULT_NODE_TOML, NODE_TOML};
use suyuan_node::node_dir::identity::{self, Role};
use suyuan_node::node_dir::store;
use suyuan_node::node_dir::tag_cache::TagCache;
use suyuan_node::query::html;
use suyuan_node::query::{self, QueryOptions, parse_peer};
use suyuan_node::tools::bench::{self, load as bench_load};
use suyuan_node::tools::demo::{self, DemoOptions};
use suyuan_node::tools::psi_local::{self, PsiLocalConfig};
use suyuan_node::tools::synth::{self, GenConfig};
use suyuan_node::{clock, text};
use suyuan_protocol::ident::{Field, KeySelection, KeyType};
use suyuan_protocol::psi::QueryMode;

/// suyuan (溯源): private set intersection for tracing leaked personal records.
#[derive(Debug, Parser)]
#[command(name = "suyuan", version, about)]
struct Cli {
    /// No progress bars or step lines (results and errors are still printed).
    #[arg(long, global = true)]
    quiet: bool,
    /// Log what happens on stderr: -v for each query and connection, -vv for more. RUST_LOG
    /// (e.g. RUST_LOG=suyuan_node=debug) takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A whole federation on loopback: synthetic data, CA, four institutions, the police, a
    /// count and a matches query, checked against the ground truth, with an HTML report.
    Demo {
        /// Directory for everything (default: a new one under the system temp directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Rows of the seized dump (the population is five times as many).
        #[arg(long, default_value_t = 20_000)]
        rows: u64,
    },
    /// Measure the whole path: import, then a query over QUIC on 127.0.0.1 with holder and
    /// querier as separate processes, against the curve's floor measured in the same run.
    Bench {
        /// Rows of the holder's list (one mobile number each).
        #[arg(long, default_value_t = 100_000)]
        holder_rows: u64,
        /// Rows of the dump (one mobile number each).
        #[arg(long, default_value_t = 100_000)]
        dump_rows: u64,
        /// Share of dump rows that are the holder's customers.
        #[arg(long, default_value_t = 0.5)]
        overlap: f64,
        /// count or matches.
        #[arg(long, default_value = "count", value_parser = ["count", "matches"])]
        mode: String,
        /// Threads per process (default: every core).
        #[arg(long)]
        threads: Option<usize>,
        /// Write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Working directory (default: a new one under the temp directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Load: run this many queries (separate processes) against the holder at once.
        #[arg(long, default_value_t = 1)]
        concurrent: usize,
        /// Load: querier identities the concurrent queries come from (default: up to 4).
        #[arg(long)]
        queriers: Option<usize>,
        /// Run the query a second time, with the tag set kept from the first.
        #[arg(long)]
        repeat: bool,
        /// Query this many holders at once (each its own process and key, the same list): the
        /// dump is read and blinded once for all of them.
        #[arg(long, default_value_t = 1)]
        holders: usize,
    },
    /// Synthetic customer lists and a seized dump with ground truth (truth.json).
    Gen {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Seed: the same seed gives the same files, byte for byte.
        #[arg(long, default_value_t = 2019)]
        seed: u64,
        /// Rows of the dump (default 20000 × scale).
        #[arg(long)]
        dump_rows: Option<u64>,
        /// Size of the population the lists draw from (default 100000 × scale).
        #[arg(long)]
        population: Option<u64>,
        /// Multiplies the default sizes (e.g. 100 for a 2-million-row dump).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Turn a JSON report of `suyuan query` into a self-contained HTML report.
    Report {
        /// The JSON report.
        #[arg(long)]
        json: PathBuf,
        /// Where to write the HTML.
        #[arg(long)]
        html: PathBuf,
        /// Flag institutions with at least this many matched records.
        #[arg(long, default_value_t = suyuan_node::query::html::DEFAULT_THRESHOLD)]
        threshold: u64,
    },
    /// The federation's certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Import a customer list as the node's new epoch (fresh key; the old epoch is overwritten).
    Import(ImportArgs),
    /// Answer queries from the federation until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Query peers with a dump; print one row per peer and optionally write a JSON report.
    Query(QueryArgs),
    /// Inspect or verify the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Show the node's identity, epoch, policy and recent queries.
    Status(NodeArg),
    /// The tag sets this node keeps from earlier queries (`[query] tag_cache_mib`).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Run holder and querier in one process on two files (no network).
    PsiLocal(PsiLocalArgs),
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create a federation CA in a new directory.
    Init {
        /// Directory to create (must not exist or be empty).
        #[arg(long)]
        dir: PathBuf,
        /// The CA's name.
        #[arg(long, default_value = "suyuan federation CA")]
        name: String,
    },
    /// Issue a node identity (certificate binding name and role) into a new node directory.
    Issue {
        /// The CA directory.
        #[arg(long)]
        ca: PathBuf,
        /// Node name: lower-case letters, digits, hyphens.
        #[arg(long)]
        name: String,
        /// institution, police or researcher.
        #[arg(long)]
        role: String,
        /// The node directory to create.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
struct NodeArg {
    /// The node directory.
    #[arg(long)]
    node: PathBuf,
}

#[derive(Debug, Args)]
struct InputArgs {
    /// Override a detected column: FIELD=HEADER (e.g. mobile=手机号码). Fields: name, mobile,
    /// resident_id, bank_card, email, birthdate, address.
    #[arg(long = "column", value_name = "FIELD=HEADER")]
    columns: Vec<String>,
    /// Key types: "strong" (mobile, resident_id, bank_card, email), "all", or a list.
    #[arg(long, default_value = "strong")]
    keys: String,
}

impl InputArgs {
    fn options(&self) -> Result<InputOptions> {
        Ok(InputOptions {
            overrides: overrides(&self.columns)?,
            selection: selection(&self.keys)?,
        })
    }
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// The node directory.
    #[arg(long)]
    node: PathBuf,
    /// The customer list (CSV or TSV, UTF-8 or GB18030).
    #[arg(long)]
    input: PathBuf,
    #[command(flatten)]
    input_args: InputArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The node directory.
    #[arg(long)]
    node: PathBuf,
    /// Address to listen on (default: node.toml's network.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// The node directory (a police or researcher node).
    #[arg(long)]
    node: PathBuf,
    /// The dump (CSV or TSV, UTF-8 or GB18030).
    #[arg(long)]
    input: PathBuf,
    /// A peer to ask: NAME=HOST:PORT (repeat for several; asked concurrently).
    #[arg(long = "peer", value_name = "NAME=HOST:PORT", required = true)]
    peers: Vec<String>,
    /// count: how many keys matched, per type; matches: which dump rows matched.
    #[arg(long, value_parser = ["count", "matches"])]
    mode: String,
    /// The case number, recorded in every audit log.
    #[arg(long = "case")]
    case: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// With --html: flag institutions with at least this many matched records.
    #[arg(long, default_value_t = suyuan_node::query::html::DEFAULT_THRESHOLD)]
    threshold: u64,
    #[command(flatten)]
    input_args: InputArgs,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Delete every kept tag set; the next query to each holder downloads its tags again.
    Clear(NodeArg),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; name the first edited, deleted or reordered entry.
    Verify(NodeArg),
    /// Print the entries (after verifying them).
    Show {
        /// The node directory.
        #[arg(long)]
        node: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct PsiLocalArgs {
    /// The holder's customer list (CSV or TSV).
    #[arg(long)]
    holder: PathBuf,
    /// The querier's dump (CSV or TSV).
    #[arg(long)]
    querier: PathBuf,
    /// count: how many keys matched, per type; matches: which dump rows matched.
    #[arg(long, value_parser = ["count", "matches"])]
    mode: String,
    /// Override a detected column of the holder file: FIELD=HEADER (e.g. mobile=手机号码).
    #[arg(long = "holder-column", value_name = "FIELD=HEADER")]
    holder_columns: Vec<String>,
    /// Override a detected column of the dump: FIELD=HEADER.
    #[arg(long = "querier-column", value_name = "FIELD=HEADER")]
    querier_columns: Vec<String>,
    /// Key types to match: "strong" (mobile, resident_id, bank_card, email), "all", or a
    /// comma-separated list (e.g. mobile,name_birthdate).
    #[arg(long, default_value = "strong")]
    keys: String,
}

fn selection(s: &str) -> Result<KeySelection> {
    match s {
        "strong" => Ok(KeySelection::strong()),
        "all" => Ok(KeySelection::all()),
        list => {
            let types = list
                .split(',')
                .map(|t| t.trim().parse::<KeyType>())
                .collect::<Result<Vec<_>, _>>()?;
            if types.is_empty() {
                bail!("--keys: no key type given");
            }
            Ok(KeySelection::only(&types))
        }
    }
}

fn overrides(raw: &[String]) -> Result<Vec<(Field, String)>> {
    raw.iter().map(|s| parse_override(s)).collect()
}

fn mode(s: &str) -> Result<QueryMode> {
    s.parse().map_err(anyhow::Error::msg)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves at SIGTERM or Ctrl-C. The handlers are installed before this returns, so a signal
/// that arrives right after start-up (say, once "listening" is printed) already stops cleanly.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

fn print_quality(q: &suyuan_protocol::ident::Quality) {
    let keys: Vec<String> = q.keys.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "{} rows, {} without a usable key; keys: {}",
        q.rows,
        q.rows_without_key,
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        }
    );
    for (field, reasons) in &q.rejected {
        for (reason, n) in reasons {
            println!("  rejected {field}: {reason} ({n})");
        }
    }
}

fn audit_line(e: &Entry) -> String {
    let r = &e.record;
    format!(
        "{:>5}  {}  {:<7}  {:<16}  {:<11}  {:<14}  {:<7}  {:>9}  {:<9}  {}",
        e.seq,
        e.time,
        match r.side {
            suyuan_node::node_dir::audit::Side::Holder => "holder",
            suyuan_node::node_dir::audit::Side::Querier => "querier",
        },
        r.peer,
        r.peer_role.map_or("-".to_string(), |x| x.to_string()),
        r.case.as_deref().unwrap_or("-"),
        r.mode.map_or("-", |m| m.as_str()),
        r.query_keys.map_or("-".to_string(), |n| n.to_string()),
        serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        // A peer's words (an abort reason) never reach the terminal as control sequences.
        text::printable(r.detail.as_deref().unwrap_or(""))
    )
}

fn status(node: &Path) -> Result<()> {
    store::check_node_dir(node)?;
    let id = identity::load_node(node)?;
    println!(
        "node {} ({}), certificate sha256 {}",
        id.me.name, id.me.role, id.me.fingerprint
    );
    // The whole store is read and checked against its digest, as `serve` would.
    match store::read_epoch(node) {
        Ok(Some((_, m))) => {
            let sizes: Vec<String> = m.sizes.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "epoch {} imported {} from {} ({} rows); keys: {}; content verified",
                m.id,
                clock::rfc3339(m.created),
                m.source,
                m.rows,
                sizes.join(", ")
            );
        }
        Ok(None) => println!("no customer list imported"),
        Err(e) => println!("epoch: DAMAGED: {e:#}"),
    }
    let cfg = config::load(node)?;
    println!("policy: {}", cfg.policy.summary());
    let (sets, bytes) = TagCache::new(node, cfg.query.tag_cache_bytes()).usage();
    println!(
        "tag cache: {sets} kept set(s), {:.1} of {} MiB",
        bytes as f64 / (1 << 20) as f64,
        cfg.query.tag_cache_mib
    );
    match AuditLog::new(node).verify() {
        Ok(entries) => {
            println!("audit log: {} entries, chain intact", entries.len());
            let recent: Vec<&Entry> = entries.iter().rev().take(10).collect();
            if !recent.is_empty() {
                println!("recent:");
                for e in recent.into_iter().rev() {
                    println!("{}", audit_line(e));
                }
            }
        }
        Err(e) => println!("audit log: DAMAGED: {e:#}"),
    }
    Ok(())
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let quiet = cli.quiet;
    match cli.command {
        Command::Demo { dir, rows } => {
            let opts = DemoOptions { dir, rows };
            let outcome = runtime()?.block_on(demo::run(&opts, &mut Bar::new(quiet)))?;
            if !outcome.disagreements.is_empty() {
                bail!(
                    "the results disagree with the ground truth in {} place(s); see above",
                    outcome.disagreements.len()
                );
            }
        }
        Command::Gen {
            out,
            seed,
            dump_rows,
            population,
            scale,
        } => {
            if !(scale > 0.0 && scale.is_finite()) {
                bail!("--scale must be a positive number");
            }
            let d = GenConfig::default();
            let cfg = GenConfig {
                seed,
                population: population.unwrap_or((d.population as f64 * scale).round() as u64),
                dump_rows: dump_rows.unwrap_or((d.dump_rows as f64 * scale).round() as u64),
            };
            let truth = synth::generate(&out, &cfg, &mut Bar::new(quiet))?;
            for t in &truth.institutions {
                println!("{}: {} rows", out.join(&t.file).display(), t.rows);
            }
            println!(
                "{}: {} rows; ground truth in {}",
                out.join(synth::DUMP_FILE).display(),
                truth.dump.rows,
                out.join(synth::TRUTH_FILE).display()
            );
        }
        Command::Bench {
            holder_rows,
            dump_rows,
            overlap,
            mode: m,
            threads,
            json,
            dir,
            concurrent,
            queriers,
            repeat,
            holders,
        } => {
            if threads == Some(0) {
                bail!("--threads must be at least 1");
            }
            if let Some(t) = threads {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build_global()
                    .context("sizing the thread pool")?;
            }
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(t) = threads {
                rt.worker_threads(t);
            }
            let rt = rt
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let opts = bench::BenchOptions {
                holder_rows,
                dump_rows,
                overlap,
                mode: mode(&m)?,
                threads,
                dir,
                repeat,
                holders,
            };
            if !(1..=bench::MAX_HOLDERS).contains(&holders) {
                bail!("--holders must be between 1 and {}", bench::MAX_HOLDERS);
            }
            if concurrent > 1 && holders > 1 {
                bail!("--concurrent and --holders cannot be combined");
            }
            let report = if concurrent > 1 {
                let queriers = queriers.unwrap_or(concurrent.min(4));
                let report = bench_load::run(&opts, concurrent, queriers)?;
                print!("{}", bench_load::render(&report));
                serde_json::to_string_pretty(&report)?
            } else {
                let report = rt.block_on(bench::run(&opts))?;
                print!("{}", bench::render(&report));
                serde_json::to_string_pretty(&report)?
            };
            if let Some(path) = json {
                std::fs::write(&path, report + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Command::Report {
            json,
            html,
            threshold,
        } => {
            let text = std::fs::read_to_string(&json)
                .with_context(|| format!("cannot read {}", json.display()))?;
            let report: query::Report = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a suyuan query report", json.display()))?;
            std::fs::write(&html, html::render_html(&report, threshold))
                .with_context(|| format!("cannot write {}", html.display()))?;
            println!("report written to {}", html.display());
        }
        Command::Ca(CaCommand::Init { dir, name }) => {
            let fp = identity::ca_init(&dir, &name)?;
            println!(
                "created CA {name:?} in {} (certificate sha256 {fp})",
                dir.display()
            );
        }
        Command::Ca(CaCommand::Issue {
            ca,
            name,
            role,
            out,
        }) => {
            let role: Role = role.parse()?;
            let fp = identity::ca_issue(&ca, &name, role, &out)?;
            std::fs::write(out.join(NODE_TOML), DEFAULT_NODE_TOML)
                .with_context(|| format!("cannot write {}", out.join(NODE_TOML).display()))?;
            println!(
                "issued {name} ({role}) into {} (certificate sha256 {fp}); edit {NODE_TOML} for its policy",
                out.display()
            );
        }
        Command::Import(a) => {
            let (summary, meta) = import::run(
                &a.node,
                &a.input,
                &a.input_args.options()?,
                &mut Bar::new(quiet),
            )?;
            println!("{} ({summary})", a.input.display());
            print_quality(&summary.quality);
            let sizes: Vec<String> = meta.sizes.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "new epoch {}: distinct keys {}; it replaces the previous epoch",
                meta.id,
                sizes.join(", ")
            );
        }
        Command::Serve(a) => {
            let rt = runtime()?;
            rt.block_on(async {
                let stop = stop_signal()?;
                let server = Server::bind(&a.node, a.listen)?;
                if let Some(w) = server.buffer_warning() {
                    tracing::warn!("{w}");
                }
                // A closed standard output (a detached operator) must not stop the node.
                let line = format!(
                    "listening on {} ({})",
                    server.local_addr()?,
                    server.describe().await
                );
                say(&line);
                server.run(stop).await?;
                say("stopped");
                Ok::<_, anyhow::Error>(())
            })?;
        }
        Command::Query(a) => {
            let opts = QueryOptions {
                node: a.node,
                input: a.input,
                input_options: a.input_args.options()?,
                peers: a
                    .peers
                    .iter()
                    .map(|p| parse_peer(p))
                    .collect::<Result<_>>()?,
                mode: mode(&a.mode)?,
                case: a.case,
            };
            let report = runtime()?.block_on(query::run(&opts, Bar::new(quiet)))?;
            print!("{}", query::report::render(&report));
            if let Some(path) = &a.json {
                query::report::write_json(&report, path)?;
                println!("report written to {}", path.display());
            }
            if let Some(path) = &a.html {
                std::fs::write(path, html::render_html(&report, a.threshold))
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("report written to {}", path.display());
            }
            if report.peers.iter().all(|p| p.error.is_some()) {
                bail!("no peer answered");
            }
        }
        Command::Cache(CacheCommand::Clear(a)) => {
            store::check_node_dir(&a.node)?;
            let (sets, bytes) = TagCache::new(&a.node, 0).clear()?;
            println!(
                "removed {sets} kept tag set(s), {:.1} MiB",
                bytes as f64 / (1 << 20) as f64
            );
        }
        Command::Audit(AuditCommand::Verify(a)) => {
            let entries = AuditLog::new(&a.node)
                .verify()
                .context("audit log verification failed")?;
            println!("audit log intact: {} entries", entries.len());
        }
        Command::Audit(AuditCommand::Show { node, json }) => {
            let entries = AuditLog::new(&node).verify()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entries)?);
            } else {
                for e in &entries {
                    println!("{}", audit_line(e));
                }
            }
        }
        Command::Status(a) => status(&a.node)?,
        Command::PsiLocal(a) => {
            let sel = selection(&a.keys)?;
            let cfg = PsiLocalConfig {
                holder: a.holder,
                holder_input: InputOptions {
                    overrides: overrides(&a.holder_columns)?,
                    selection: sel.clone(),
                },
                querier: a.querier,
                querier_input: InputOptions {
                    overrides: overrides(&a.querier_columns)?,
                    selection: sel,
                },
                mode: mode(&a.mode)?,
            };
            let report = psi_local::run(&cfg, &mut rand::rng())?;
            print!("{}", psi_local::render(&cfg, &report));
        }
    }
    Ok(())
}

/// Prints a line, ignoring a closed standard output.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

pub(crate) fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("suyuan: {e:#}");
            ExitCode::FAILURE
        }
    }
}
