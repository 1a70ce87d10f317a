//! Mainland China mobile numbers.

use super::Rejection;
use super::normalize::{fold, is_dash};

/// Canonicalise a mobile number to its 11 digits, e.g.
/// `"+86 138-0013-8000"` → `"13800138000"`.
pub fn canonical_mobile(raw: &str) -> Result<String, Rejection> {
    let folded = fold(raw);
    let mut digits = String::with_capacity(folded.len());
    let mut plus = false;
    for c in folded.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if c.is_whitespace() || is_dash(c) || matches!(c, '.' | '(' | ')') {
            // Formatting only.
        } else if c == '+' && !plus && digits.is_empty() {
            plus = true;
        } else {
            return Err(Rejection::BadCharacter);
        }
    }
    let national = if plus {
        // An explicit '+' must be China's code.
        match digits.strip_prefix("86") {
            Some(rest) => rest,
            None if digits.is_empty() => return Err(Rejection::WrongLength),
            None => return Err(Rejection::BadPrefix),
        }
    } else {
        strip_country_code(&digits)
    };
    if national.len() != 11 {
        return Err(Rejection::WrongLength);
    }
    let mut head = national.bytes();
    match (head.next(), head.next()) {
        (Some(b'1'), Some(b'3'..=b'9')) => Ok(national.to_owned()),
        _ => Err(Rejection::BadPrefix),
    }
}

/// Without '+', `0086`/`86` is only a country code when 11 digits follow;
/// otherwise the digits are kept so the length error is reported.
fn strip_country_code(digits: &str) -> &str {
    for code in ["0086", "86"] {
        if let Some(rest) = digits.strip_prefix(code)
            && rest.len() == 11
        {
            return rest;
        }
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::testutil::{render_mobile, valid_mobile};
    use proptest::prelude::*;

    #[test]
    fn examples() {
        for raw in [
            "13800138000",
            "+86 138-0013-8000",
            "0086 13800138000",
            "8613800138000",
            "１３８００１３８０００",
            "(+86) 138.0013.8000",
            "138\u{3000}0013\t8000",
            "138—0013–8000",
            "+８６－１３８００１３８０００",
        ] {
            assert_eq!(canonical_mobile(raw).as_deref(), Ok("13800138000"), "{raw}");
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(
            canonical_mobile("138a0013800"),
            Err(Rejection::BadCharacter)
        );
        assert_eq!(
            canonical_mobile("138+00138000"),
            Err(Rejection::BadCharacter)
        );
        assert_eq!(canonical_mobile("1380013800"), Err(Rejection::WrongLength));
        assert_eq!(
            canonical_mobile("138001380001"),
            Err(Rejection::WrongLength)
        );
        assert_eq!(canonical_mobile(""), Err(Rejection::WrongLength));
        assert_eq!(
            canonical_mobile("+86 1380013800"),
            Err(Rejection::WrongLength)
        );
        assert_eq!(canonical_mobile("12800138000"), Err(Rejection::BadPrefix));
        assert_eq!(canonical_mobile("23800138000"), Err(Rejection::BadPrefix));
        assert_eq!(
            canonical_mobile("+1 415 555 0100"),
            Err(Rejection::BadPrefix)
        );
        assert_eq!(
            canonical_mobile("+44 13800138000"),
            Err(Rejection::BadPrefix)
        );
    }

    proptest! {
        #[test]
        fn variants_agree((m, rendered) in valid_mobile().prop_flat_map(|m| (Just(m.clone()), render_mobile(m)))) {
            prop_assert_eq!(canonical_mobile(&rendered), Ok(m));
        }

        #[test]
        fn idempotent(raw in "\\PC*|[+0-9 ()-]{0,20}") {
            if let Ok(c) = canonical_mobile(&raw) {
                prop_assert_eq!(canonical_mobile(&c), Ok(c));
            }
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = canonical_mobile(&raw);
        }
    }
}
