//! Data-quality counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Field, KeyType, RecordKeys, Rejection};

/// Data-quality summary of an import or a query input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quality {
    /// Rows seen.
    pub rows: u64,
    /// Rows that produced no key at all.
    pub rows_without_key: u64,
    /// Keys produced per type (before cross-row dedup).
    pub keys: BTreeMap<KeyType, u64>,
    /// Rejected values per field and reason.
    pub rejected: BTreeMap<Field, BTreeMap<Rejection, u64>>,
}

impl Quality {
    /// Count one record's outcome.
    pub fn record(&mut self, r: &RecordKeys) {
        bump(&mut self.rows, 1);
        if r.keys.is_empty() {
            bump(&mut self.rows_without_key, 1);
        }
        for k in &r.keys {
            bump(self.keys.entry(k.key_type()).or_default(), 1);
        }
        for (field, why) in &r.rejections {
            let by_reason = self.rejected.entry(*field).or_default();
            bump(by_reason.entry(*why).or_default(), 1);
        }
    }

    /// Add another summary's counts (e.g. from a parallel worker).
    pub fn merge(&mut self, other: &Quality) {
        bump(&mut self.rows, other.rows);
        bump(&mut self.rows_without_key, other.rows_without_key);
        for (t, n) in &other.keys {
            bump(self.keys.entry(*t).or_default(), *n);
        }
        for (field, reasons) in &other.rejected {
            let mine = self.rejected.entry(*field).or_default();
            for (why, n) in reasons {
                bump(mine.entry(*why).or_default(), *n);
            }
        }
    }

    /// Total rejected values over all fields and reasons.
    pub fn total_rejected(&self) -> u64 {
        self.rejected
            .values()
            .flat_map(|m| m.values())
            .fold(0, |a, n| a.saturating_add(*n))
    }
}

/// Saturating, because a summary may be deserialised from elsewhere and
/// must not be able to make a merge panic.
fn bump(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::{ColumnMap, KeySelection, extract};

    #[test]
    fn counts_and_merge() {
        let cols = ColumnMap::detect(&["手机", "身份证", "邮箱"]);
        let rows: [[&str; 3]; 3] = [
            ["13800138000,13900000000", "11010519491231002X", "a@b.cn"],
            ["123", "110105194912310021", ""],
            ["", "", ""],
        ];
        let mut q = Quality::default();
        for row in &rows {
            q.record(&extract(&cols, row, &KeySelection::default()));
        }
        assert_eq!(q.rows, 3);
        assert_eq!(q.rows_without_key, 2);
        assert_eq!(q.keys.get(&KeyType::Mobile), Some(&2));
        assert_eq!(q.keys.get(&KeyType::ResidentId), Some(&1));
        assert_eq!(q.keys.get(&KeyType::Email), Some(&1));
        assert_eq!(q.total_rejected(), 2);
        assert_eq!(
            q.rejected
                .get(&Field::Mobile)
                .and_then(|m| m.get(&Rejection::WrongLength)),
            Some(&1)
        );

        let mut total = Quality::default();
        total.merge(&q);
        total.merge(&q);
        assert_eq!(total.rows, 6);
        assert_eq!(total.rows_without_key, 4);
        assert_eq!(total.keys.get(&KeyType::Mobile), Some(&4));
        assert_eq!(total.total_rejected(), 4);
        let mut huge = Quality {
            rows: u64::MAX,
            ..Quality::default()
        };
        huge.merge(&q);
        assert_eq!(huge.rows, u64::MAX);
        assert_eq!(
            total
                .rejected
                .get(&Field::ResidentId)
                .and_then(|m| m.get(&Rejection::BadCheckDigit)),
            Some(&2)
        );
    }
}
