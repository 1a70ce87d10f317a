//! Eight elements of GF(2^255 − 19) at once: one per 64-bit lane of an AVX-512 register, five
//! limbs of radix 2^52, multiplied with IFMA (`vpmadd52luq` / `vpmadd52huq`).
//!
//! IFMA reads only the low 52 bits of each operand, so every element between operations is
//! *loose*: limbs 0–3 below 2^52 and limb 4 below 2^48 (a value below 2^256, not necessarily
//! below p). Every operation takes loose elements and returns loose ones; [`Lanes`] makes them
//! canonical on the way out.

use std::arch::x86_64::*;

pub(super) const MASK52: u64 = (1 << 52) - 1;
const MASK47: u64 = (1 << 47) - 1;

/// 2^260 ≡ 32 · 19 (mod p): what a carry out of limb 4 of a 260-bit value is worth at limb 0.
const FOLD260: u64 = 608;

/// 4p limb by limb: above any loose limb, so `a + 4p − b` never goes below zero in a lane.
const P4: [u64; 5] = [
    4 * (MASK52 - 18),
    4 * MASK52,
    4 * MASK52,
    4 * MASK52,
    4 * MASK47,
];

/// Eight field elements, limb `k` of every lane in register `k`.
#[derive(Clone, Copy)]
pub(super) struct Fe8(pub(super) [__m512i; 5]);

#[inline]
#[target_feature(enable = "avx512f")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

impl Fe8 {
    /// The same field element (given as loose limbs) in every lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn splat(limbs: [u64; 5]) -> Fe8 {
        Fe8(limbs.map(|x| splat(x)))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn zero() -> Fe8 {
        Fe8::splat([0; 5])
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn one() -> Fe8 {
        Fe8::splat([1, 0, 0, 0, 0])
    }

    /// Lane `l` of the result is lane `l` of `b` where bit `l` of `mask` is set, else of `a`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn blend(mask: __mmask8, a: &Fe8, b: &Fe8) -> Fe8 {
        Fe8(std::array::from_fn(|k| {
            _mm512_mask_blend_epi64(mask, a.0[k], b.0[k])
        }))
    }

    /// Lane `idx[l]` of `self` in lane `l`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn permute(&self, idx: __m512i) -> Fe8 {
        Fe8(self.0.map(|limb| _mm512_permutexvar_epi64(idx, limb)))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn add(&self, b: &Fe8) -> Fe8 {
        normalize(std::array::from_fn(|k| _mm512_add_epi64(self.0[k], b.0[k])))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn sub(&self, b: &Fe8) -> Fe8 {
        normalize(std::array::from_fn(|k| {
            _mm512_sub_epi64(_mm512_add_epi64(self.0[k], splat(P4[k])), b.0[k])
        }))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn neg(&self) -> Fe8 {
        Fe8::zero().sub(self)
    }

    /// The product, by schoolbook over the 25 limb pairs (each pair one low and one high IFMA).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn mul(&self, b: &Fe8) -> Fe8 {
        let (a, b) = (&self.0, &b.0);
        let mut z = [_mm512_setzero_si512(); 10];
        for i in 0..5 {
            for j in 0..5 {
                z[i + j] = _mm512_madd52lo_epu64(z[i + j], a[i], b[j]);
                z[i + j + 1] = _mm512_madd52hi_epu64(z[i + j + 1], a[i], b[j]);
            }
        }
        reduce(z)
    }

    /// The square: the ten cross products once, doubled, then the five squares.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn square(&self) -> Fe8 {
        let a = &self.0;
        let mut z = [_mm512_setzero_si512(); 10];
        for i in 0..5 {
            for j in i + 1..5 {
                z[i + j] = _mm512_madd52lo_epu64(z[i + j], a[i], a[j]);
                z[i + j + 1] = _mm512_madd52hi_epu64(z[i + j + 1], a[i], a[j]);
            }
        }
        for zk in &mut z {
            *zk = _mm512_add_epi64(*zk, *zk);
        }
        for i in 0..5 {
            z[2 * i] = _mm512_madd52lo_epu64(z[2 * i], a[i], a[i]);
            z[2 * i + 1] = _mm512_madd52hi_epu64(z[2 * i + 1], a[i], a[i]);
        }
        reduce(z)
    }

    /// `self^(2^n)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn square_n(&self, n: u32) -> Fe8 {
        let mut r = *self;
        for _ in 0..n {
            r = r.square();
        }
        r
    }

    /// `self^((p − 5)/8) = self^(2^252 − 3)`, by the usual chain of 250 squarings and 11
    /// multiplications; the same in every lane, so constant time.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn pow_p58(&self) -> Fe8 {
        let x = *self;
        let x2 = x.square();
        let x9 = x2.square_n(2).mul(&x);
        let x11 = x9.mul(&x2);
        let x_5 = x11.square().mul(&x9); // x^(2^5 − 1)
        let x_10 = x_5.square_n(5).mul(&x_5);
        let x_20 = x_10.square_n(10).mul(&x_10);
        let x_40 = x_20.square_n(20).mul(&x_20);
        let x_50 = x_40.square_n(10).mul(&x_10);
        let x_100 = x_50.square_n(50).mul(&x_50);
        let x_200 = x_100.square_n(100).mul(&x_100);
        let x_250 = x_200.square_n(50).mul(&x_50);
        x_250.square_n(2).mul(&x)
    }
}

/// Brings limbs below 2^63 back to loose form: the bits of limb 4 above 2^255 fold into limb 0
/// (times 19), then one carry pass. Limbs 0–3 end below 2^52, limb 4 below 2^47 + 2^12.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn normalize(mut r: [__m512i; 5]) -> Fe8 {
    let mask = splat(MASK52);
    let top = _mm512_srli_epi64(r[4], 47);
    r[4] = _mm512_and_si512(r[4], splat(MASK47));
    r[0] = _mm512_madd52lo_epu64(r[0], top, splat(19));
    for k in 0..4 {
        let c = _mm512_srli_epi64(r[k], 52);
        r[k] = _mm512_and_si512(r[k], mask);
        r[k + 1] = _mm512_add_epi64(r[k + 1], c);
    }
    Fe8(r)
}

/// A 520-bit product (ten accumulators, each below 2^57) to loose form. The high half is carried
/// to 52-bit limbs first (IFMA would drop anything wider) and folded down with 2^260 ≡ 608.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn reduce(z: [__m512i; 10]) -> Fe8 {
    let mask = splat(MASK52);
    let fold = splat(FOLD260);
    let mut h = [_mm512_setzero_si512(); 5];
    let mut carry = _mm512_setzero_si512();
    for k in 0..5 {
        let t = _mm512_add_epi64(z[5 + k], carry);
        h[k] = _mm512_and_si512(t, mask);
        carry = _mm512_srli_epi64(t, 52);
    }
    // carry sits at 2^520 ≡ 608².
    let mut r = [z[0], z[1], z[2], z[3], z[4]];
    for k in 0..5 {
        r[k] = _mm512_madd52lo_epu64(r[k], h[k], fold);
    }
    for k in 0..4 {
        r[k + 1] = _mm512_madd52hi_epu64(r[k + 1], h[k], fold);
    }
    // The high part of 608·h4 lands at 2^260 again: below 2^10, so one more fold is exact.
    let top = _mm512_madd52hi_epu64(_mm512_setzero_si512(), h[4], fold);
    r[0] = _mm512_madd52lo_epu64(r[0], top, fold);
    r[0] = _mm512_madd52lo_epu64(r[0], carry, splat(FOLD260 * FOLD260));
    normalize(r)
}

/// Eight field elements as plain limbs, lane by lane: for loading, storing and the few
/// decisions on canonical values (sign, equality) that the vector code leaves to scalar code.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Lanes(pub(super) [[u64; 5]; 8]);

impl Lanes {
    #[target_feature(enable = "avx512f")]
    pub(super) fn load(&self) -> Fe8 {
        Fe8(std::array::from_fn(|k| {
            let limb: [u64; 8] = std::array::from_fn(|l| self.0[l][k]);
            // SAFETY: an unaligned load of 64 bytes from a local array of 64 bytes.
            unsafe { _mm512_loadu_si512(limb.as_ptr().cast()) }
        }))
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn store(f: &Fe8) -> Lanes {
        let mut out = [[0u64; 5]; 8];
        for (k, reg) in f.0.iter().enumerate() {
            let mut limb = [0u64; 8];
            // SAFETY: an unaligned store of 64 bytes into a local array of 64 bytes.
            unsafe { _mm512_storeu_si512(limb.as_mut_ptr().cast(), *reg) };
            for (l, v) in limb.into_iter().enumerate() {
                out[l][k] = v;
            }
        }
        Lanes(out)
    }

    /// Every lane reduced below p (the unique representative).
    pub(super) fn canonical(&self) -> Lanes {
        Lanes(self.0.map(canonical))
    }

    /// A mask with bit `l` set to `f(lane l)`, which sees canonical limbs and returns 0 or 1.
    /// Arithmetic only, like `f` must be: the lanes may hold secrets (the map of a hashed key).
    pub(super) fn mask(&self, f: impl Fn(&[u64; 5]) -> u64) -> __mmask8 {
        let c = self.canonical();
        (0..8).fold(0u8, |m, l| m | (((f(&c.0[l]) & 1) as u8) << l))
    }
}

/// The unique representative below p of a loose element (limbs 0–3 < 2^52, limb 4 < 2^48).
pub(super) fn canonical(l: [u64; 5]) -> [u64; 5] {
    let mut l = l;
    // Fold at 2^255 and carry: the value is now below 2^255 + 2^208 < 2p.
    let top = l[4] >> 47;
    l[4] &= MASK47;
    l[0] += 19 * top;
    for k in 0..4 {
        l[k + 1] += l[k] >> 52;
        l[k] &= MASK52;
    }
    // q = 1 exactly when the value is at least p: then subtracting p is adding 19 past 2^255.
    let mut q = (l[0] + 19) >> 52;
    for limb in &l[1..4] {
        q = (limb + q) >> 52;
    }
    q = (l[4] + q) >> 47;
    l[0] += 19 * q;
    for k in 0..4 {
        l[k + 1] += l[k] >> 52;
        l[k] &= MASK52;
    }
    l[4] &= MASK47;
    l
}

/// Canonical limbs to their 32-byte little-endian encoding.
pub(super) fn to_bytes(l: &[u64; 5]) -> [u8; 32] {
    let words = [
        l[0] | (l[1] << 52),
        (l[1] >> 12) | (l[2] << 40),
        (l[2] >> 24) | (l[3] << 28),
        (l[3] >> 36) | (l[4] << 16),
    ];
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(8).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// 32 little-endian bytes, bit 255 ignored, as limbs (loose, perhaps not below p).
pub(super) fn from_bytes(b: &[u8; 32]) -> [u64; 5] {
    let w: [u64; 4] = std::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[8 * i..8 * i + 8]);
        u64::from_le_bytes(word)
    });
    [
        w[0] & MASK52,
        ((w[0] >> 52) | (w[1] << 12)) & MASK52,
        ((w[1] >> 40) | (w[2] << 24)) & MASK52,
        ((w[2] >> 28) | (w[3] << 36)) & MASK52,
        (w[3] >> 16) & MASK47,
    ]
}
