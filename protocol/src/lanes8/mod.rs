//! Eight ristretto255 points per instruction, with AVX-512 IFMA (issue 15, part 1):
//! `compress(k·decompress(e))` for received elements and `compress(k·HashToGroup(x))` for
//! inputs, eight at a time under one scalar.
//!
//! curve25519-dalek's IFMA backend spreads the four coordinates of *one* point over four lanes;
//! this module puts one independent point in each of eight lanes instead, which fits the way
//! suyuan multiplies in bulk (one key `k` over a whole chunk). Every operation returns exactly
//! what dalek returns, and every invalid element is refused as `DeserializeElement` refuses it.
//!
//! The only `unsafe` of the workspace lives here: `std::arch` loads and stores, and calls into
//! functions compiled for IFMA after [`available`] has checked the CPU at run time. The batch
//! paths of [`crate::oprf`] (the import's tags, blinding, every evaluation and unblinding, the
//! count pool) take it wherever the CPU has IFMA, and dalek's path everywhere else.
#![allow(unsafe_code)]

mod edwards;
mod field;
mod fixed_base;
mod msm;
mod ristretto;

use std::sync::atomic::{AtomicBool, Ordering};

use curve25519_dalek::scalar::Scalar;
use zeroize::Zeroizing;

use crate::oprf::ELEMENT_LEN;

static TURNED_OFF: AtomicBool = AtomicBool::new(false);

/// Turns the eight-lane path off (or back on) for this process, so that a benchmark can set it
/// against dalek in one build; on by default wherever [`available`].
pub fn set_enabled(on: bool) {
    TURNED_OFF.store(!on, Ordering::Relaxed);
}

/// Whether the library's batch paths use the eight lanes now: [`available`] and not turned off.
pub fn in_use() -> bool {
    !TURNED_OFF.load(Ordering::Relaxed) && available()
}

/// Whether this CPU runs the eight-lane path (AVX-512 F and IFMA); otherwise
/// [`mul_compressed`] falls back to dalek.
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

/// `SerializeElement(k·DeserializeElement(e))` for every element, written into `out` (as long
/// as `elements`). On an element that does not deserialize (not canonical, not a point, the
/// identity), the index of the first such element; `out` is then unspecified.
///
/// # Panics
/// If `out` and `elements` differ in length.
pub fn mul_compressed(
    k: &Scalar,
    elements: &[[u8; ELEMENT_LEN]],
    out: &mut [[u8; ELEMENT_LEN]],
) -> Result<(), usize> {
    assert_eq!(elements.len(), out.len(), "one output per element");
    if !available() {
        return dalek_mul_compressed(k, elements, out);
    }
    // The scalar's bytes are as secret as the scalar.
    let k = Zeroizing::new([k.to_bytes(); 8]);
    for (c, (elements, out)) in elements.chunks(8).zip(out.chunks_mut(8)).enumerate() {
        // A short last chunk is padded with the generator's encoding, a valid element.
        let mut lanes = [curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED.to_bytes(); 8];
        lanes[..elements.len()].copy_from_slice(elements);
        // SAFETY: `available()` confirmed AVX-512 F and IFMA on this CPU.
        let (refused, results) = unsafe { mul_compressed8(&k, &lanes) };
        if let Some(l) = (0..elements.len()).find(|l| refused >> l & 1 == 1) {
            return Err(c * 8 + l);
        }
        out.copy_from_slice(&results[..out.len()]);
    }
    Ok(())
}

/// `SerializeElement(k·P)` for the point `P` of each 64 uniform bytes as `hash_to_ristretto255`
/// maps them (RFC 9380 appendix B; dalek's `RistrettoPoint::from_uniform_bytes`): the second
/// half of `HashToGroup`, then the multiplication, for every input at once.
///
/// # Panics
/// If `out` and `uniform` differ in length.
pub fn hash_mul_compressed(k: &Scalar, uniform: &[[u8; 64]], out: &mut [[u8; ELEMENT_LEN]]) {
    assert_eq!(uniform.len(), out.len(), "one output per input");
    if !available() {
        for (u, o) in uniform.iter().zip(out.iter_mut()) {
            let p = curve25519_dalek::ristretto::RistrettoPoint::from_uniform_bytes(u);
            *o = (k * p).compress().to_bytes();
        }
        return;
    }
    let k = Zeroizing::new([k.to_bytes(); 8]);
    for (uniform, out) in uniform.chunks(8).zip(out.chunks_mut(8)) {
        let mut lanes = [[0u8; 64]; 8];
        lanes[..uniform.len()].copy_from_slice(uniform);
        // SAFETY: `available()` confirmed AVX-512 F and IFMA on this CPU.
        let results = unsafe { hash_mul_compressed8(&k, &lanes) };
        out.copy_from_slice(&results[..out.len()]);
    }
}

/// Elements decoded into the lanes once, for more than one use: the querier's unblinding and
/// its check of the proof over the same evaluations, the holder's evaluation and its proof.
/// 160 bytes per element. Only made where [`available`].
pub struct Decoded {
    blocks: Vec<edwards::Extended8>,
    len: usize,
}

impl Decoded {
    /// `DeserializeElement` of every element; on one that does not deserialize, the index of
    /// the first.
    ///
    /// # Panics
    /// Where the CPU lacks AVX-512 IFMA ([`available`]).
    pub fn new(elements: &[[u8; ELEMENT_LEN]]) -> Result<Decoded, usize> {
        assert!(available(), "the eight lanes need AVX-512 IFMA");
        let mut blocks = Vec::with_capacity(elements.len().div_ceil(8));
        for (c, elements) in elements.chunks(8).enumerate() {
            let mut lanes =
                [curve25519_dalek::constants::RISTRETTO_BASEPOINT_COMPRESSED.to_bytes(); 8];
            lanes[..elements.len()].copy_from_slice(elements);
            // SAFETY: `available()` confirmed AVX-512 F and IFMA on this CPU.
            let (refused, points) = unsafe { decode8(&lanes) };
            if let Some(l) = (0..elements.len()).find(|l| refused >> l & 1 == 1) {
                return Err(c * 8 + l);
            }
            blocks.push(points);
        }
        Ok(Decoded {
            blocks,
            len: elements.len(),
        })
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `SerializeElement(k·P)` for every point, into `out` (as long as the points).
    pub fn mul_compressed(&self, k: &Scalar, out: &mut [[u8; ELEMENT_LEN]]) {
        assert_eq!(self.len, out.len(), "one output per point");
        let k = Zeroizing::new([k.to_bytes(); 8]);
        for (block, out) in self.blocks.iter().zip(out.chunks_mut(8)) {
            // SAFETY: a `Decoded` exists only where `available()`.
            let results = unsafe { mul8(block, &k) };
            out.copy_from_slice(&results[..out.len()]);
        }
    }

    /// `SerializeElement(P_i + s_i·T)` for every point, with `T` the point of `table`: the
    /// additive unblinding `E − ρ·pk` is this with `s = −ρ`. Constant time in the scalars.
    pub fn add_base_mul_compressed(
        &self,
        table: &BaseTable,
        scalars: &[Scalar],
        out: &mut [[u8; ELEMENT_LEN]],
    ) {
        assert_eq!(self.len, out.len(), "one output per point");
        assert_eq!(self.len, scalars.len(), "one scalar per point");
        for ((block, scalars), out) in self
            .blocks
            .iter()
            .zip(scalars.chunks(8))
            .zip(out.chunks_mut(8))
        {
            let s = lane_scalars(scalars);
            // SAFETY: a `Decoded` exists only where `available()`.
            let results = unsafe { add_base_mul8(block, &table.0, &s) };
            out.copy_from_slice(&results[..out.len()]);
        }
    }
}

/// One scalar per lane, as bytes that zeroize themselves; a short last block gets zeros.
fn lane_scalars(scalars: &[Scalar]) -> Zeroizing<[[u8; 32]; 8]> {
    let mut s = Zeroizing::new([[0u8; 32]; 8]);
    for (lane, k) in s.iter_mut().zip(scalars) {
        *lane = k.to_bytes();
    }
    s
}

/// A fixed point's multiples for [`Decoded::add_base_mul_compressed`] and
/// [`hash_add_base_mul_compressed`]: 61 KB, built once per point (a holder's public key, or
/// the generator). Only made where [`available`].
pub struct BaseTable(fixed_base::Table);

impl BaseTable {
    /// The table of `point`.
    ///
    /// # Panics
    /// Where the CPU lacks AVX-512 IFMA ([`available`]).
    pub fn new(point: &curve25519_dalek::ristretto::RistrettoPoint) -> BaseTable {
        assert!(available(), "the eight lanes need AVX-512 IFMA");
        // c·16^j·P for c = 1..=8, encoded, then decoded eight at a time into the lanes.
        let mut encodings = [[[0u8; 32]; 8]; 64];
        let mut base = *point;
        for window in encodings.iter_mut() {
            let mut multiple = base;
            for e in window.iter_mut() {
                *e = multiple.compress().to_bytes();
                multiple += base;
            }
            for _ in 0..4 {
                base += base;
            }
        }
        // SAFETY: `available()` confirmed AVX-512 F and IFMA on this CPU.
        BaseTable(unsafe { build_table(&encodings) })
    }
}

/// `SerializeElement(map(u_i) + s_i·T)` for the point of each 64 uniform bytes (as
/// [`hash_mul_compressed`] maps them) and `T` the point of `table`: the additive blinding
/// `H(x) + ρ·G`. Constant time in the scalars.
pub fn hash_add_base_mul_compressed(
    table: &BaseTable,
    uniform: &[[u8; 64]],
    scalars: &[Scalar],
    out: &mut [[u8; ELEMENT_LEN]],
) {
    assert_eq!(uniform.len(), out.len(), "one output per input");
    assert_eq!(uniform.len(), scalars.len(), "one scalar per input");
    for ((uniform, scalars), out) in uniform
        .chunks(8)
        .zip(scalars.chunks(8))
        .zip(out.chunks_mut(8))
    {
        let mut lanes = [[0u8; 64]; 8];
        lanes[..uniform.len()].copy_from_slice(uniform);
        let s = lane_scalars(scalars);
        // SAFETY: a `BaseTable` exists only where `available()`.
        let results = unsafe { hash_add_base_mul8(&table.0, &lanes, &s) };
        out.copy_from_slice(&results[..out.len()]);
    }
}

/// `SerializeElement(Σ wᵢ·Pᵢ)` over the points of `parts` in order (every part but the last
/// a multiple of eight long), one weight per point. Variable time: for public inputs only (a
/// DLEQ proof's composites). The four passes over the weights' bytes run on rayon's pool.
///
/// # Panics
/// If the weights and points differ in number, a part but the last ends a block early, or
/// there are `u32::MAX` points or more.
pub fn multiscalar_compressed(weights: &[Scalar], parts: &[&Decoded]) -> [u8; 32] {
    let total: usize = parts.iter().map(|p| p.len).sum();
    assert_eq!(weights.len(), total, "one weight per point");
    // The sum's schedule names points by u32, with u32::MAX as its step marker.
    assert!(total < u32::MAX as usize, "at most u32::MAX − 1 points");
    assert!(
        parts.iter().rev().skip(1).all(|p| p.len % 8 == 0),
        "only the last part may end a block early"
    );
    let bytes: Vec<[u8; 32]> = weights.iter().map(Scalar::to_bytes).collect();
    let blocks: Vec<&edwards::Extended8> = parts.iter().flat_map(|p| p.blocks.iter()).collect();
    use rayon::prelude::*;
    let sums: Vec<edwards::Extended8> = (0..4)
        .into_par_iter()
        // SAFETY: a `Decoded` exists only where `available()`.
        .map(|pass| unsafe { msm::window_sums(&bytes, &blocks, pass) })
        .collect();
    let passes = [sums[0], sums[1], sums[2], sums[3]];
    // SAFETY: as above.
    unsafe { combine8(&passes) }
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn combine8(passes: &[edwards::Extended8; 4]) -> [u8; 32] {
    ristretto::encode(&msm::combine(passes))[0]
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn decode8(elements: &[[u8; 32]; 8]) -> (u8, edwards::Extended8) {
    ristretto::decode(elements)
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn mul8(points: &edwards::Extended8, k: &[[u8; 32]; 8]) -> [[u8; 32]; 8] {
    ristretto::encode(&points.mul(k))
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn add_base_mul8(
    points: &edwards::Extended8,
    table: &fixed_base::Table,
    s: &[[u8; 32]; 8],
) -> [[u8; 32]; 8] {
    ristretto::encode(&points.add_extended(&table.mul(s)))
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn hash_add_base_mul8(
    table: &fixed_base::Table,
    uniform: &[[u8; 64]; 8],
    s: &[[u8; 32]; 8],
) -> [[u8; 32]; 8] {
    ristretto::encode(&ristretto::from_uniform_bytes(uniform).add_extended(&table.mul(s)))
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn build_table(encodings: &[[[u8; 32]; 8]; 64]) -> fixed_base::Table {
    let windows: [edwards::Extended8; 64] =
        std::array::from_fn(|j| ristretto::decode(&encodings[j]).1);
    fixed_base::Table::from_windows(&windows)
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn hash_mul_compressed8(k: &[[u8; 32]; 8], uniform: &[[u8; 64]; 8]) -> [[u8; 32]; 8] {
    ristretto::encode(&ristretto::from_uniform_bytes(uniform).mul(k))
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_compressed8(k: &[[u8; 32]; 8], elements: &[[u8; 32]; 8]) -> (u8, [[u8; 32]; 8]) {
    let (refused, points) = ristretto::decode(elements);
    (refused, ristretto::encode(&points.mul(k)))
}

/// The same with dalek, one element at a time: CPUs without IFMA.
fn dalek_mul_compressed(
    k: &Scalar,
    elements: &[[u8; ELEMENT_LEN]],
    out: &mut [[u8; ELEMENT_LEN]],
) -> Result<(), usize> {
    for (i, (e, o)) in elements.iter().zip(out.iter_mut()).enumerate() {
        let p = crate::oprf::Element(*e).to_point().map_err(|_| i)?;
        *o = (k * p).compress().to_bytes();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
