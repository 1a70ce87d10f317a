//! The querier's commands: `query`, `report` (a JSON report as HTML) and `verify`.

use anyhow::{Context, Result, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use suyuan_node::clock;
use suyuan_node::evidence::Evidence;
use suyuan_node::evidence::directory;
use suyuan_node::query::html::DEFAULT_THRESHOLD;
use suyuan_node::query::{self, QueryOptions, Report, html};
use suyuan_protocol::psi::QueryMode;

use super::args::{CheckArgs, PublishArgs, QueryArgs, ReportArgs, VerifyArgs, WarrantIssueArgs};
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
        input_options: a.input_args.options(),
        peers,
        mode: a.mode,
        case: a.case,
        evidence: a.evidence,
        labels: a.labels,
        population: a.population,
        warrants: a.warrants,
        published: false,
        blinding: None,
    };
    let report = runtime(None)?.block_on(query::run(&opts, Bar::new(quiet)))?;
    out!("{}", query::report::render(&report));
    if let Some(path) = &a.json {
        query::report::write_json(&report, path)?;
        outln!("report written to {}", path.display());
    }
    if let Some(path) = &a.html {
        query::report::write_private(path, html::render_html(&report, a.threshold).as_bytes())?;
        outln!("report written to {}", path.display());
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
    outln!("report written to {}", a.html.display());
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
    outln!(
        "{}: verified. Signed by {} ({}); {} signed answer(s) match it:",
        a.report.display(),
        v.querier.name,
        v.querier.role,
        v.answers.len()
    );
    for (name, epoch) in &v.answers {
        outln!("  {name}: epoch {epoch}, statement and answer signed by {name}");
        let warrant = report
            .peers
            .iter()
            .find(|p| p.name == *name)
            .and_then(|p| p.warrant.as_ref());
        if let Some(w) = warrant {
            outln!(
                "  {name}: answered on warrant {}, signed by a court of this federation",
                suyuan_node::evidence::warrant::short(w)
            );
        }
    }
    for name in &v.unanswered {
        outln!("  {name}: no answer (nothing to check)");
    }
    let (Some(evidence), Some(input)) = (&a.evidence, &a.input) else {
        return Ok(());
    };
    let ev = Evidence::read(evidence)?;
    let options = a.input_args.options();
    let (keys, summary) = query::read_dump(input, &options, &mut Bar::new(true))?;
    let recomputed = query::verify::verify_evidence(&report, &ev, keys, summary.quality.rows)
        .map_err(|why| anyhow::anyhow!("{}: NOT VERIFIED: {why}", a.report.display()))?;
    outln!(
        "{}: every answer recomputed from {} and {}: each holder's signed messages give the report's figures:",
        a.report.display(),
        evidence.display(),
        input.display()
    );
    for (name, matched) in recomputed {
        outln!("  {name}: {matched} matched keys");
    }
    Ok(())
}

pub(crate) fn warrant_issue(a: WarrantIssueArgs) -> Result<()> {
    use suyuan_node::evidence::warrant::{self, Grant};
    let id = suyuan_node::node_dir::NodeDir::open(&a.node)?.identity()?;
    let receipt = match &a.receipt {
        Some(path) => {
            let report = read_report(path)?;
            let r = warrant::receipt(&report, &a.holder, &a.case, &id.ca).map_err(|why| {
                anyhow::anyhow!("{}: not a receipt for this warrant: {why}", path.display())
            })?;
            Some(r)
        }
        None => None,
    };
    let grant = Grant {
        case: a.case,
        holder: a.holder,
        querier: a.querier,
        mode: a.mode,
        valid_for: a.expires,
        basis: a.basis,
        receipt,
    };
    let (w, signed) = warrant::issue(&id, grant, clock::now_unix())?;
    let json = serde_json::to_string_pretty(&signed)?;
    query::report::write_private(&a.out, json.as_bytes())?;
    outln!(
        "warrant {} signed by {}: {} queries of {} in case {:?} by {}, valid until {}",
        warrant::short(&signed),
        w.court,
        w.mode,
        w.holder,
        w.case,
        w.querier.as_deref().unwrap_or("any police node"),
        clock::rfc3339(w.expires)
    );
    if let Some(r) = &w.receipt {
        outln!(
            "  granted on {}'s signed answer to {}'s count: {} matched records",
            w.holder,
            r.querier,
            r.count
        );
    }
    outln!("written to {}", a.out.display());
    Ok(())
}

pub(crate) fn publish(a: PublishArgs, quiet: bool) -> Result<()> {
    use suyuan_node::node_dir::published;
    if let Some(case) = &a.close {
        let node = suyuan_node::node_dir::NodeDir::open(&a.node)?;
        if !published::close(&node, case)? {
            bail!("no case {case:?} is published on this node");
        }
        outln!("case {case:?} closed: its key and store are destroyed");
        return Ok(());
    }
    let (Some(case), Some(input)) = (a.case, a.input) else {
        bail!("--case and --input are required to publish");
    };
    let p = published::Publication {
        case,
        input,
        options: a.input_args.options(),
        valid_for: a.expires,
        allow: a.allow,
    };
    let (summary, meta, case) =
        published::publish(&a.node, &p, clock::now_unix(), &mut Bar::new(quiet))?;
    outln!("{} ({summary})", p.input.display());
    out!("{}", super::render::quality(&summary));
    outln!(
        "case {:?} published under its own key (epoch {}): distinct keys {}; until {}{}",
        case.case,
        meta.id,
        suyuan_node::text::counts(&meta.sizes, ""),
        clock::rfc3339(case.expires),
        if case.allow.is_empty() {
            String::new()
        } else {
            format!("; only for {}", case.allow.join(", "))
        }
    );
    Ok(())
}

pub(crate) fn check(a: CheckArgs, quiet: bool) -> Result<()> {
    if a.mode == QueryMode::Matches && a.out.is_none() {
        // Rows obtained and not kept would have to be asked for again.
        bail!("--out FILE is required in matches mode: the exposed rows are written there");
    }
    if a.mode == QueryMode::Count && a.out.is_some() {
        bail!("--out is for matches mode: a count gives no rows to write (use --json)");
    }
    let opts = QueryOptions {
        input_options: a.input_args.options(),
        case: Some(a.case.clone()),
        published: true,
        ..QueryOptions::new(&a.node, &a.input, vec![a.peer], a.mode)
    };
    let report = runtime(None)?.block_on(query::run(&opts, Bar::new(quiet)))?;
    if let Some(path) = &a.json {
        query::report::write_json(&report, path)?;
        outln!("report written to {}", path.display());
    }
    if let Some(path) = &a.html {
        let html = html::render_html(&report, DEFAULT_THRESHOLD);
        query::report::write_private(path, html.as_bytes())?;
        outln!("report written to {}", path.display());
    }
    let Some(peer) = report.peers.first() else {
        bail!("no peer was asked");
    };
    if let Some(e) = &peer.error {
        bail!("{}: {e}", peer.name);
    }
    for line in query::report::check_lines(&report, peer) {
        outln!("{line}");
    }
    if let (Some(out), Some(rows)) = (&a.out, &peer.rows) {
        let n = suyuan_node::lists::exposed::write(&a.input, rows, out)?;
        outln!("{n} exposed rows written to {}", out.display());
    }
    Ok(())
}

fn read_report(path: &std::path::Path) -> Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a suyuan query report", path.display()))
}
