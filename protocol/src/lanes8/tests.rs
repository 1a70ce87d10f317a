//! The eight-lane path against dalek, element for element, and its field against a plain
//! big-integer reference. `SUYUAN_LANES8_CASES` sets how many random elements the differential
//! test runs (4096 by default; the run recorded in docs/benchmarks.md used millions).
#![allow(clippy::unwrap_used)]

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::RngExt;

use super::field::{self, Lanes, MASK52};
use super::*;

fn ifma() -> bool {
    if !available() {
        eprintln!("no AVX-512 IFMA on this CPU: only the fallback is tested");
    }
    available()
}

/// What dalek does with each element: `Ok(compress(k·P))` or `Err(())` where it refuses.
fn dalek(k: &Scalar, e: &[u8; 32]) -> Result<[u8; 32], ()> {
    let p = crate::oprf::Element(*e).to_point().map_err(|_| ())?;
    Ok((k * p).compress().to_bytes())
}

/// Runs both paths on `elements` one at a time (so every refusal is seen, not only the first).
fn same_as_dalek(k: &Scalar, elements: &[[u8; 32]]) {
    for (i, e) in elements.iter().enumerate() {
        let mut out = [[0u8; 32]];
        let ours = mul_compressed(k, std::slice::from_ref(e), &mut out).map(|()| out[0]);
        assert_eq!(
            ours.map_err(|_| ()),
            dalek(k, e),
            "element {i}: {}",
            hex::encode(e)
        );
    }
    // And all at once, in chunks of eight with a short tail.
    let mut out = vec![[0u8; 32]; elements.len()];
    let want: Result<Vec<_>, usize> = elements
        .iter()
        .enumerate()
        .map(|(i, e)| dalek(k, e).map_err(|()| i))
        .collect();
    let got = mul_compressed(k, elements, &mut out).map(|()| out);
    assert_eq!(got, want);
}

#[test]
fn random_points_and_scalars_match_dalek() {
    ifma();
    let n: usize = std::env::var("SUYUAN_LANES8_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let mut rng = rand::rng();
    // A fresh scalar for every batch of 8 × 16 points.
    let per_scalar = 128;
    for _ in 0..n.div_ceil(per_scalar) {
        let k = Scalar::random(&mut rng);
        let points: Vec<[u8; 32]> = (0..per_scalar)
            .map(|_| RistrettoPoint::random(&mut rng).compress().to_bytes())
            .collect();
        let mut out = vec![[0u8; 32]; points.len()];
        mul_compressed(&k, &points, &mut out).unwrap();
        for (p, o) in points.iter().zip(&out) {
            assert_eq!(Ok(*o), dalek(&k, p), "k = {}", hex::encode(k.to_bytes()));
        }
    }
}

#[test]
fn special_scalars_and_small_multiples_match_dalek() {
    ifma();
    let g = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    // 1·G … 13·G (small multiples, whose coordinates are far from random), and their negatives.
    let points: Vec<[u8; 32]> = (1..=13u64)
        .flat_map(|i| [Scalar::from(i) * g, -(Scalar::from(i) * g)])
        .map(|p| p.compress().to_bytes())
        .collect();
    let minus_one = -Scalar::ONE;
    let high = Scalar::from_bytes_mod_order([0xff; 32]);
    for k in [
        Scalar::ZERO,
        Scalar::ONE,
        Scalar::from(2u64),
        Scalar::from(8u64),
        Scalar::from(0x8888u64),
        minus_one,
        high,
        Scalar::ONE.invert() * Scalar::from(7u64),
    ] {
        same_as_dalek(&k, &points);
    }
}

#[test]
fn invalid_elements_are_refused_where_dalek_refuses_them() {
    ifma();
    let mut rng = rand::rng();
    let k = Scalar::random(&mut rng);
    let p = |x: u64| {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&x.to_le_bytes());
        b
    };
    let modulus = {
        let mut b = [0xff; 32];
        b[0] = 0xed;
        b[31] = 0x7f;
        b
    };
    let g = curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED.to_bytes();
    let mut g_plus_p = g;
    // G's s plus p: the same field element, not canonical.
    let mut carry = 0u16;
    for (b, m) in g_plus_p.iter_mut().zip(modulus) {
        let s = *b as u16 + m as u16 + carry;
        *b = s as u8;
        carry = s >> 8;
    }
    let mut high_bit = g;
    high_bit[31] |= 0x80;
    let mut odd = g;
    odd[0] |= 1;
    let mut cases = vec![
        [0u8; 32], // the identity
        modulus,   // p itself: s = 0, not canonical
        g_plus_p,
        high_bit,
        odd,
        [0xff; 32],
        p(2),
        p(4),
        g,
    ];
    // Random bytes: most are not points; those that are must match too.
    cases.extend((0..400).map(|_| {
        let mut b: [u8; 32] = rng.random();
        b[0] &= 0xfe;
        b[31] &= 0x7f;
        b
    }));
    same_as_dalek(&k, &cases);
    // The index of the first refusal is reported, wherever it falls in a chunk of eight.
    for at in [0, 3, 7, 8, 13] {
        let mut elements = vec![g; 16];
        elements[at] = odd;
        let mut out = vec![[0u8; 32]; 16];
        assert_eq!(mul_compressed(&k, &elements, &mut out), Err(at));
    }
}

/// x mod p for a little-endian 256-bit value, by 2^256 ≡ 38 (the reference for the field).
fn reference_mul(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let words = |x: &[u8; 32]| -> [u64; 4] {
        std::array::from_fn(|i| u64::from_le_bytes(x[8 * i..8 * i + 8].try_into().unwrap()))
    };
    let (a, b) = (words(a), words(b));
    let mut prod = [0u128; 8];
    for i in 0..4 {
        for j in 0..4 {
            let t = a[i] as u128 * b[j] as u128;
            prod[i + j] += t & u64::MAX as u128;
            prod[i + j + 1] += t >> 64;
        }
    }
    // Carry into 64-bit words, then fold the top half with 38 until it is gone.
    let mut w = [0u64; 8];
    let mut c = 0u128;
    for i in 0..8 {
        let s = prod[i] + c;
        w[i] = s as u64;
        c = s >> 64;
    }
    let mut lo = [w[0], w[1], w[2], w[3]];
    let mut hi = [w[4], w[5], w[6], w[7]];
    while hi != [0; 4] {
        let mut c = 0u128;
        let mut next = [0u64; 4];
        for i in 0..4 {
            let s = lo[i] as u128 + hi[i] as u128 * 38 + c;
            lo[i] = s as u64;
            c = s >> 64;
        }
        next[0] = c as u64;
        hi = next;
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_exact_mut(8).zip(lo) {
        o.copy_from_slice(&x.to_le_bytes());
    }
    let limbs = field::canonical(field::from_bytes(&out));
    // from_bytes drops bit 255: add it back as 19.
    let top = (out[31] >> 7) as u64;
    let mut l = limbs;
    l[0] += 19 * top;
    field::to_bytes(&field::canonical(l))
}

fn limbs_of(x: &[u8; 32]) -> [u64; 5] {
    let mut l = field::from_bytes(x);
    l[0] += 19 * (x[31] >> 7) as u64;
    field::canonical(l)
}

/// The value of loose limbs as 32 little-endian bytes (below 2^256 by the bound on limb 4).
fn loose_bytes(l: &[u64; 5]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let (mut acc, mut bits, mut k) = (0u128, 0, 0);
    for byte in out.iter_mut() {
        while bits < 8 && k < 5 {
            acc |= (l[k] as u128) << bits;
            bits += 52;
            k += 1;
        }
        *byte = acc as u8;
        acc >>= 8;
        bits -= 8;
    }
    out
}

/// `x mod p`, by the reference.
fn mod_p(x: &[u8; 32]) -> [u8; 32] {
    let mut one = [0u8; 32];
    one[0] = 1;
    reference_mul(x, &one)
}

/// `x + y` of two values below p (so below 2^256), reduced.
fn add_mod_p(x: &[u8; 32], y: &[u8; 32]) -> [u64; 5] {
    let (x, y) = (mod_p(x), mod_p(y));
    let mut s = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let t = x[i] as u16 + y[i] as u16 + carry;
        s[i] = t as u8;
        carry = t >> 8;
    }
    limbs_of(&s)
}

#[test]
fn field_products_match_a_big_integer_reference_at_the_limb_bounds() {
    if !ifma() {
        return;
    }
    let mut rng = rand::rng();
    // Loose extremes: every limb at its largest, p, p − 1, 0, 1, and random values.
    let max_loose = [MASK52, MASK52, MASK52, MASK52, (1 << 48) - 1];
    let p_limbs = [MASK52 - 18, MASK52, MASK52, MASK52, (1 << 47) - 1];
    let mut inputs: Vec<[u64; 5]> = vec![max_loose, p_limbs, [0; 5], [1, 0, 0, 0, 0]];
    inputs.push([MASK52 - 19, MASK52, MASK52, MASK52, (1 << 47) - 1]);
    inputs.extend((0..300).map(|_| {
        let mut l: [u64; 5] = std::array::from_fn(|_| rng.random::<u64>() & MASK52);
        l[4] &= (1 << 48) - 1;
        l
    }));
    for chunk in inputs.chunks(8) {
        for b in &inputs[..16] {
            let mut a_lanes = [[0u64; 5]; 8];
            a_lanes[..chunk.len()].copy_from_slice(chunk);
            // SAFETY: `ifma()` confirmed the CPU features.
            let (product, square, sum, difference) = unsafe {
                let (a8, b8) = (Lanes(a_lanes).load(), Lanes([*b; 8]).load());
                (
                    Lanes::store(&a8.mul(&b8)),
                    Lanes::store(&a8.square()),
                    Lanes::store(&a8.add(&b8)),
                    Lanes::store(&a8.sub(&b8)),
                )
            };
            for (l, a) in chunk.iter().enumerate() {
                let (ab, bb) = (loose_bytes(a), loose_bytes(b));
                assert_eq!(limbs_of(&reference_mul(&ab, &bb)), product.canonical().0[l]);
                assert_eq!(limbs_of(&reference_mul(&ab, &ab)), square.canonical().0[l]);
                assert_eq!(sum.canonical().0[l], add_mod_p(&ab, &bb));
                // (a − b) + b == a
                let d = loose_bytes(&difference.canonical().0[l]);
                assert_eq!(add_mod_p(&d, &bb), limbs_of(&mod_p(&ab)));
                // Every result is loose again: fit for the next multiplication.
                for r in [&product, &square, &sum, &difference] {
                    assert!(r.0[l][..4].iter().all(|&x| x <= MASK52));
                    assert!(r.0[l][4] < 1 << 48);
                }
            }
        }
    }
}

#[test]
fn the_fallback_matches_the_vector_path() {
    let mut rng = rand::rng();
    let k = Scalar::random(&mut rng);
    let points: Vec<[u8; 32]> = (0..21)
        .map(|_| RistrettoPoint::random(&mut rng).compress().to_bytes())
        .collect();
    let mut a = vec![[0u8; 32]; points.len()];
    let mut b = vec![[0u8; 32]; points.len()];
    dalek_mul_compressed(&k, &points, &mut a).unwrap();
    mul_compressed(&k, &points, &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn hashed_points_times_a_scalar_match_dalek() {
    ifma();
    let mut rng = rand::rng();
    let n: usize = std::env::var("SUYUAN_LANES8_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    // Edge inputs: zero halves (t = 0), all ones (bit 255 set, the rest at or above p), p.
    let mut p_bytes = [0xffu8; 32];
    p_bytes[0] = 0xed;
    p_bytes[31] = 0x7f;
    let mut uniform: Vec<[u8; 64]> = vec![[0; 64], [0xff; 64]];
    uniform.push(std::array::from_fn(|i| p_bytes[i % 32]));
    uniform.push(std::array::from_fn(|i| {
        if i < 32 { 0 } else { p_bytes[i - 32] }
    }));
    uniform.push(std::array::from_fn(|i| (i == 0 || i == 32) as u8));
    uniform.extend((0..n).map(|_| rng.random::<[u8; 64]>()));
    for (c, chunk) in uniform.chunks(67).enumerate() {
        let k = if c == 0 {
            Scalar::ONE
        } else {
            Scalar::random(&mut rng)
        };
        let mut out = vec![[0u8; 32]; chunk.len()];
        hash_mul_compressed(&k, chunk, &mut out);
        for (u, o) in chunk.iter().zip(&out) {
            let want = (k * RistrettoPoint::from_uniform_bytes(u))
                .compress()
                .to_bytes();
            assert_eq!(*o, want, "uniform {}", hex::encode(u));
        }
    }
}

#[test]
fn each_lane_may_have_its_own_scalar() {
    if !ifma() {
        return;
    }
    let mut rng = rand::rng();
    for _ in 0..64 {
        let ks: [Scalar; 8] = std::array::from_fn(|_| Scalar::random(&mut rng));
        let points: [[u8; 32]; 8] =
            std::array::from_fn(|_| RistrettoPoint::random(&mut rng).compress().to_bytes());
        // SAFETY: `ifma()` confirmed the CPU features.
        let (refused, got) = unsafe { mul_compressed8(&ks.map(|k| k.to_bytes()), &points) };
        assert_eq!(refused, 0);
        for l in 0..8 {
            assert_eq!(Ok(got[l]), dalek(&ks[l], &points[l]), "lane {l}");
        }
    }
}

/// Scalars that stress the digit recoding: 0, 1, −1, the largest below ℓ, small ones, and
/// random ones.
fn edge_and_random_scalars(
    rng: &mut (impl rand_core::CryptoRng + ?Sized),
    n: usize,
) -> Vec<Scalar> {
    let mut s = vec![
        Scalar::ZERO,
        Scalar::ONE,
        -Scalar::ONE,
        Scalar::from(8u64),
        Scalar::from(0x8888_8888u64),
        -Scalar::from(8u64),
        Scalar::from_bytes_mod_order([0xff; 32]),
    ];
    s.extend((0..n).map(|_| Scalar::random(rng)));
    s
}

#[test]
fn decoded_points_plus_fixed_base_multiples_match_dalek() {
    if !ifma() {
        return;
    }
    let mut rng = rand::rng();
    let g = curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    for base in [g, RistrettoPoint::random(&mut rng), Scalar::from(3u64) * g] {
        let table = BaseTable::new(&base);
        let scalars = edge_and_random_scalars(&mut rng, 90);
        let points: Vec<RistrettoPoint> = (0..scalars.len())
            .map(|i| match i {
                0 => g,
                1 => -base,
                _ => RistrettoPoint::random(&mut rng),
            })
            .collect();
        let encodings: Vec<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
        let decoded = Decoded::new(&encodings).unwrap();
        let mut out = vec![[0u8; 32]; points.len()];
        decoded.add_base_mul_compressed(&table, &scalars, &mut out);
        for ((p, s), o) in points.iter().zip(&scalars).zip(&out) {
            // Lane 1 with s = 1 gives −base + base, the identity: encoded as zeros.
            assert_eq!(*o, (p + s * base).compress().to_bytes(), "s = {s:?}");
        }
        // And one scalar for all of them.
        let k = Scalar::random(&mut rng);
        decoded.mul_compressed(&k, &mut out);
        for (p, o) in points.iter().zip(&out) {
            assert_eq!(*o, (k * p).compress().to_bytes());
        }
    }
}

#[test]
fn hashed_points_plus_fixed_base_multiples_match_dalek() {
    if !ifma() {
        return;
    }
    let mut rng = rand::rng();
    let base = RistrettoPoint::random(&mut rng);
    let table = BaseTable::new(&base);
    let scalars = edge_and_random_scalars(&mut rng, 60);
    let uniform: Vec<[u8; 64]> = (0..scalars.len()).map(|_| rng.random()).collect();
    let mut out = vec![[0u8; 32]; uniform.len()];
    hash_add_base_mul_compressed(&table, &uniform, &scalars, &mut out);
    for ((u, s), o) in uniform.iter().zip(&scalars).zip(&out) {
        let want = RistrettoPoint::from_uniform_bytes(u) + s * base;
        assert_eq!(*o, want.compress().to_bytes());
    }
}

#[test]
fn multiscalar_sums_match_dalek() {
    if !ifma() {
        return;
    }
    use curve25519_dalek::traits::VartimeMultiscalarMul;
    let mut rng = rand::rng();
    for n in [1usize, 7, 8, 9, 64, 300, 1031] {
        let weights: Vec<Scalar> = edge_and_random_scalars(&mut rng, n)
            .into_iter()
            .take(n)
            .collect();
        let points: Vec<RistrettoPoint> =
            (0..n).map(|_| RistrettoPoint::random(&mut rng)).collect();
        let encodings: Vec<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
        let want = RistrettoPoint::vartime_multiscalar_mul(&weights, &points)
            .compress()
            .to_bytes();
        let whole = Decoded::new(&encodings).unwrap();
        assert_eq!(multiscalar_compressed(&weights, &[&whole]), want, "n = {n}");
        // In parts, as the batch code hands them over.
        let cut = (n / 2) / 8 * 8;
        let (a, b) = encodings.split_at(cut);
        let (a, b) = (Decoded::new(a).unwrap(), Decoded::new(b).unwrap());
        assert_eq!(
            multiscalar_compressed(&weights, &[&a, &b]),
            want,
            "n = {n}, in parts"
        );
    }
    // A sum that is the identity: P and −P with equal weights.
    let p = RistrettoPoint::random(&mut rng);
    let d = Decoded::new(&[p.compress().to_bytes(), (-p).compress().to_bytes()]).unwrap();
    let w = Scalar::random(&mut rng);
    assert_eq!(multiscalar_compressed(&[w, w], &[&d]), [0u8; 32]);
}
