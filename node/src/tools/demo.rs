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
use crate::query::{self, PeerSpec, Report};
use crate::tools::synth::{self, GenConfig, LeakTruth, Truth};

/// The demo's own policy: police may count, and see rows on a court's warrant granted on a
/// count of at least `{min_count}` (the law's 3,000 records at the default size, scaled).
const INSTITUTION_TOML: &str = "# The demo's policy: police may use both modes; rows only on a court's warrant.\n[network]\ntimeout_secs = 30\n\n[policy]\nmin_query_keys = 100\nrequire_case = true\nshare_label_totals = true\n\n[policy.allow]\npolice = [\"count\", \"matches\"]\ninstitution = []\nresearcher = []\n\n# Rows need a warrant granted on this node's own signed count of at least min_count (the\n# law's 3,000 records at the demo's default size, scaled with --rows).\n[policy.warrant]\nmatches = true\nreceipt = true\nmin_count = MIN_COUNT\n\n# The bank imports two labels; the police may see them, with each value's size in the list.\n[policy.labels]\npolice = [\"branch\", \"opened\", \"plan\"]\n\n# Every node of the demo shares this machine: none prepares count sessions ahead (each count\n# query prepares its own), so four idle institutions do not take the cores from the query.\n[serve]\ncount_pool_mib = 0\n";

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
    /// The matches-mode report (the likely sources, on their warrants).
    pub report: Report,
    /// The count-mode report (every institution).
    pub count: Report,
}

/// The police's own policy as a holder of published cases: institutions may find their own
/// customers in a published dump, other units may count how far their seizures overlap.
const POLICE_TOML: &str = "# The police node holds only published cases (`suyuan publish`).\n[network]\ntimeout_secs = 30\n\n[policy]\nmin_query_keys = 100\n\n[policy.allow]\ninstitution = [\"matches\"]\npolice = [\"count\"]\nresearcher = []\n\n[serve]\ncount_pool_mib = 0\n";

/// The receipt minimum of the demo's policy: the law's 3,000 records at the default 20,000
/// dump rows, in proportion to `rows`.
fn demo_min_count(rows: u64) -> u64 {
    (3000 * rows / 20_000).max(50)
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
    // Rows are asked only of the institutions a warrant was granted for.
    let asked =
        |name: &str| report.mode == QueryMode::Count || report.peers.iter().any(|p| p.name == name);
    for t in truth.institutions.iter().filter(|t| asked(&t.name)) {
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
            "1/9 synthetic data (seed {}): {} people; bank, telecom, courier and hospital lists; a seized dump of {} rows",
            cfg.seed, cfg.population, cfg.dump_rows
        ),
    );
    let data = dir.join("data");
    let truth = tokio::task::block_in_place(|| synth::generate(&data, &cfg, progress))?;
    let names: Vec<String> = truth.institutions.iter().map(|t| t.name.clone()).collect();
    progress.say(&format!(
        "2/9 a federation CA and nodes: police, police2, court, {}",
        names.join(", ")
    ));
    let nodes = dir.join("nodes");
    federation(&dir.join("ca"), &nodes, &names, demo_min_count(rows))?;
    progress.say(
        "3/9 each institution imports its list under a fresh key (the bank with its branch and opening month)",
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
        "4/9 institutions serving on loopback: {}",
        addrs.join(" ")
    ));
    let scene = super::disclosure::Scene {
        dir: &dir,
        nodes: &nodes,
        data: &data,
        case: "DEMO-2019-001",
        truth: &truth,
    };
    let asked = ask_all(&scene, &peers, progress).await;
    for server in servers {
        server.stop().await?;
    }
    let (count, report, mut disagreements) = asked?;
    disagreements.extend(super::disclosure::notify_and_link(&scene, progress).await?);
    for (r, file) in [(&count, "report-count.html"), (&report, "report.html")] {
        let html = html::render_html(r, DEFAULT_THRESHOLD);
        query::report::write_private(&dir.join(file), html.as_bytes())?;
    }
    conclude(
        &dir,
        &dir.join("report.html"),
        &truth,
        &disagreements,
        progress,
    );
    Ok(DemoOutcome {
        dir,
        disagreements,
        report,
        count,
    })
}

/// Steps 5 to 7: the count of every institution, then rows from the likely sources on the
/// court's warrants. The count report, the matches report, and every disagreement.
async fn ask_all(
    scene: &super::disclosure::Scene<'_>,
    peers: &[PeerSpec],
    progress: &mut dyn Progress,
) -> Result<(Report, Report, Vec<String>)> {
    let (count, mut disagreements) = ask_count(scene, peers, progress).await?;
    let (report, more) =
        super::disclosure::warrants_and_rows(scene, peers, &count, progress).await?;
    disagreements.extend(more);
    Ok((count, report, disagreements))
}

/// The CA in `ca`; under `nodes`, the police and one institution per name, with the demo's
/// policy.
fn federation(ca: &Path, nodes: &Path, names: &[String], min_count: u64) -> Result<()> {
    identity::ca_init(ca, "suyuan demo federation")?;
    for (name, role, toml) in [
        ("police", Role::Police, POLICE_TOML),
        (
            "police2",
            Role::Police,
            crate::node_dir::config::DEFAULT_NODE_TOML,
        ),
        (
            "court",
            Role::Court,
            crate::node_dir::config::DEFAULT_NODE_TOML,
        ),
    ] {
        let node = nodes.join(name);
        identity::ca_issue(ca, name, role, &node)?;
        std::fs::write(node.join(NODE_TOML), toml)?;
    }
    let toml = INSTITUTION_TOML.replace("MIN_COUNT", &min_count.to_string());
    for name in names {
        let node = nodes.join(name);
        identity::ca_issue(ca, name, Role::Institution, &node)?;
        std::fs::write(node.join(NODE_TOML), &toml)?;
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

/// Step 5: the police count every institution's overlap; narrated, written as JSON and
/// compared with the truth.
async fn ask_count(
    scene: &super::disclosure::Scene<'_>,
    peers: &[PeerSpec],
    progress: &mut dyn Progress,
) -> Result<(Report, Vec<String>)> {
    let mode = QueryMode::Count;
    progress.say(&format!(
        "5/9 the police query every institution, mode {mode}, case {}",
        scene.case
    ));
    let mut opts = scene.options(peers.to_vec(), mode, Vec::new());
    opts.evidence = Some(scene.dir.join(format!("evidence-{mode}.bin")));
    scene.ask_and_check(&opts, progress).await
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
        progress.say("Check against truth.json: every institution's matched keys, and in matches mode every matched row of the likely sources (asked on the court's warrants), agree with the ground truth; so do the leak's branch (the most over-represented), the copy's month (within the timeline's interval), the export whose canaries reached the dump, the bank's exposed customers, and the overlap of the second seizure (against a plain set computation).",
        );
    } else {
        progress.say("Check against truth.json: DISAGREEMENT:");
        for d in disagreements {
            progress.say(&format!("  {d}"));
        }
    }
    progress.say(&format!(
        "Report: {} (the count: report-count.html; JSON: report-count.json, report-matches.json, report-check-bank.json, report-link.json; warrants: warrant-*.json). Nodes, CA and data are in {}.",
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
