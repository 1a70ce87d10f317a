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
