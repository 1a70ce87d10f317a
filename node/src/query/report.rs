//! The query report: its JSON schema (stable, documented in docs/operations.md) and its text
//! table.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use suyuan_protocol::ident::{Field, KeyType, Rejection};
use suyuan_protocol::psi::{QueryMode, QueryResult};

use super::PeerSpec;
use crate::text::{self, printable};

/// The JSON report (schema in docs/operations.md; stable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Case number.
    pub case: Option<String>,
    /// Mode.
    pub mode: QueryMode,
    /// RFC 3339 UTC.
    pub created: String,
    /// The dump's data quality.
    pub dump: DumpSummary,
    /// One entry per peer, in the order given.
    pub peers: Vec<PeerReport>,
    /// How long reading and blinding the dump took (diagnostics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<QueryTiming>,
    /// The population the dump is taken to be drawn from (`--population`), for each
    /// institution's `attribution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<u64>,
    /// The querier's signature over the whole report, this field left out
    /// (`query::verify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::evidence::Signed>,
    /// The dump asked was the one the holder published for the case (`suyuan check`), not
    /// its own list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub published: bool,
}

/// Where the querier's own time went, before any peer was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTiming {
    /// Reading, decoding and canonicalising the dump, in milliseconds.
    pub read_ms: u64,
    /// Planning the query (the distinct keys of every type), in milliseconds: the time before
    /// the first peer is asked. (In reports written before the blinding ran beside the
    /// exchange, the whole blinding.)
    pub blind_ms: u64,
    /// The blinding of every distinct key (hash to the curve, multiply, compress), in
    /// milliseconds, which runs beside the exchanges: the holders evaluate the first chunks
    /// while the last are blinded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blinding_ms: Option<u64>,
}

/// The dump's data quality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    /// Data rows (header excluded).
    pub rows: u64,
    /// Rows that yielded no usable key.
    pub rows_without_key: u64,
    /// Distinct keys per type.
    pub keys: BTreeMap<KeyType, u64>,
    /// Rejected values per field and reason.
    pub rejected: BTreeMap<Field, BTreeMap<Rejection, u64>>,
}

/// One peer's answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// Node name.
    pub name: String,
    /// Address dialled.
    pub address: String,
    /// The epoch that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The holder's distinct keys per queried type.
    pub holder_keys: BTreeMap<KeyType, u64>,
    /// Matched distinct keys per type.
    pub matched_keys: BTreeMap<KeyType, u64>,
    /// `matches` mode: how many dump rows matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_rows: Option<u64>,
    /// `matches` mode: 1-based data-row numbers of the dump that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<u64>>,
    /// Deprecated (two measures under one name): `row_share` in `matches` mode, the largest
    /// `key_share` in `count` mode. Kept for readers of older reports.
    pub containment: f64,
    /// `matches` mode: matched rows / dump rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_share: Option<f64>,
    /// Per key type: matched keys / the dump's distinct keys of that type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_share: BTreeMap<KeyType, f64>,
    /// Whether the overlap exceeds chance for this list's size (`--population`), ranked among
    /// the institutions that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<super::attribution::Attribution>,
    /// Why this peer gave no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Diagnostics of the exchange (absent on error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<PeerStats>,
    /// Key types this holder did not count: fewer keys than its minimum per key type (the
    /// query was asked again without them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withheld: Option<Withheld>,
    /// The holder's epoch statement, as it signed it (with its certificate): the answer was
    /// checked against it (`suyuan verify` checks it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<crate::evidence::Signed>,
    /// The holder's signed answer for this query (`evidence::Answer`), checked at query time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<crate::evidence::Signed>,
    /// `query --labels`: label → value → key type → matched dump keys held by a record of
    /// the holder's carrying that value (cells of at least `label_min_cell` keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: super::labels::LabelCounts,
    /// Per label, the cells withheld (under `label_min_cell`, or a value too rare in the
    /// holder's list to name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_suppressed: BTreeMap<String, u64>,
    /// The holder's `min_label_cell`, when labels were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_min_cell: Option<u64>,
    /// `matches` mode with labels: for each matched row (1-based, as `rows`) its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_labels: Option<super::labels::RowLabels>,
    /// Matched keys whose labels did not open.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub labels_unreadable: u64,
    /// With the holder's `share_label_totals`: each reported value's keys in its whole list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_totals: super::labels::LabelTotals,
    /// With those totals: each reported value's share of the matches against its share of the
    /// list, with the hypergeometric test (`query/labels.rs`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_lift: BTreeMap<String, BTreeMap<String, super::labels::LabelTest>>,
    /// With those totals, per `month` label: the month from which the share of the list found
    /// in the dump drops (the copy was taken before it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_timeline: BTreeMap<String, super::labels::Timeline>,
    /// Exports whose planted records (`import --canaries`) are in the dump, most keys first:
    /// proof that the dump holds that export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canary_hits: Vec<super::labels::CanaryHit>,
    /// Per key type: matched keys / the holder's keys of that type (the other containment:
    /// how much of the holder's list, or of a published seizure, is in the dump).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub holder_share: BTreeMap<KeyType, f64>,
    /// The court's warrant this query was admitted on (`query --warrant`), as signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warrant: Option<crate::evidence::Signed>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Sections a holder would not answer, as its refusal named them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    /// The dump's distinct keys of each such type.
    pub keys: BTreeMap<KeyType, u64>,
    /// The holder's minimum per key type.
    pub min: u64,
}

impl std::fmt::Display for Withheld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .keys
            .iter()
            .map(|(kt, n)| format!("{kt} ({n} keys)"))
            .collect();
        write!(
            f,
            "{}, below the holder's minimum of {} keys per key type",
            parts.join(", "),
            self.min
        )
    }
}

/// What an exchange with one peer cost this side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Wall time from connecting to the result, in milliseconds.
    pub wall_ms: u64,
    /// CPU time spent unblinding, tagging and looking up, in milliseconds.
    pub unblind_ms: u64,
    /// UDP payload bytes sent to the peer.
    pub bytes_sent: u64,
    /// UDP payload bytes received from the peer.
    pub bytes_received: u64,
    /// The holder's tags came from this node's tag cache, not the wire.
    #[serde(default)]
    pub tags_kept: bool,
    /// Datagrams sent to the peer that were lost and had to be sent again.
    #[serde(default)]
    pub datagrams_lost: u64,
    /// Keys the holder had to prepare this count session over before answering (0: it had one
    /// prepared while idle, or the query was in `matches` mode).
    #[serde(default)]
    pub holder_prepared_keys: u64,
}

pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Matched rows / dump rows in `matches` mode; in `count` mode, where rows are unknown, the
/// largest share over key types of the dump's keys found at the holder.
pub fn containment(r: &QueryResult, dump_rows: u64) -> f64 {
    match &r.matched_rows {
        Some(rows) => ratio(rows.len() as u64, dump_rows),
        None => key_share(r).into_values().fold(0.0, f64::max),
    }
}

/// Per key type asked: matched keys / the dump's distinct keys.
pub fn key_share(r: &QueryResult) -> BTreeMap<KeyType, f64> {
    r.query_keys
        .iter()
        .map(|(kt, n)| (*kt, ratio(r.matched_keys.get(kt).copied().unwrap_or(0), *n)))
        .collect()
}

impl PeerReport {
    pub(crate) fn from_result(peer: &PeerSpec, r: &QueryResult, dump_rows: u64) -> Self {
        let rows: Option<Vec<u64>> = r
            .matched_rows
            .as_ref()
            .map(|rows| rows.iter().map(|i| i + 1).collect());
        let containment = containment(r, dump_rows);
        let report = r
            .labels
            .as_ref()
            .map(|a| super::labels::report(a, &r.holder_keys, &r.matched_keys));
        let label_min_cell = report.as_ref().map(|l| l.min_cell);
        let super::labels::LabelReport {
            labels,
            suppressed: labels_suppressed,
            rows: row_labels,
            unreadable: labels_unreadable,
            totals: label_totals,
            lift: label_lift,
            timeline: label_timeline,
            canary_hits,
            ..
        } = report.unwrap_or_default();
        PeerReport {
            labels,
            labels_suppressed,
            label_min_cell,
            row_labels,
            labels_unreadable,
            label_totals,
            label_lift,
            label_timeline,
            canary_hits,
            name: peer.name.clone(),
            address: peer.address.clone(),
            epoch: Some(r.epoch.to_string()),
            holder_keys: r.holder_keys.clone(),
            matched_keys: r.matched_keys.clone(),
            matched_rows: rows.as_ref().map(|r| r.len() as u64),
            row_share: rows.as_ref().map(|r| ratio(r.len() as u64, dump_rows)),
            key_share: key_share(r),
            holder_share: r
                .holder_keys
                .iter()
                .map(|(kt, n)| (*kt, ratio(r.matched_keys.get(kt).copied().unwrap_or(0), *n)))
                .collect(),
            warrant: None,
            rows,
            containment,
            attribution: None,
            error: None,
            stats: None,
            withheld: None,
            statement: None,
            answer: None,
        }
    }

    pub(crate) fn failed(peer: &PeerSpec, error: String) -> Self {
        PeerReport {
            name: peer.name.clone(),
            address: peer.address.clone(),
            epoch: None,
            holder_keys: BTreeMap::new(),
            matched_keys: BTreeMap::new(),
            matched_rows: None,
            rows: None,
            containment: 0.0,
            row_share: None,
            key_share: BTreeMap::new(),
            attribution: None,
            error: Some(printable(&error)),
            stats: None,
            withheld: None,
            statement: None,
            answer: None,
            labels: BTreeMap::new(),
            labels_suppressed: BTreeMap::new(),
            label_min_cell: None,
            row_labels: None,
            labels_unreadable: 0,
            label_totals: BTreeMap::new(),
            label_lift: BTreeMap::new(),
            label_timeline: BTreeMap::new(),
            canary_hits: Vec::new(),
            holder_share: BTreeMap::new(),
            warrant: None,
        }
    }
}

/// The report as aligned text: the dump's quality, then one row per peer, the strongest
/// evidence of being a source first.
pub fn render(report: &Report) -> String {
    let d = &report.dump;
    let quality = text::quality(
        d.rows,
        d.rows_without_key,
        "distinct keys",
        &d.keys,
        &d.rejected,
    );
    format!(
        "{}dump: {quality}\n{}{}{}{}",
        canary_banner(report),
        peer_table(report),
        sources_line(report),
        warrant_lines(report),
        label_lines(report)
    )
}

/// The warrant each answer was given on: its digest, court, and the count it rests on.
fn warrant_lines(report: &Report) -> String {
    use crate::evidence::warrant::{WARRANT_CONTEXT, Warrant, short};
    let mut out = String::new();
    for p in &report.peers {
        let Some(signed) = &p.warrant else { continue };
        let Ok(w) = signed.open::<Warrant>(WARRANT_CONTEXT) else {
            out.push_str(&format!("{}: its warrant is unreadable\n", p.name));
            continue;
        };
        let on = w.receipt.as_ref().map_or(String::new(), |r| {
            format!(", granted on its signed count of {}", r.count)
        });
        out.push_str(&format!(
            "{}: answered on warrant {} of court {} (case {}, until {}){on}\n",
            p.name,
            short(signed),
            printable(&w.court),
            printable(&w.case),
            crate::clock::rfc3339(w.expires)
        ));
    }
    out
}

/// First and loudest: every export whose planted records are in the dump.
fn canary_banner(report: &Report) -> String {
    let mut out = String::new();
    for p in &report.peers {
        for hit in &p.canary_hits {
            out += &format!(
                "CANARY: {} keys planted by {} in export {:?} are in the dump: the dump holds that export\n",
                hit.keys,
                p.name,
                printable(&hit.export)
            );
        }
    }
    out
}

/// Values shown per label in the terminal; the JSON and HTML reports have them all.
const LABEL_VALUES_SHOWN: usize = 8;

/// Per peer that gave labels: each label's values, the most matched keys first.
fn label_lines(report: &Report) -> String {
    let mut out = String::new();
    for p in ranked(&report.peers) {
        let Some(min) = p.label_min_cell else {
            continue;
        };
        let withheld: Vec<String> = p
            .labels_suppressed
            .iter()
            .map(|(l, n)| format!("{l} {n}"))
            .collect();
        out += &format!(
            "labels of {}'s matches (cells of fewer than {min} keys withheld{}):\n",
            p.name,
            if withheld.is_empty() {
                String::new()
            } else {
                format!(": {}", withheld.join(", "))
            }
        );
        if p.labels.is_empty() {
            out += "  none to report\n";
        }
        for (label, t) in &p.label_timeline {
            out += &timeline_line(p, label, t, min);
        }
        // A month label with a timeline is said by it; its months are in the JSON report.
        let untimed = |l: &&String| !p.label_timeline.contains_key(*l);
        for (label, tests) in p.label_lift.iter().filter(|(l, _)| untimed(l)) {
            out += &lift_line(p, label, tests);
        }
        for (label, values) in p.labels.iter().filter(|(l, _)| untimed(l)) {
            out += &values_line(label, values);
        }
    }
    out
}

/// Since when: the split of a month label's timeline.
fn timeline_line(p: &PeerReport, label: &str, t: &super::labels::Timeline, min: u64) -> String {
    // The months are the holder's words: no control sequence reaches the terminal.
    let (change, earliest, latest, last_before) = (
        printable(&t.change),
        printable(&t.earliest),
        printable(&t.latest),
        printable(&t.last_before),
    );
    let after = match &t.after {
        Some(a) => format!("{:.1}% from {change} on", 100.0 * a.share),
        None => format!("fewer than {min} keys from {change} on"),
    };
    let when = match t.earliest == t.latest {
        true => format!("predates {change}"),
        false => format!("predates {change} (most likely; between {earliest} and {latest})"),
    };
    format!(
        "  {label}: the copy {when}: {:.1}% of {}'s {} keys opened up to {last_before} are in the dump, {after} (z {:.1})\n",
        100.0 * t.before.share,
        p.name,
        t.key_type,
        t.z
    )
}

/// The value of a label that stands out among the matches, or that none does.
fn lift_line(
    p: &PeerReport,
    label: &str,
    tests: &BTreeMap<String, super::labels::LabelTest>,
) -> String {
    match super::labels::standout(tests) {
        Some((value, t)) => format!(
            "  {label}: {} holds {:.1}% of {}'s {} keys but {:.1}% of the matches (lift {:.2}, p {} over {} values)\n",
            printable(value),
            100.0 * t.share_of_list,
            p.name,
            t.key_type,
            100.0 * t.share_of_matches,
            t.test.lift,
            p_value(t.log10_p_corrected),
            tests.len()
        ),
        None => {
            let smallest = tests
                .values()
                .map(|t| t.log10_p_corrected)
                .fold(0.0, f64::min);
            format!(
                "  {label}: no value stands out among the matches (smallest p {} over {} values)\n",
                p_value(smallest),
                tests.len()
            )
        }
    }
}

/// A label's values, the most matched keys first.
fn values_line(label: &str, values: &BTreeMap<String, BTreeMap<KeyType, u64>>) -> String {
    let mut v: Vec<(&String, &BTreeMap<KeyType, u64>)> = values.iter().collect();
    v.sort_by_key(|(name, per)| (std::cmp::Reverse(per.values().sum::<u64>()), *name));
    let shown: Vec<String> = v
        .iter()
        .take(LABEL_VALUES_SHOWN)
        .map(|(name, per)| format!("{} {}", printable(name), text::counts(per, "")))
        .collect();
    let more = v.len().saturating_sub(LABEL_VALUES_SHOWN);
    format!(
        "  {label}: {}{}\n",
        shown.join(" · "),
        if more > 0 {
            format!(" · {more} more in the JSON report")
        } else {
            String::new()
        }
    )
}

/// The peers in rank order; those without an answer last, in the order given.
pub fn ranked(peers: &[PeerReport]) -> Vec<&PeerReport> {
    let mut v: Vec<&PeerReport> = peers.iter().collect();
    v.sort_by_key(|p| p.attribution.as_ref().map_or(usize::MAX, |a| a.rank));
    v
}

/// `10^log10_p` written so that a reader can check it: `0.37`, `2.0e-28474`.
pub fn p_value(log10_p: f64) -> String {
    if log10_p > -3.0 {
        return format!("{:.3}", 10f64.powf(log10_p));
    }
    let e = log10_p.floor();
    format!("{:.1}e{}", 10f64.powf(log10_p - e), e as i64)
}

/// A lift, readable at any size: `1.81`, `7.1e8`.
pub fn lift(x: f64) -> String {
    match x < 1000.0 {
        true => format!("{x:.2}"),
        false => format!("{x:.1e}"),
    }
}

/// What the share column measures in this mode.
pub fn share_name(mode: QueryMode) -> &'static str {
    match mode {
        QueryMode::Matches => "dump rows matched",
        QueryMode::Count => "best key share",
    }
}

/// The share a peer is shown with: matched rows over dump rows (`matches`), the largest
/// share of a key type's dump keys (`count`); a report of an older version has only its
/// `containment`, which is the same.
pub fn share(p: &PeerReport) -> f64 {
    p.row_share
        .or_else(|| p.key_share.values().copied().reduce(f64::max))
        .unwrap_or(p.containment)
}

fn peer_table(report: &Report) -> String {
    let mut rows = vec![
        [
            "peer",
            "holder keys",
            "matched keys",
            "matched rows",
            share_name(report.mode),
            "lift",
            "p",
            "likely source",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in ranked(&report.peers) {
        rows.push(match (&p.error, p.attribution.as_ref()) {
            (Some(e), _) => vec![p.name.clone(), format!("error: {e}")],
            (None, a) => vec![
                p.name.clone(),
                text::counts(&p.holder_keys, "-"),
                text::counts(&p.matched_keys, "-"),
                p.matched_rows.map_or("-".to_string(), |n| n.to_string()),
                format!("{:.1}%", 100.0 * share(p)),
                a.map_or("-".into(), |a| lift(a.lift)),
                a.map_or("-".into(), |a| p_value(a.log10_p)),
                a.map_or("-", |a| if a.likely_source { "yes" } else { "no" })
                    .to_string(),
            ],
        });
    }
    let right = [false, false, false, true, true, true, true, false];
    let mut table = text::aligned(&rows, &right);
    for p in &report.peers {
        if let Some(w) = &p.withheld {
            table.push_str(&format!("{}: not counted: {w}\n", p.name));
        }
    }
    table
}

/// Which institutions overlap the dump more than chance explains, against which population.
fn sources_line(report: &Report) -> String {
    let Some(population) = report.population else {
        return String::new();
    };
    let names = |likely: bool| -> Vec<&str> {
        ranked(&report.peers)
            .into_iter()
            .filter(|p| {
                p.attribution
                    .as_ref()
                    .is_some_and(|a| a.likely_source == likely)
            })
            .map(|p| p.name.as_str())
            .collect()
    };
    let (yes, no) = (names(true), names(false));
    let list = |v: &[&str]| match v.is_empty() {
        true => "none".to_string(),
        false => v.join(", "),
    };
    format!(
        "against a population of {population}: more overlap than chance for its size (p ≤ 1e-6): {}; no more than chance: {}\n",
        list(&yes),
        list(&no)
    )
}

/// Writes the JSON report (mode 0600: see [`write_private`]).
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    write_private(path, (text + "\n").as_bytes())
}

/// Writes a report file readable by its owner only (0600, an existing file's mode narrowed
/// too): a `matches` report lists the dump rows that matched, which is personal data.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let cannot = || format!("cannot write {}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(cannot)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(cannot)?;
    f.write_all(bytes).with_context(cannot)
}

/// What `suyuan check` says of a published case: in `matches` mode how many of this list's
/// rows the dump holds; in `count` mode both containments per key type ("82% of this seizure
/// is inside case X", and how much of case X is in this one).
pub fn check_lines(report: &Report, peer: &PeerReport) -> Vec<String> {
    let case = report.case.as_deref().unwrap_or("");
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    if let Some(n) = peer.matched_rows {
        return vec![format!(
            "{n} of this list's {} rows are in the dump of case {case:?} published by {} ({})",
            report.dump.rows,
            peer.name,
            pct(peer.row_share.unwrap_or(0.0))
        )];
    }
    let mut lines = Vec::new();
    for (kt, matched) in &peer.matched_keys {
        let inside = peer.key_share.get(kt).copied().unwrap_or(0.0);
        let back = peer.holder_share.get(kt).copied().unwrap_or(0.0);
        lines.push(format!(
            "{kt}: {matched} keys in common: {} of this seizure is inside case {case:?}; {} of case {case:?} is in this seizure",
            pct(inside),
            pct(back)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn reports_are_written_for_their_owner_only_even_over_a_wider_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "old, longer than what replaces it").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"{}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
    }
}
