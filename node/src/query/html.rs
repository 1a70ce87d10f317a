//! A query report as one self-contained HTML file: no scripts, no fetches, readable printed.

use std::fmt::Write as _;

use suyuan_protocol::psi::QueryMode;

use crate::query::{PeerReport, Report};

/// The legal threshold for "serious circumstances" (情节严重) in the 2019 cases: 3,000 records.
pub const DEFAULT_THRESHOLD: u64 = 3000;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Records a peer is credited with: matched rows (`matches`), or the largest matched-key count
/// over key types (`count`, where rows are not known).
pub fn records(p: &PeerReport) -> u64 {
    p.matched_rows
        .unwrap_or_else(|| p.matched_keys.values().copied().max().unwrap_or(0))
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn per_type(m: &std::collections::BTreeMap<suyuan_protocol::ident::KeyType, u64>) -> String {
    if m.is_empty() {
        return "–".to_string();
    }
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}.flag{color:#a40000;font-weight:bold}.err{color:#666;font-style:italic}
.meta{color:#444}svg text{font-size:12px;font-family:inherit}@media print{body{margin:0;max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}";

/// The report as HTML. Peers at or above `threshold` records are flagged.
pub fn render_html(r: &Report, threshold: u64) -> String {
    let mut h = String::new();
    let case = r.case.as_deref().unwrap_or("(no case number)");
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>suyuan report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(case)
    );
    let _ = writeln!(h, "<h1>溯源 suyuan: leak attribution report</h1>");
    let _ = writeln!(
        h,
        "<p class=\"meta\">Case <strong>{}</strong> · mode <strong>{}</strong> · created {} · threshold {} records</p>",
        escape(case),
        r.mode,
        escape(&r.created),
        threshold
    );

    // The chart: one bar per institution, containment as its length.
    let _ = writeln!(h, "<h2>Containment per institution</h2>");
    let bar_h = 26;
    let height = 20 + bar_h * r.peers.len().max(1);
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"{height}\" viewBox=\"0 0 640 {height}\" role=\"img\" aria-label=\"containment per institution\">"
    );
    for (i, p) in r.peers.iter().enumerate() {
        let y = 10 + i * bar_h;
        let _ = writeln!(
            h,
            "<text x=\"0\" y=\"{}\">{}</text>",
            y + 16,
            escape(&p.name)
        );
        match &p.error {
            Some(_) => {
                let _ = writeln!(
                    h,
                    "<text x=\"130\" y=\"{}\" fill=\"#666\">no answer</text>",
                    y + 16
                );
            }
            None => {
                let w = (p.containment.clamp(0.0, 1.0) * 400.0).round() as u32;
                let fill = if records(p) >= threshold {
                    "#a40000"
                } else {
                    "#3465a4"
                };
                let _ = writeln!(
                    h,
                    "<rect x=\"130\" y=\"{}\" width=\"{w}\" height=\"{}\" fill=\"{fill}\"/>",
                    y + 3,
                    bar_h - 8
                );
                let _ = writeln!(
                    h,
                    "<text x=\"{}\" y=\"{}\">{}</text>",
                    136 + w,
                    y + 16,
                    pct(p.containment)
                );
            }
        }
    }
    let _ = writeln!(h, "</svg>");
    let _ = writeln!(
        h,
        "<p class=\"meta\">Bar length: containment (matched rows / dump rows in matches mode; the largest share of a key type's dump keys found, in count mode). Red: {threshold} records or more.</p>"
    );

    let _ = writeln!(h, "<h2>Institutions</h2>");
    let _ = writeln!(
        h,
        "<table>\n<tr><th>institution</th><th>epoch</th><th>holder keys</th><th>matched keys</th><th>matched rows</th><th>containment</th><th>≥ {threshold}</th></tr>"
    );
    for p in &r.peers {
        match &p.error {
            Some(e) => {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td colspan=\"6\" class=\"err\">no answer: {}</td></tr>",
                    escape(&p.name),
                    escape(e)
                );
            }
            None => {
                let flagged = records(p) >= threshold;
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                    escape(&p.name),
                    escape(p.epoch.as_deref().unwrap_or("")),
                    escape(&per_type(&p.holder_keys)),
                    escape(&per_type(&p.matched_keys)),
                    p.matched_rows.map_or("–".to_string(), |n| n.to_string()),
                    pct(p.containment),
                    if flagged {
                        format!("<span class=\"flag\">yes: {} records</span>", records(p))
                    } else {
                        format!("no ({} records)", records(p))
                    }
                );
            }
        }
    }
    let _ = writeln!(h, "</table>");

    let d = &r.dump;
    let _ = writeln!(h, "<h2>The dump</h2>");
    let _ = writeln!(
        h,
        "<table>\n<tr><th>data rows</th><td class=\"n\">{}</td></tr>\n<tr><th>rows without a usable key</th><td class=\"n\">{}</td></tr>\n<tr><th>distinct keys</th><td>{}</td></tr>",
        d.rows,
        d.rows_without_key,
        escape(&per_type(&d.keys))
    );
    for (field, reasons) in &d.rejected {
        for (reason, n) in reasons {
            let _ = writeln!(
                h,
                "<tr><th>rejected {}: {}</th><td class=\"n\">{n}</td></tr>",
                field,
                reason.as_str()
            );
        }
    }
    let _ = writeln!(h, "</table>");

    let _ = writeln!(h, "<h2>What this report can and cannot say</h2>");
    let learned = match r.mode {
        QueryMode::Count => {
            "Each institution told the police only how many of the dump's distinct keys (mobile numbers, ID numbers, card numbers) are also in its customer list, per type. Which dump rows matched was not revealed to anyone."
        }
        QueryMode::Matches => {
            "Each institution let the police learn which rows of the dump share a key with its customer list. Nothing else about its customers was revealed."
        }
    };
    let _ = writeln!(
        h,
        "<p>{learned}</p>\n<p>The dump never left the police node: institutions saw only blinded values they cannot reverse or test guesses against, and learned the number of keys queried, not the keys. No institution's list left its node: the police received keyed fingerprints it cannot test guesses against either. The chance of a single false match in a query is below 2<sup>−40</sup>.</p>\n<p>A high containment shows that the dump and a customer list share people. It does not alone prove that an institution was the source: customers are shared between institutions, and dumps are assembled from several sources. Compare the institutions, and the segments and fields of the dump, before drawing conclusions. Rows at or above {threshold} records are flagged because that is the quantity the 2019 prosecutions treated as serious circumstances (情节严重).</p>"
    );
    let _ = writeln!(
        h,
        "<p class=\"meta\">Generated by suyuan {}.</p>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}
