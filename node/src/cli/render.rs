//! What the node's commands print, as strings: the quality summary, audit lines, the status.

use suyuan_node::lists::InputSummary;
use suyuan_node::node_dir::audit::{Entry, Side};
use suyuan_node::node_dir::store::{CanarySummary, EpochMeta, LabelSummary};
use suyuan_node::{clock, text};

/// The data-quality summary of a file just read.
pub(crate) fn quality(s: &InputSummary) -> String {
    let q = &s.quality;
    text::quality(q.rows, q.rows_without_key, "keys", &q.keys, &q.rejected)
}

/// One audit entry as a line of `audit show` and `status`.
pub(crate) fn audit_line(e: &Entry) -> String {
    let r = &e.record;
    format!(
        "{:>5}  {}  {:<7}  {:<16}  {:<11}  {:<14}  {:<7}  {:>9}  {:<9}  {}",
        e.seq,
        e.time,
        match r.side {
            Side::Holder => "holder",
            Side::Querier => "querier",
        },
        r.peer,
        r.peer_role.map_or("-".to_string(), |x| x.to_string()),
        r.case.as_deref().unwrap_or("-"),
        r.mode.map_or("-", |m| m.as_str()),
        r.query_keys.map_or("-".to_string(), |n| n.to_string()),
        serde_json::to_value(r.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        // A peer's words (an abort reason) never reach the terminal as control sequences.
        text::printable(r.detail.as_deref().unwrap_or(""))
    ) + &r
        .warrant
        .as_ref()
        .map(|w| {
            let short: String = w.chars().take(16).collect();
            format!("  warrant {}", text::printable(&short))
        })
        .unwrap_or_default()
        + if r.published {
            "  (published case)"
        } else {
            ""
        }
}

/// The epoch line of `status`.
pub(crate) fn epoch(m: &EpochMeta) -> String {
    format!(
        "epoch {} imported {} from {} ({} rows); keys: {}; content verified",
        m.id,
        clock::rfc3339(m.created),
        m.source,
        m.rows,
        text::counts(&m.sizes, "")
    ) + &m
        .labels
        .iter()
        .map(|l| format!("\n{}", label(l)))
        .collect::<String>()
        + &m.canaries
            .as_ref()
            .map(|c| format!("\n{}", canaries(c)))
            .unwrap_or_default()
}

/// The canaries an import planted: `import` prints it, `status` repeats it.
pub(crate) fn canaries(c: &CanarySummary) -> String {
    format!(
        "canaries: {} records from {} in {} export(s) ({}); held with the label canary, not among the list's rows",
        c.records,
        c.file,
        c.exports.len(),
        c.exports.join(", ")
    )
}

/// What an import found for one label: `import` prints it, `status` repeats it.
pub(crate) fn label(l: &LabelSummary) -> String {
    let mut line = format!(
        "label {} ({} from {}): {} distinct values; {} keys carry one",
        l.name,
        l.kind.as_str(),
        l.header,
        l.stats.values,
        l.stats.keys_with_value
    );
    if l.unreadable > 0 {
        line += &format!(
            "; unreadable as a date, left without a value: {} cells",
            l.unreadable
        );
    }
    if l.stats.capped > 0 {
        line += &format!(
            "; keys with more than {} values, which kept the first {0}: {}",
            suyuan_protocol::psi::labels::MAX_VALUES_PER_KEY,
            l.stats.capped
        );
    }
    line
}

/// `n` bytes in MiB, one decimal.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}
