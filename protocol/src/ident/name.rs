//! Person names (only used inside composite keys).

use super::Rejection;
use super::normalize::{fold, is_cjk, lower_fold};

/// Middle-dot variants used in transliterated minority and foreign names
/// (e.g. 阿沛·阿旺晋美); unified so spelling variants match.
fn unify_dot(c: char) -> char {
    match c {
        '\u{2022}' | '\u{2027}' | '\u{2219}' | '\u{22C5}' | '\u{30FB}' => '\u{00B7}',
        c => c,
    }
}

/// Characters after which or before which no space is kept.
fn joins_tightly(prev: char, next: char) -> bool {
    (is_cjk(prev) && is_cjk(next)) || prev == '\u{00B7}' || next == '\u{00B7}'
}

fn bad_char(c: char) -> bool {
    // '|' separates the parts of a composite key.
    (c.is_control() && !c.is_whitespace())
        || c == '|'
        || c.is_ascii_digit()
        || (c.is_numeric() && !is_cjk(c))
}

/// Longest canonical name, in bytes (85 CJK characters; real names are far shorter). It keeps
/// every OPRF input within RFC 9497's 2^16 - 1 bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Canonicalise a name: NFKC, trimmed, Latin lower-cased, spaces between
/// CJK characters removed and other whitespace runs collapsed to one space
/// ("张 慧" → "张慧", "John  Smith" → "john smith"); at most [`MAX_NAME_BYTES`].
pub fn canonical_name(raw: &str) -> Result<String, Rejection> {
    let folded: String = lower_fold(&fold(raw)).chars().map(unify_dot).collect();
    if folded.chars().any(bad_char) {
        return Err(Rejection::BadCharacter);
    }
    let mut out = String::with_capacity(folded.len());
    for token in folded.split_whitespace() {
        if let (Some(prev), Some(next)) = (out.chars().next_back(), token.chars().next())
            && !joins_tightly(prev, next)
        {
            out.push(' ');
        }
        out.push_str(token);
    }
    // Joining can put combining marks next to their base again.
    let out = lower_fold(&out);
    if out.is_empty() || out.len() > MAX_NAME_BYTES {
        return Err(Rejection::WrongLength);
    }
    if out.chars().any(bad_char) {
        return Err(Rejection::BadCharacter);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_longer_than_255_bytes_are_refused() {
        let at_limit = "张".repeat(85);
        assert_eq!(canonical_name(&at_limit).as_deref(), Ok(at_limit.as_str()));
        assert_eq!(
            canonical_name(&"张".repeat(86)),
            Err(Rejection::WrongLength)
        );
    }

    #[test]
    fn examples() {
        let cases = [
            ("张慧", "张慧"),
            ("张 慧", "张慧"),
            (" 张\u{3000}慧 ", "张慧"),
            ("John  Smith", "john smith"),
            ("ＪＯＨＮ\tSMITH", "john smith"),
            ("阿沛 · 阿旺晋美", "阿沛·阿旺晋美"),
            ("买买提•艾力", "买买提·艾力"),
            ("张 John", "张 john"),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_name(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(canonical_name(""), Err(Rejection::WrongLength));
        assert_eq!(
            canonical_name(" \u{3000}\u{FEFF}"),
            Err(Rejection::WrongLength)
        );
        assert_eq!(canonical_name("张3"), Err(Rejection::BadCharacter));
        assert_eq!(canonical_name("张３"), Err(Rejection::BadCharacter));
        assert_eq!(canonical_name("张\u{1}慧"), Err(Rejection::BadCharacter));
        assert_eq!(canonical_name("张|慧"), Err(Rejection::BadCharacter));
        assert_eq!(canonical_name("张\u{663}"), Err(Rejection::BadCharacter));
    }

    proptest! {
        #[test]
        fn idempotent(raw in "\\PC*|[张慧阿a-zA-ZİΣ \u{3000}·•か\u{3099}]{0,12}") {
            if let Ok(c) = canonical_name(&raw) {
                prop_assert_eq!(canonical_name(&c), Ok(c));
            }
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = canonical_name(&raw);
        }
    }
}
