//! The command line: raw flags ([`args`]), one small function per command ([`node`], [`query`],
//! [`tools`]), and everything `suyuan` prints ([`render`], [`progress`]).

/// `println!` that ends the process quietly once standard output is closed (`suyuan status |
/// head`): `println!` would panic there. Defined before the modules that use it.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!`, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

mod args;
mod node;
mod progress;
mod query;
mod render;
mod tools;

use anyhow::{Context, Result};
use clap::Parser;

use args::{
    AuditCommand, CaCommand, CacheCommand, CanaryCommand, Cli, Command, CrlCommand, WarrantCommand,
};

/// `SUYUAN_CURVE=dalek` keeps every batch on dalek's path, even where the CPU runs eight
/// points per instruction (to compare the two in benchmarks); `auto` or unset takes the best.
fn choose_curve_path() -> Result<()> {
    match std::env::var("SUYUAN_CURVE").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("auto") => Ok(()),
        Ok("dalek") => {
            suyuan_protocol::oprf::set_dalek_only(true);
            Ok(())
        }
        Ok(other) => anyhow::bail!("SUYUAN_CURVE={other:?}: expected auto or dalek"),
        Err(e) => anyhow::bail!("SUYUAN_CURVE: {e}"),
    }
}

/// Parses the flags and runs the command; any error is printed by `main`.
pub(crate) fn run() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    choose_curve_path()?;
    let quiet = cli.quiet;
    match cli.command {
        Command::Demo(a) => tools::demo(a, quiet),
        Command::Gen(a) => tools::gen_data(a, quiet),
        Command::Bench(a) => tools::bench(a),
        Command::PsiLocal(a) => tools::psi_local(a),
        Command::Report(a) => query::report(a),
        Command::Verify(a) => query::verify(a),
        Command::Query(a) => query::query(a, quiet),
        Command::Ca(CaCommand::Init { dir, name }) => node::ca_init(&dir, &name),
        Command::Ca(CaCommand::Issue {
            ca,
            name,
            role,
            out,
            days,
        }) => node::ca_issue(&ca, &name, role, &out, days),
        Command::Ca(CaCommand::Renew { ca, node, days }) => node::ca_renew(&ca, &node, days),
        Command::Ca(CaCommand::Revoke {
            ca,
            name,
            reason,
            cert,
            days,
        }) => node::ca_revoke(&ca, &name, cert.as_deref(), &reason, days),
        Command::Ca(CaCommand::Crl { ca, out, days }) => node::ca_crl(&ca, &out, days),
        Command::Ca(CaCommand::Directory { ca, add, days, out }) => {
            node::ca_directory(&ca, &add, days, &out)
        }
        Command::Crl(CrlCommand::Install { node, file }) => node::crl_install(&node, &file),
        Command::Import(a) => node::import(a, quiet),
        Command::Serve(a) => node::serve(a),
        Command::Status(a) if a.json => node::status_json(&a.node),
        Command::Status(a) => node::status(&a.node),
        Command::Cache(CacheCommand::Clear(a)) => node::cache_clear(&a.node),
        Command::Canary(CanaryCommand::Mint(a)) => tools::canary_mint(a),
        Command::Audit(AuditCommand::Verify(a)) => node::audit_verify(&a.node),
        Command::Audit(AuditCommand::Show { node, json }) => node::audit_show(&node, json),
        Command::Warrant(WarrantCommand::Issue(a)) => query::warrant_issue(a),
        Command::Publish(a) => query::publish(a, quiet),
        Command::Check(a) => query::check(a, quiet),
    }
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

/// The async runtime, with `threads` workers if given (every core otherwise).
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = threads {
        rt.worker_threads(t);
    }
    rt.enable_all()
        .build()
        .context("starting the async runtime")
}

/// Prints a line, ignoring a closed standard output.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Writes `text` to `path`, naming the file if that fails.
fn write_file(path: &std::path::Path, text: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes to standard output; a closed one (the reader went away) ends the process with
/// success, as `head` expects of the commands before it. Other write errors are ignored: the
/// command's outcome is its exit status and its files, not its chatter.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}
