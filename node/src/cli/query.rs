//! The querier's commands: `query`, `report` (a JSON report as HTML) and `verify`.

use anyhow::{Context, Result, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use suyuan_node::clock;
use suyuan_node::evidence::Evidence;
use suyuan_node::evidence::directory;
use suyuan_node::lists::InputOptions;
use suyuan_node::query::{self, QueryOptions, Report, html};

use super::args::{QueryArgs, ReportArgs, VerifyArgs};
use super::progress::Bar;
use super::runtime;

pub(crate) fn query(a: QueryArgs, quiet: bool) -> Result<()> {
    let directory = match &a.directory {
        Some(path) => {
            let ca = suyuan_node::node_dir::NodeDir::open(&a.node)?
                .identity()?
                .ca;
            Some(directory::load(path, &ca, clock::now_unix())?)
        }
        None => None,
    };
    let peers = query::resolve_peers(&a.peers, directory.as_ref(), a.all_institutions)?;
    let opts = QueryOptions {
        node: a.node,
        input: a.input,
        input_options: InputOptions {
            overrides: a.input_args.columns,
            selection: a.input_args.keys,
            labels: Vec::new(),
            canaries: None,
        },
        peers,
        mode: a.mode,
        case: a.case,
        evidence: a.evidence,
        labels: a.labels,
        population: a.population,
    };
    let report = runtime(None)?.block_on(query::run(&opts, Bar::new(quiet)))?;
    print!("{}", query::report::render(&report));
    if let Some(path) = &a.json {
        query::report::write_json(&report, path)?;
        println!("report written to {}", path.display());
    }
    if let Some(path) = &a.html {
        query::report::write_private(path, html::render_html(&report, a.threshold).as_bytes())?;
        println!("report written to {}", path.display());
    }
    if report.peers.iter().all(|p| p.error.is_some()) {
        bail!("no peer answered");
    }
    Ok(())
}

pub(crate) fn report(a: ReportArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.json)
        .with_context(|| format!("cannot read {}", a.json.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a suyuan query report", a.json.display()))?;
    query::report::write_private(&a.html, html::render_html(&report, a.threshold).as_bytes())?;
    println!("report written to {}", a.html.display());
    Ok(())
}

pub(crate) fn verify(a: VerifyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.report)
        .with_context(|| format!("cannot read {}", a.report.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a suyuan query report", a.report.display()))?;
    let ca = CertificateDer::from_pem_file(&a.ca)
        .map_err(|e| anyhow::anyhow!("{}: not a readable PEM certificate: {e}", a.ca.display()))?;
    let v = query::verify::verify(&report, &ca)
        .map_err(|why| anyhow::anyhow!("{}: NOT VERIFIED: {why}", a.report.display()))?;
    println!(
        "{}: verified. Signed by {} ({}); {} signed answer(s) match it:",
        a.report.display(),
        v.querier.name,
        v.querier.role,
        v.answers.len()
    );
    for (name, epoch) in &v.answers {
        println!("  {name}: epoch {epoch}, statement and answer signed by {name}");
    }
    for name in &v.unanswered {
        println!("  {name}: no answer (nothing to check)");
    }
    let (Some(evidence), Some(input)) = (&a.evidence, &a.input) else {
        return Ok(());
    };
    let ev = Evidence::read(evidence)?;
    let options = InputOptions {
        overrides: a.input_args.columns,
        selection: a.input_args.keys,
        labels: Vec::new(),
        canaries: None,
    };
    let (keys, summary) = query::read_dump(input, &options, &mut Bar::new(true))?;
    let recomputed = query::verify::verify_evidence(&report, &ev, keys, summary.quality.rows)
        .map_err(|why| anyhow::anyhow!("{}: NOT VERIFIED: {why}", a.report.display()))?;
    println!(
        "{}: every answer recomputed from {} and {}: each holder's signed messages give the report's figures:",
        a.report.display(),
        evidence.display(),
        input.display()
    );
    for (name, matched) in recomputed {
        println!("  {name}: {matched} matched keys");
    }
    Ok(())
}
