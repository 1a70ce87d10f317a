//! Typed rejection reasons.

use serde::{Deserialize, Serialize};

/// Why a value was rejected. Typed so a data-quality summary can count them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    thiserror::Error,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rejection {
    /// A character that cannot belong to this kind of value.
    #[error("bad character")]
    BadCharacter,
    /// Wrong number of digits or characters.
    #[error("wrong length")]
    WrongLength,
    /// Mobile number not starting with 1[3-9], or a foreign country code.
    #[error("bad prefix")]
    BadPrefix,
    /// Resident ID check character (ISO 7064 MOD 11-2) mismatch.
    #[error("wrong check digit")]
    BadCheckDigit,
    /// Not a real calendar date, or an unparseable birth date.
    #[error("invalid date")]
    BadDate,
    /// Bank card number fails the Luhn check.
    #[error("failed Luhn check")]
    BadLuhn,
    /// Structurally malformed value (e.g. an e-mail address).
    #[error("malformed")]
    Malformed,
}

impl Rejection {
    /// Every rejection reason, in declaration order.
    pub const ALL: [Rejection; 7] = [
        Rejection::BadCharacter,
        Rejection::WrongLength,
        Rejection::BadPrefix,
        Rejection::BadCheckDigit,
        Rejection::BadDate,
        Rejection::BadLuhn,
        Rejection::Malformed,
    ];

    /// Snake-case name, as used for JSON keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::BadCharacter => "bad_character",
            Rejection::WrongLength => "wrong_length",
            Rejection::BadPrefix => "bad_prefix",
            Rejection::BadCheckDigit => "bad_check_digit",
            Rejection::BadDate => "bad_date",
            Rejection::BadLuhn => "bad_luhn",
            Rejection::Malformed => "malformed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_human_text() {
        assert_eq!(Rejection::BadCheckDigit.to_string(), "wrong check digit");
        assert_eq!(Rejection::BadLuhn.as_str(), "bad_luhn");
    }

    #[test]
    fn as_str_distinct() {
        let mut names: Vec<&str> = Rejection::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Rejection::ALL.len());
    }
}
