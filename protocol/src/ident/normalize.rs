//! Shared folding helpers.

use unicode_normalization::UnicodeNormalization;

/// Invisible characters that leak into spreadsheets (BOM, zero-width
/// spaces); NFKC keeps them, so they are dropped explicitly.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// NFKC fold, drop invisible characters, trim.
pub(super) fn fold(raw: &str) -> String {
    let folded: String = raw.nfkc().filter(|&c| !is_invisible(c)).collect();
    folded.trim().to_owned()
}

/// Lower-case then NFKC again, repeated until stable: lower-casing can
/// produce non-NFKC text, and the result must be a fixed point so that
/// canonicalisation is idempotent.
pub(super) fn lower_fold(s: &str) -> String {
    let mut cur = s.to_owned();
    for _ in 0..4 {
        let next: String = cur.to_lowercase().nfkc().collect();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// Dash-like characters people type inside numbers. NFKC already folds
/// the full-width and small forms to `-`, they are listed for clarity.
pub(super) fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}'
    )
}

/// Separators between several values in one cell (e.g. two phone numbers).
fn is_multi_separator(c: char) -> bool {
    matches!(c, ';' | '；' | ',' | '，' | '/' | '、' | '|')
}

/// Split a cell holding several values; empty parts are skipped.
pub(super) fn split_multi(cell: &str) -> impl Iterator<Item = &str> {
    cell.split(is_multi_separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// CJK ideographs, kana and hangul: scripts written without spaces.
pub(super) fn is_cjk(c: char) -> bool {
    matches!(
        c,
        '\u{2E80}'..='\u{2FDF}'
            | '\u{3005}'..='\u{3007}'
            | '\u{3040}'..='\u{30FF}'
            | '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{AC00}'..='\u{D7AF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{2FA1F}'
            | '\u{30000}'..='\u{3134F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_full_width_and_bom() {
        assert_eq!(fold("\u{FEFF}　１３８ "), "138");
    }

    #[test]
    fn split_multi_values() {
        let parts: Vec<&str> = split_multi(" a；b,,c / d、e|f，g;").collect();
        assert_eq!(parts, ["a", "b", "c", "d", "e", "f", "g"]);
    }

    #[test]
    fn lower_fold_is_stable() {
        let once = lower_fold("İSTANBUL Ǆ");
        assert_eq!(lower_fold(&once), once);
    }
}
