//! Wall-clock helpers: Unix seconds, RFC 3339 in UTC, day numbers for daily budgets.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The UTC day number (days since 1970-01-01) of a Unix time: the unit of daily budgets.
pub fn day_of(unix: u64) -> u64 {
    unix / 86_400
}

/// Seconds from a Unix time to the next UTC midnight, when daily budgets start afresh.
pub fn seconds_to_next_day(unix: u64) -> u64 {
    86_400 - unix % 86_400
}

/// Proleptic Gregorian (year, month, day) of a day number (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// RFC 3339 in UTC with second precision, e.g. `2026-11-27T23:31:22Z`.
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_822_282), "2026-11-27T23:31:22Z");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn seconds_to_the_next_budget_day() {
        assert_eq!(seconds_to_next_day(0), 86_400);
        assert_eq!(seconds_to_next_day(1_795_822_282), 1_718); // 23:31:22 -> midnight
        assert_eq!(day_of(1_795_822_282 + 1_718), day_of(1_795_822_282) + 1);
    }
}
