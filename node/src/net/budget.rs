//! The daily budget: keys each peer may have answered per UTC day. Sans-IO: the caller
//! passes the time, so the day's edge is tested without waiting for it.

use std::collections::HashMap;

use crate::clock;
use crate::net::frame::Refusal;

/// Keys charged per (peer, UTC day), against one daily limit.
#[derive(Debug, Clone)]
pub struct DailyBudget {
    limit: u64,
    used: HashMap<(String, u64), u64>,
}

/// One admitted query's charge, to take back if it cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    peer: String,
    day: u64,
    keys: u64,
}

impl DailyBudget {
    /// An empty budget of `limit` keys per peer per UTC day.
    pub fn new(limit: u64) -> Self {
        DailyBudget {
            limit,
            used: HashMap::new(),
        }
    }

    /// Adds charges already made (from the audit log's `admitted` holder entries): `(peer,
    /// unix seconds, keys)`, so a restart does not refill the day.
    pub fn seed<'a>(&mut self, charges: impl IntoIterator<Item = (&'a str, u64, u64)>) {
        for (peer, unix, keys) in charges {
            let used = self
                .used
                .entry((peer.to_string(), clock::day_of(unix)))
                .or_insert(0);
            *used = used.saturating_add(keys);
        }
    }

    /// Every peer's keys used on the UTC day of `now_unix` (for metrics).
    pub fn today(&self, now_unix: u64) -> Vec<(String, u64)> {
        let day = clock::day_of(now_unix);
        let mut v: Vec<(String, u64)> = self
            .used
            .iter()
            .filter(|((_, d), _)| *d == day)
            .map(|((p, _), n)| (p.clone(), *n))
            .collect();
        v.sort();
        v
    }

    /// Keys `peer` has used on the UTC day of `now_unix`.
    pub fn used(&self, peer: &str, now_unix: u64) -> u64 {
        let key = (peer.to_string(), clock::day_of(now_unix));
        self.used.get(&key).copied().unwrap_or(0)
    }

    /// Charges `keys` to `peer` on the UTC day of `now_unix`, or refuses without charging.
    pub fn charge(&mut self, peer: &str, keys: u64, now_unix: u64) -> Result<Charge, Refusal> {
        let day = clock::day_of(now_unix);
        // Earlier days are over: only today's counts can refuse a query.
        self.used.retain(|(_, d), _| *d >= day);
        let used = self.used.entry((peer.to_string(), day)).or_insert(0);
        if used.saturating_add(keys) > self.limit {
            return Err(Refusal::BudgetExhausted {
                used: *used,
                limit: self.limit,
                keys,
            });
        }
        *used += keys;
        Ok(Charge {
            peer: peer.to_string(),
            day,
            keys,
        })
    }

    /// Takes back a charge whose query never ran (its audit entry could not be written).
    pub fn refund(&mut self, charge: Charge) {
        if let Some(used) = self.used.get_mut(&(charge.peer, charge.day)) {
            *used = used.saturating_sub(charge.keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T00:00:00Z.
    const MIDNIGHT: u64 = 1_796_083_200;

    #[test]
    fn the_day_ends_at_utc_midnight_and_not_a_second_earlier() {
        let mut b = DailyBudget::new(25);
        b.charge("police", 20, MIDNIGHT - 10).unwrap();
        assert_eq!(
            b.charge("police", 10, MIDNIGHT - 1),
            Err(Refusal::BudgetExhausted {
                used: 20,
                limit: 25,
                keys: 10
            })
        );
        b.charge("police", 10, MIDNIGHT).unwrap();
        assert_eq!(b.used("police", MIDNIGHT + 1), 10);
        assert_eq!(b.used("police", MIDNIGHT - 1), 0, "yesterday is forgotten");
    }

    #[test]
    fn peers_are_charged_apart_and_exactly_up_to_the_limit() {
        let mut b = DailyBudget::new(25);
        b.charge("police", 25, MIDNIGHT).unwrap();
        b.charge("tax", 25, MIDNIGHT).unwrap();
        assert!(b.charge("police", 1, MIDNIGHT + 86_399).is_err());
        // A hostile size cannot overflow the count into a pass.
        assert!(b.charge("tax", u64::MAX, MIDNIGHT).is_err());
    }

    #[test]
    fn seeded_charges_count_on_their_own_day() {
        let mut b = DailyBudget::new(25);
        b.seed([
            ("police", MIDNIGHT - 1, 20),
            ("police", MIDNIGHT, 10),
            ("police", MIDNIGHT + 5, 10),
        ]);
        assert_eq!(b.used("police", MIDNIGHT + 60), 20);
        assert!(b.charge("police", 6, MIDNIGHT + 60).is_err());
        b.charge("police", 5, MIDNIGHT + 60).unwrap();
    }

    #[test]
    fn a_refund_frees_what_was_charged() {
        let mut b = DailyBudget::new(25);
        let c = b.charge("police", 20, MIDNIGHT).unwrap();
        b.refund(c);
        b.charge("police", 25, MIDNIGHT).unwrap();
    }
}
