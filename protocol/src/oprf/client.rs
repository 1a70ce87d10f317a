//! The client side of RFC 9497 section 3.3: `Blind` and `Finalize` (OPRF) and `Finalize` with
//! `VerifyProof` (VOPRF), one element at a time or in batches.

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::batch::{decode_batch, mul_each_compress_batch};
use super::group::{hash_to_group, random_scalar, secret_scalar};
use super::proof::{Proof, verify_proof};
use super::{
    Element, Mode, OprfError, Output, PublicKey, SCALAR_LEN, par_chunk_len, push_prefixed,
};

/// A client's secret blind. Zeroized on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Blind(pub(crate) Scalar);

impl Blind {
    /// A uniformly random non-zero blind (`RandomScalar`).
    pub fn random(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        Blind(random_scalar(rng))
    }

    /// Reads a blind from its 32-byte little-endian encoding; rejects non-canonical encodings
    /// and zero (a zero blind would send the identity and reveal nothing but fail).
    pub fn from_bytes(bytes: &[u8; SCALAR_LEN]) -> Result<Self, OprfError> {
        secret_scalar(bytes).map(Blind)
    }

    /// `SerializeScalar(blind)`, in a buffer that zeroizes itself.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }
}

impl fmt::Debug for Blind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Blind(..)")
    }
}

/// `blind·HashToGroup(input)` for each input and its blind, in parallel.
fn blind_with(mode: Mode, inputs: &[&[u8]], blinds: &[Blind]) -> Result<Vec<Element>, OprfError> {
    if blinds.len() != inputs.len() {
        return Err(OprfError::LengthMismatch {
            left: inputs.len(),
            right: blinds.len(),
        });
    }
    let points = inputs
        .par_iter()
        .map(|x| {
            let p = hash_to_group(mode, &[x]);
            if p == RistrettoPoint::default() {
                Err(OprfError::InvalidInput)
            } else {
                Ok(p)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scalars: Zeroizing<Vec<Scalar>> = Zeroizing::new(blinds.iter().map(|b| b.0).collect());
    let blinded = mul_each_compress_batch(&scalars, &points);
    Ok(blinded.into_iter().map(Element).collect())
}

/// `Blind(input)` for one mode: fresh blinds from `rng`, drawn in input order so that a replayed
/// RNG gives the RFC's blinds.
fn blind_batch(
    mode: Mode,
    rng: &mut (impl CryptoRng + ?Sized),
    inputs: &[&[u8]],
) -> Result<(Vec<Blind>, Vec<Element>), OprfError> {
    let blinds: Vec<Blind> = inputs.iter().map(|_| Blind::random(rng)).collect();
    let blinded = blind_with(mode, inputs, &blinds)?;
    Ok((blinds, blinded))
}

/// `Finalize` for a batch: unblind each evaluation with its blind's inverse (one batch
/// inversion per chunk), then hash input and unblinded element.
fn finalize_batch(
    inputs: &[&[u8]],
    blinds: &[Blind],
    evaluated: &[Element],
) -> Result<Vec<Output>, OprfError> {
    for len in [blinds.len(), evaluated.len()] {
        if len != inputs.len() {
            return Err(OprfError::LengthMismatch {
                left: inputs.len(),
                right: len,
            });
        }
    }
    let raw: Vec<[u8; 32]> = evaluated.iter().map(|e| e.0).collect();
    let points = decode_batch(&raw).map_err(|_| OprfError::InvalidElement)?;
    let mut inverses: Vec<Scalar> = blinds.iter().map(|b| b.0).collect();
    inverses.par_chunks_mut(par_chunk_len()).for_each(|c| {
        Scalar::invert_batch_alloc(c);
    });
    let unblinded = mul_each_compress_batch(&inverses, &points);
    inverses.zeroize();
    inputs
        .par_iter()
        .zip(unblinded.par_iter())
        .map(|(input, n)| finalize_hash(input, n))
        .collect()
}

/// `Hash(I2OSP(len(input), 2) || input || I2OSP(len(unblindedElement), 2) || unblindedElement || "Finalize")`.
pub(crate) fn finalize_hash(input: &[u8], unblinded: &[u8; 32]) -> Result<Output, OprfError> {
    let mut t = Vec::with_capacity(2 + input.len() + 2 + 32 + 8);
    push_prefixed(&mut t, input)?;
    push_prefixed(&mut t, unblinded)?;
    t.extend_from_slice(b"Finalize");
    Ok(Sha512::digest(&t).into())
}

/// An OPRF client (`modeOPRF`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OprfClient;

impl OprfClient {
    /// `Blind(input)`: returns the secret blind and the `BlindedElement` to send.
    pub fn blind(
        rng: &mut (impl CryptoRng + ?Sized),
        input: &[u8],
    ) -> Result<(Blind, Element), OprfError> {
        let (mut b, mut e) = blind_batch(Mode::Oprf, rng, &[input])?;
        match (b.pop(), e.pop()) {
            (Some(b), Some(e)) => Ok((b, e)),
            _ => Err(OprfError::InvalidInput),
        }
    }

    /// `Blind` over a batch, in parallel; blinds are drawn from `rng` in input order.
    pub fn blind_batch(
        rng: &mut (impl CryptoRng + ?Sized),
        inputs: &[&[u8]],
    ) -> Result<(Vec<Blind>, Vec<Element>), OprfError> {
        blind_batch(Mode::Oprf, rng, inputs)
    }

    /// `Blind` with the blinds given, one per input (to replay a transcript).
    pub fn blind_batch_with(inputs: &[&[u8]], blinds: &[Blind]) -> Result<Vec<Element>, OprfError> {
        blind_with(Mode::Oprf, inputs, blinds)
    }

    /// `Finalize(input, blind, evaluatedElement)`.
    pub fn finalize(input: &[u8], blind: &Blind, evaluated: &Element) -> Result<Output, OprfError> {
        let n = (blind.0.invert() * evaluated.to_point()?)
            .compress()
            .to_bytes();
        finalize_hash(input, &n)
    }

    /// `Finalize` over a batch, in parallel with batch inversion.
    pub fn finalize_batch(
        inputs: &[&[u8]],
        blinds: &[Blind],
        evaluated: &[Element],
    ) -> Result<Vec<Output>, OprfError> {
        finalize_batch(inputs, blinds, evaluated)
    }
}

/// A VOPRF client (`modeVOPRF`), holding the server's public key.
#[derive(Debug, Clone, Copy)]
pub struct VoprfClient {
    public_key: PublicKey,
}

impl VoprfClient {
    /// A client that will verify proofs against `public_key`.
    pub fn new(public_key: PublicKey) -> Self {
        VoprfClient { public_key }
    }

    /// `Blind` over a batch in `modeVOPRF`.
    pub fn blind_batch(
        rng: &mut (impl CryptoRng + ?Sized),
        inputs: &[&[u8]],
    ) -> Result<(Vec<Blind>, Vec<Element>), OprfError> {
        blind_batch(Mode::Voprf, rng, inputs)
    }

    /// `Blind` in `modeVOPRF` with the blinds given, one per input.
    pub fn blind_batch_with(inputs: &[&[u8]], blinds: &[Blind]) -> Result<Vec<Element>, OprfError> {
        blind_with(Mode::Voprf, inputs, blinds)
    }

    /// `Finalize` of RFC 9497 section 3.3.2: verifies the batched proof, then unblinds and hashes.
    pub fn finalize_batch(
        &self,
        inputs: &[&[u8]],
        blinds: &[Blind],
        blinded: &[Element],
        evaluated: &[Element],
        proof: &Proof,
    ) -> Result<Vec<Output>, OprfError> {
        verify_proof(
            Mode::Voprf,
            &self.public_key,
            blinded,
            evaluated,
            None,
            proof,
        )?;
        finalize_batch(inputs, blinds, evaluated)
    }
}
