//! The server side of RFC 9497 section 3.3: `BlindEvaluate` (OPRF) and `BlindEvaluate` with
//! `GenerateProof` (VOPRF), and `Evaluate`, the server's own unblinded evaluation.

use curve25519_dalek::ristretto::RistrettoPoint;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::batch::evaluate_batch;
use super::client::finalize_hash;
use super::group::{hash_to_group, secret_scalar};
use super::proof::{Proof, generate_proof, generate_proof_with_nonce};
use super::{Element, Mode, OprfError, Output, PublicKey, SCALAR_LEN, SecretKey};

fn evaluate(key: &SecretKey, blinded: &[Element]) -> Result<Vec<Element>, OprfError> {
    let raw: Vec<[u8; 32]> = blinded.iter().map(|e| e.0).collect();
    let out = evaluate_batch(&key.0, &raw).map_err(|_| OprfError::InvalidElement)?;
    Ok(out.into_iter().map(Element).collect())
}

/// `Evaluate(skS, input)` of RFC 9497 section 3.3.1: `Finalize`'s hash of the input and
/// `skS·HashToGroup(input)`, what a client would get through the blind protocol.
fn evaluate_input(mode: Mode, key: &SecretKey, input: &[u8]) -> Result<Output, OprfError> {
    let p = hash_to_group(mode, &[input]);
    if p == RistrettoPoint::default() {
        return Err(OprfError::InvalidInput);
    }
    finalize_hash(input, &(key.0 * p).compress().to_bytes())
}

/// An OPRF server (`modeOPRF`) holding `skS`.
#[derive(Debug)]
pub struct OprfServer {
    key: SecretKey,
}

impl OprfServer {
    /// A server with the given key.
    pub fn new(key: SecretKey) -> Self {
        OprfServer { key }
    }

    /// `BlindEvaluate(skS, blindedElement)`: validates the element, returns `skS·blindedElement`.
    pub fn blind_evaluate(&self, blinded: &Element) -> Result<Element, OprfError> {
        Ok(Element::from_point(&(self.key.0 * blinded.to_point()?)))
    }

    /// `BlindEvaluate` over a batch, in parallel; any invalid element fails the whole batch.
    pub fn blind_evaluate_batch(&self, blinded: &[Element]) -> Result<Vec<Element>, OprfError> {
        evaluate(&self.key, blinded)
    }

    /// `Evaluate(skS, input)`.
    pub fn evaluate(&self, input: &[u8]) -> Result<Output, OprfError> {
        evaluate_input(Mode::Oprf, &self.key, input)
    }
}

/// A VOPRF server (`modeVOPRF`) holding `skS` and `pkS`.
#[derive(Debug)]
pub struct VoprfServer {
    key: SecretKey,
}

impl VoprfServer {
    /// A server with the given key.
    pub fn new(key: SecretKey) -> Self {
        VoprfServer { key }
    }

    /// `pkS`.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// `BlindEvaluateBatch`: evaluates every element and proves, in one batched DLEQ proof, that
    /// all used the key behind `pkS`. The proof nonce comes from `rng`.
    pub fn blind_evaluate_batch(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        blinded: &[Element],
    ) -> Result<(Vec<Element>, Proof), OprfError> {
        let evaluated = evaluate(&self.key, blinded)?;
        let proof = generate_proof(Mode::Voprf, &self.key, blinded, &evaluated, rng)?;
        Ok((evaluated, proof))
    }

    /// [`VoprfServer::blind_evaluate_batch`] with the proof nonce `r` given (to replay a
    /// transcript). A nonce used twice with one key reveals the key: never reuse one.
    pub fn blind_evaluate_batch_with_nonce(
        &self,
        blinded: &[Element],
        nonce: &[u8; SCALAR_LEN],
    ) -> Result<(Vec<Element>, Proof), OprfError> {
        let r = Zeroizing::new(secret_scalar(nonce)?);
        let evaluated = evaluate(&self.key, blinded)?;
        let proof =
            generate_proof_with_nonce(Mode::Voprf, &self.key, blinded, None, &evaluated, &r)?;
        Ok((evaluated, proof))
    }

    /// `Evaluate(skS, input)` in `modeVOPRF`.
    pub fn evaluate(&self, input: &[u8]) -> Result<Output, OprfError> {
        evaluate_input(Mode::Voprf, &self.key, input)
    }
}
