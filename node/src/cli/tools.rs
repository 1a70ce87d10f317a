//! The tools that ship with the node: demo, gen, bench, psi-local.

use anyhow::{Context, Result, bail};
use suyuan_node::lists::InputOptions;
use suyuan_node::tools::bench::{self, BenchOptions, load as bench_load};
use suyuan_node::tools::canary::{self, CanaryKind};
use suyuan_node::tools::demo::{self, DemoOptions};
use suyuan_node::tools::psi_local::{self, PsiLocalConfig};
use suyuan_node::tools::synth::{self, GenConfig};

use super::args::{BenchArgs, DemoArgs, GenArgs, MintArgs, PsiLocalArgs};
use super::progress::Bar;
use super::{runtime, write_file};

pub(crate) fn demo(a: DemoArgs, quiet: bool) -> Result<()> {
    let opts = DemoOptions {
        dir: a.dir,
        rows: a.rows,
    };
    let outcome = runtime(None)?.block_on(demo::run(&opts, &mut Bar::new(quiet)))?;
    if !outcome.disagreements.is_empty() {
        bail!(
            "the results disagree with the ground truth in {} place(s); see above",
            outcome.disagreements.len()
        );
    }
    Ok(())
}

pub(crate) fn gen_data(a: GenArgs, quiet: bool) -> Result<()> {
    let d = GenConfig::default();
    let scaled = |n: u64| (n as f64 * a.scale).round() as u64;
    let cfg = GenConfig {
        seed: a.seed,
        population: a.population.unwrap_or(scaled(d.population)),
        dump_rows: a.dump_rows.unwrap_or(scaled(d.dump_rows)),
    };
    let truth = synth::generate(&a.out, &cfg, &mut Bar::new(quiet))?;
    for t in &truth.institutions {
        outln!("{}: {} rows", a.out.join(&t.file).display(), t.rows);
    }
    outln!(
        "{}: {} rows; ground truth in {}",
        a.out.join(synth::DUMP_FILE).display(),
        truth.dump.rows,
        a.out.join(synth::TRUTH_FILE).display()
    );
    Ok(())
}

pub(crate) fn canary_mint(a: MintArgs) -> Result<()> {
    let kind = match (a.email_domain, a.mobile_range) {
        (Some(domain), _) => CanaryKind::Email { domain },
        (_, Some(prefix)) => CanaryKind::Mobile { prefix },
        _ if a.resident_id => CanaryKind::ResidentId,
        _ => CanaryKind::BankCard,
    };
    let canaries = canary::mint(&kind, a.count)?;
    canary::write(&a.out, &a.export, &canaries)?;
    outln!(
        "{}: {} canaries for export {:?}; plant each in that export only, and keep this file as private as the node key",
        a.out.display(),
        canaries.len(),
        a.export
    );
    Ok(())
}

pub(crate) fn bench(a: BenchArgs) -> Result<()> {
    if a.concurrent > 1 && a.holders > 1 {
        bail!("--concurrent and --holders cannot be combined");
    }
    if a.concurrent > 1 && a.link.is_some() {
        bail!("--concurrent and --link cannot be combined");
    }
    if let (Some(rate), None) = (a.link, &a.holder_netns) {
        return bench_over_link(rate);
    }
    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("sizing the thread pool")?;
    }
    let opts = BenchOptions {
        holder_rows: a.holder_rows,
        dump_rows: a.dump_rows,
        overlap: a.overlap,
        mode: a.mode,
        blinding: a.blinding,
        threads: a.threads,
        dir: a.dir,
        repeat: a.repeat,
        holders: a.holders,
        link: a.link,
        holder_netns: a.holder_netns,
    };
    let json = if a.concurrent > 1 {
        let queriers = a.queriers.unwrap_or(a.concurrent.min(4));
        let report = bench_load::run(&opts, a.concurrent, queriers)?;
        out!("{}", bench_load::render(&report));
        serde_json::to_string_pretty(&report)?
    } else {
        let report = runtime(a.threads)?.block_on(bench::run(&opts))?;
        out!("{}", bench::render(&report));
        serde_json::to_string_pretty(&report)?
    };
    if let Some(path) = &a.json {
        write_file(path, json + "\n")?;
    }
    Ok(())
}

/// `bench --link`: makes the namespaces and the shaped pair, runs this same bench again inside
/// the querier's namespace (told where the holders go), and removes them when it ends.
fn bench_over_link(rate: bench::link::Rate) -> Result<()> {
    let link = bench::link::Link::create(rate)?;
    let mut inner = bench::link::Link::exec_in(&link.querier_ns);
    inner
        .arg(std::env::current_exe().context("locating the suyuan binary")?)
        .args(std::env::args_os().skip(1))
        .arg("--holder-netns")
        .arg(&link.holder_ns);
    let status = inner
        .status()
        .context("running the bench inside the namespaces")?;
    drop(link);
    if !status.success() {
        bail!("the bench over the {rate} link failed ({status})");
    }
    Ok(())
}

pub(crate) fn psi_local(a: PsiLocalArgs) -> Result<()> {
    let cfg = PsiLocalConfig {
        holder: a.holder,
        holder_input: InputOptions {
            overrides: a.holder_columns,
            selection: a.keys.clone(),
            labels: Vec::new(),
            canaries: None,
        },
        querier: a.querier,
        querier_input: InputOptions {
            overrides: a.querier_columns,
            selection: a.keys,
            labels: Vec::new(),
            canaries: None,
        },
        mode: a.mode,
    };
    let report = psi_local::run(&cfg, &mut rand::rng())?;
    out!("{}", psi_local::render(&cfg, &report));
    Ok(())
}
