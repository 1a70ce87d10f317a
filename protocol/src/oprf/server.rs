//! The server side of RFC 9497 section 3.3: `BlindEvaluate` (OPRF) and `BlindEvaluate` with
//! `GenerateProof` (VOPRF).

use rand_core::CryptoRng;

use super::batch::evaluate_batch;
use super::proof::{Proof, generate_proof};
use super::{Element, Mode, OprfError, PublicKey, SecretKey};

fn evaluate(key: &SecretKey, blinded: &[Element]) -> Result<Vec<Element>, OprfError> {
    let raw: Vec<[u8; 32]> = blinded.iter().map(|e| e.0).collect();
    let out = evaluate_batch(&key.0, &raw).map_err(|_| OprfError::InvalidElement)?;
    Ok(out.into_iter().map(Element).collect())
}

/// An OPRF server (`modeOPRF`) holding `skS`.
#[derive(Debug)]
pub(crate) struct OprfServer {
    key: SecretKey,
}

impl OprfServer {
    /// A server with the given key.
    pub(crate) fn new(key: SecretKey) -> Self {
        OprfServer { key }
    }

    /// `BlindEvaluate(skS, blindedElement)`: validates the element, returns `skS·blindedElement`.
    pub(crate) fn blind_evaluate(&self, blinded: &Element) -> Result<Element, OprfError> {
        Ok(Element::from_point(&(self.key.0 * blinded.to_point()?)))
    }

    /// `BlindEvaluate` over a batch, in parallel; any invalid element fails the whole batch.
    pub(crate) fn blind_evaluate_batch(
        &self,
        blinded: &[Element],
    ) -> Result<Vec<Element>, OprfError> {
        evaluate(&self.key, blinded)
    }
}

/// A VOPRF server (`modeVOPRF`) holding `skS` and `pkS`.
#[derive(Debug)]
pub(crate) struct VoprfServer {
    key: SecretKey,
}

impl VoprfServer {
    /// A server with the given key.
    pub(crate) fn new(key: SecretKey) -> Self {
        VoprfServer { key }
    }

    /// `pkS`.
    pub(crate) fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// `BlindEvaluateBatch`: evaluates every element and proves, in one batched DLEQ proof, that
    /// all used the key behind `pkS`. The proof nonce comes from `rng`.
    pub(crate) fn blind_evaluate_batch(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        blinded: &[Element],
    ) -> Result<(Vec<Element>, Proof), OprfError> {
        let evaluated = evaluate(&self.key, blinded)?;
        let proof = generate_proof(Mode::Voprf, &self.key, blinded, &evaluated, rng)?;
        Ok((evaluated, proof))
    }
}
