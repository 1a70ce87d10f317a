//! Text for people: aligned tables, counts per type, the data-quality summary, and a peer's
//! words made safe to show.

use std::collections::BTreeMap;
use std::fmt::Display;

/// Characters that reorder the text around them when displayed: kept out of case numbers and
/// escaped wherever a peer's text is shown, so what an auditor reads is what was written.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Peer-supplied text made safe for a terminal: control and bidi characters shown as escapes.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lays out `rows` (the first is the header) in columns two spaces apart; `right[c]` aligns
/// column `c` to the right. A row with fewer cells than the header is a note: its first cell
/// takes the first column and the rest follows as free text, counted in no width.
pub fn aligned(rows: &[Vec<String>], right: &[bool]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter(|r| c == 0 || r.len() == columns)
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let note = row.len() < columns && c > 0;
            let pad = if note {
                0
            } else {
                widths[c].saturating_sub(cell.chars().count())
            };
            if right.get(c).copied().unwrap_or(false) && !note {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Counts per type as `"mobile 3, resident_id 1"`, or `empty` when there are none.
pub fn counts<K: Display>(m: &BTreeMap<K, u64>, empty: &str) -> String {
    if m.is_empty() {
        return empty.to_string();
    }
    let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
    parts.join(", ")
}

/// One `rejected FIELD: REASON (N)` line per field and reason, each after `indent`.
pub fn rejections<F: Display, R: Display>(
    rejected: &BTreeMap<F, BTreeMap<R, u64>>,
    indent: &str,
) -> String {
    let mut out = String::new();
    for (field, reasons) in rejected {
        for (reason, n) in reasons {
            out.push_str(&format!("{indent}rejected {field}: {reason} ({n})\n"));
        }
    }
    out
}

/// A file's data quality as `import` and `query` show it: `R rows, N without a usable key;
/// LABEL: k n, ...` and the rejected values below it.
pub fn quality<K: Display, F: Display, R: Display>(
    rows: u64,
    rows_without_key: u64,
    keys_label: &str,
    keys: &BTreeMap<K, u64>,
    rejected: &BTreeMap<F, BTreeMap<R, u64>>,
) -> String {
    format!(
        "{rows} rows, {rows_without_key} without a usable key; {keys_label}: {}\n{}",
        counts(keys, "none"),
        rejections(rejected, "  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_notes_span() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let t = aligned(
            &[
                s(&["peer", "keys", "n"]),
                s(&["bank", "mobile 3", "12"]),
                s(&["courier", "error: down"]),
            ],
            &[false, false, true],
        );
        assert_eq!(
            t,
            "peer     keys       n\nbank     mobile 3  12\ncourier  error: down\n"
        );
    }

    #[test]
    fn quality_lists_keys_and_rejections() {
        let keys = BTreeMap::from([("mobile", 2), ("email", 1)]);
        let rejected = BTreeMap::from([("mobile", BTreeMap::from([("wrong length", 3)]))]);
        assert_eq!(
            quality(5, 1, "keys", &keys, &rejected),
            "5 rows, 1 without a usable key; keys: email 1, mobile 2\n  rejected mobile: wrong length (3)\n"
        );
        let none: BTreeMap<&str, u64> = BTreeMap::new();
        let no_rejections: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        assert_eq!(
            quality(0, 0, "distinct keys", &none, &no_rejections),
            "0 rows, 0 without a usable key; distinct keys: none\n"
        );
    }
}
