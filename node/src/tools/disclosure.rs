//! The demo after the count: the disclosure ladder (refused without a warrant; a court's
//! warrant on each likely source's signed count; rows with it), notification (the police
//! publish the dump; the bank checks its customers and gets exactly its exposed rows), and a
//! second police unit linking its seizure in count mode. Each step is checked against the
//! truth or a plain set computation.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::QueryMode;

use crate::Progress;
use crate::evidence::warrant::{self, Grant};
use crate::lists::InputOptions;
use crate::net::local::LocalServer;
use crate::node_dir::NodeDir;
use crate::node_dir::published::{self, Publication};
use crate::query::{self, PeerSpec, QueryOptions, Report};
use crate::tools::synth::{self, Truth};

/// The legal basis the demo's court writes.
const BASIS: &str = "《刑事诉讼法》第一百四十三条；两高《关于办理侵犯公民个人信息刑事案件适用法律若干问题的解释》第五条";

/// Where the demo keeps things, and what it asks under.
pub(crate) struct Scene<'a> {
    /// The demo directory.
    pub(crate) dir: &'a Path,
    /// The node directories.
    pub(crate) nodes: &'a Path,
    /// The generated data.
    pub(crate) data: &'a Path,
    /// The case.
    pub(crate) case: &'a str,
    /// The generator's truth.
    pub(crate) truth: &'a Truth,
}

impl Scene<'_> {
    /// Runs the police's query `opts` (reading and blinding the dump with progress shown),
    /// narrates the report, writes it as `report-MODE.json` and compares it with the truth.
    pub(crate) async fn ask_and_check(
        &self,
        opts: &QueryOptions,
        progress: &mut dyn Progress,
    ) -> Result<(Report, Vec<String>)> {
        let job = query::QueryJob::open(opts)?;
        let dump = tokio::task::block_in_place(|| {
            query::blind_dump(&opts.input, &opts.input_options, opts.blinding(), progress)
        })?;
        let report = job.ask(dump).await?;
        progress.say(query::report::render(&report).trim_end());
        let mode = opts.mode;
        let json = self.dir.join(format!("report-{mode}.json"));
        query::report::write_json(&report, &json)?;
        let disagreements = super::demo::compare(&report, self.truth)
            .into_iter()
            .map(|d| format!("{mode}: {d}"))
            .collect();
        Ok((report, disagreements))
    }

    pub(crate) fn options(
        &self,
        peers: Vec<PeerSpec>,
        mode: QueryMode,
        warrants: Vec<PathBuf>,
    ) -> QueryOptions {
        QueryOptions {
            node: self.nodes.join("police"),
            input: self.data.join(synth::DUMP_FILE),
            input_options: InputOptions::default(),
            peers,
            mode,
            case: Some(self.case.to_string()),
            evidence: None,
            labels: true,
            population: Some(self.truth.population),
            warrants,
            published: false,
            blinding: None,
        }
    }
}

/// Steps 6 and 7: `matches` refused without a warrant; the court grants one per likely source
/// on its signed count; the rows asked with them. The `matches` report and disagreements.
pub(crate) async fn warrants_and_rows(
    scene: &Scene<'_>,
    peers: &[PeerSpec],
    count: &Report,
    progress: &mut dyn Progress,
) -> Result<(Report, Vec<String>)> {
    let mut out = Vec::new();
    let likely: Vec<PeerSpec> = peers
        .iter()
        .filter(|p| {
            count.peers.iter().any(|r| {
                r.name == p.name && r.attribution.as_ref().is_some_and(|a| a.likely_source)
            })
        })
        .cloned()
        .collect();
    let first = likely.first().context("the count named no likely source")?;
    progress.say(&format!(
        "6/9 the police ask {} for rows without a warrant",
        first.name
    ));
    let opts = scene.options(vec![first.clone()], QueryMode::Matches, Vec::new());
    let refused = query::run(&opts, crate::Silent).await?;
    match refused.peers.first().and_then(|p| p.error.clone()) {
        Some(e) => progress.say(&format!("  {e}")),
        None => out.push(format!(
            "{}: answered matches without a warrant",
            first.name
        )),
    }
    let names: Vec<&str> = likely.iter().map(|p| p.name.as_str()).collect();
    progress.say(&format!(
        "7/9 the court grants a warrant for each likely source ({}) on its signed count; the police ask them for rows",
        names.join(", ")
    ));
    let court = NodeDir::open(&scene.nodes.join("court"))?.identity()?;
    let mut files = Vec::new();
    for p in &likely {
        let receipt = warrant::receipt(count, &p.name, scene.case, &court.ca).map_err(|why| {
            anyhow::anyhow!("the count report as a receipt for {}: {why}", p.name)
        })?;
        let count_on = receipt.count;
        let grant = Grant {
            case: scene.case.to_string(),
            holder: p.name.clone(),
            querier: None,
            mode: QueryMode::Matches,
            valid_for: 30 * 86400,
            basis: BASIS.to_string(),
            receipt: Some(receipt),
        };
        let (_, signed) = warrant::issue(&court, grant, crate::clock::now_unix())?;
        let file = scene.dir.join(format!("warrant-{}.json", p.name));
        let json = serde_json::to_string_pretty(&signed)?;
        query::report::write_private(&file, json.as_bytes())?;
        progress.say(&format!(
            "  warrant {} for {}: granted on {}'s signed count of {count_on}",
            warrant::short(&signed),
            p.name,
            p.name
        ));
        files.push(file);
    }
    let mut opts = scene.options(likely, QueryMode::Matches, files);
    opts.evidence = Some(scene.dir.join("evidence-matches.bin"));
    let (report, more) = scene.ask_and_check(&opts, progress).await?;
    out.extend(more);
    Ok((report, out))
}

/// Steps 8 and 9: the police publish the dump; the bank checks its own customers against it;
/// a second unit links its seizure. Disagreements with the truth.
pub(crate) async fn notify_and_link(
    scene: &Scene<'_>,
    progress: &mut dyn Progress,
) -> Result<Vec<String>> {
    let police = scene.nodes.join("police");
    let names: Vec<String> = scene
        .truth
        .institutions
        .iter()
        .map(|t| t.name.clone())
        .collect();
    progress.say(&format!(
        "8/9 the police publish the dump under case {} (its own key, 90 days); the bank checks its customers against it",
        scene.case
    ));
    let publication = Publication {
        case: scene.case.to_string(),
        input: scene.data.join(synth::DUMP_FILE),
        options: InputOptions::default(),
        valid_for: 90 * 86400,
        allow: names
            .iter()
            .cloned()
            .chain(["police2".to_string()])
            .collect(),
    };
    tokio::task::block_in_place(|| {
        published::publish(&police, &publication, crate::clock::now_unix(), progress)
    })?;
    let server = LocalServer::start(&police)?;
    let peer = PeerSpec {
        name: "police".into(),
        address: server.addr.to_string(),
        key: None,
    };
    let checked = check_and_link(scene, &peer, progress).await;
    server.stop().await?;
    checked
}

async fn check_and_link(
    scene: &Scene<'_>,
    police: &PeerSpec,
    progress: &mut dyn Progress,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let bank = scene
        .truth
        .institutions
        .iter()
        .find(|t| t.name == "bank")
        .context("the truth has no bank")?;
    let customers = scene.data.join(&bank.file);
    let report = check(scene, "bank", &customers, police, QueryMode::Matches).await?;
    let p = report.peers.first().context("no answer")?;
    if let Some(e) = &p.error {
        out.push(format!("bank's check: {e}"));
        return Ok(out);
    }
    let rows = p.rows.clone().unwrap_or_default();
    for line in query::report::check_lines(&report, p) {
        progress.say(&format!("  {line}"));
    }
    let exposed = scene.dir.join("exposed-bank.csv");
    let n = crate::lists::exposed::write(&customers, &rows, &exposed)?;
    progress.say(&format!("  {n} rows written to {}", exposed.display()));
    if rows != bank.exposed_rows {
        out.push(format!(
            "bank's check: {} exposed rows, truth {}",
            rows.len(),
            bank.exposed_rows.len()
        ));
    }
    query::report::write_json(&report, &scene.dir.join("report-check-bank.json"))?;
    out.extend(link(scene, police, progress).await?);
    Ok(out)
}

/// Step 9: a second seizure (half of the first, resold, merged with the courier's customers)
/// linked to the published case in count mode, against a plain set computation.
async fn link(
    scene: &Scene<'_>,
    police: &PeerSpec,
    progress: &mut dyn Progress,
) -> Result<Vec<String>> {
    let seizure = scene.dir.join("seizure-2.csv");
    let courier = scene
        .truth
        .institutions
        .iter()
        .find(|t| t.name == "courier")
        .context("the truth has no courier")?;
    write_second_seizure(
        &scene.data.join(synth::DUMP_FILE),
        &scene.data.join(&courier.file),
        &seizure,
    )?;
    progress.say(&format!(
        "9/9 a second unit (police2) links its own seizure ({}) to case {} in count mode",
        seizure.display(),
        scene.case
    ));
    let report = check(scene, "police2", &seizure, police, QueryMode::Count).await?;
    let p = report.peers.first().context("no answer")?;
    if let Some(e) = &p.error {
        return Ok(vec![format!("police2's link: {e}")]);
    }
    for line in query::report::check_lines(&report, p) {
        progress.say(&format!("  {line}"));
    }
    query::report::write_json(&report, &scene.dir.join("report-link.json"))?;
    let (mine, theirs) = tokio::task::block_in_place(|| {
        Ok::<_, anyhow::Error>((
            keys_of(&seizure)?,
            keys_of(&scene.data.join(synth::DUMP_FILE))?,
        ))
    })?;
    let plain: BTreeMap<KeyType, u64> = mine
        .iter()
        .map(|(kt, set)| {
            let other = theirs.get(kt);
            let n = set.iter().filter(|k| other.is_some_and(|o| o.contains(*k)));
            (*kt, n.count() as u64)
        })
        .collect();
    if p.matched_keys != plain {
        return Ok(vec![format!(
            "police2's link: matched keys {:?}, a plain computation {plain:?}",
            p.matched_keys
        )]);
    }
    Ok(Vec::new())
}

/// `suyuan check` from `node` against the published case.
async fn check(
    scene: &Scene<'_>,
    node: &str,
    input: &Path,
    police: &PeerSpec,
    mode: QueryMode,
) -> Result<Report> {
    let opts = QueryOptions {
        case: Some(scene.case.to_string()),
        published: true,
        ..QueryOptions::new(&scene.nodes.join(node), input, vec![police.clone()], mode)
    };
    query::run(&opts, crate::Silent).await
}

/// The second seizure: name and mobile of the first dump's first half of rows, then the
/// courier's customers (name and mobile), as one UTF-8 file.
fn write_second_seizure(dump: &Path, courier: &Path, out: &Path) -> Result<()> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut half = Vec::new();
    two_columns(dump, &mut half)?;
    let n = half.len() / 2;
    rows.extend(half.into_iter().take(n));
    two_columns(courier, &mut rows)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["姓名", "手机"])?;
    for (name, mobile) in rows {
        w.write_record([name, mobile])?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))
}

/// The first two columns of a generated file (name, then mobile in the dump; name, then
/// phone in the courier's list), decoded.
fn two_columns(path: &Path, into: &mut Vec<(String, String)>) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut open = crate::lists::open_csv(file, path)?;
    for r in open.csv.records() {
        let r = r.with_context(|| format!("reading {}", path.display()))?;
        open.budget.set(crate::lists::MAX_RECORD_BYTES);
        into.push((
            r.get(0).unwrap_or_default().to_string(),
            r.get(1).unwrap_or_default().to_string(),
        ));
    }
    Ok(())
}

/// Every distinct key of a file, by type, as a query reads it.
fn keys_of(path: &Path) -> Result<BTreeMap<KeyType, HashSet<Key>>> {
    let mut out: BTreeMap<KeyType, HashSet<Key>> = BTreeMap::new();
    crate::lists::for_each_record(path, &InputOptions::default(), |_, rk| {
        for k in rk.keys {
            out.entry(k.key_type()).or_default().insert(k);
        }
        Ok(())
    })?;
    Ok(out)
}
