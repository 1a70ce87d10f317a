//! ristretto255's encoding and decoding (RFC 9496 section 4.3) for eight points at once.
//!
//! The arithmetic runs in the lanes; the few decisions on canonical values (signs and
//! equalities) are made per lane in scalar code, by arithmetic without branches (in the map,
//! the lanes hold hashes of keys), and come back as blend masks. Only the checks of received
//! encodings in [`decode`], which are public, branch.

use std::arch::x86_64::*;

use super::edwards::Extended8;
use super::field::{self, Fe8, Lanes};

/// d = −121665/121666.
const D: [u64; 5] = [
    0xb4dca135978a3,
    0x4d4141d8ab75e,
    0x779e89800700a,
    0xfe738cc740797,
    0x52036cee2b6f,
];

/// The square root of −1 that RFC 9496 names SQRT_M1.
const SQRT_M1: [u64; 5] = [
    0xe1b274a0ea0b0,
    0x6ad2fe478c4e,
    0xdfbd7a72f4318,
    0xdf0b2b4d00993,
    0x2b8324804fc1,
];

/// 1/sqrt(a − d), RFC 9496's INVSQRT_A_MINUS_D.
const INVSQRT_A_MINUS_D: [u64; 5] = [
    0x8fdaa805d40ea,
    0x175a4172be99c,
    0xe01d8409d2f16,
    0xfca216c27b91f,
    0x786c8905cfaf,
];

/// 1 − d².
const ONE_MINUS_D_SQ: [u64; 5] = [
    0xc09c1945fc176,
    0x38cd5e350fe27,
    0xe70dfe42c81a1,
    0xe0d79994abddb,
    0x29072a8b2b3,
];

/// (d − 1)².
const D_MINUS_ONE_SQ: [u64; 5] = [
    0xd5aaa44ed4d20,
    0x2cb01e199931a,
    0x29b4eebd29e4a,
    0x22414cdcd32f5,
    0x5968b37af66c,
];

/// sqrt(a·d − 1), RFC 9496's SQRT_AD_MINUS_ONE.
const SQRT_AD_MINUS_ONE: [u64; 5] = [
    0x7f6a0497b2e1b,
    0xc1b7854bd7e9,
    0x1f5d1fdaf9d8e,
    0x48ac0f3cfcc93,
    0x376931bf2b83,
];

/// Bit `l` set where lane `l` of `a` is negative (its canonical value is odd).
#[target_feature(enable = "avx512f,avx512ifma")]
fn negative(a: &Fe8) -> __mmask8 {
    Lanes::store(a).mask(|l| l[0] & 1)
}

/// Bit `l` set where lanes `l` of `a` and `b` are the same field element.
#[target_feature(enable = "avx512f,avx512ifma")]
fn equal(a: &Fe8, b: &Fe8) -> __mmask8 {
    Lanes::store(&a.sub(b)).mask(|l| {
        // 1 when every limb is 0, without a branch.
        let any = l.iter().fold(0, |acc, &x| acc | x);
        1 ^ ((any | any.wrapping_neg()) >> 63)
    })
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn abs(a: &Fe8) -> Fe8 {
    Fe8::blend(negative(a), a, &a.neg())
}

/// RFC 9496's SQRT_RATIO_M1(u, v): where `u/v` is a square, its non-negative square root and
/// a set bit; elsewhere the root of `SQRT_M1·u/v` and a clear bit.
#[target_feature(enable = "avx512f,avx512ifma")]
fn sqrt_ratio_m1(u: &Fe8, v: &Fe8) -> (__mmask8, Fe8) {
    let sqrt_m1 = Fe8::splat(SQRT_M1);
    let v3 = v.square().mul(v);
    let v7 = v3.square().mul(v);
    let r = u.mul(&v3).mul(&u.mul(&v7).pow_p58());
    let check = v.mul(&r.square());
    let u_neg = u.neg();
    let correct = equal(&check, u);
    let flipped = equal(&check, &u_neg);
    let flipped_i = equal(&check, &u_neg.mul(&sqrt_m1));
    let r = Fe8::blend(flipped | flipped_i, &r, &r.mul(&sqrt_m1));
    (correct | flipped, abs(&r))
}

/// `DeserializeElement` of eight encodings: the points, and a bit set for each lane whose
/// encoding is not canonical, not a point, or the identity (its point is then meaningless).
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn decode(encodings: &[[u8; 32]; 8]) -> (__mmask8, Extended8) {
    let mut refused: __mmask8 = 0;
    let mut limbs = [[0u64; 5]; 8];
    for (l, e) in encodings.iter().enumerate() {
        let s = field::from_bytes(e);
        // Canonical (below p, bit 255 clear), non-negative, and not the identity's zero.
        let canonical = e[31] >> 7 == 0 && field::canonical(s) == s;
        let ok = canonical && e[0] & 1 == 0 && s != [0; 5];
        refused |= (!ok as u8) << l;
        limbs[l] = s;
    }
    let s = Lanes(limbs).load();
    let one = Fe8::one();
    let ss = s.square();
    let u1 = one.sub(&ss);
    let u2 = one.add(&ss);
    let u2_sqr = u2.square();
    let v = Fe8::splat(D).mul(&u1.square()).neg().sub(&u2_sqr);
    let (was_square, invsqrt) = sqrt_ratio_m1(&one, &v.mul(&u2_sqr));
    let den_x = invsqrt.mul(&u2);
    let den_y = invsqrt.mul(&den_x).mul(&v);
    let x = abs(&s.add(&s).mul(&den_x));
    let y = u1.mul(&den_y);
    let t = x.mul(&y);
    refused |= !was_square | negative(&t) | equal(&y, &Fe8::zero());
    let point = Extended8 { x, y, z: one, t };
    (refused, point)
}

/// `SerializeElement` of eight points.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn encode(p: &Extended8) -> [[u8; 32]; 8] {
    let u1 = p.z.add(&p.y).mul(&p.z.sub(&p.y));
    let u2 = p.x.mul(&p.y);
    let (_, invsqrt) = sqrt_ratio_m1(&Fe8::one(), &u1.mul(&u2.square()));
    let den1 = invsqrt.mul(&u1);
    let den2 = invsqrt.mul(&u2);
    let z_inv = den1.mul(&den2).mul(&p.t);
    let sqrt_m1 = Fe8::splat(SQRT_M1);
    let ix = p.x.mul(&sqrt_m1);
    let iy = p.y.mul(&sqrt_m1);
    let enchanted = den1.mul(&Fe8::splat(INVSQRT_A_MINUS_D));
    let rotate = negative(&p.t.mul(&z_inv));
    let x = Fe8::blend(rotate, &p.x, &iy);
    let y = Fe8::blend(rotate, &p.y, &ix);
    let den_inv = Fe8::blend(rotate, &den2, &enchanted);
    let y = Fe8::blend(negative(&x.mul(&z_inv)), &y, &y.neg());
    let s = abs(&den_inv.mul(&p.z.sub(&y)));
    Lanes::store(&s).canonical().0.map(|l| field::to_bytes(&l))
}

/// RFC 9496's MAP (section 4.3.4): the Elligator map of one field element per lane.
#[target_feature(enable = "avx512f,avx512ifma")]
fn map(t: &Fe8) -> Extended8 {
    let one = Fe8::one();
    let d = Fe8::splat(D);
    let r = Fe8::splat(SQRT_M1).mul(&t.square());
    let u = r.add(&one).mul(&Fe8::splat(ONE_MINUS_D_SQ));
    let v = one.neg().sub(&r.mul(&d)).mul(&r.add(&d));
    let (was_square, s) = sqrt_ratio_m1(&u, &v);
    let s_prime = abs(&s.mul(t)).neg();
    let s = Fe8::blend(was_square, &s_prime, &s);
    let c = Fe8::blend(was_square, &r, &one.neg());
    let n = c.mul(&r.sub(&one)).mul(&Fe8::splat(D_MINUS_ONE_SQ)).sub(&v);
    let w0 = s.add(&s).mul(&v);
    let w1 = n.mul(&Fe8::splat(SQRT_AD_MINUS_ONE));
    let ss = s.square();
    let w2 = one.sub(&ss);
    let w3 = one.add(&ss);
    Extended8 {
        x: w0.mul(&w3),
        y: w2.mul(&w1),
        z: w1.mul(&w3),
        t: w0.mul(&w2),
    }
}

/// `hash_to_ristretto255`'s last step (RFC 9380 appendix B, as dalek's `from_uniform_bytes`):
/// each lane's 64 uniform bytes as two field elements (bit 255 of each half ignored), mapped
/// and added.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn from_uniform_bytes(uniform: &[[u8; 64]; 8]) -> Extended8 {
    let half = |h: usize| {
        Lanes(std::array::from_fn(|l| {
            let mut b = [0u8; 32];
            b.copy_from_slice(&uniform[l][32 * h..32 * h + 32]);
            field::from_bytes(&b)
        }))
        .load()
    };
    let (p1, p2) = (map(&half(0)), map(&half(1)));
    p1.add_extended(&p2)
}
