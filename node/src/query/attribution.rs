//! Which lists the dump was drawn from, adjusted for size. A list of a billion customers shares
//! people with every dump; what marks a source is sharing more than chance would. Under the
//! null hypothesis that the dump's `d` distinct keys of a type were drawn from a population of
//! `N` independently of a holder's `h` keys, the overlap `X` is hypergeometric:
//! `P(X = x) = C(h, x)·C(N − h, d − x) / C(N, d)`, expected `d·h/N`. For each key type the report
//! gives the expected and observed overlap, the lift (observed / expected), the z-score and the
//! upper-tail p-value `P(X ≥ observed)`; an institution's p-value is the smallest over its key
//! types times their number (Bonferroni), and institutions are ranked by it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suyuan_protocol::ident::KeyType;

/// The population a dump is drawn from when `--population` is not given: China's, at the 2020
/// census (1.41 billion), rounded down.
pub const DEFAULT_POPULATION: u64 = 1_410_000_000;

/// An institution is named a likely source when its corrected p-value is at most 10^this: a
/// strict level, because a population given too large makes every overlap look significant.
pub const SOURCE_LOG10_P: f64 = -6.0;

/// One key type's test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeTest {
    /// The dump's distinct keys of this type (`d`).
    pub dump: u64,
    /// The holder's keys of this type (`h`).
    pub holder: u64,
    /// Keys in both (`x`).
    pub observed: u64,
    /// `d·h/N`.
    pub expected: f64,
    /// `observed / expected` (0 when nothing is expected).
    pub lift: f64,
    /// `(observed − expected) / sd`, `sd² = d·(h/N)·(1 − h/N)·(N − d)/(N − 1)`.
    pub z: f64,
    /// `log10 P(X ≥ observed)`, exact (summed in log space; never underflows).
    pub log10_p: f64,
}

/// An institution's evidence of being a source, from its figures and the population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    /// 1 for the strongest evidence; institutions without an answer have no rank.
    pub rank: usize,
    /// Per key type present on both sides.
    pub types: BTreeMap<KeyType, TypeTest>,
    /// The key type with the smallest p-value.
    pub best_type: Option<KeyType>,
    /// Its lift.
    pub lift: f64,
    /// `log10` of the smallest p-value times the number of key types tested (at most 0).
    pub log10_p: f64,
    /// `log10_p ≤` [`SOURCE_LOG10_P`]: more overlap than chance explains.
    pub likely_source: bool,
}

/// The tests of one institution: `dump`, `holder` and `matched` keys per type, against `n`.
pub fn attribute(
    n: u64,
    dump: &BTreeMap<KeyType, u64>,
    holder: &BTreeMap<KeyType, u64>,
    matched: &BTreeMap<KeyType, u64>,
) -> Attribution {
    let mut types = BTreeMap::new();
    for (kt, &d) in dump {
        let h = holder.get(kt).copied().unwrap_or(0);
        if d == 0 || h == 0 {
            continue;
        }
        let x = matched.get(kt).copied().unwrap_or(0);
        types.insert(*kt, test(n, d, h, x));
    }
    let best = types
        .iter()
        .min_by(|a, b| a.1.log10_p.total_cmp(&b.1.log10_p))
        .map(|(kt, t)| (*kt, t.lift, t.log10_p));
    let (best_type, lift, log10_p) = match best {
        Some((kt, lift, p)) => (Some(kt), lift, (p + (types.len() as f64).log10()).min(0.0)),
        None => (None, 0.0, 0.0),
    };
    Attribution {
        rank: 0,
        types,
        best_type,
        lift,
        log10_p,
        likely_source: log10_p <= SOURCE_LOG10_P,
    }
}

/// Every answering peer's attribution against `population`, ranked.
pub fn apply(report: &mut super::Report, population: u64) {
    report.population = Some(population);
    let dump = report.dump.keys.clone();
    for p in report.peers.iter_mut() {
        p.attribution = p
            .error
            .is_none()
            .then(|| attribute(population, &dump, &p.holder_keys, &p.matched_keys));
    }
    let mut all: Vec<&mut Attribution> = report
        .peers
        .iter_mut()
        .filter_map(|p| p.attribution.as_mut())
        .collect();
    rank(&mut all);
}

/// The same attribution up to rounding (a relative 10^-9 on every figure).
pub fn agrees(a: &Attribution, b: &Attribution) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
    let same_test = |s: &TypeTest, t: &TypeTest| {
        (s.dump, s.holder, s.observed) == (t.dump, t.holder, t.observed)
            && close(s.expected, t.expected)
            && close(s.lift, t.lift)
            && close(s.z, t.z)
            && close(s.log10_p, t.log10_p)
    };
    (a.rank, a.best_type, a.likely_source) == (b.rank, b.best_type, b.likely_source)
        && close(a.lift, b.lift)
        && close(a.log10_p, b.log10_p)
        && a.types.len() == b.types.len()
        && a.types
            .iter()
            .zip(&b.types)
            .all(|((k, s), (l, t))| k == l && same_test(s, t))
}

/// Ranks by corrected p-value, then by lift; ties keep their order.
pub fn rank(attributions: &mut [&mut Attribution]) {
    let mut order: Vec<usize> = (0..attributions.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&attributions[a], &attributions[b]);
        a.log10_p
            .total_cmp(&b.log10_p)
            .then(b.lift.total_cmp(&a.lift))
    });
    for (r, i) in order.into_iter().enumerate() {
        attributions[i].rank = r + 1;
    }
}

/// One key type's hypergeometric test. A population smaller than either side (a wrong
/// `--population`) is taken as the larger side.
pub fn test(n: u64, d: u64, h: u64, x: u64) -> TypeTest {
    let n = n.max(d).max(h);
    let (nf, df, hf, xf) = (n as f64, d as f64, h as f64, x as f64);
    let expected = df * hf / nf;
    let q = hf / nf;
    let var = if n > 1 {
        df * q * (1.0 - q) * (nf - df) / (nf - 1.0)
    } else {
        0.0
    };
    let z = match var > 0.0 {
        true => (xf - expected) / var.sqrt(),
        false => 0.0,
    };
    TypeTest {
        dump: d,
        holder: h,
        observed: x,
        expected,
        lift: if expected > 0.0 { xf / expected } else { 0.0 },
        z,
        log10_p: log10_upper_tail(n, d, h, x),
    }
}

/// Terms summed at most on either side: far more than the tail's width for any real list (its
/// standard deviation is below 2·10^4 for 10^9 keys), and a bound on the work a made-up report
/// can ask of `suyuan verify`.
const MAX_TERMS: u64 = 10_000_000;

/// `log10 P(X ≥ x)` for `X ~ Hypergeometric(N = n, K = h, draws = d)`.
fn log10_upper_tail(n: u64, d: u64, h: u64, x: u64) -> f64 {
    let lo = (d + h).saturating_sub(n);
    let hi = d.min(h);
    // More than either side holds cannot be observed; `suyuan verify` refuses such a report.
    let x = x.min(hi);
    if x <= lo {
        return 0.0;
    }
    let (nf, df, hf) = (n as f64, d as f64, h as f64);
    let mode = ((df + 1.0) * (hf + 1.0) / (nf + 2.0)).floor() as u64;
    if x > mode {
        // Terms fall from x on: sum them scaled by the first.
        let first = ln_pmf(n, d, h, x);
        let (mut sum, mut term) = (1.0f64, 1.0f64);
        let mut k = x;
        while k < hi && k - x < MAX_TERMS {
            let kf = k as f64;
            term *= (hf - kf) * (df - kf) / ((kf + 1.0) * (nf - hf - df + kf + 1.0));
            sum += term;
            k += 1;
            if term < sum * 1e-17 {
                break;
            }
        }
        (first + sum.ln()) / std::f64::consts::LN_10
    } else {
        // P(X ≥ x) = 1 − P(X ≤ x − 1), the lower tail falling from x − 1 down.
        let top = x - 1;
        let first = ln_pmf(n, d, h, top);
        let (mut sum, mut term) = (1.0f64, 1.0f64);
        let mut k = top;
        while k > lo && top - k < MAX_TERMS {
            let kf = k as f64;
            term *= kf * (nf - hf - df + kf) / ((hf - kf + 1.0) * (df - kf + 1.0));
            sum += term;
            k -= 1;
            if term < sum * 1e-17 {
                break;
            }
        }
        let lower = (first + sum.ln()).exp().min(1.0);
        (1.0 - lower).max(f64::MIN_POSITIVE).log10()
    }
}

/// `ln P(X = x)`.
fn ln_pmf(n: u64, d: u64, h: u64, x: u64) -> f64 {
    ln_choose(h, x) + ln_choose(n - h, d - x) - ln_choose(n, d)
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

/// `ln(n!)`: exact sums below 256, Stirling's series (error below 1e-15 relative) above.
fn ln_factorial(n: u64) -> f64 {
    if n < 256 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    x * x.ln() - x
        + 0.5 * (2.0 * std::f64::consts::PI * x).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 / 1680.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `log10 P(X ≥ x)` by summing every exact probability, for small cases.
    fn brute(n: u64, d: u64, h: u64, x: u64) -> f64 {
        let c = |n: u64, k: u64| -> f64 {
            if k > n {
                return 0.0;
            }
            (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
        };
        let total = c(n, d);
        let tail: f64 = (x..=d.min(h))
            .map(|k| c(h, k) * c(n - h, d.saturating_sub(k)) * f64::from(d >= k))
            .sum();
        (tail / total).log10()
    }

    #[test]
    fn the_tail_agrees_with_a_brute_force_sum() {
        for (n, d, h) in [(50, 10, 20), (60, 30, 30), (40, 39, 5), (300, 100, 150)] {
            for x in 0..=d.min(h) {
                let (ours, exact) = (log10_upper_tail(n, d, h, x), brute(n, d, h, x));
                assert!(
                    (ours - exact).abs() < 1e-9 * exact.abs().max(1.0),
                    "N={n} d={d} h={h} x={x}: {ours} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn factorials_past_the_exact_range_are_stirling_accurate() {
        let exact: f64 = (2..=1000u64).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(1000) - exact).abs() < 1e-9);
        let exact: f64 = (2..=256u64).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(256) - exact).abs() < 1e-10);
    }

    #[test]
    fn a_large_list_with_its_expected_overlap_is_not_a_source_and_a_small_leak_is() {
        // A telecom of 1.2 billion against a dump of 10 million people drawn at random.
        let n = DEFAULT_POPULATION;
        let big = test(n, 10_000_000, 1_200_000_000, 8_511_000);
        assert!((big.lift - 1.0).abs() < 0.001, "{big:?}");
        assert!(big.log10_p > -1.0, "{big:?}");
        // A branch of 50,000 customers, 20,000 of them in the dump: 56 times chance.
        let small = test(n, 10_000_000, 50_000, 20_000);
        assert!(small.lift > 50.0 && small.log10_p < -1000.0, "{small:?}");
        assert!(small.z > 100.0);
        let mut a = attribute(
            n,
            &[(KeyType::Mobile, 10_000_000)].into(),
            &[(KeyType::Mobile, 1_200_000_000)].into(),
            &[(KeyType::Mobile, 8_511_000)].into(),
        );
        let mut b = attribute(
            n,
            &[(KeyType::Mobile, 10_000_000), (KeyType::Email, 5)].into(),
            &[(KeyType::Mobile, 50_000), (KeyType::Email, 3)].into(),
            &[(KeyType::Mobile, 20_000)].into(),
        );
        assert!(!a.likely_source && b.likely_source);
        assert_eq!(b.best_type, Some(KeyType::Mobile));
        // Two types tested: the smallest p-value doubled.
        let mobile = b.types[&KeyType::Mobile].log10_p;
        assert!((b.log10_p - (mobile + 2f64.log10())).abs() < 1e-9);
        rank(&mut [&mut a, &mut b]);
        assert_eq!((a.rank, b.rank), (2, 1));
    }

    #[test]
    fn degenerate_inputs_give_finite_or_bounded_answers() {
        assert_eq!(test(100, 10, 10, 0).log10_p, 0.0);
        assert_eq!(
            test(10, 10, 10, 10).log10_p,
            0.0,
            "everyone in both: certain"
        );
        // A population smaller than a side is raised to it.
        let t = test(5, 10, 20, 10);
        assert!(t.expected.is_finite() && t.log10_p.is_finite());
        assert_eq!(
            attribute(100, &BTreeMap::new(), &BTreeMap::new(), &BTreeMap::new()).log10_p,
            0.0
        );
    }
}
