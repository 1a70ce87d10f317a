//! Which key types to derive.

use super::KeyType;

/// Which key types to derive from a record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeySelection {
    /// Bit `code - 1` set for each selected type.
    bits: u8,
}

impl KeySelection {
    /// The strong types only (the default).
    pub fn strong() -> Self {
        Self::only(&KeyType::STRONG)
    }

    /// Every key type, composites included.
    pub fn all() -> Self {
        Self::only(&KeyType::ALL)
    }

    /// Exactly the given types.
    pub fn only(types: &[KeyType]) -> Self {
        let bits = types.iter().fold(0u8, |b, t| b | bit(*t));
        KeySelection { bits }
    }

    /// Whether `key_type` is selected.
    pub fn contains(&self, key_type: KeyType) -> bool {
        self.bits & bit(key_type) != 0
    }

    /// The selected types, in wire-code order.
    pub fn types(&self) -> impl Iterator<Item = KeyType> {
        KeyType::ALL.into_iter().filter(|t| self.contains(*t))
    }

    /// Whether nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

fn bit(t: KeyType) -> u8 {
    1 << (t.code() - 1)
}

impl Default for KeySelection {
    fn default() -> Self {
        Self::strong()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections() {
        assert_eq!(KeySelection::default(), KeySelection::strong());
        assert!(KeySelection::strong().types().eq(KeyType::STRONG));
        assert!(KeySelection::all().types().eq(KeyType::ALL));
        let s = KeySelection::only(&[KeyType::NameMobile, KeyType::Mobile, KeyType::Mobile]);
        assert!(s.types().eq([KeyType::Mobile, KeyType::NameMobile]));
        assert!(!s.contains(KeyType::Email));
        assert!(KeySelection::only(&[]).is_empty());
    }
}
