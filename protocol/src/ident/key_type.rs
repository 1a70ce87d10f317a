//! Key types and the canonical typed [`Key`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Rejection;

/// The kind of identifier a key was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// Mainland mobile number, 11 digits.
    Mobile,
    /// 18-character resident identity card number.
    ResidentId,
    /// Bank card number, 12-19 digits, Luhn-valid.
    BankCard,
    /// E-mail address, lower-cased.
    Email,
    /// Composite `name|YYYYMMDD`.
    NameBirthdate,
    /// Composite `name|mobile`.
    NameMobile,
}

/// A key-type name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key type: {0:?}")]
pub struct UnknownKeyType(pub String);

impl KeyType {
    /// Every key type, in wire-code order.
    pub const ALL: [KeyType; 6] = [
        KeyType::Mobile,
        KeyType::ResidentId,
        KeyType::BankCard,
        KeyType::Email,
        KeyType::NameBirthdate,
        KeyType::NameMobile,
    ];

    /// The strong (single-identifier) types used for default matching.
    pub const STRONG: [KeyType; 4] = [
        KeyType::Mobile,
        KeyType::ResidentId,
        KeyType::BankCard,
        KeyType::Email,
    ];

    /// Stable name; also the OPRF type tag, so it must never change.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Mobile => "mobile",
            KeyType::ResidentId => "resident_id",
            KeyType::BankCard => "bank_card",
            KeyType::Email => "email",
            KeyType::NameBirthdate => "name_birthdate",
            KeyType::NameMobile => "name_mobile",
        }
    }

    /// Whether this is a strong, single-identifier type.
    pub fn is_strong(self) -> bool {
        !matches!(self, KeyType::NameBirthdate | KeyType::NameMobile)
    }

    /// A stable code 1..=6 for local bit sets. (The wire encodes the serde variant index 0..=5,
    /// see docs/protocol.md.)
    pub fn code(self) -> u8 {
        match self {
            KeyType::Mobile => 1,
            KeyType::ResidentId => 2,
            KeyType::BankCard => 3,
            KeyType::Email => 4,
            KeyType::NameBirthdate => 5,
            KeyType::NameMobile => 6,
        }
    }

    /// Inverse of [`KeyType::code`].
    pub fn from_code(code: u8) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|t| t.code() == code)
    }
}

impl FromStr for KeyType {
    type Err = UnknownKeyType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace(['+', '-'], "_");
        KeyType::ALL
            .into_iter()
            .find(|t| t.as_str() == norm)
            .ok_or_else(|| UnknownKeyType(s.to_owned()))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canonical typed key. Invariant: `value` is canonical for its type,
/// which is why it can only be built through canonicalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    key_type: KeyType,
    value: String,
}

impl Key {
    /// Only for values that already went through canonicalisation.
    pub(super) fn from_canonical(key_type: KeyType, value: String) -> Key {
        Key { key_type, value }
    }

    /// Composite `name|other` from already-canonical parts.
    pub(super) fn composite(key_type: KeyType, name: &str, other: &str) -> Key {
        Key {
            key_type,
            value: format!("{name}|{other}"),
        }
    }

    /// Canonicalise `raw` as a key of `key_type`. Composite types take
    /// `name|birthdate` or `name|mobile`, split at the last `|`; a missing
    /// `|` is [`Rejection::Malformed`].
    pub fn parse(key_type: KeyType, raw: &str) -> Result<Key, Rejection> {
        let single = |f: fn(&str) -> Result<String, Rejection>| {
            f(raw).map(|v| Key::from_canonical(key_type, v))
        };
        match key_type {
            KeyType::Mobile => single(super::canonical_mobile),
            KeyType::ResidentId => single(super::canonical_resident_id),
            KeyType::BankCard => single(super::canonical_bank_card),
            KeyType::Email => single(super::canonical_email),
            KeyType::NameBirthdate | KeyType::NameMobile => {
                let (name, other) = raw.rsplit_once('|').ok_or(Rejection::Malformed)?;
                let name = super::canonical_name(name)?;
                let other = if key_type == KeyType::NameBirthdate {
                    super::canonical_birthdate(other)?
                } else {
                    super::canonical_mobile(other)?
                };
                Ok(Key::composite(key_type, &name, &other))
            }
        }
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The canonical value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// OPRF input: type tag bytes || 0x00 || canonical UTF-8 value. The tag
    /// keeps equal strings of different types apart.
    pub fn oprf_input(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.key_type.as_str().len() + 1 + self.value.len());
        self.write_oprf_input(&mut out);
        out
    }

    /// Append the bytes of [`Key::oprf_input`] to `out`.
    pub fn write_oprf_input(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.key_type.as_str().as_bytes());
        out.push(0);
        out.extend_from_slice(self.value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_round_trip() {
        for (i, t) in KeyType::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(t.code()), i + 1);
            assert_eq!(KeyType::from_code(t.code()), Some(t));
            assert_eq!(t.as_str().parse::<KeyType>(), Ok(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert_eq!(KeyType::from_code(0), None);
        assert_eq!(KeyType::from_code(7), None);
    }

    #[test]
    fn from_str_aliases_and_errors() {
        assert_eq!("name+birthdate".parse(), Ok(KeyType::NameBirthdate));
        assert_eq!("name+mobile".parse(), Ok(KeyType::NameMobile));
        assert_eq!(" Resident_ID ".parse(), Ok(KeyType::ResidentId));
        let err = "phone".parse::<KeyType>();
        assert_eq!(err, Err(UnknownKeyType("phone".to_owned())));
        assert!(err.is_err_and(|e| e.to_string().contains("phone")));
    }

    #[test]
    fn strong_types() {
        for t in KeyType::ALL {
            assert_eq!(t.is_strong(), KeyType::STRONG.contains(&t));
        }
    }

    #[test]
    fn oprf_input_layout() {
        let k = Key::parse(KeyType::Mobile, "+86 138-0013-8000");
        assert_eq!(
            k.map(|k| k.oprf_input()),
            Ok(b"mobile\x0013800138000".to_vec())
        );
        let mut buf = b"x".to_vec();
        if let Ok(k) = Key::parse(KeyType::Email, "A@B.cn") {
            k.write_oprf_input(&mut buf);
        }
        assert_eq!(buf, b"xemail\x00a@b.cn".to_vec());
    }

    #[test]
    fn parse_composites() {
        let k = Key::parse(KeyType::NameBirthdate, "张 慧|1949-12-31");
        assert_eq!(k.as_ref().map(Key::value), Ok("张慧|19491231"));
        let k = Key::parse(KeyType::NameMobile, "John  SMITH|+8613800138000");
        assert_eq!(k.as_ref().map(Key::value), Ok("john smith|13800138000"));
        assert_eq!(
            Key::parse(KeyType::NameMobile, "张慧"),
            Err(Rejection::Malformed)
        );
    }

    proptest! {
        // Same raw string accepted as two types must never collide.
        #[test]
        fn types_never_collide(raw in "[0-9]{11,19}|[0-9]{17}[xX]|[0-9]{15}") {
            let keys: Vec<Key> = KeyType::STRONG
                .into_iter()
                .filter_map(|t| Key::parse(t, &raw).ok())
                .collect();
            for (i, a) in keys.iter().enumerate() {
                for b in keys.iter().skip(i + 1) {
                    prop_assert_ne!(a.oprf_input(), b.oprf_input());
                    prop_assert_ne!(a, b);
                }
            }
        }

        // Targeted: 18-digit strings that are both ID-valid and Luhn-valid.
        #[test]
        fn id_and_card_never_collide(id in crate::ident::testutil::id_that_is_also_card()) {
            let a = Key::parse(KeyType::ResidentId, &id);
            let b = Key::parse(KeyType::BankCard, &id);
            prop_assert!(a.is_ok() && b.is_ok(), "{id}");
            if let (Ok(a), Ok(b)) = (a, b) {
                prop_assert_eq!(a.value(), b.value());
                prop_assert_ne!(a.oprf_input(), b.oprf_input());
                prop_assert_ne!(a, b);
            }
        }
    }
}
