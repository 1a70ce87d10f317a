//! RFC 9497 OPRF and VOPRF on ristretto255 with SHA-512 (suite `ristretto255-SHA512`).
//!
//! The names follow the RFC: [`derive_key_pair`] is `DeriveKeyPair`, [`hash_to_group`] is
//! `HashToGroup`. The PSI evaluates in batches (`batch.rs`) and proves its `matches`
//! evaluations with the VOPRF's batched DLEQ proof (`proof.rs`). The RFC's own client and server
//! ([`OprfClient`], [`VoprfClient`], [`OprfServer`], [`VoprfServer`]: `Blind`, `BlindEvaluate`,
//! `Finalize`, `Evaluate`) are for other drivers (the Python package) and for the tests, which
//! check them against every vector of RFC 9497 Appendix A.1 and against the `voprf` crate, and the
//! batch code against them. Randomness is always injected, or the blind and nonce given, so tests
//! replay the RFC's blinds and proof nonces.

mod additive;
mod batch;
mod client;
mod error;
mod group;
mod key;
mod proof;
#[cfg(test)]
mod rfc_tests;
mod server;

pub use client::{Blind, OprfClient, VoprfClient};
pub use error::OprfError;
pub use group::{Element, hash_to_group, hash_to_scalar};
pub use key::{PublicKey, SecretKey, derive_key_pair};
pub use proof::Proof;
pub(crate) use proof::{generate_proof_with_nonce, verify_proof};
pub use server::{OprfServer, VoprfServer};

pub(crate) use additive::{KeyTable, additive_blind_into, additive_unblind};
pub(crate) use batch::{
    Kept, evaluate_batch, evaluate_batch_keeping, evaluate_under_each, hash_mul_compress_batch,
    hash_mul_compress_into, par_chunk_len,
};
pub(crate) use group::{hash_to_scalar_with_dst, random_scalar};

/// The curve path this process's batch operations take: `lanes8` (eight points per AVX-512
/// IFMA instruction, where the CPU has it) or `dalek`.
pub fn curve_path() -> &'static str {
    if batch::eight_lanes() {
        "lanes8"
    } else {
        "dalek"
    }
}

/// Keeps this process on dalek's path even where the CPU runs eight lanes (to compare the two),
/// or lets it take the lanes again.
pub fn set_dalek_only(dalek_only: bool) {
    #[cfg(target_arch = "x86_64")]
    crate::lanes8::set_enabled(!dalek_only);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = dalek_only;
}

/// The suite identifier of RFC 9497 section 4.1.
pub const SUITE_ID: &[u8] = b"ristretto255-SHA512";

/// Size of a serialized group element (`Ne`).
pub const ELEMENT_LEN: usize = 32;
/// Size of a serialized scalar (`Ns`).
pub const SCALAR_LEN: usize = 32;
/// Size of a `Finalize` output (`Nh`).
pub const OUTPUT_LEN: usize = 64;

/// A `Finalize` output: SHA-512 of the input and its unblinded element.
pub type Output = [u8; OUTPUT_LEN];

/// The protocol variant, which enters every domain-separation tag (RFC 9497 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `modeOPRF` (0x00): base mode, no proof.
    Oprf,
    /// `modeVOPRF` (0x01): the server proves it used the key behind its public key.
    Voprf,
}

impl Mode {
    /// The mode byte of RFC 9497 Figure 2.
    pub const fn id(self) -> u8 {
        match self {
            Mode::Oprf => 0,
            Mode::Voprf => 1,
        }
    }

    /// `contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier`.
    pub const fn context_string(self) -> &'static [u8] {
        // Constants, so hashing an element allocates nothing.
        match self {
            Mode::Oprf => b"OPRFV1-\x00-ristretto255-SHA512",
            Mode::Voprf => b"OPRFV1-\x01-ristretto255-SHA512",
        }
    }
}

/// `I2OSP(len(x), 2) || x`, the length-prefixed encoding used throughout RFC 9497.
pub(crate) fn push_prefixed(out: &mut Vec<u8>, x: &[u8]) -> Result<(), OprfError> {
    let len = u16::try_from(x.len()).map_err(|_| OprfError::InputTooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(x);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_strings_follow_rfc_9497() {
        for mode in [Mode::Oprf, Mode::Voprf] {
            let mut expected = b"OPRFV1-".to_vec();
            expected.push(mode.id());
            expected.push(b'-');
            expected.extend_from_slice(SUITE_ID);
            assert_eq!(mode.context_string(), expected.as_slice());
        }
    }
}
