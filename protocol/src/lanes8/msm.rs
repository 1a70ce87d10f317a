//! `Σ wᵢ·Pᵢ` over many decoded points, in variable time (the sums of a DLEQ proof, whose
//! weights and points are public transcript): Pippenger's buckets with the eight lanes on eight
//! windows of one byte each, four passes for the 32 bytes.
//!
//! No bucket is kept in memory. Each lane walks the points sorted by its window's byte, from
//! 255 down, adding each to a running sum `R`; each time the byte drops by one it adds `R` to
//! its total `T`, so that `T = Σ_b b·(points of byte b)`. All lanes take `n + 255` steps of
//! one addition each, in lockstep: where a lane adds `R` to `T` the others add a point to `R`,
//! and one blended addition serves both. A step reads its points with one gather; there is no
//! scatter (a bucket store in memory took a gather and a scatter of the bucket per point, lane
//! and pass, and ran no faster on this CPU). The arithmetic is the cost: about dalek's own
//! Pippenger per point; what the lanes save is dalek's decompression of every element.

use std::arch::x86_64::*;

use super::edwards::{Cached8, Extended8};
use super::field::Fe8;

/// Limbs of one point in a step's table: y + x, y − x, 2d·x·y (an affine point, z = 1).
const ROW: usize = 15;
const _: () = assert!(ROW == 16 - 1);
/// A schedule entry that adds `R` to `T` instead of a point to `R`.
const STEP: u32 = u32::MAX;

/// Lane `l` of the result is `Σ_b b·(Σ of the points whose weight has byte b at position
/// 8·pass + l)`: the window sums of bytes `8·pass .. 8·pass + 8`.
///
/// `points` are blocks of eight affine points (as decoding returns them), point `i` in lane
/// `i % 8` of block `i / 8`; `weights` gives one scalar per point and may be shorter than the
/// blocks hold (the padding of a last block is never read).
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn window_sums(weights: &[[u8; 32]], points: &[&Extended8], pass: usize) -> Extended8 {
    let n = weights.len();
    // Point-major rows, so that a lane reads its point's 15 limbs from one place.
    let mut rows = vec![0u64; n * ROW];
    for (b, block) in points.iter().enumerate() {
        let coords = block.niels().lanes();
        for l in 0..8 {
            let i = b * 8 + l;
            if i >= n {
                break;
            }
            for (c, coord) in coords.iter().enumerate() {
                rows[i * ROW + c * 5..i * ROW + c * 5 + 5].copy_from_slice(&coord.0[l]);
            }
        }
    }
    // Per lane, the points by descending byte, a STEP after each byte value from 255 to 1, and
    // the points of byte 0 last (added to R once T is complete, to keep every lane's length).
    let len = n + 255;
    let mut schedule = vec![[0u32; 8]; len];
    for l in 0..8 {
        let byte = |i: usize| weights[i][8 * pass + l] as usize;
        let mut counts = [0usize; 256];
        for i in 0..n {
            counts[byte(i)] += 1;
        }
        // Where byte b's points start: after every higher byte's points and STEPs.
        let mut at = [0usize; 256];
        let mut next = 0;
        for b in (1..256).rev() {
            at[b] = next;
            next += counts[b];
            schedule[next][l] = STEP;
            next += 1;
        }
        at[0] = next;
        for i in 0..n {
            let b = byte(i);
            schedule[at[b]][l] = i as u32;
            at[b] += 1;
        }
    }
    let step = _mm512_set1_epi64(STEP as i64);
    // A step's points are gathered one step ahead, so that the gathers' latency overlaps the
    // previous step's arithmetic instead of stalling it.
    // SAFETY: every index read is a point's (below n); STEP lanes are masked off.
    let fetch = |entry: &[u32; 8]| unsafe {
        let idx = _mm512_cvtepu32_epi64(_mm256_loadu_si256(entry.as_ptr().cast()));
        let is_step = _mm512_cmpeq_epi64_mask(idx, step);
        // idx · 15 = idx · 16 − idx.
        let offsets = _mm512_sub_epi64(_mm512_slli_epi64(idx, 4), idx);
        (is_step, gather_row(&rows, !is_step, offsets))
    };
    let mut r = Extended8::identity();
    let mut t = Extended8::identity();
    let mut next = fetch(&schedule[0]);
    for i in 0..len {
        let (is_step, point) = next;
        if i + 1 < len {
            next = fetch(&schedule[i + 1]);
        }
        // Adding lanes: R + point. Stepping lanes: T + R.
        let operand = Cached8::blend(is_step, &point, &r.cached());
        let acc = Extended8::blend(is_step, &r, &t);
        let sum = acc.add_cached(&operand);
        r = Extended8::blend(is_step, &sum, &r);
        t = Extended8::blend(is_step, &t, &sum);
    }
    t
}

/// The rows at `offsets` (in limbs) for the lanes of `mask`, as affine points in the shape of an
/// addition's operand (z = 1); other lanes get zeros.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn gather_row(rows: &[u64], mask: __mmask8, offsets: __m512i) -> Cached8 {
    let fe = |c: usize| {
        Fe8(std::array::from_fn(|k| {
            // SAFETY: the caller's offsets are rows of `rows`; c·5 + k < ROW.
            unsafe {
                _mm512_mask_i64gather_epi64::<8>(
                    _mm512_setzero_si512(),
                    mask,
                    offsets,
                    rows.as_ptr().add(c * 5 + k).cast(),
                )
            }
        }))
    };
    Cached8 {
        y_plus_x: fe(0),
        y_minus_x: fe(1),
        z: Fe8::one(),
        t2d: fe(2),
    }
}

/// `Σ_l 2^(8l)·S_l`-style recombination of four passes' window sums into one point (in every
/// lane): Horner over the passes (2^64 apart), then each lane `l` times 2^(8l), then the lanes
/// summed.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn combine(passes: &[Extended8; 4]) -> Extended8 {
    let mut t = passes[3];
    for p in (0..3).rev() {
        t = t.double_n(64).add_extended(&passes[p]);
    }
    let shifts: [[u8; 32]; 8] = std::array::from_fn(|l| {
        let mut s = [0u8; 32];
        s[l] = 1;
        s
    });
    t.mul(&shifts).sum_lanes()
}
