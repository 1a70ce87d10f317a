//! The labels of one holder's matched keys, as the report gives them: counts per value and key
//! type, cells under the holder's `min_label_cell` withheld and only counted, and in `matches`
//! mode each matched row's values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::labels::LabelAnswer;

/// `labels`: label → value → key type → distinct matched dump keys held by at least one of the
/// holder's records carrying that value.
pub type LabelCounts = BTreeMap<String, BTreeMap<String, BTreeMap<KeyType, u64>>>;

/// `row_labels`: 1-based dump row → label → values.
pub type RowLabels = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// What the report says of one holder's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelReport {
    /// The reported cells.
    pub labels: LabelCounts,
    /// Per label, cells withheld: fewer matched keys than `min_cell`, or a value too rare in
    /// the holder's list to be named (one cell per key type it matched).
    pub suppressed: BTreeMap<String, u64>,
    /// The holder's `min_label_cell`.
    pub min_cell: u64,
    /// `matches` mode: the values of each matched row, among reported cells only.
    pub rows: Option<RowLabels>,
    /// Matched keys whose labels did not open (reported, never silently dropped).
    pub unreadable: u64,
}

/// Applies the holder's smallest reportable cell to what opened.
pub fn report(a: &LabelAnswer) -> LabelReport {
    let min = a.min_cell.max(1);
    let name = |o: u8| a.specs[usize::from(o)].name.clone();
    let value = |o: u8, v: u16| {
        a.values
            .get(usize::from(o))
            .and_then(|vs| vs.get(usize::from(v)))
            .cloned()
            .unwrap_or_default()
    };
    let mut labels = LabelCounts::new();
    let mut suppressed: BTreeMap<String, u64> =
        a.specs.iter().map(|s| (s.name.clone(), 0)).collect();
    let mut shown: Vec<(u8, u16)> = Vec::new();
    for ((o, v), per_type) in &a.counts {
        for (kt, n) in per_type {
            if *n >= min {
                labels
                    .entry(name(*o))
                    .or_default()
                    .entry(value(*o, *v))
                    .or_default()
                    .insert(*kt, *n);
                shown.push((*o, *v));
            } else {
                *suppressed.entry(name(*o)).or_default() += 1;
            }
        }
    }
    for (o, _) in a.rare.keys() {
        *suppressed.entry(name(*o)).or_default() += 1;
    }
    suppressed.retain(|_, n| *n > 0);
    let rows = a.rows.as_ref().map(|rows| {
        let mut out = RowLabels::new();
        for (row, pairs) in rows {
            let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (o, v) in pairs.iter().filter(|p| shown.contains(p)) {
                per.entry(name(*o)).or_default().push(value(*o, *v));
            }
            if !per.is_empty() {
                out.insert((row + 1).to_string(), per);
            }
        }
        out
    });
    LabelReport {
        labels,
        suppressed,
        min_cell: min,
        rows,
        unreadable: a.unreadable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suyuan_protocol::psi::labels::{LabelKind, LabelSpec};

    #[test]
    fn small_cells_and_rare_values_are_counted_not_shown() {
        let a = LabelAnswer {
            specs: vec![LabelSpec {
                name: "branch".into(),
                kind: LabelKind::Text,
            }],
            values: vec![vec!["乌鲁木齐分行".into(), "北京分行".into()]],
            min_cell: 10,
            counts: BTreeMap::from([
                (
                    (0, 0),
                    BTreeMap::from([(KeyType::Mobile, 61), (KeyType::ResidentId, 3)]),
                ),
                ((0, 1), BTreeMap::from([(KeyType::Mobile, 9)])),
            ]),
            rare: BTreeMap::from([((0, KeyType::Mobile), 2)]),
            rows: Some(BTreeMap::from([(0, vec![(0, 0)]), (4, vec![(0, 1)])])),
            unreadable: 1,
        };
        let r = report(&a);
        assert_eq!(
            r.labels,
            BTreeMap::from([(
                "branch".to_string(),
                BTreeMap::from([(
                    "乌鲁木齐分行".to_string(),
                    BTreeMap::from([(KeyType::Mobile, 61)])
                )])
            )])
        );
        // resident_id 3 and 北京分行 9 under 10, and the rare value: three cells.
        assert_eq!(r.suppressed, BTreeMap::from([("branch".to_string(), 3)]));
        // Row 1 shows its reported value; row 5's only value is withheld, so the row is absent.
        assert_eq!(
            r.rows.unwrap(),
            BTreeMap::from([(
                "1".to_string(),
                BTreeMap::from([("branch".to_string(), vec!["乌鲁木齐分行".to_string()])])
            )])
        );
        assert_eq!((r.min_cell, r.unreadable), (10, 1));
    }
}
