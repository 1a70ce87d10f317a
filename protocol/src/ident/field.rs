//! Record fields a column can hold.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The source fields a record column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Person name.
    Name,
    /// Mobile phone number.
    Mobile,
    /// Resident identity card number.
    ResidentId,
    /// Bank card number.
    BankCard,
    /// E-mail address.
    Email,
    /// Birth date.
    Birthdate,
    /// Postal address (carried along, never a key).
    Address,
}

/// A field name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field: {0:?}")]
pub struct UnknownField(pub String);

impl Field {
    /// Every field, in declaration order.
    pub const ALL: [Field; 7] = [
        Field::Name,
        Field::Mobile,
        Field::ResidentId,
        Field::BankCard,
        Field::Email,
        Field::Birthdate,
        Field::Address,
    ];

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Mobile => "mobile",
            Field::ResidentId => "resident_id",
            Field::BankCard => "bank_card",
            Field::Email => "email",
            Field::Birthdate => "birthdate",
            Field::Address => "address",
        }
    }
}

impl FromStr for Field {
    type Err = UnknownField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Field::ALL
            .into_iter()
            .find(|f| f.as_str() == norm)
            .ok_or_else(|| UnknownField(s.to_owned()))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Field::ALL {
            assert_eq!(f.as_str().parse::<Field>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!("Bank-Card".parse(), Ok(Field::BankCard));
        assert_eq!(
            "phone".parse::<Field>(),
            Err(UnknownField("phone".to_owned()))
        );
    }
}
