//! One synthetic person per index: the same index always gives the same person, and distinct
//! indices never share a mobile number, an ID number or a card number.

use super::rng::{Permutation, Stream};
use super::tables::{CARD_BINS, GIVEN, MOBILE_PREFIXES, REGIONS, STREETS, SURNAMES, cumulative};
use crate::clock::civil_from_days;

/// Days from 1950-01-01 to 2005-12-31: the birth dates we draw.
const BIRTH_DAYS: u64 = 20_454;
/// Day number of 1950-01-01.
const FIRST_BIRTH_DAY: i64 = -7305;

/// A person's identifiers in canonical form, and a name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) name: String,
    pub(crate) mobile: String,
    pub(crate) resident_id: String,
    pub(crate) bank_card: String,
    pub(crate) address: String,
    /// Born 1900-1999, so a 15-digit legacy ID exists.
    pub(crate) legacy_id: Option<String>,
}

/// Everything that makes persons out of indices, for one seed.
#[derive(Debug)]
pub(crate) struct People {
    seed: u64,
    mobiles: Permutation,
    ids: Permutation,
    cards: Permutation,
    surnames: Vec<u32>,
    given: Vec<u32>,
}

/// ISO 7064 MOD 11-2 check character.
pub(crate) fn id_check(body17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17
        .bytes()
        .zip(W)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    char::from(b"10X98765432"[(sum % 11) as usize])
}

/// The Luhn check digit of a digit string.
pub(crate) fn luhn_digit(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

impl People {
    /// Persons `0..capacity` are available (the population and as many strangers).
    pub(crate) fn new(seed: u64, capacity: u64) -> Self {
        debug_assert!(capacity <= REGIONS.len() as u64 * BIRTH_DAYS * 1000);
        People {
            seed,
            mobiles: Permutation::new(seed, 1, MOBILE_PREFIXES.len() as u64 * 100_000_000),
            ids: Permutation::new(seed, 2, REGIONS.len() as u64 * BIRTH_DAYS * 1000),
            cards: Permutation::new(seed, 3, 1_000_000_000_000),
            surnames: cumulative(SURNAMES),
            given: cumulative(GIVEN),
        }
    }

    /// The most persons these tables can keep distinct.
    pub(crate) fn max_capacity() -> u64 {
        REGIONS.len() as u64 * BIRTH_DAYS * 1000
    }

    pub(crate) fn person(&self, i: u64) -> Person {
        let mut s = Stream::new(self.seed, 10, i);
        let mut name = SURNAMES[s.weighted(&self.surnames)].0.to_string();
        let given_len = if s.chance(0.7) { 2 } else { 1 };
        for _ in 0..given_len {
            name.push_str(GIVEN[s.weighted(&self.given)].0);
        }

        let m = self.mobiles.apply(i);
        let mobile = format!(
            "{}{:08}",
            MOBILE_PREFIXES[(m / 100_000_000) as usize],
            m % 100_000_000
        );

        let x = self.ids.apply(i);
        let region = (x % REGIONS.len() as u64) as usize;
        let rest = x / REGIONS.len() as u64;
        let day = FIRST_BIRTH_DAY + (rest % BIRTH_DAYS) as i64;
        let seq = rest / BIRTH_DAYS;
        let (y, mo, d) = civil_from_days(day);
        let body = format!("{}{y:04}{mo:02}{d:02}{seq:03}", REGIONS[region].0);
        let resident_id = format!("{body}{}", id_check(&body));
        let legacy_id = (1900..2000)
            .contains(&y)
            .then(|| format!("{}{}{mo:02}{d:02}{seq:03}", REGIONS[region].0, y % 100));

        let card_body = format!(
            "{}{:012}",
            CARD_BINS[s.below(CARD_BINS.len() as u64) as usize],
            self.cards.apply(i)
        );
        let bank_card = format!("{card_body}{}", luhn_digit(&card_body));

        let (_, province, city, district) = REGIONS[region];
        let city = if city == province { "" } else { city };
        let address = format!(
            "{province}{city}{district}{}{}号",
            STREETS[s.below(STREETS.len() as u64) as usize],
            1 + s.below(300)
        );
        Person {
            name,
            mobile,
            resident_id,
            bank_card,
            address,
            legacy_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suyuan_protocol::ident::{canonical_bank_card, canonical_mobile, canonical_resident_id};

    #[test]
    fn persons_are_valid_distinct_and_reproducible() {
        let people = People::new(7, 20_000);
        let mut mobiles = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for i in 0..20_000 {
            let p = people.person(i);
            assert_eq!(
                canonical_mobile(&p.mobile).as_deref(),
                Ok(p.mobile.as_str())
            );
            assert_eq!(
                canonical_resident_id(&p.resident_id).as_deref(),
                Ok(p.resident_id.as_str())
            );
            assert_eq!(
                canonical_bank_card(&p.bank_card).as_deref(),
                Ok(p.bank_card.as_str())
            );
            if let Some(l) = &p.legacy_id {
                assert_eq!(
                    canonical_resident_id(l).as_deref(),
                    Ok(p.resident_id.as_str())
                );
            }
            assert!(mobiles.insert(p.mobile.clone()));
            assert!(ids.insert(p.resident_id.clone()));
        }
        assert_eq!(People::new(7, 20_000).person(123), people.person(123));
        assert_ne!(People::new(8, 20_000).person(123), people.person(123));
    }
}
