//! The demo end to end at a small size: its attribution equals the truth, and its HTML report is
//! well-formed and carries the numbers of its JSON.

use rustls::pki_types::pem::PemObject;
use suyuan_node::query::Report;
use suyuan_node::query::html::{DEFAULT_THRESHOLD, records, render_html};
use suyuan_node::tools::demo::{DemoOptions, run};

/// Checks that every non-void element is closed in order: enough to catch a broken template.
fn well_formed(html: &str) -> Result<(), String> {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').ok_or("unclosed tag")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if tag.starts_with('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !self_closing && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed: {stack:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_agrees_with_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &DemoOptions {
            dir: Some(dir.path().join("demo")),
            rows: 1500,
        },
        &mut suyuan_node::Silent,
    )
    .await
    .unwrap();
    assert_eq!(out.disagreements, Vec::<String>::new());
    assert_eq!(out.count.peers.len(), 4);
    assert!(out.count.peers.iter().all(|p| p.error.is_none()));
    // Rows come only from the likely sources, each on its own warrant granted on its count.
    let mut asked: Vec<&str> = out.report.peers.iter().map(|p| p.name.as_str()).collect();
    asked.sort_unstable();
    assert_eq!(asked, ["bank", "telecom"]);
    assert!(
        out.report
            .peers
            .iter()
            .all(|p| p.error.is_none() && p.warrant.is_some())
    );
    // Adjusted for size, the two sources rank first and the courier, which shares people with
    // the dump by chance (3,043 rows at the default size, over the legal threshold), is not
    // among them.
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.dir.join("data/truth.json")).unwrap())
            .unwrap();
    assert_eq!(
        out.report.population,
        Some(truth["population"].as_u64().unwrap())
    );
    let verdict = |name: &str| {
        let p = out.count.peers.iter().find(|p| p.name == name).unwrap();
        let a = p.attribution.as_ref().unwrap();
        (a.rank, a.likely_source)
    };
    let (bank, telecom) = (verdict("bank"), verdict("telecom"));
    assert!(bank.1 && telecom.1 && bank.0 <= 2 && telecom.0 <= 2);
    for other in ["courier", "hospital"] {
        let (rank, likely) = verdict(other);
        assert!(!likely && rank > 2, "{other}");
    }

    let json: Report = serde_json::from_str(
        &std::fs::read_to_string(out.dir.join("report-matches.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json, out.report);
    // Both reports are evidence, checked with the demo federation's CA certificate alone.
    let ca = rustls::pki_types::CertificateDer::from_pem_file(out.dir.join("ca/ca.crt")).unwrap();
    for name in ["report-count.json", "report-matches.json"] {
        let report: Report =
            serde_json::from_str(&std::fs::read_to_string(out.dir.join(name)).unwrap()).unwrap();
        let v = suyuan_node::query::verify::verify(&report, &ca).unwrap();
        assert_eq!(v.answers.len(), report.peers.len(), "{name}");
        assert!(report.peers.iter().all(|p| p.answer.is_some()), "{name}");
        // And every figure follows from the institutions' signed messages and the dump.
        let mode = report.mode;
        let ev =
            suyuan_node::evidence::Evidence::read(&out.dir.join(format!("evidence-{mode}.bin")))
                .unwrap();
        let (keys, summary) = suyuan_node::query::read_dump(
            &out.dir.join("data/dump.csv"),
            &suyuan_node::lists::InputOptions::default(),
            &mut suyuan_node::Silent,
        )
        .unwrap();
        let recomputed =
            suyuan_node::query::verify::verify_evidence(&report, &ev, keys, summary.quality.rows)
                .unwrap();
        assert_eq!(recomputed.len(), report.peers.len(), "{name}");
    }
    // The bank's check of its own customers, and the second unit's link, verify too.
    for name in ["report-check-bank.json", "report-link.json"] {
        let report: Report =
            serde_json::from_str(&std::fs::read_to_string(out.dir.join(name)).unwrap()).unwrap();
        assert!(report.published, "{name}");
        suyuan_node::query::verify::verify(&report, &ca).unwrap();
    }
    let exposed = std::fs::read_to_string(out.dir.join("exposed-bank.csv")).unwrap();
    let want = truth["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bank")
        .unwrap()["exposed_rows"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(exposed.lines().count(), want + 1);
    assert!(exposed.starts_with("row,"));
    html_reports_hold_the_story(&out);
}

/// The demo's HTML reports: the branch, the timeline, the ladder; self-contained; every
/// figure of the matches report shown.
fn html_reports_hold_the_story(out: &suyuan_node::tools::demo::DemoOutcome) {
    let json = &out.report;
    let html = std::fs::read_to_string(out.dir.join("report.html")).unwrap();
    well_formed(&html).unwrap();
    assert!(html.contains("<h2>Which lists the dump was drawn from</h2>"));
    // Inside the bank: the insider's branch flagged, the timeline drawn with its split.
    assert!(html.contains("<h2>Inside each institution: which part, since when</h2>"));
    assert!(html.contains("<tr><td><span class=\"flag\">乌鲁木齐分行</span></td>"));
    let bank = json.peers.iter().find(|p| p.name == "bank").unwrap();
    let t = &bank.label_timeline["opened"];
    assert!(html.contains(&format!(
        "the copy predates {} (between {} and {})",
        t.change, t.earliest, t.latest
    )));
    assert!(html.contains("aria-label=\"share found per month\""));
    let counted = std::fs::read_to_string(out.dir.join("report-count.html")).unwrap();
    well_formed(&counted).unwrap();
    assert!(counted.contains("no more than chance (p = 1.000)"));
    // The ladder: each answer's warrant, its court and the count it was granted on.
    assert!(html.contains("<h2>Disclosure: count, warrant, rows</h2>"));
    // Self-contained: nothing to fetch, nothing to run.
    for needle in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "{needle}");
    }
    assert!(html.contains("DEMO-2019-001"));
    for p in &json.peers {
        assert!(html.contains(&format!("<td>{}</td>", p.name)), "{}", p.name);
        assert!(
            html.contains(&format!("{:.1}%", 100.0 * p.row_share.unwrap())),
            "{}",
            p.name
        );
        assert!(html.contains(&format!("<td class=\"n\">{}</td>", p.matched_rows.unwrap())));
        for (k, n) in &p.matched_keys {
            assert!(html.contains(&format!("{k} {n}")), "{} {k}", p.name);
        }
    }
    assert!(html.contains(&format!("<td class=\"n\">{}</td>", json.dump.rows)));
}

#[test]
fn the_html_flags_the_legal_threshold_and_escapes_what_it_shows() {
    let mut report: Report = serde_json::from_value(serde_json::json!({
        "case": "<script>alert(1)</script>",
        "mode": "matches",
        "created": "2026-11-28T00:00:00Z",
        "dump": {"rows": 10000, "rows_without_key": 0, "keys": {"mobile": 10000}, "rejected": {}},
        "peers": [
            {"name": "bank", "address": "a", "epoch": "00", "holder_keys": {"mobile": 50000},
             "matched_keys": {"mobile": 3000}, "matched_rows": 3000, "rows": [], "containment": 0.3,
             "labels": {"branch<i>": {"<img src=x>": {"mobile": 12}}}, "label_min_cell": 10,
             "labels_suppressed": {"branch<i>": 2}},
            {"name": "shop", "address": "b", "epoch": "00", "holder_keys": {"mobile": 50000},
             "matched_keys": {"mobile": 2999}, "matched_rows": 2999, "rows": [], "containment": 0.2999},
            {"name": "gone", "address": "c", "holder_keys": {}, "matched_keys": {},
             "containment": 0.0, "error": "gone did not answer <in time>"}
        ]
    }))
    .unwrap();
    report.peers[0].rows = Some(vec![]);
    assert_eq!(records(&report.peers[0]), 3000);
    let html = render_html(&report, DEFAULT_THRESHOLD);
    well_formed(&html).unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("<span class=\"flag\">yes: 3000 records overlap</span>"));
    assert!(html.contains("no (2999 records overlap)"));
    assert!(html.contains("no answer: gone did not answer &lt;in time&gt;"));
    // A holder's label names and values are its words: escaped like every other.
    assert!(!html.contains("<img") && !html.contains("<i>"));
    assert!(html.contains("<td>&lt;img src=x&gt;</td><td>mobile 12</td>"));
    assert!(html.contains("(withheld: branch&lt;i&gt; 2)"));
}
