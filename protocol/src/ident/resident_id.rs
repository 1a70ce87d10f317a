//! Resident identity card numbers (GB 11643).

use super::Rejection;
use super::date::is_valid_yyyymmdd;
use super::normalize::{fold, is_dash};

/// ISO 7064 MOD 11-2 weights for the 17 body digits.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character indexed by the weighted sum mod 11.
const CHECK_CHARS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
/// Birth years a resident ID may carry: those of a birth date field.
const ID_YEARS: std::ops::RangeInclusive<u32> = super::date::BIRTH_YEARS;

/// Check character for a 17-digit body; `None` if it is not 17 digits.
pub(super) fn check_char(body: &str) -> Option<char> {
    if body.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in body.chars().zip(WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    CHECK_CHARS.get(usize::try_from(sum % 11).ok()?).copied()
}

/// The `YYYYMMDD` birth date inside a canonical 18-character ID.
pub(super) fn birthdate_of(canonical_id: &str) -> Option<&str> {
    canonical_id.get(6..14)
}

/// Canonicalise a resident ID to 18 characters with an upper-case `X`;
/// 15-digit legacy numbers are upgraded (year prefixed with `19`, check
/// character computed).
pub fn canonical_resident_id(raw: &str) -> Result<String, Rejection> {
    let folded = fold(raw);
    let mut id = String::with_capacity(18);
    for c in folded.chars() {
        if c.is_ascii_digit() {
            id.push(c);
        } else if c == 'x' || c == 'X' {
            id.push('X');
        } else if !(c.is_whitespace() || is_dash(c)) {
            return Err(Rejection::BadCharacter);
        }
    }
    if let Some(pos) = id.find('X') {
        // Only the final check character of an 18-character ID may be X.
        if pos + 1 != id.len() || id.len() != 18 {
            return Err(Rejection::BadCharacter);
        }
    }
    match id.len() {
        18 => {
            let (body, check) = id.split_at_checked(17).ok_or(Rejection::WrongLength)?;
            if !birthdate_of(&id).is_some_and(|d| is_valid_yyyymmdd(d, ID_YEARS)) {
                return Err(Rejection::BadDate);
            }
            let expected = check_char(body).ok_or(Rejection::BadCharacter)?;
            if !check.starts_with(expected) {
                return Err(Rejection::BadCheckDigit);
            }
            Ok(id)
        }
        15 => {
            let (region, rest) = id.split_at_checked(6).ok_or(Rejection::WrongLength)?;
            let body = format!("{region}19{rest}");
            if !birthdate_of(&body).is_some_and(|d| is_valid_yyyymmdd(d, ID_YEARS)) {
                return Err(Rejection::BadDate);
            }
            let check = check_char(&body).ok_or(Rejection::BadCharacter)?;
            Ok(format!("{body}{check}"))
        }
        _ => Err(Rejection::WrongLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::testutil::{id_parts, resident_id_from, valid_resident_id};
    use proptest::prelude::*;

    #[test]
    fn examples() {
        for raw in [
            "11010519491231002X",
            "11010519491231002x",
            "110105 19491231 002X",
            "110105-19491231-002x",
            "１１０１０５１９４９１２３１００２Ｘ",
            "110105491231002",
            " 110105 491231 002 ",
        ] {
            assert_eq!(
                canonical_resident_id(raw).as_deref(),
                Ok("11010519491231002X"),
                "{raw}"
            );
        }
    }

    #[test]
    fn rejections() {
        assert_eq!(
            canonical_resident_id("110105194912310021"),
            Err(Rejection::BadCheckDigit)
        );
        assert_eq!(
            canonical_resident_id("11010519491331002X"),
            Err(Rejection::BadDate)
        );
        assert_eq!(
            canonical_resident_id("110105490231002"),
            Err(Rejection::BadDate)
        );
        assert_eq!(
            canonical_resident_id("11010519491231002"),
            Err(Rejection::WrongLength)
        );
        assert_eq!(canonical_resident_id(""), Err(Rejection::WrongLength));
        assert_eq!(
            canonical_resident_id("1101051949123100XX"),
            Err(Rejection::BadCharacter)
        );
        assert_eq!(
            canonical_resident_id("11010549123100X"),
            Err(Rejection::BadCharacter)
        );
        assert_eq!(
            canonical_resident_id("11010519491231002Y"),
            Err(Rejection::BadCharacter)
        );
        assert_eq!(
            canonical_resident_id("A1010519491231002X"),
            Err(Rejection::BadCharacter)
        );
    }

    proptest! {
        #[test]
        fn canonical_ids_accepted(id in valid_resident_id()) {
            prop_assert_eq!(canonical_resident_id(&id), Ok(id.clone()));
            prop_assert!(birthdate_of(&id).is_some_and(|d| crate::ident::canonical_birthdate(d).as_deref() == Ok(d)));
        }

        #[test]
        fn variants_agree(
            (region, y, m, d, seq) in id_parts(),
            lower in any::<bool>(),
            spaced in any::<bool>(),
            wide in any::<bool>(),
        ) {
            let id = resident_id_from(&region, y, m, d, &seq);
            let mut v = id.clone();
            if lower {
                v = v.to_lowercase();
            }
            if spaced {
                v = format!(" {} {} {} ", v.get(0..6).unwrap_or(""), v.get(6..14).unwrap_or(""), v.get(14..).unwrap_or(""));
            }
            if wide {
                v = v.chars().map(|c| match c {
                    '0'..='9' | 'x' | 'X' => char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c),
                    _ => c,
                }).collect();
            }
            prop_assert_eq!(canonical_resident_id(&v), Ok(id.clone()));
            if (1900..2000).contains(&y) {
                let legacy = format!("{region}{:02}{m:02}{d:02}{seq}", y % 100);
                prop_assert_eq!(canonical_resident_id(&legacy), Ok(id));
            }
        }

        #[test]
        fn corrupt_check_rejected((region, y, m, d, seq) in id_parts(), pick in 0usize..11) {
            let id = resident_id_from(&region, y, m, d, &seq);
            let (body, check) = id.split_at(17);
            let wrong = CHECK_CHARS.iter().copied().filter(|c| !check.starts_with(*c)).cycle().nth(pick).unwrap_or('0');
            prop_assert_eq!(
                canonical_resident_id(&format!("{body}{wrong}")),
                Err(Rejection::BadCheckDigit)
            );
        }

        #[test]
        fn idempotent(raw in "\\PC*|[0-9 xX-]{15,20}") {
            if let Ok(c) = canonical_resident_id(&raw) {
                prop_assert_eq!(canonical_resident_id(&c), Ok(c));
            }
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = canonical_resident_id(&raw);
        }
    }
}
