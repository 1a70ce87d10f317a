//! Bank card numbers.

use super::Rejection;
use super::normalize::{fold, is_dash};

/// Luhn (mod 10) check over ASCII digits; false on any non-digit.
pub(super) fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        // Kept reduced so arbitrarily long input cannot overflow.
        sum = (sum + d) % 10;
    }
    sum == 0
}

/// Canonicalise a bank card number to its 12-19 digits (Luhn-valid).
pub fn canonical_bank_card(raw: &str) -> Result<String, Rejection> {
    let folded = fold(raw);
    let mut digits = String::with_capacity(folded.len());
    for c in folded.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !(c.is_whitespace() || is_dash(c)) {
            return Err(Rejection::BadCharacter);
        }
    }
    if !(12..=19).contains(&digits.len()) {
        return Err(Rejection::WrongLength);
    }
    if !luhn_ok(&digits) {
        return Err(Rejection::BadLuhn);
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::testutil::luhn_card;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        for raw in [
            "6222020200112233446",
            "6222 0202 0011 2233 446",
            "6222-0202-0011-2233-446",
            "６２２２０２０２００１１２２３３４４６",
        ] {
            assert_eq!(
                canonical_bank_card(raw).as_deref(),
                Ok("6222020200112233446"),
                "{raw}"
            );
        }
        assert_eq!(
            canonical_bank_card("4111 1111 1111 1111").as_deref(),
            Ok("4111111111111111")
        );
    }

    #[test]
    fn rejections() {
        assert_eq!(
            canonical_bank_card("4111 1111 1111 1112"),
            Err(Rejection::BadLuhn)
        );
        assert_eq!(
            canonical_bank_card("41111111116"),
            Err(Rejection::WrongLength)
        );
        assert_eq!(
            canonical_bank_card("41111111111111111113"),
            Err(Rejection::WrongLength)
        );
        assert_eq!(canonical_bank_card(""), Err(Rejection::WrongLength));
        assert_eq!(
            canonical_bank_card("4111.1111.1111.1111"),
            Err(Rejection::BadCharacter)
        );
        assert_eq!(
            canonical_bank_card("4111 1111 1111 111X"),
            Err(Rejection::BadCharacter)
        );
    }

    proptest! {
        #[test]
        fn variants_agree(card in luhn_card(), seps in proptest::collection::vec(0u8..4, 19)) {
            let mut v = String::new();
            for (c, s) in card.chars().zip(seps) {
                match s {
                    1 => v.push(' '),
                    2 => v.push('-'),
                    3 => v.push('\u{3000}'),
                    _ => {}
                }
                v.push(c);
            }
            prop_assert_eq!(canonical_bank_card(&v), Ok(card));
        }

        #[test]
        fn any_single_digit_corruption_rejected(card in luhn_card(), pos in any::<prop::sample::Index>(), delta in 1u32..10) {
            let i = pos.index(card.len());
            let corrupted: String = card.chars().enumerate().map(|(j, c)| {
                if j == i {
                    c.to_digit(10).and_then(|d| char::from_digit((d + delta) % 10, 10)).unwrap_or(c)
                } else {
                    c
                }
            }).collect();
            prop_assert_eq!(canonical_bank_card(&corrupted), Err(Rejection::BadLuhn));
        }

        #[test]
        fn idempotent(raw in "\\PC*|[0-9 -]{12,24}") {
            if let Ok(c) = canonical_bank_card(&raw) {
                prop_assert_eq!(canonical_bank_card(&c), Ok(c));
            }
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = canonical_bank_card(&raw);
        }
    }
}
