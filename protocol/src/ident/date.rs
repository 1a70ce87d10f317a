//! Calendar dates: validation and the birth-date field.

use super::Rejection;
use super::normalize::fold;

/// Gregorian leap year.
pub(super) fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Days in a month; 0 for a month outside 1..=12.
pub(super) fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whether `YYYYMMDD` (exactly 8 ASCII digits) is a real date with a year
/// in `years`.
pub(super) fn is_valid_yyyymmdd(s: &str, years: std::ops::RangeInclusive<u32>) -> bool {
    if s.len() != 8 {
        return false;
    }
    match (
        number(s.get(0..4)),
        number(s.get(4..6)),
        number(s.get(6..8)),
    ) {
        (Some(y), Some(m), Some(d)) => years.contains(&y) && d >= 1 && d <= days_in_month(y, m),
        _ => false,
    }
}

/// Non-empty run of at most 4 ASCII digits.
fn number(s: Option<&str>) -> Option<u32> {
    let s = s?.trim();
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Accepted birth years, in a birth date field and inside a resident ID alike
/// (one range, so a person's name+birthdate key never depends on where the
/// date came from): wide enough for any living person, narrow enough to
/// catch garbage.
pub(super) const BIRTH_YEARS: std::ops::RangeInclusive<u32> = 1900..=2099;

/// Canonicalise a birth date to `YYYYMMDD`. Accepts `19491231`,
/// `1949-12-31`, `1949/12/31`, `1949.12.31`, `1949年12月31日` (single-digit
/// month/day allowed) and ignores a trailing time of day.
pub fn canonical_birthdate(raw: &str) -> Result<String, Rejection> {
    let folded = fold(raw);
    let date = strip_time(&folded);
    let (y, m, d) = split_date(date).ok_or(Rejection::BadDate)?;
    if y.trim().len() != 4 || m.trim().len() > 2 || d.trim().len() > 2 {
        return Err(Rejection::BadDate);
    }
    let (Some(y), Some(m), Some(d)) = (number(Some(y)), number(Some(m)), number(Some(d))) else {
        return Err(Rejection::BadDate);
    };
    if !BIRTH_YEARS.contains(&y) || d < 1 || d > days_in_month(y, m) {
        return Err(Rejection::BadDate);
    }
    Ok(format!("{y:04}{m:02}{d:02}"))
}

/// Canonicalise a date or a month to `YYYY-MM`, for a label such as an account's opening date.
/// Accepts every layout of [`canonical_birthdate`] (the day must be real) and the month alone:
/// `201903`, `2019-03`, `2019/3`, `2019.03`, `2019年3月`. Years 1900 to 2099.
pub fn canonical_month(raw: &str) -> Result<String, Rejection> {
    let folded = fold(raw);
    let date = strip_time(&folded);
    if let Ok(full) = canonical_birthdate(date) {
        return Ok(format!("{}-{}", &full[..4], &full[4..6]));
    }
    let (y, m) = split_month(date).ok_or(Rejection::BadDate)?;
    if y.trim().len() != 4 || m.trim().len() > 2 {
        return Err(Rejection::BadDate);
    }
    match (number(Some(y)), number(Some(m))) {
        (Some(y), Some(m)) if BIRTH_YEARS.contains(&y) && (1..=12).contains(&m) => {
            Ok(format!("{y:04}-{m:02}"))
        }
        _ => Err(Rejection::BadDate),
    }
}

/// Year and month parts of the month-only layouts.
fn split_month(s: &str) -> Option<(&str, &str)> {
    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some((s.get(0..4)?, s.get(4..6)?));
    }
    if let Some((y, rest)) = s.split_once('年') {
        let m = rest.trim_end();
        return Some((y, m.strip_suffix('月').unwrap_or(m)));
    }
    let sep = s.chars().find(|c| matches!(c, '-' | '/' | '.'))?;
    let mut parts = s.split(sep);
    match (parts.next()?, parts.next()?, parts.next()) {
        (y, m, None) => Some((y, m)),
        _ => None,
    }
}

/// Database dumps often append `00:00:00`; drop it.
fn strip_time(s: &str) -> &str {
    if let Some((date, time)) = s.split_once([' ', 'T']) {
        let time = time.trim();
        if !time.is_empty()
            && time
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
        {
            return date.trim_end();
        }
    }
    s
}

/// Year, month, day parts of the accepted layouts.
fn split_date(s: &str) -> Option<(&str, &str, &str)> {
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Some((s.get(0..4)?, s.get(4..6)?, s.get(6..8)?));
    }
    if let Some((y, rest)) = s.split_once('年') {
        let (m, d) = rest.split_once('月')?;
        let d = d.trim_end();
        return Some((y, m, d.strip_suffix('日').unwrap_or(d)));
    }
    let sep = s.chars().find(|c| matches!(c, '-' | '/' | '.'))?;
    let mut parts = s.split(sep);
    let parts = (parts.next()?, parts.next()?, parts.next()?, parts.next());
    match parts {
        (y, m, d, None) => Some((y, m, d)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_layouts() {
        for raw in [
            "19491231",
            "1949-12-31",
            "1949/12/31",
            "1949.12.31",
            "1949年12月31日",
            "1949年12月31",
            " 1949 年 12 月 31 日 ",
            "１９４９－１２－３１",
            "1949-12-31 00:00:00",
            "1949-12-31T00:00:00",
        ] {
            assert_eq!(canonical_birthdate(raw).as_deref(), Ok("19491231"), "{raw}");
        }
        assert_eq!(canonical_birthdate("2000-2-9").as_deref(), Ok("20000209"));
    }

    #[test]
    fn months_from_the_layouts_of_chinese_lists() {
        for raw in [
            "2019-03-15",
            "2019/3/15",
            "20190315",
            "2019年3月15日",
            "2019-03-15 09:30:00",
            "2019/3/15 9:30",
            "２０１９－０３－１５",
            "2019-03",
            "2019/3",
            "201903",
            "2019年3月",
            "2019.03",
        ] {
            assert_eq!(canonical_month(raw).as_deref(), Ok("2019-03"), "{raw}");
        }
        for raw in [
            "",
            "2019",
            "2019-13",
            "2019-02-30",
            "19-03-15",
            "1899-12",
            "2019-3-15-1",
            "三月",
            "2019年13月",
        ] {
            assert_eq!(canonical_month(raw), Err(Rejection::BadDate), "{raw:?}");
        }
    }

    #[test]
    fn leap_years() {
        assert!(canonical_birthdate("2000-02-29").is_ok());
        assert!(canonical_birthdate("1996-02-29").is_ok());
        assert_eq!(canonical_birthdate("1900-02-29"), Err(Rejection::BadDate));
        assert_eq!(canonical_birthdate("1999-02-29"), Err(Rejection::BadDate));
    }

    #[test]
    fn rejected() {
        for raw in [
            "",
            "1949-13-01",
            "1949-04-31",
            "1949-00-10",
            "1949-01-00",
            "1899-12-31",
            "2100-01-01",
            "49-12-31",
            "1949-12",
            "1949-12-31-01",
            "1949/12-31x",
            "abcd",
            "194912310",
            "12/31/1949",
        ] {
            assert_eq!(canonical_birthdate(raw), Err(Rejection::BadDate), "{raw}");
        }
    }

    #[test]
    fn yyyymmdd_check() {
        assert!(is_valid_yyyymmdd("19491231", 1800..=2099));
        assert!(!is_valid_yyyymmdd("19490231", 1800..=2099));
        assert!(!is_valid_yyyymmdd("1949123", 1800..=2099));
        assert!(!is_valid_yyyymmdd("1949+231", 1800..=2099));
    }

    proptest! {
        #[test]
        fn idempotent(raw in "\\PC*|[0-9]{4}[-/.年][0-9]{1,2}[-/.月][0-9]{1,2}日?") {
            if let Ok(c) = canonical_birthdate(&raw) {
                prop_assert_eq!(canonical_birthdate(&c), Ok(c));
            }
        }

        #[test]
        fn never_panics(raw in any::<String>()) {
            let _ = canonical_birthdate(&raw);
        }
    }
}
