//! Additive blinding for the verifiable mode (issue 15, part 2; protocol.md §5.4): the client
//! sends `B = H(x) + ρ·G` instead of `r·H(x)`, the server answers `BlindEvaluate` unchanged,
//! `E = k·B`, and the client unblinds with `E − ρ·pk = k·H(x)`. Blinding and each server's
//! unblinding become multiplications of a fixed point (G, pk) by a secret scalar, with a table
//! of that point's multiples, instead of a variable-base multiplication per element.
//!
//! Only sound with a verified evaluation: `E − ρ·pk` is `k·H(x)` only if the server evaluated
//! with the `k` behind `pk`, which the batched DLEQ proof of every answer establishes before the
//! client uses it. Each element has its own `ρ`, drawn from a secret seed and its position, so
//! that `B` is uniform whatever `x` (one `ρ` for all would let a server subtract candidate
//! `H(x)` and find the common `ρ·G`).

use std::sync::OnceLock;

use curve25519_dalek::ristretto::{RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::batch::{Kept, eight_lanes, par_chunk_len, uniform_bytes};
use super::group::decode_element;
use super::{ELEMENT_LEN, Mode, PublicKey};

/// Domain separation of the blinds' derivation.
const BLIND_DST: &[u8] = b"suyuan-additive-blind-v1";

/// `ρ_i = SHA-512(DST || seed || I2OSP(i, 8)) mod ℓ`: the blind of the element at position `i`
/// of a query. Zero with probability 2^-252, which is never.
pub(crate) fn additive_blind(seed: &[u8; 32], index: u64) -> Scalar {
    let mut h = Sha512::new();
    h.update(BLIND_DST);
    h.update(seed);
    h.update(index.to_be_bytes());
    let wide: Zeroizing<[u8; 64]> = Zeroizing::new(h.finalize().into());
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A server key's multiples, for unblinding every element answered under it.
pub(crate) enum KeyTable {
    #[cfg(target_arch = "x86_64")]
    Lanes(Box<crate::lanes8::BaseTable>),
    Dalek(Box<RistrettoBasepointTable>),
}

impl KeyTable {
    /// The table of `point` (a few milliseconds: once per server, not per element).
    pub(crate) fn new(point: &RistrettoPoint) -> KeyTable {
        #[cfg(target_arch = "x86_64")]
        if eight_lanes() {
            return KeyTable::Lanes(Box::new(crate::lanes8::BaseTable::new(point)));
        }
        KeyTable::Dalek(Box::new(RistrettoBasepointTable::create(point)))
    }

    /// The table of a server's public key.
    pub(crate) fn of_key(pk: &PublicKey) -> KeyTable {
        KeyTable::new(&pk.0)
    }
}

/// The generator's table, built once per process.
fn generator_table() -> &'static KeyTable {
    static TABLE: OnceLock<KeyTable> = OnceLock::new();
    TABLE.get_or_init(|| KeyTable::new(&curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT))
}

/// `SerializeElement(HashToGroup(prefix || input(i)) + ρ_{first+i}·G)` into `out[i]`: the
/// additive blinding of a run of a query's elements, in parallel.
pub(crate) fn additive_blind_into<'a>(
    mode: Mode,
    seed: &[u8; 32],
    first: u64,
    prefix: &[u8],
    input: impl Fn(usize) -> &'a [u8] + Sync,
    out: &mut [[u8; ELEMENT_LEN]],
) {
    let table = generator_table();
    out.par_chunks_mut(par_chunk_len())
        .enumerate()
        .for_each(|(c, out)| {
            let base = c * par_chunk_len();
            let uniform = uniform_bytes(mode, prefix, &input, base, out.len());
            let rhos: Zeroizing<Vec<Scalar>> = Zeroizing::new(
                (0..out.len())
                    .map(|i| additive_blind(seed, first + (base + i) as u64))
                    .collect(),
            );
            match table {
                #[cfg(target_arch = "x86_64")]
                KeyTable::Lanes(t) => {
                    crate::lanes8::hash_add_base_mul_compressed(t, &uniform, &rhos, out)
                }
                KeyTable::Dalek(t) => {
                    for ((u, rho), o) in uniform.iter().zip(rhos.iter()).zip(out.iter_mut()) {
                        let b = RistrettoPoint::from_uniform_bytes(u) + &**t * rho;
                        *o = b.compress().to_bytes();
                    }
                }
            }
        });
}

/// `SerializeElement(DeserializeElement(e_i) − ρ_{indices[i]}·pk)` for every evaluation, with
/// `table` the table of `pk`, and the decoded evaluations kept for the proof over them. On an
/// invalid element, the index of the first.
pub(crate) fn additive_unblind(
    table: &KeyTable,
    seed: &[u8; 32],
    indices: &[u64],
    elements: &[[u8; ELEMENT_LEN]],
) -> Result<(Vec<[u8; ELEMENT_LEN]>, Kept), usize> {
    assert_eq!(indices.len(), elements.len(), "one index per element");
    let mut out = vec![[0u8; ELEMENT_LEN]; elements.len()];
    let parts: Vec<Result<Kept, usize>> = out
        .par_chunks_mut(par_chunk_len())
        .zip(elements.par_chunks(par_chunk_len()))
        .zip(indices.par_chunks(par_chunk_len()))
        .enumerate()
        .map(|(c, ((out, elements), indices))| {
            // −ρ: the subtraction is an addition of (−ρ)·pk.
            let minus: Zeroizing<Vec<Scalar>> =
                Zeroizing::new(indices.iter().map(|&i| -additive_blind(seed, i)).collect());
            let at = |i: usize| c * par_chunk_len() + i;
            match table {
                #[cfg(target_arch = "x86_64")]
                KeyTable::Lanes(t) => {
                    let decoded = crate::lanes8::Decoded::new(elements).map_err(at)?;
                    decoded.add_base_mul_compressed(t, &minus, out);
                    Ok(Kept::Lanes(vec![decoded]))
                }
                KeyTable::Dalek(t) => {
                    let points = elements
                        .iter()
                        .enumerate()
                        .map(|(i, e)| decode_element(e).map_err(|_| at(i)))
                        .collect::<Result<Vec<_>, usize>>()?;
                    for ((p, m), o) in points.iter().zip(minus.iter()).zip(out.iter_mut()) {
                        *o = (p + &**t * m).compress().to_bytes();
                    }
                    Ok(Kept::Dalek(points))
                }
            }
        })
        .collect();
    if let Some(i) = parts.iter().filter_map(|r| r.as_ref().err()).min() {
        return Err(*i);
    }
    Ok((out, Kept::concat(parts.into_iter().flatten().collect())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oprf::{SecretKey, hash_to_group};

    /// `E − ρ·pk` of an honest evaluation is `k·H(x)`, on whichever path this CPU takes and on
    /// dalek's, and a blinded element differs from `H(x)` and from the same input's under
    /// another position.
    #[test]
    fn unblinding_an_additive_blind_gives_the_multiplicative_result() {
        let mut rng = rand::rng();
        let k = SecretKey::random(&mut rng);
        let seed: [u8; 32] = rand::RngExt::random(&mut rng);
        let inputs: Vec<Vec<u8>> = (0..1100u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let prefix = b"p";
        for dalek_only in [false, true] {
            crate::oprf::set_dalek_only(dalek_only);
            let mut blinded = vec![[0u8; 32]; inputs.len()];
            additive_blind_into(Mode::Voprf, &seed, 5, prefix, |i| &inputs[i], &mut blinded);
            let evaluated: Vec<[u8; 32]> = blinded
                .iter()
                .map(|b| (k.0 * decode_element(b).unwrap()).compress().to_bytes())
                .collect();
            let indices: Vec<u64> = (5..5 + inputs.len() as u64).collect();
            let table = KeyTable::of_key(&k.public_key());
            let (unblinded, kept) = additive_unblind(&table, &seed, &indices, &evaluated).unwrap();
            assert_eq!(kept.len(), inputs.len());
            for (i, (x, u)) in inputs.iter().zip(&unblinded).enumerate() {
                let h = hash_to_group(Mode::Voprf, &[prefix, x]);
                assert_eq!(*u, (k.0 * h).compress().to_bytes(), "input {i}");
                assert_ne!(blinded[i], h.compress().to_bytes());
            }
            // Another position, another blind.
            let mut again = [[0u8; 32]; 1];
            additive_blind_into(Mode::Voprf, &seed, 6, prefix, |_| &inputs[0], &mut again);
            assert_ne!(again[0], blinded[0]);
            // A bad element is named by its index.
            let mut bad = evaluated.clone();
            bad[1030] = [0xff; 32];
            assert_eq!(
                additive_unblind(&table, &seed, &indices, &bad).err(),
                Some(1030)
            );
        }
        crate::oprf::set_dalek_only(false);
    }
}
