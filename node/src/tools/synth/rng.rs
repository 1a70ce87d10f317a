//! Deterministic randomness for synthetic data: SplitMix64 streams keyed by (seed, purpose,
//! index), and a keyed bijection on `[0, n)` (a Feistel network with cycle walking) that hands
//! every person a distinct mobile number, ID number and card number.

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic generator for one (seed, purpose, index) triple.
#[derive(Debug, Clone)]
pub(crate) struct Stream(u64);

impl Stream {
    pub(crate) fn new(seed: u64, purpose: u64, index: u64) -> Self {
        Stream(mix(mix(seed ^ purpose.rotate_left(17)) ^ index))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, n)` (n ≥ 1), by 128-bit multiply.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index drawn by weight from cumulative weights.
    pub(crate) fn weighted(&mut self, cumulative: &[u32]) -> usize {
        let total = cumulative.last().copied().unwrap_or(1).max(1);
        let x = self.below(u64::from(total)) as u32;
        cumulative.partition_point(|&c| c <= x)
    }
}

/// A keyed permutation of `[0, n)`.
#[derive(Debug, Clone)]
pub(crate) struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    pub(crate) fn new(seed: u64, purpose: u64, n: u64) -> Self {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let mut s = Stream::new(seed, purpose, n);
        Permutation {
            n,
            half_bits,
            keys: [s.next_u64(), s.next_u64(), s.next_u64(), s.next_u64()],
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (x >> self.half_bits, x & mask);
        for k in self.keys {
            let f = mix(r ^ k) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half_bits) | r
    }

    /// The image of `i < n`: distinct for distinct `i`.
    pub(crate) fn apply(&self, i: u64) -> u64 {
        // Cycle walking: the Feistel domain is at most 4n, so this ends after a few steps.
        let mut x = self.feistel(i);
        while x >= self.n {
            x = self.feistel(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_bijection() {
        for n in [1u64, 2, 7, 1000, 4097] {
            let p = Permutation::new(9, 1, n);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let x = p.apply(i) as usize;
                assert!(!seen[x], "n={n} i={i}");
                seen[x] = true;
            }
        }
    }

    #[test]
    fn streams_are_deterministic_and_distinct() {
        assert_eq!(
            Stream::new(1, 2, 3).next_u64(),
            Stream::new(1, 2, 3).next_u64()
        );
        assert_ne!(
            Stream::new(1, 2, 3).next_u64(),
            Stream::new(1, 2, 4).next_u64()
        );
        let mut s = Stream::new(5, 5, 5);
        assert!((0..1000).all(|_| s.below(10) < 10));
    }
}
