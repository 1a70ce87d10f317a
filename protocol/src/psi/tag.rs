//! Tags, the first bytes of what each side derives from an unblinded element:
//!
//! - `matches` mode (and a querier's kept set): the RFC 9497 `Finalize` output of the OPRF
//!   input and `k·H(input)`, `SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) ||
//!   compress(k·H(input)) || "Finalize")`, which binds the tag to the input as the RFC's
//!   security argument assumes;
//! - `count` mode: `SHA-512("suyuan-count-tag-v2" || compress(r·k·H(input)))` under the
//!   session's fresh factor `r`. The querier gets the evaluations back sorted, so it cannot
//!   know which input an element belongs to, and no input enters this tag.

use sha2::{Digest, Sha512};

/// Domain-separation prefix of a count session's tags.
pub const COUNT_TAG_DST: &[u8] = b"suyuan-count-tag-v2";

/// Bytes of a tag as the holder stores it; a query uses the first [`tag_len`] of them.
pub const TAG_STORED_LEN: usize = 16;

/// A stored (full-length) tag. Truncation keeps sort order, so one sorted list serves any ℓ.
pub type Tag = [u8; TAG_STORED_LEN];

fn first_bytes(d: &[u8]) -> Tag {
    let mut t = [0u8; TAG_STORED_LEN];
    t.copy_from_slice(&d[..TAG_STORED_LEN]);
    t
}

/// The tag of an OPRF output: `Finalize(input, element)` (RFC 9497 section 3.3.1), truncated.
/// `input` comes in parts (type prefix, value) that are hashed as one; its length fits in two
/// bytes (values are bounded far below that).
pub(crate) fn finalize_tag(input: &[&[u8]], element: &[u8; 32]) -> Tag {
    first_bytes(&finalize_output(input, element))
}

/// The whole `Finalize` output: bytes 0..16 are the stored tag, bytes 32..64 the label key
/// ([`super::labels`]).
pub(crate) fn finalize_output(input: &[&[u8]], element: &[u8; 32]) -> [u8; 64] {
    let len: usize = input.iter().map(|p| p.len()).sum();
    let mut h = Sha512::new();
    h.update((len as u16).to_be_bytes());
    for p in input {
        h.update(p);
    }
    h.update(32u16.to_be_bytes());
    h.update(element);
    h.update(b"Finalize");
    h.finalize().into()
}

/// The tag and label key of a `Finalize` output.
pub(crate) fn split_output(out: &[u8; 64]) -> (Tag, [u8; 32]) {
    let mut key = [0u8; 32];
    key.copy_from_slice(&out[32..]);
    (first_bytes(out), key)
}

/// The tag of an element of a count session, `r·k·H(input)`.
pub(crate) fn count_tag(element: &[u8; 32]) -> Tag {
    first_bytes(&count_output(element))
}

/// The whole hash a count tag is cut from: bytes 32..64 are the key's label key in this
/// session.
pub(crate) fn count_output(element: &[u8; 32]) -> [u8; 64] {
    Sha512::new()
        .chain_update(COUNT_TAG_DST)
        .chain_update(element)
        .finalize()
        .into()
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
