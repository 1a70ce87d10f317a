//! Text for people: aligned tables, and a peer's words made safe to show.

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
}
