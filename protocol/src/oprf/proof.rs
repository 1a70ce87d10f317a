//! Batched DLEQ proofs of RFC 9497 section 2.2: `GenerateProof`, `VerifyProof`, `ComputeComposites`.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::batch::{Kept, decode_kept};
use super::group::hash_to_scalar;
use super::{Element, Mode, OprfError, SCALAR_LEN, push_prefixed};

/// A DLEQ proof `[c, s]`, serialized as `SerializeScalar(c) || SerializeScalar(s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The challenge `c`.
    pub c: [u8; SCALAR_LEN],
    /// The response `s`.
    pub s: [u8; SCALAR_LEN],
}

impl Proof {
    /// The 64-byte encoding `c || s`.
    pub fn to_bytes(self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.c);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// Reads `c || s`; the scalars are checked when the proof is verified.
    pub fn from_bytes(bytes: &[u8; 64]) -> Self {
        let mut c = [0u8; 32];
        let mut s = [0u8; 32];
        c.copy_from_slice(&bytes[..32]);
        s.copy_from_slice(&bytes[32..]);
        Proof { c, s }
    }
}

fn scalar(bytes: &[u8; 32]) -> Result<Scalar, OprfError> {
    Option::<Scalar>::from(Scalar::from_canonical_bytes(*bytes)).ok_or(OprfError::InvalidScalar)
}

/// The weights `d_i` of `ComputeComposites`, derived from `B` and every `(C_i, D_i)`.
fn composite_weights(
    mode: Mode,
    b: &Element,
    c: &[Element],
    d: &[Element],
) -> Result<Vec<Scalar>, OprfError> {
    if c.len() != d.len() {
        return Err(OprfError::LengthMismatch {
            left: c.len(),
            right: d.len(),
        });
    }
    let mut seed_dst = b"Seed-".to_vec();
    seed_dst.extend_from_slice(mode.context_string());
    let mut seed_transcript = Vec::new();
    push_prefixed(&mut seed_transcript, &b.0)?;
    push_prefixed(&mut seed_transcript, &seed_dst)?;
    let seed = Sha512::digest(&seed_transcript);

    // Independent hashes: in parallel over a chunk (4096 of them, about 1.5 µs each).
    c.par_iter()
        .zip(d)
        .enumerate()
        .map(|(i, (ci, di))| {
            let i = u16::try_from(i).map_err(|_| OprfError::InputTooLong)?;
            let mut t = Vec::with_capacity(2 + 64 + 2 + 2 * 34 + 9);
            push_prefixed(&mut t, &seed)?;
            t.extend_from_slice(&i.to_be_bytes());
            push_prefixed(&mut t, &ci.0)?;
            push_prefixed(&mut t, &di.0)?;
            t.extend_from_slice(b"Composite");
            Ok(hash_to_scalar(mode, &[&t]))
        })
        .collect()
}

/// `Σ wᵢ·Pᵢ` over the points of `elements`, decoded unless the caller already has them (in the
/// eight lanes where the CPU runs them: variable time, for public points and weights).
fn composite(
    weights: &[Scalar],
    elements: &[Element],
    decoded: Option<&Kept>,
) -> Result<RistrettoPoint, OprfError> {
    let owned;
    let points = match decoded {
        Some(p) if p.len() == elements.len() => p,
        Some(p) => {
            return Err(OprfError::LengthMismatch {
                left: elements.len(),
                right: p.len(),
            });
        }
        None => {
            let raw: Vec<[u8; 32]> = elements.iter().map(|e| e.0).collect();
            owned = decode_kept(&raw).map_err(|_| OprfError::InvalidElement)?;
            &owned
        }
    };
    points.multiscalar(weights).ok_or(OprfError::InvalidElement)
}

/// `challengeTranscript` over `B, M, Z, t2, t3`, hashed to the scalar `c`.
fn challenge(mode: Mode, b: &Element, points: [&RistrettoPoint; 4]) -> Result<Scalar, OprfError> {
    let mut t = Vec::with_capacity(5 * 34 + 9);
    push_prefixed(&mut t, &b.0)?;
    for p in points {
        push_prefixed(&mut t, &Element::from_point(p).0)?;
    }
    t.extend_from_slice(b"Challenge");
    Ok(hash_to_scalar(mode, &[&t]))
}

/// `GenerateProof(k, A, B, C, D)` with `A = G`, `B = k·G`, using `ComputeCompositesFast`.
/// The nonce `r` is drawn from `rng` (`RandomScalar`).
pub(crate) fn generate_proof(
    mode: Mode,
    k: &super::SecretKey,
    c: &[Element],
    d: &[Element],
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<Proof, OprfError> {
    let r = Zeroizing::new(super::group::random_scalar(rng));
    generate_proof_with_nonce(mode, k, c, None, d, &r)
}

/// [`generate_proof`] with the nonce given: the PSI derives one per chunk from a random seed of
/// the session (a verifier does not care how it was drawn, only that it is never reused).
/// `c_points`, if given, are `C` already decoded (the evaluation decoded them).
pub(crate) fn generate_proof_with_nonce(
    mode: Mode,
    k: &super::SecretKey,
    c: &[Element],
    c_points: Option<&Kept>,
    d: &[Element],
    r: &Scalar,
) -> Result<Proof, OprfError> {
    let b = k.public_key().to_element();
    let weights = composite_weights(mode, &b, c, d)?;
    let m = composite(&weights, c, c_points)?;
    let z = k.0 * m;
    let t2 = RistrettoPoint::mul_base(r);
    let t3 = r * m;
    let ch = challenge(mode, &b, [&m, &z, &t2, &t3])?;
    let s = *r - ch * k.0;
    Ok(Proof {
        c: ch.to_bytes(),
        s: s.to_bytes(),
    })
}

/// `VerifyProof(A, B, C, D, proof)` with `A = G`, `B = pkS`. Fails with the opaque
/// [`OprfError::VerifyFailed`]; the challenge is compared in constant time.
/// `d_points`, if given, are `D` already decoded (the unblinding decoded them).
pub(crate) fn verify_proof(
    mode: Mode,
    pk: &super::PublicKey,
    c: &[Element],
    d: &[Element],
    d_points: Option<&Kept>,
    proof: &Proof,
) -> Result<(), OprfError> {
    let b = pk.to_element();
    let weights = composite_weights(mode, &b, c, d)?;
    let (m, z) = rayon::join(
        || composite(&weights, c, None),
        || composite(&weights, d, d_points),
    );
    let (m, z) = (m?, z?);
    let pc = scalar(&proof.c).map_err(|_| OprfError::VerifyFailed)?;
    let ps = scalar(&proof.s).map_err(|_| OprfError::VerifyFailed)?;
    let t2 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&pc, &pk.0, &ps);
    let t3 = {
        use curve25519_dalek::traits::VartimeMultiscalarMul;
        RistrettoPoint::vartime_multiscalar_mul([ps, pc], [m, z])
    };
    let expected = challenge(mode, &b, [&m, &z, &t2, &t3])?;
    if bool::from(expected.to_bytes().ct_eq(&proof.c)) {
        Ok(())
    } else {
        Err(OprfError::VerifyFailed)
    }
}
