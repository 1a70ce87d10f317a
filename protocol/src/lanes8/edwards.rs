//! Eight independent points of the twisted Edwards curve −x² + y² = 1 + d·x²·y² (ristretto255's
//! representatives), and the multiplication of all eight by one shared scalar.
//!
//! The formulas are those of Hisil–Wong–Carter–Dawson for a = −1, in the shapes dalek uses:
//! extended (X:Y:Z:T), projective (X:Y:Z), completed ((X:Z), (Y:T)) and cached (Y+X, Y−X, Z,
//! 2d·T) for the second operand of an addition.

use std::arch::x86_64::*;

use zeroize::Zeroize;

use super::field::Fe8;

/// 2d, d = −121665/121666, in radix 2^52.
const D2: [u64; 5] = [
    0x69b9426b2f159,
    0x9a8283b156ebd,
    0xef3d13000e014,
    0xfce7198e80f2e,
    0x2406d9dc56df,
];

/// Eight points in extended coordinates: x = X/Z, y = Y/Z, x·y = T/Z.
#[derive(Clone, Copy)]
pub(super) struct Extended8 {
    pub(super) x: Fe8,
    pub(super) y: Fe8,
    pub(super) z: Fe8,
    pub(super) t: Fe8,
}

#[derive(Clone, Copy)]
struct Projective8 {
    x: Fe8,
    y: Fe8,
    z: Fe8,
}

/// A sum or double before its last four multiplications.
#[derive(Clone, Copy)]
struct Completed8 {
    x: Fe8,
    y: Fe8,
    z: Fe8,
    t: Fe8,
}

/// A point as the second operand of an addition: (Y + X, Y − X, Z, 2d·T).
#[derive(Clone, Copy)]
pub(super) struct Cached8 {
    pub(super) y_plus_x: Fe8,
    pub(super) y_minus_x: Fe8,
    pub(super) z: Fe8,
    pub(super) t2d: Fe8,
}

impl Cached8 {
    /// Lane `l` from `b` where bit `l` of `mask` is set, else from `a`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn blend(mask: __mmask8, a: &Cached8, b: &Cached8) -> Cached8 {
        Cached8 {
            y_plus_x: Fe8::blend(mask, &a.y_plus_x, &b.y_plus_x),
            y_minus_x: Fe8::blend(mask, &a.y_minus_x, &b.y_minus_x),
            z: Fe8::blend(mask, &a.z, &b.z),
            t2d: Fe8::blend(mask, &a.t2d, &b.t2d),
        }
    }
}

/// Eight affine points (z = 1) as the second operand of an addition: (y + x, y − x, 2d·x·y).
/// Fixed-base tables hold their entries in this shape, and a sum over decoded points adds them
/// in it: one multiplication fewer than a cached extended point.
#[derive(Clone, Copy)]
pub(super) struct Niels8 {
    pub(super) y_plus_x: Fe8,
    pub(super) y_minus_x: Fe8,
    pub(super) xy2d: Fe8,
}

impl Niels8 {
    /// The identity: (1, 1, 0).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn identity() -> Niels8 {
        Niels8 {
            y_plus_x: Fe8::one(),
            y_minus_x: Fe8::one(),
            xy2d: Fe8::zero(),
        }
    }

    /// Every lane's coordinates as plain limbs: y + x, y − x, 2d·x·y.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn lanes(&self) -> [super::field::Lanes; 3] {
        use super::field::Lanes;
        [
            Lanes::store(&self.y_plus_x),
            Lanes::store(&self.y_minus_x),
            Lanes::store(&self.xy2d),
        ]
    }

    /// Negated where bit `l` of `mask` is set: −(x, y) = (−x, y), so Y+X and Y−X swap and
    /// 2d·x·y changes sign.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn negate_where(&self, mask: __mmask8) -> Niels8 {
        let minus = self.xy2d.neg();
        Niels8 {
            y_plus_x: Fe8::blend(mask, &self.y_plus_x, &self.y_minus_x),
            y_minus_x: Fe8::blend(mask, &self.y_minus_x, &self.y_plus_x),
            xy2d: Fe8::blend(mask, &self.xy2d, &minus),
        }
    }
}

impl Completed8 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn projective(&self) -> Projective8 {
        Projective8 {
            x: self.x.mul(&self.t),
            y: self.y.mul(&self.z),
            z: self.z.mul(&self.t),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn extended(&self) -> Extended8 {
        Extended8 {
            x: self.x.mul(&self.t),
            y: self.y.mul(&self.z),
            z: self.z.mul(&self.t),
            t: self.x.mul(&self.y),
        }
    }
}

impl Projective8 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn double(&self) -> Completed8 {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz = self.z.square();
        let zz2 = zz.add(&zz);
        let x_plus_y_sq = self.x.add(&self.y).square();
        let yy_plus_xx = yy.add(&xx);
        let yy_minus_xx = yy.sub(&xx);
        Completed8 {
            x: x_plus_y_sq.sub(&yy_plus_xx),
            y: yy_plus_xx,
            z: yy_minus_xx,
            t: zz2.sub(&yy_minus_xx),
        }
    }
}

impl Extended8 {
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn identity() -> Extended8 {
        Extended8 {
            x: Fe8::zero(),
            y: Fe8::one(),
            z: Fe8::one(),
            t: Fe8::zero(),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn projective(&self) -> Projective8 {
        Projective8 {
            x: self.x,
            y: self.y,
            z: self.z,
        }
    }

    /// Lane `l` from `b` where bit `l` of `mask` is set, else from `a`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn blend(mask: __mmask8, a: &Extended8, b: &Extended8) -> Extended8 {
        Extended8 {
            x: Fe8::blend(mask, &a.x, &b.x),
            y: Fe8::blend(mask, &a.y, &b.y),
            z: Fe8::blend(mask, &a.z, &b.z),
            t: Fe8::blend(mask, &a.t, &b.t),
        }
    }

    /// `self + q`, lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn add_cached(&self, q: &Cached8) -> Extended8 {
        self.add(q).extended()
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn cached(&self) -> Cached8 {
        Cached8 {
            y_plus_x: self.y.add(&self.x),
            y_minus_x: self.y.sub(&self.x),
            z: self.z,
            t2d: self.t.mul(&Fe8::splat(D2)),
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    fn add(&self, q: &Cached8) -> Completed8 {
        let pp = self.y.add(&self.x).mul(&q.y_plus_x);
        let mm = self.y.sub(&self.x).mul(&q.y_minus_x);
        let tt2d = self.t.mul(&q.t2d);
        let zz = self.z.mul(&q.z);
        let zz2 = zz.add(&zz);
        Completed8 {
            x: pp.sub(&mm),
            y: pp.add(&mm),
            z: zz2.add(&tt2d),
            t: zz2.sub(&tt2d),
        }
    }

    /// `self + q`, lane by lane.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn add_extended(&self, q: &Extended8) -> Extended8 {
        self.add(&q.cached()).extended()
    }

    /// `self + q` for an affine `q`, lane by lane (seven multiplications).
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn add_niels(&self, q: &Niels8) -> Extended8 {
        let pp = self.y.add(&self.x).mul(&q.y_plus_x);
        let mm = self.y.sub(&self.x).mul(&q.y_minus_x);
        let tt2d = self.t.mul(&q.xy2d);
        let zz2 = self.z.add(&self.z);
        Completed8 {
            x: pp.sub(&mm),
            y: pp.add(&mm),
            z: zz2.add(&tt2d),
            t: zz2.sub(&tt2d),
        }
        .extended()
    }

    /// These points, which must be affine (z = 1, as [`super::ristretto::decode`] returns
    /// them), in the shape [`Extended8::add_niels`] takes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn niels(&self) -> Niels8 {
        Niels8 {
            y_plus_x: self.y.add(&self.x),
            y_minus_x: self.y.sub(&self.x),
            xy2d: self.t.mul(&Fe8::splat(D2)),
        }
    }

    /// `2^n·self`, lane by lane.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn double_n(&self, n: u32) -> Extended8 {
        if n == 0 {
            return *self;
        }
        let mut p = self.projective();
        for _ in 1..n {
            p = p.double().projective();
        }
        p.double().extended()
    }

    /// Lane `idx[l]` of `self` in lane `l`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn permute(&self, idx: __m512i) -> Extended8 {
        Extended8 {
            x: self.x.permute(idx),
            y: self.y.permute(idx),
            z: self.z.permute(idx),
            t: self.t.permute(idx),
        }
    }

    /// The sum of the eight lanes, in every lane.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn sum_lanes(&self) -> Extended8 {
        let mut s = *self;
        for shift in [4i64, 2, 1] {
            let idx = _mm512_set_epi64(
                (7 + shift) % 8,
                (6 + shift) % 8,
                (5 + shift) % 8,
                (4 + shift) % 8,
                (3 + shift) % 8,
                (2 + shift) % 8,
                (1 + shift) % 8,
                shift % 8,
            );
            s = s.add_extended(&s.permute(idx));
        }
        s
    }

    /// `k_l·P_l` in every lane `l`, for scalars below 2^255 given as little-endian bytes.
    ///
    /// Constant time in the scalars: 64 signed radix-16 digits per lane, each position
    /// processed by four doublings and one addition of a table entry chosen by masked blends
    /// over all eight entries (the masks come from vector compares), with no branch and no load
    /// whose address depends on a digit.
    #[target_feature(enable = "avx512f,avx512ifma")]
    pub(super) fn mul(&self, k: &[[u8; 32]; 8]) -> Extended8 {
        // [P, 2P, ..., 8P], cached.
        let mut table = [self.cached(); 8];
        for i in 1..8 {
            table[i] = self.add(&table[i - 1]).extended().cached();
        }
        let mut digits = k.map(|k| radix16(&k));
        let mut acc = Extended8::identity()
            .add(&select(&table, &digits, 63))
            .extended();
        for i in (0..63).rev() {
            let mut p = acc.projective().double().projective();
            p = p.double().projective();
            p = p.double().projective();
            let doubled = p.double().extended();
            acc = doubled.add(&select(&table, &digits, i)).extended();
        }
        digits.zeroize();
        acc
    }
}

/// In each lane, `table[|d| − 1]` for its digit `d` at position `i`, negated for a negative
/// digit, or the identity for 0: every entry is read and blended in under masks from vector
/// compares, so neither a branch nor an address depends on a digit.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn select(table: &[Cached8; 8], digits: &[[i8; 64]; 8], i: usize) -> Cached8 {
    let (negative, abs) = digit_at(digits, i);
    let mut r = Cached8 {
        y_plus_x: Fe8::one(),
        y_minus_x: Fe8::one(),
        z: Fe8::one(),
        t2d: Fe8::zero(),
    };
    for (j, entry) in table.iter().enumerate() {
        let m = _mm512_cmpeq_epi64_mask(abs, _mm512_set1_epi64(j as i64 + 1));
        r = Cached8 {
            y_plus_x: Fe8::blend(m, &r.y_plus_x, &entry.y_plus_x),
            y_minus_x: Fe8::blend(m, &r.y_minus_x, &entry.y_minus_x),
            z: Fe8::blend(m, &r.z, &entry.z),
            t2d: Fe8::blend(m, &r.t2d, &entry.t2d),
        };
    }
    // −(x, y) = (−x, y): Y+X and Y−X swap, 2d·T changes sign.
    let minus_t2d = r.t2d.neg();
    Cached8 {
        y_plus_x: Fe8::blend(negative, &r.y_plus_x, &r.y_minus_x),
        y_minus_x: Fe8::blend(negative, &r.y_minus_x, &r.y_plus_x),
        z: r.z,
        t2d: Fe8::blend(negative, &r.t2d, &minus_t2d),
    }
}

/// Every lane's digit at position `i`, as the lanes where it is negative and its absolute
/// value per lane: what a constant-time table selection compares against.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn digit_at(digits: &[[i8; 64]; 8], i: usize) -> (__mmask8, __m512i) {
    let mut lane_digits: [i64; 8] = std::array::from_fn(|l| digits[l][i] as i64);
    // SAFETY: an unaligned load of 64 bytes from a local array of 64 bytes.
    let d = unsafe { _mm512_loadu_si512(lane_digits.as_ptr().cast()) };
    lane_digits.zeroize();
    (
        _mm512_cmplt_epi64_mask(d, _mm512_setzero_si512()),
        _mm512_abs_epi64(d),
    )
}

/// The signed radix-16 digits of a scalar below 2^255, least significant first, each in
/// −8..=8 (the last in 0..=8). No branch depends on the scalar.
pub(super) fn radix16(k: &[u8; 32]) -> [i8; 64] {
    let mut d = [0i8; 64];
    for (i, byte) in k.iter().enumerate() {
        d[2 * i] = (byte & 15) as i8;
        d[2 * i + 1] = (byte >> 4) as i8;
    }
    for i in 0..63 {
        let carry = (d[i] + 8) >> 4;
        d[i] -= carry << 4;
        d[i + 1] += carry;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix16_digits_recompose_the_scalar() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let mut k: [u8; 32] = rand::RngExt::random(&mut rng);
            k[31] &= 0x7f;
            let d = radix16(&k);
            assert!(d[..63].iter().all(|&x| (-8..8).contains(&x)));
            assert!((0..=8).contains(&d[63]));
            // Σ d_i 16^i, recomposed with signed carries into bytes.
            let mut acc = [0i32; 33];
            for (i, &x) in d.iter().enumerate() {
                acc[i / 2] += (x as i32) << (4 * (i % 2));
            }
            for i in 0..32 {
                let carry = acc[i].div_euclid(256);
                acc[i] = acc[i].rem_euclid(256);
                acc[i + 1] += carry;
            }
            let back: Vec<u8> = acc[..32].iter().map(|&x| x as u8).collect();
            assert_eq!(back, k);
        }
    }
}
