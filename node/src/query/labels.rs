//! The labels of one holder's matched keys, as the report gives them: counts per value and key
//! type, cells under the holder's `min_label_cell` withheld and only counted, and in `matches`
//! mode each matched row's values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::report::ratio;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::labels::{CANARY_LABEL, LabelAnswer};

/// `labels`: label → value → key type → distinct matched dump keys held by at least one of the
/// holder's records carrying that value.
pub type LabelCounts = BTreeMap<String, BTreeMap<String, BTreeMap<KeyType, u64>>>;

/// `row_labels`: 1-based dump row → label → values.
pub type RowLabels = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// What the report says of one holder's labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// With the holder's totals (`share_label_totals`): each reported value's keys in the
    /// holder's whole list, per key type.
    pub totals: LabelTotals,
    /// With those totals: per reported value, how much more often it carries the matches than
    /// the whole list.
    pub lift: BTreeMap<String, BTreeMap<String, LabelTest>>,
    /// With those totals, per `month` label: since when the list stopped leaking.
    pub timeline: BTreeMap<String, Timeline>,
    /// Planted records found in the dump: per export, the matched keys (every cell, however
    /// small: a canary is nobody).
    pub canary_hits: Vec<CanaryHit>,
}

/// An export whose planted records are in the dump: proof that the dump holds that export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryHit {
    /// The export named when the canaries were planted.
    pub export: String,
    /// Distinct matched dump keys planted in it.
    pub keys: u64,
}

/// Since when: a `month` label's matched keys per month against the holder's keys per month,
/// split where the share matched drops the most (the split of greatest binomial likelihood
/// ratio with a lower share after it). A copy taken in a month holds nobody who joined later:
/// the share drops to the background of people shared by chance from that month on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The key type counted: the one with the most matched keys.
    pub key_type: KeyType,
    /// The first month of the lower share (the most likely split): the copy was taken before it.
    pub change: String,
    /// The month before it.
    pub last_before: String,
    /// The earliest and latest first months of a split whose likelihood ratio is within 3.84
    /// (χ²₁ at 95%) of the best: the change lies between them (a profile-likelihood interval).
    pub earliest: String,
    /// See `earliest`.
    pub latest: String,
    /// Matched keys and list keys before the change, and their ratio.
    pub before: Share,
    /// The same from the change on; the counts are withheld under `min_label_cell`.
    pub after: Option<Share>,
    /// The two-proportion z of the drop.
    pub z: f64,
    /// The likelihood ratio statistic of the split (`2·ln Λ`).
    pub lr: f64,
}

/// Matched keys among a set of the holder's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Matched keys.
    pub matched: u64,
    /// The holder's keys.
    pub keys: u64,
    /// `matched / keys`.
    pub share: f64,
}

/// The timeline of one `month` label: `(month, matched, keys)` in month order.
fn timeline(kt: KeyType, months: &[(String, u64, u64)], min: u64) -> Option<Timeline> {
    let ln = |x: f64| if x > 0.0 { x.ln() } else { 0.0 };
    // x·ln(x/n) + (n−x)·ln(1−x/n): a binomial log-likelihood at its maximum.
    let ll = |x: u64, n: u64| {
        let (x, n) = (x as f64, n as f64);
        if n == 0.0 {
            0.0
        } else {
            x * ln(x / n) + (n - x) * ln(1.0 - x / n)
        }
    };
    // The holder's totals come from the network: sums saturate, products are taken in u128.
    let sum = |ms: &[(String, u64, u64)]| {
        ms.iter().fold((0u64, 0u64), |a, m| {
            (a.0.saturating_add(m.1), a.1.saturating_add(m.2))
        })
    };
    let (tx, tn) = sum(months);
    let mut splits: Vec<(usize, f64)> = Vec::new();
    let (mut x1, mut n1) = (0u64, 0u64);
    for t in 1..months.len() {
        x1 = x1.saturating_add(months[t - 1].1);
        n1 = n1.saturating_add(months[t - 1].2);
        let (x2, n2) = (tx.saturating_sub(x1), tn.saturating_sub(n1));
        if n1 == 0 || n2 == 0 || u128::from(x1) * u128::from(n2) <= u128::from(x2) * u128::from(n1)
        {
            continue; // no drop at this split
        }
        splits.push((t, 2.0 * (ll(x1, n1) + ll(x2, n2) - ll(tx, tn))));
    }
    let (t, lr) = splits
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
    let near: Vec<usize> = splits
        .iter()
        .filter(|(_, l)| *l >= lr - 3.84)
        .map(|(s, _)| *s)
        .collect();
    let (earliest, latest) = (near.iter().min()?, near.iter().max()?);
    let (x1, n1) = sum(&months[..t]);
    let (x2, n2) = (tx.saturating_sub(x1), tn.saturating_sub(n1));
    if x1 < min {
        return None;
    }
    let share = |x: u64, n: u64| Share {
        matched: x,
        keys: n,
        share: x as f64 / n as f64,
    };
    let p = tx as f64 / tn as f64;
    let se = (p * (1.0 - p) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    let z = if se > 0.0 {
        (x1 as f64 / n1 as f64 - x2 as f64 / n2 as f64) / se
    } else {
        0.0
    };
    Some(Timeline {
        key_type: kt,
        change: months[t].0.clone(),
        last_before: months[t - 1].0.clone(),
        earliest: months[*earliest].0.clone(),
        latest: months[*latest].0.clone(),
        before: share(x1, n1),
        after: (x2 >= min).then(|| share(x2, n2)),
        z,
        lr,
    })
}

/// Each matched row's values (1-based rows), among the values shown.
fn row_labels(
    rows: &BTreeMap<u64, Vec<(u8, u16)>>,
    shown: &std::collections::BTreeSet<(u8, u16)>,
    name: impl Fn(u8) -> String,
    value: impl Fn(u8, u16) -> String,
) -> RowLabels {
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
}

/// The holder's keys and the matched keys per type with the canaries taken out: the tests
/// count customers only (a canary is nobody).
fn without_canaries(
    a: &LabelAnswer,
    canary: Option<usize>,
    holder_keys: &BTreeMap<KeyType, u64>,
    matched_keys: &BTreeMap<KeyType, u64>,
) -> (BTreeMap<KeyType, u64>, BTreeMap<KeyType, u64>) {
    let (mut customers, mut matched) = (holder_keys.clone(), matched_keys.clone());
    let Some(o) = canary.map(|o| o as u8) else {
        return (customers, matched);
    };
    let take = |sums: &mut BTreeMap<KeyType, u64>, per_type: &BTreeMap<KeyType, u64>| {
        for (kt, n) in per_type {
            sums.entry(*kt).and_modify(|m| *m = m.saturating_sub(*n));
        }
    };
    for ((l, _), per_type) in &a.counts {
        if *l == o {
            take(&mut matched, per_type);
        }
    }
    for ((l, _), per_type) in a.totals.iter().flatten() {
        if *l == o {
            take(&mut customers, per_type);
        }
    }
    (customers, matched)
}

/// Every `month` label's timeline, from what opened (all cells, small ones included: only the
/// two sums of each side are reported, under the same minimum).
fn timelines(
    a: &LabelAnswer,
    matched_keys: &BTreeMap<KeyType, u64>,
    min: u64,
) -> BTreeMap<String, Timeline> {
    let mut out = BTreeMap::new();
    let (Some(totals), Some((kt, _))) = (&a.totals, matched_keys.iter().max_by_key(|(_, n)| **n))
    else {
        return out;
    };
    for (o, spec) in a.specs.iter().enumerate() {
        if spec.kind != suyuan_protocol::psi::labels::LabelKind::Month {
            continue;
        }
        let o = o as u8;
        let months: Vec<(String, u64, u64)> = a.values[usize::from(o)]
            .iter()
            .enumerate()
            .filter_map(|(v, name)| {
                let v = v as u16;
                // A value too rare to name has no total and no count: left out.
                let keys = totals.get(&(o, v))?.get(kt).copied()?;
                let matched = a.counts.get(&(o, v)).and_then(|c| c.get(kt)).copied();
                Some((name.clone(), matched.unwrap_or(0), keys))
            })
            .collect();
        if let Some(t) = timeline(*kt, &months, min) {
            out.insert(spec.name.clone(), t);
        }
    }
    out
}

/// Whether a value is over-represented among a holder's matches: of the `M` matched keys of a
/// type, `x` carry it, where `K` of the holder's `N` keys of that type do. Under the null
/// hypothesis that the matches are drawn from the list regardless of the label, `x` is
/// hypergeometric (the same test as `attribution`, with the list as the population).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelTest {
    /// The key type tested: the value's cell with the most matched keys.
    pub key_type: KeyType,
    /// `N`: the holder's keys of that type.
    pub list: u64,
    /// `x / M`.
    pub share_of_matches: f64,
    /// `K / N`.
    pub share_of_list: f64,
    /// `dump` = `M`, `holder` = `K`, `observed` = `x`, `expected` = `M·K/N`, lift, z and the
    /// upper-tail p-value.
    #[serde(flatten)]
    pub test: super::attribution::TypeTest,
    /// `log10_p` times the values tested in this label (Bonferroni), at most 0.
    pub log10_p_corrected: f64,
}

/// The lift of every reported value with a total, from the report's own figures.
pub fn lifts(
    labels: &LabelCounts,
    totals: &BTreeMap<String, BTreeMap<String, BTreeMap<KeyType, u64>>>,
    holder_keys: &BTreeMap<KeyType, u64>,
    matched_keys: &BTreeMap<KeyType, u64>,
) -> BTreeMap<String, BTreeMap<String, LabelTest>> {
    let mut out = BTreeMap::new();
    for (label, values) in labels {
        let mut tests = BTreeMap::new();
        for (value, cells) in values {
            // The cell with the most matched keys; the first key type on a tie.
            let Some((kt, x)) = cells
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(kt, x)| (*kt, *x))
            else {
                continue;
            };
            let k = totals
                .get(label)
                .and_then(|v| v.get(value))
                .and_then(|t| t.get(&kt))
                .copied();
            let (Some(k), Some(n), Some(m)) = (k, holder_keys.get(&kt), matched_keys.get(&kt))
            else {
                continue;
            };
            let test = super::attribution::test(*n, *m, k, x);
            tests.insert(
                value.clone(),
                LabelTest {
                    key_type: kt,
                    list: *n,
                    share_of_matches: ratio(x, *m),
                    share_of_list: ratio(k, *n),
                    log10_p_corrected: 0.0,
                    test,
                },
            );
        }
        let m = (tests.len() as f64).log10();
        for t in tests.values_mut() {
            t.log10_p_corrected = (t.test.log10_p + m).min(0.0);
        }
        if !tests.is_empty() {
            out.insert(label.clone(), tests);
        }
    }
    out
}

impl LabelTest {
    /// Over-represented among the matches at the level that names a likely source (corrected
    /// p at most [`super::attribution::SOURCE_LOG10_P`]).
    pub fn stands_out(&self) -> bool {
        self.test.lift > 1.0 && self.log10_p_corrected <= super::attribution::SOURCE_LOG10_P
    }
}

/// The value most over-represented among the matches, if it [`LabelTest::stands_out`].
pub fn standout(tests: &BTreeMap<String, LabelTest>) -> Option<(&String, &LabelTest)> {
    tests
        .iter()
        .filter(|(_, t)| t.test.lift > 1.0)
        .min_by(|a, b| a.1.log10_p_corrected.total_cmp(&b.1.log10_p_corrected))
        .filter(|(_, t)| t.stands_out())
}

/// `label_totals`: label → value → key type → the holder's keys carrying it.
pub type LabelTotals = BTreeMap<String, BTreeMap<String, BTreeMap<KeyType, u64>>>;

/// Applies the holder's smallest reportable cell to what opened; with totals, tests each
/// reported value against the holder's sizes (`holder_keys`, `matched_keys` of the answer).
pub fn report(
    a: &LabelAnswer,
    holder_keys: &BTreeMap<KeyType, u64>,
    matched_keys: &BTreeMap<KeyType, u64>,
) -> LabelReport {
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
    // A set: row labels look every pair of every matched row up in it.
    let mut shown: std::collections::BTreeSet<(u8, u16)> = std::collections::BTreeSet::new();
    let canary = a.specs.iter().position(|s| s.name == CANARY_LABEL);
    let mut canary_hits = Vec::new();
    for ((o, v), per_type) in &a.counts {
        if Some(usize::from(*o)) == canary {
            canary_hits.push(CanaryHit {
                export: value(*o, *v),
                keys: per_type.values().sum(),
            });
            shown.insert((*o, *v));
            continue;
        }
        for (kt, n) in per_type {
            if *n >= min {
                labels
                    .entry(name(*o))
                    .or_default()
                    .entry(value(*o, *v))
                    .or_default()
                    .insert(*kt, *n);
                shown.insert((*o, *v));
            } else {
                *suppressed.entry(name(*o)).or_default() += 1;
            }
        }
    }
    for (o, _) in a.rare.keys() {
        *suppressed.entry(name(*o)).or_default() += 1;
    }
    suppressed.retain(|_, n| *n > 0);
    canary_hits.sort_by(|a, b| b.keys.cmp(&a.keys).then(a.export.cmp(&b.export)));
    let rows = a
        .rows
        .as_ref()
        .map(|rows| row_labels(rows, &shown, name, value));
    // The totals of the reported values only: a withheld cell's value is not named here either.
    let mut totals = LabelTotals::new();
    if let Some(t) = &a.totals {
        for ((o, v), per_type) in t {
            if shown.contains(&(*o, *v)) && Some(usize::from(*o)) != canary {
                totals
                    .entry(name(*o))
                    .or_default()
                    .insert(value(*o, *v), per_type.clone());
            }
        }
    }
    let (customers, matched) = without_canaries(a, canary, holder_keys, matched_keys);
    let lift = lifts(&labels, &totals, &customers, &matched);
    let timeline = timelines(a, &matched, min);
    LabelReport {
        labels,
        suppressed,
        min_cell: min,
        rows,
        unreadable: a.unreadable,
        totals,
        lift,
        timeline,
        canary_hits,
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
            totals: None,
        };
        let r = report(&a, &BTreeMap::new(), &BTreeMap::new());
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

#[cfg(test)]
mod lift_tests {
    use super::*;

    #[test]
    fn a_small_branch_holding_most_matches_stands_out_and_a_big_one_does_not() {
        // 10,000 customers: 乌鲁木齐 400 (4%), 北京 9,600. 1,000 matches: 610 乌鲁木齐, 390 北京.
        let labels: LabelCounts = BTreeMap::from([(
            "branch".to_string(),
            BTreeMap::from([
                (
                    "乌鲁木齐分行".to_string(),
                    BTreeMap::from([(KeyType::Mobile, 610)]),
                ),
                (
                    "北京分行".to_string(),
                    BTreeMap::from([(KeyType::Mobile, 390)]),
                ),
            ]),
        )]);
        let totals: LabelTotals = BTreeMap::from([(
            "branch".to_string(),
            BTreeMap::from([
                (
                    "乌鲁木齐分行".to_string(),
                    BTreeMap::from([(KeyType::Mobile, 400)]),
                ),
                (
                    "北京分行".to_string(),
                    BTreeMap::from([(KeyType::Mobile, 9_600)]),
                ),
            ]),
        )]);
        let n = BTreeMap::from([(KeyType::Mobile, 10_000)]);
        let m = BTreeMap::from([(KeyType::Mobile, 1_000)]);
        let l = lifts(&labels, &totals, &n, &m);
        let u = &l["branch"]["乌鲁木齐分行"];
        assert_eq!((u.share_of_list, u.share_of_matches), (0.04, 0.61));
        assert!((u.test.lift - 15.25).abs() < 1e-9, "{}", u.test.lift);
        assert!(u.log10_p_corrected < -9.0, "{}", u.log10_p_corrected);
        let b = &l["branch"]["北京分行"];
        assert!(b.test.lift < 1.0 && b.log10_p_corrected > -1.0);
    }
}

#[cfg(test)]
mod timeline_tests {
    use super::*;

    #[test]
    fn the_split_is_where_the_share_matched_drops() {
        // 24 months of 100 customers: 30 matched per month until 2019-01, then 5.
        let months: Vec<(String, u64, u64)> = (0..24)
            .map(|m| {
                let name = format!("{}-{:02}", 2018 + m / 12, m % 12 + 1);
                (name, if m < 12 { 30 } else { 5 }, 100)
            })
            .collect();
        let t = timeline(KeyType::Mobile, &months, 10).unwrap();
        assert_eq!(
            (t.last_before.as_str(), t.change.as_str()),
            ("2018-12", "2019-01")
        );
        assert_eq!(
            (t.earliest.as_str(), t.latest.as_str()),
            ("2019-01", "2019-01")
        );
        assert_eq!((t.before.matched, t.before.keys), (360, 1200));
        assert_eq!(t.after.as_ref().map(|a| a.matched), Some(60));
        assert!(t.z > 10.0, "{}", t.z);
        // Under the minimum, the after side's counts are withheld, the change is still named.
        let t = timeline(KeyType::Mobile, &months, 61).unwrap();
        assert_eq!((t.change.as_str(), t.after), ("2019-01", None));
        // No drop anywhere: no timeline.
        let flat: Vec<(String, u64, u64)> = (0..6)
            .map(|m| (format!("2019-0{}", m + 1), 10 + m, 100))
            .collect();
        assert!(timeline(KeyType::Mobile, &flat, 1).is_none());
    }

    #[test]
    fn a_holders_huge_totals_do_not_overflow() {
        // Totals as large as a hostile holder may send: a split is still found, no panic.
        let huge = u64::MAX / 4;
        let months = vec![
            ("2019-01".to_string(), 1_000, huge),
            ("2019-02".to_string(), 1_000, huge),
            ("2019-03".to_string(), 10, huge),
            ("2019-04".to_string(), u64::MAX, u64::MAX),
        ];
        let _ = timeline(KeyType::Mobile, &months, 1);
    }
}
