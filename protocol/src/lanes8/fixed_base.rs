//! Multiplication of one known point by eight secret scalars, one per lane, with a table of the
//! point's multiples (issue 15, part 2): the additive blinding's `ρ·G` and each holder's
//! `ρ·pk`. Sixty-four additions of table entries and no doubling, where a variable-base
//! multiplication takes 252 doublings and 64 additions.

use std::arch::x86_64::*;

use zeroize::Zeroize;

use super::edwards::{Extended8, Niels8, digit_at, radix16};
use super::field::Fe8;

/// Loose limbs of one table entry: y + x, y − x, 2d·x·y.
type Entry = [[u64; 5]; 3];

/// `c·16^j·P` for c = 1..=8 and j = 0..64, in the affine shape an addition takes: 61 KB per
/// point, read by broadcasts (every lane reads every entry of a position).
pub(super) struct Table {
    entries: Box<[[Entry; 8]; 64]>,
}

impl Table {
    /// The table from its 512 points, each window's eight multiples decoded together: lane
    /// `c − 1` of `windows[j]` holds `c·16^j·P` (affine, as decoding returns it).
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn from_windows(windows: &[Extended8; 64]) -> Table {
        let mut entries = Box::new([[[[0u64; 5]; 3]; 8]; 64]);
        for (j, w) in windows.iter().enumerate() {
            let coords = w.niels().lanes();
            for c in 0..8 {
                for (k, coord) in coords.iter().enumerate() {
                    entries[j][c][k] = coord.0[c];
                }
            }
        }
        Table { entries }
    }

    /// `k_l·P` in every lane `l`, for scalars below 2^255 given as little-endian bytes.
    ///
    /// Constant time in the scalars: 64 signed radix-16 digits per lane; at each position every
    /// entry is broadcast and blended in under masks from vector compares, so neither a branch
    /// nor an address depends on a digit.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn mul(&self, k: &[[u8; 32]; 8]) -> Extended8 {
        let mut digits = k.map(|k| radix16(&k));
        let mut acc = Extended8::identity();
        for (j, window) in self.entries.iter().enumerate() {
            acc = acc.add_niels(&select(window, &digits, j));
        }
        digits.zeroize();
        acc
    }
}

/// In each lane, the entry of its digit at position `j` (negated for a negative digit, the
/// identity for 0), by masked blends over all eight entries.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn select(window: &[Entry; 8], digits: &[[i8; 64]; 8], j: usize) -> Niels8 {
    let (negative, abs) = digit_at(digits, j);
    let mut r = Niels8::identity();
    for (c, entry) in window.iter().enumerate() {
        let m = _mm512_cmpeq_epi64_mask(abs, _mm512_set1_epi64(c as i64 + 1));
        r = Niels8 {
            y_plus_x: Fe8::blend(m, &r.y_plus_x, &Fe8::splat(entry[0])),
            y_minus_x: Fe8::blend(m, &r.y_minus_x, &Fe8::splat(entry[1])),
            xy2d: Fe8::blend(m, &r.xy2d, &Fe8::splat(entry[2])),
        };
    }
    r.negate_where(negative)
}
