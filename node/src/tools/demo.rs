//! `suyuan demo`: a whole federation on loopback in one command, checked against the truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::QueryMode;

use crate::Progress;
use crate::lists::import;
use crate::lists::{InputOptions, parse_label};
use crate::net::local::LocalServer;
use crate::node_dir::config::NODE_TOML;
use crate::node_dir::identity::{self, Role};
use crate::query::html::{self, DEFAULT_THRESHOLD};
use crate::query::{self, PeerSpec, QueryOptions, Report};
use crate::tools::synth::{self, GenConfig, LeakTruth, Truth};

/// The demo's own policy: it lets the police see rows, to show both modes.
const INSTITUTION_TOML: &str = "# The demo's policy: police may use both modes.\n[network]\ntimeout_secs = 30\n\n[policy]\nmin_query_keys = 100\nrequire_case = true\nshare_label_totals = true\n\n[policy.allow]\npolice = [\"count\", \"matches\"]\ninstitution = []\nresearcher = []\n\n# The bank imports two labels; the police may see them, with each value's size in the list.\n[policy.labels]\npolice = [\"branch\", \"opened\", \"plan\"]\n\n# Every node of the demo shares this machine: none prepares count sessions ahead (each count\n# query prepares its own), so four idle institutions do not take the cores from the query.\n[serve]\ncount_pool_mib = 0\n";

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything goes (default: a new directory under the system's temp directory).
    pub dir: Option<PathBuf>,
    /// Rows of the dump (the population is five times as many).
    pub rows: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            dir: None,
            rows: 20_000,
        }
    }
}

/// Where the demo left its files, and whether the results agreed with the truth.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The demo directory.
    pub dir: PathBuf,
    /// Disagreements with truth.json (empty: all agree).
    pub disagreements: Vec<String>,
    /// The matches-mode report.
    pub report: Report,
}

fn fresh_dir(dir: Option<&Path>) -> Result<PathBuf> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "suyuan-demo-{}-{}",
            std::process::id(),
            crate::clock::now_unix()
        )),
    };
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        bail!(
            "{} exists and is not empty; give --dir a new directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Compares one mode's report with the truth; returns the differences.
pub fn compare(report: &Report, truth: &Truth) -> Vec<String> {
    let mut out = Vec::new();
    for t in &truth.institutions {
        let Some(p) = report.peers.iter().find(|p| p.name == t.name) else {
            out.push(format!("{}: missing from the report", t.name));
            continue;
        };
        if let Some(e) = &p.error {
            out.push(format!("{}: {e}", t.name));
            continue;
        }
        let want: BTreeMap<KeyType, u64> = report
            .dump
            .keys
            .keys()
            .map(|k| (*k, t.matched_keys.get(k).copied().unwrap_or(0)))
            .collect();
        if p.matched_keys != want {
            out.push(format!(
                "{}: matched keys {:?}, truth {:?}",
                t.name, p.matched_keys, want
            ));
        }
        let holder: BTreeMap<KeyType, u64> = report
            .dump
            .keys
            .keys()
            .map(|k| (*k, t.keys.get(k).copied().unwrap_or(0)))
            .collect();
        if p.holder_keys != holder {
            out.push(format!(
                "{}: holder keys {:?}, truth {:?}",
                t.name, p.holder_keys, holder
            ));
        }
        if report.mode == QueryMode::Matches && p.rows.as_deref() != Some(t.matched_rows.as_slice())
        {
            out.push(format!(
                "{}: {} matched rows, truth {}",
                t.name,
                p.rows.as_ref().map_or(0, Vec::len),
                t.matched_rows.len()
            ));
        }
    }
    if let Some(leak) = &truth.leak {
        out.extend(compare_leak(report, leak));
    }
    out
}

/// The leak's branch is the value most over-represented among the institution's matches, and
/// the share of its list found in the dump drops from the copy's month on.
fn compare_leak(report: &Report, leak: &LeakTruth) -> Vec<String> {
    let Some(p) = report.peers.iter().find(|p| p.name == leak.institution) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let best = p
        .label_lift
        .get(&leak.label)
        .and_then(query::labels::standout);
    match best {
        Some((value, _)) if *value == leak.value => {}
        Some((value, t)) => out.push(format!(
            "{}: the most over-represented {} is {value} (p 10^{:.1}), truth {}",
            p.name, leak.label, t.log10_p_corrected, leak.value
        )),
        None => out.push(format!(
            "{}: no {} value stands out in the report",
            p.name, leak.label
        )),
    }
    match p.label_timeline.get(&leak.month_label) {
        // Months are compared as YYYY-MM text, which sorts as time does.
        Some(t) if t.earliest <= leak.copied && leak.copied <= t.latest => {}
        Some(t) => out.push(format!(
            "{}: the share found drops from between {} and {}, truth {}",
            p.name, t.earliest, t.latest, leak.copied
        )),
        None => out.push(format!(
            "{}: no timeline of {} in the report",
            p.name, leak.month_label
        )),
    }
    let hits: Vec<(&str, u64)> = p
        .canary_hits
        .iter()
        .map(|h| (h.export.as_str(), h.keys))
        .collect();
    if hits != [(leak.canary_export.as_str(), leak.canary_keys)] {
        out.push(format!(
            "{}: canary hits {hits:?}, truth {} keys of {}",
            p.name, leak.canary_keys, leak.canary_export
        ));
    }
    out
}

/// Runs the whole demo: data, CA, nodes, imports, servers, a count and a matches query, the
/// check against the truth, the HTML report; then stops the servers.
pub async fn run(opts: &DemoOptions, progress: &mut dyn Progress) -> Result<DemoOutcome> {
    let dir = fresh_dir(opts.dir.as_deref())?;
    let rows = opts.rows.max(100);
    let cfg = GenConfig {
        seed: 2019,
        population: rows * 5,
        dump_rows: rows,
    };
    progress.say(&format!("suyuan demo in {}", dir.display()));
    progress.say(&format!(
            "1/6 synthetic data (seed {}): {} people; bank, telecom, courier and hospital lists; a seized dump of {} rows",
            cfg.seed, cfg.population, cfg.dump_rows
        ),
    );
    let data = dir.join("data");
    let truth = tokio::task::block_in_place(|| synth::generate(&data, &cfg, progress))?;
    let names: Vec<String> = truth.institutions.iter().map(|t| t.name.clone()).collect();
    progress.say(&format!(
        "2/6 a federation CA and nodes: police, {}",
        names.join(", ")
    ));
    let nodes = dir.join("nodes");
    federation(&dir.join("ca"), &nodes, &names)?;
    progress.say(
        "3/6 each institution imports its list under a fresh key (the bank with its branch and opening month)",
    );
    for t in &truth.institutions {
        let (node, list) = (nodes.join(&t.name), data.join(&t.file));
        let opts = InputOptions {
            labels: match t.name.as_str() {
                "bank" => vec![
                    parse_label("branch=开户网点")?,
                    parse_label("opened=开户日期:month")?,
                ],
                // The telecom's own segment: its plans (the dump came from all of them alike).
                "telecom" => vec![parse_label("plan=套餐")?],
                _ => Vec::new(),
            },
            canaries: (t.name == "bank").then(|| data.join(synth::CANARY_FILE)),
            ..InputOptions::default()
        };
        tokio::task::block_in_place(|| import::run(&node, &list, &opts, progress))
            .with_context(|| format!("importing {}", t.file))?;
    }
    let (servers, peers) = serve_all(&nodes, &names)?;
    let addrs: Vec<String> = peers
        .iter()
        .map(|p| format!("{}={}", p.name, p.address))
        .collect();
    progress.say(&format!(
        "4/6 institutions serving on loopback: {}",
        addrs.join(" ")
    ));
    let police = nodes.join("police");
    let asked = ask_both(&dir, &police, &data, peers, &truth, progress).await;
    for server in servers {
        server.stop().await?;
    }
    let (report, disagreements) = asked?;
    let html = dir.join("report.html");
    query::report::write_private(
        &html,
        html::render_html(&report, DEFAULT_THRESHOLD).as_bytes(),
    )?;
    conclude(&dir, &html, &truth, &disagreements, progress);
    Ok(DemoOutcome {
        dir,
        disagreements,
        report,
    })
}

/// The CA in `ca`; under `nodes`, the police and one institution per name, with the demo's
/// policy.
fn federation(ca: &Path, nodes: &Path, names: &[String]) -> Result<()> {
    identity::ca_init(ca, "suyuan demo federation")?;
    let police = nodes.join("police");
    identity::ca_issue(ca, "police", Role::Police, &police)?;
    std::fs::write(
        police.join(NODE_TOML),
        crate::node_dir::config::DEFAULT_NODE_TOML,
    )?;
    for name in names {
        let node = nodes.join(name);
        identity::ca_issue(ca, name, Role::Institution, &node)?;
        std::fs::write(node.join(NODE_TOML), INSTITUTION_TOML)?;
    }
    Ok(())
}

/// Every institution serving on loopback, and the peers to ask.
fn serve_all(nodes: &Path, names: &[String]) -> Result<(Vec<LocalServer>, Vec<PeerSpec>)> {
    let mut servers = Vec::new();
    let mut peers = Vec::new();
    for name in names {
        let server = LocalServer::start(&nodes.join(name))?;
        peers.push(PeerSpec {
            name: name.clone(),
            address: server.addr.to_string(),
            key: None,
        });
        servers.push(server);
    }
    Ok((servers, peers))
}

/// Steps 5 and 6: the police ask every institution in `count` mode, then in `matches` mode;
/// each report is narrated, written as JSON and compared with the truth. The `matches` report
/// and every disagreement.
async fn ask_both(
    dir: &Path,
    police: &Path,
    data: &Path,
    peers: Vec<PeerSpec>,
    truth: &Truth,
    progress: &mut dyn Progress,
) -> Result<(Report, Vec<String>)> {
    let case = "DEMO-2019-001".to_string();
    let mut disagreements = Vec::new();
    let mut last = None;
    for (step, mode) in [(5, QueryMode::Count), (6, QueryMode::Matches)] {
        progress.say(&format!(
            "{step}/6 the police query every institution, mode {mode}, case {case}"
        ));
        let opts = QueryOptions {
            node: police.to_path_buf(),
            input: data.join(synth::DUMP_FILE),
            input_options: InputOptions::default(),
            peers: peers.clone(),
            mode,
            case: Some(case.clone()),
            evidence: Some(dir.join(format!("evidence-{mode}.bin"))),
            labels: true,
            population: Some(truth.population),
            warrants: Vec::new(),
            published: false,
        };
        let job = query::QueryJob::open(&opts)?;
        let dump = tokio::task::block_in_place(|| {
            query::blind_dump(&opts.input, &opts.input_options, progress)
        })?;
        let report = job.ask(dump).await?;
        progress.say(query::report::render(&report).trim_end());
        disagreements.extend(
            compare(&report, truth)
                .into_iter()
                .map(|d| format!("{mode}: {d}")),
        );
        query::report::write_json(&report, &dir.join(format!("report-{mode}.json")))?;
        last = Some(report);
    }
    Ok((last.context("no query ran")?, disagreements))
}

/// What the dump was made of, whether everything agreed with the truth, and where the files are.
fn conclude(
    dir: &Path,
    html: &Path,
    truth: &Truth,
    disagreements: &[String],
    progress: &mut dyn Progress,
) {
    progress.say(&format!(
        "\nThe dump was built from: {} rows (plus {} duplicates, {} junk).",
        crate::text::counts(&truth.dump.sources, ""),
        truth.dump.duplicate_rows,
        truth.dump.junk_rows
    ));
    if disagreements.is_empty() {
        progress.say("Check against truth.json: every institution's matched keys, and in matches mode every matched row, agree with the ground truth; so do the leak's branch (the most over-represented), the copy's month (within the timeline's interval) and the export whose canaries reached the dump.",
        );
    } else {
        progress.say("Check against truth.json: DISAGREEMENT:");
        for d in disagreements {
            progress.say(&format!("  {d}"));
        }
    }
    progress.say(&format!(
        "Report: {} (JSON: report-count.json, report-matches.json). Nodes, CA and data are in {}.",
        html.display(),
        dir.display()
    ));
    progress.say(&format!(
        "Each report is signed, and so is every institution's answer: check one with `suyuan verify {} --ca {}`,\nand recompute every figure from the institutions' signed messages with `--evidence {} --input {}`.",
        dir.join("report-matches.json").display(),
        dir.join("ca").join("ca.crt").display(),
        dir.join("evidence-matches.bin").display(),
        dir.join("data").join(synth::DUMP_FILE).display()
    ));
}
