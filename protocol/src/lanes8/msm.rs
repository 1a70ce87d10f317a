//! `Σ wᵢ·Pᵢ` over many decoded points, in variable time (the sums of a DLEQ proof, whose
//! weights and points are public transcript): Pippenger's buckets with the eight lanes on eight
//! windows of one byte each. Every point is broadcast to all lanes and added, in each lane, to
//! the bucket its weight's byte names in that lane's window; four passes cover the 32 bytes.

use std::arch::x86_64::*;

use super::edwards::Extended8;
use super::field::Fe8;

/// One lane's bucket: 4 coordinates × 5 limbs, contiguous (three cache lines per update).
const BUCKET: usize = 4 * 5;
const BUCKETS: usize = 256;

/// Lane `l` of result `q` is `Σ_b b·(Σ of the points whose weight has byte b at position
/// 8·passes[q] + l)`: the window sums of bytes `8·pass .. 8·pass + 8` for each pass given.
/// Several passes go through the points together, so that their bucket updates (a gather, an
/// addition, a scatter) overlap instead of waiting on each other.
///
/// `points` are blocks of eight affine points (as decoding returns them), point `i` in lane
/// `i % 8` of block `i / 8`; `weights` gives one scalar per point and may be shorter than the
/// blocks hold (the padding of a last block is never read).
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn window_sums<const P: usize>(
    weights: &[[u8; 32]],
    points: &[&Extended8],
    passes: [usize; P],
) -> [Extended8; P] {
    // Bucket b of lane l: limbs at (l·BUCKETS + b)·BUCKET + coordinate·5 + limb. Bucket 0
    // collects the zero bytes and is never summed.
    let mut stores: [Vec<u64>; P] = std::array::from_fn(|_| {
        let mut buckets = vec![0u64; 8 * BUCKETS * BUCKET];
        for bucket in buckets.chunks_exact_mut(BUCKET) {
            // y = z = 1.
            bucket[5] = 1;
            bucket[10] = 1;
        }
        buckets
    });
    let lane = _mm512_set_epi64(
        7 * (BUCKETS * BUCKET) as i64,
        6 * (BUCKETS * BUCKET) as i64,
        5 * (BUCKETS * BUCKET) as i64,
        4 * (BUCKETS * BUCKET) as i64,
        3 * (BUCKETS * BUCKET) as i64,
        2 * (BUCKETS * BUCKET) as i64,
        (BUCKETS * BUCKET) as i64,
        0,
    );
    let bases: [*mut u64; P] = std::array::from_fn(|q| stores[q].as_mut_ptr());
    for (block, chunk) in points.iter().zip(weights.chunks(8)) {
        let niels = block.niels();
        for (l, w) in chunk.iter().enumerate() {
            let p = niels.broadcast(l);
            let idx: [__m512i; P] = std::array::from_fn(|q| {
                // SAFETY: an unaligned load of 8 bytes from a 32-byte array (8·pass + 8 ≤ 32).
                let bytes = unsafe { _mm_loadl_epi64(w[8 * passes[q]..].as_ptr().cast()) };
                let digit = _mm512_cvtepu8_epi64(bytes);
                // digit · 20 = digit · 16 + digit · 4.
                let scaled =
                    _mm512_add_epi64(_mm512_slli_epi64(digit, 4), _mm512_slli_epi64(digit, 2));
                _mm512_add_epi64(scaled, lane)
            });
            // SAFETY: every index is below 8·256·BUCKET (a digit is a byte); the offsets in
            // `gather` keep each access inside its bucket.
            let buckets: [Extended8; P] =
                std::array::from_fn(|q| unsafe { gather(bases[q], idx[q]) });
            for q in 0..P {
                let sum = buckets[q].add_niels(&p);
                // SAFETY: as for the gather; lanes write disjoint slots (each lane its own
                // window).
                unsafe { scatter(bases[q], idx[q], &sum) };
            }
        }
    }
    std::array::from_fn(|q| {
        let mut running = Extended8::identity();
        let mut total = Extended8::identity();
        for b in (1..BUCKETS).rev() {
            let idx = _mm512_add_epi64(lane, _mm512_set1_epi64((b * BUCKET) as i64));
            // SAFETY: bucket b of every lane lies inside the store.
            let bucket = unsafe { gather(stores[q].as_mut_ptr(), idx) };
            running = running.add_extended(&bucket);
            total = total.add_extended(&running);
        }
        total
    })
}

/// Point `p` of a bucket store at `base`, lane `l` read from index `idx[l]`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn gather(base: *mut u64, idx: __m512i) -> Extended8 {
    let fe = |coord: usize| {
        Fe8(std::array::from_fn(|k| {
            // SAFETY: the caller's indices plus this offset stay inside the store.
            unsafe { _mm512_i64gather_epi64::<8>(idx, base.add(coord * 5 + k).cast_const().cast()) }
        }))
    };
    Extended8 {
        x: fe(0),
        y: fe(1),
        z: fe(2),
        t: fe(3),
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn scatter(base: *mut u64, idx: __m512i, p: &Extended8) {
    for (coord, f) in [&p.x, &p.y, &p.z, &p.t].into_iter().enumerate() {
        for (k, limb) in f.0.iter().enumerate() {
            // SAFETY: the caller's indices plus this offset stay inside the store.
            unsafe { _mm512_i64scatter_epi64::<8>(base.add(coord * 5 + k).cast(), idx, *limb) };
        }
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
