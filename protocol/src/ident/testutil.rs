//! Proptest generators shared by the module's tests.

use proptest::prelude::*;

use super::bank_card::luhn_ok;
use super::date::days_in_month;
use super::resident_id::check_char;

/// A valid 11-digit mobile number.
pub(super) fn valid_mobile() -> impl Strategy<Value = String> {
    "1[3-9][0-9]{9}"
}

fn full_width(c: char) -> char {
    char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c)
}

/// Formatting variants of `m`: country-code prefix, separators and
/// full-width digits.
pub(super) fn render_mobile(m: String) -> impl Strategy<Value = String> {
    let prefixes = ["", "+86", "+86 ", "0086", "0086 ", "86", "+86-", "(+86)"];
    (
        prop::sample::select(prefixes.to_vec()),
        prop::collection::vec((0u8..7, any::<bool>()), 11),
    )
        .prop_map(move |(prefix, style)| {
            let mut out = prefix.to_owned();
            for (c, (sep, wide)) in m.chars().zip(style) {
                match sep {
                    3 => out.push(' '),
                    4 => out.push('-'),
                    5 => out.push('\u{3000}'),
                    6 => out.push('\u{2014}'),
                    _ => {}
                }
                out.push(if wide { full_width(c) } else { c });
            }
            out
        })
}

/// Parts of a valid resident ID: region, year, month, day, sequence.
pub(super) fn id_parts() -> impl Strategy<Value = (String, u32, u32, u32, String)> {
    ("[1-9][0-9]{5}", 1900u32..=2099, 1u32..=12, "[0-9]{3}").prop_flat_map(|(region, y, m, seq)| {
        (
            Just(region),
            Just(y),
            Just(m),
            1..=days_in_month(y, m),
            Just(seq),
        )
    })
}

/// Canonical 18-character ID from its parts.
pub(super) fn resident_id_from(region: &str, y: u32, m: u32, d: u32, seq: &str) -> String {
    let body = format!("{region}{y:04}{m:02}{d:02}{seq}");
    let check = check_char(&body).unwrap_or('?');
    format!("{body}{check}")
}

/// A canonical valid resident ID.
pub(super) fn valid_resident_id() -> impl Strategy<Value = String> {
    id_parts().prop_map(|(r, y, m, d, s)| resident_id_from(&r, y, m, d, &s))
}

/// A valid resident ID that is also a Luhn-valid card number, found by
/// varying the sequence number (about one in eleven qualifies).
pub(super) fn id_that_is_also_card() -> impl Strategy<Value = String> {
    id_parts().prop_map(|(r, y, m, d, _)| {
        (0..1000)
            .map(|seq| resident_id_from(&r, y, m, d, &format!("{seq:03}")))
            .find(|id| luhn_ok(id))
            .unwrap_or_default()
    })
}

/// A Luhn-valid card number of 12-19 digits.
pub(super) fn luhn_card() -> impl Strategy<Value = String> {
    "[1-9][0-9]{10,17}".prop_map(|body| {
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|c| luhn_ok(c))
            .unwrap_or_default()
    })
}
