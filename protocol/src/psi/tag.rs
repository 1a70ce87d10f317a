//! Tags: `tag(y) = first ℓ bytes of SHA-512("suyuan-tag-v1" || compress(k·H(y)))`.

use sha2::{Digest, Sha512};

/// Domain-separation prefix of every tag.
pub const TAG_DST: &[u8] = b"suyuan-tag-v1";

/// Bytes of a tag as the holder stores it; a query uses the first [`tag_len`] of them.
pub const TAG_STORED_LEN: usize = 16;

/// A stored (full-length) tag. Truncation keeps sort order, so one sorted list serves any ℓ.
pub type Tag = [u8; TAG_STORED_LEN];

/// The stored tag of an evaluated element `compress(k·H(y))`.
pub(crate) fn tag_of(evaluated: &[u8; 32]) -> Tag {
    let d = Sha512::new()
        .chain_update(TAG_DST)
        .chain_update(evaluated)
        .finalize();
    let mut t = [0u8; TAG_STORED_LEN];
    t.copy_from_slice(&d[..TAG_STORED_LEN]);
    t
}

/// `⌈log₂ x⌉` for `x ≥ 1` (0 for 0 and 1).
fn ceil_log2(x: u64) -> u32 {
    64 - x.saturating_sub(1).leading_zeros()
}

/// The tag length ℓ in bytes for a query of `query_keys` against `holder_keys`:
/// `max(8, ⌈(⌈log₂n⌉ + ⌈log₂m⌉ + 40) / 8⌉)`, so that the expected number of false matches in
/// the whole query, at most `n·m·2^(-8ℓ)`, is at most 2⁻⁴⁰.
pub fn tag_len(query_keys: u64, holder_keys: u64) -> usize {
    let bits = ceil_log2(query_keys) + ceil_log2(holder_keys) + 40;
    (bits.div_ceil(8) as usize).clamp(8, TAG_STORED_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_len_meets_the_bound() {
        assert_eq!(tag_len(0, 0), 8);
        assert_eq!(tag_len(1000, 1000), 8); // 10 + 10 + 40 = 60 bits
        assert_eq!(tag_len(10_000_000, 10_000_000), 11); // 24 + 24 + 40 = 88 bits
        assert_eq!(tag_len(1 << 40, 1 << 40), 15);
        for (n, m) in [
            (1u64, 1u64),
            (3, 5),
            (1 << 20, 1 << 30),
            (123_456_789, 987_654),
        ] {
            let l = tag_len(n, m) as f64;
            // log2(n·m) - 8ℓ ≤ -40
            assert!(
                (n as f64).log2() + (m as f64).log2() - 8.0 * l <= -40.0,
                "{n} {m}"
            );
        }
    }
}
