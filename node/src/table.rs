//! Aligned text tables for the terminal.

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
