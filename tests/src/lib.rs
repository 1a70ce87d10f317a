//! Shared helpers for suyuan's cross-crate tests: synthetic people with ground truth, written
//! the messy ways real files write them.
#![forbid(unsafe_code)] // the workspace denies it; only protocol/src/lanes8 may allow it
#![allow(clippy::expect_used)] // test support: a failed set-up is a test failure

pub mod fed;
pub mod fuzz;

use rand::RngExt;
use rand_core::Rng;

/// One synthetic person: the canonical identifiers, known by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// 11-digit mobile, `1[3-9]...`.
    pub mobile: String,
    /// 18-character resident ID with a correct check character.
    pub resident_id: String,
}

/// ISO 7064 MOD 11-2 check character of 17 digits, computed independently of the library.
pub fn id_check(body: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize] as char
}

/// `n` distinct people. IDs are born 1950-1998 so each also has a 15-digit legacy form.
pub fn people(rng: &mut impl Rng, n: usize) -> Vec<Person> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mobile = format!(
            "1{}{:09}",
            rng.random_range(3..=9),
            rng.random_range(0..1_000_000_000u64)
        );
        let body = format!(
            "110105{}{:02}{:02}{:03}",
            rng.random_range(1950..1999),
            rng.random_range(1..=12),
            rng.random_range(1..=28),
            rng.random_range(0..1000)
        );
        let resident_id = format!("{body}{}", id_check(&body));
        if seen.insert(mobile.clone()) && seen.insert(resident_id.clone()) {
            out.push(Person {
                mobile,
                resident_id,
            });
        }
    }
    out
}

/// The same mobile as a dump might write it.
pub fn messy_mobile(rng: &mut impl Rng, m: &str) -> String {
    match rng.random_range(0..5) {
        0 => m.to_string(),
        1 => format!("+86 {}-{}-{}", &m[..3], &m[3..7], &m[7..]),
        2 => format!("0086{m}"),
        3 => m
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap_or(c))
            .collect(),
        _ => format!("({}) {} {}", &m[..3], &m[3..7], &m[7..]),
    }
}

/// The same resident ID as a dump might write it (legacy 15-digit, lower-case x, spaces).
pub fn messy_id(rng: &mut impl Rng, id: &str) -> String {
    match rng.random_range(0..4) {
        0 => id.to_string(),
        1 => id.to_lowercase(),
        2 => format!("{}{}", &id[..6], &id[8..17]), // 15-digit legacy: drop "19" and the check
        _ => format!("{} {} {}", &id[..6], &id[6..14], &id[14..]),
    }
}

/// Writes `text` to `path`, in GB18030 if asked.
pub fn write_text(path: &std::path::Path, text: &str, gb18030: bool) {
    let bytes = if gb18030 {
        encoding_rs::GB18030.encode(text).0.into_owned()
    } else {
        text.as_bytes().to_vec()
    };
    std::fs::write(path, bytes).expect("writing a test file");
}

/// Runs a test that counts a daily budget, never waiting for midnight: if the UTC day changed
/// while it ran (the budget started afresh midway, so its figures may not add up), it runs once
/// more from scratch, which cannot straddle another midnight. A failure within one day fails.
pub async fn within_one_utc_day<F, Fut>(mut body: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let today = || suyuan_node::clock::day_of(suyuan_node::clock::now_unix());
    for _ in 0..2 {
        let day = today();
        // A task of its own, so that a failed assertion is caught here and not before the check.
        let run = tokio::spawn(body()).await;
        if today() == day {
            if let Err(e) = run {
                std::panic::resume_unwind(e.into_panic());
            }
            return;
        }
    }
    panic!("the UTC day changed twice during one test");
}
