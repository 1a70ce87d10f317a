//! Server key pairs: `DeriveKeyPair` (RFC 9497 section 3.2.1) and random generation.

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::group::{hash_to_scalar_with_dst, random_scalar, secret_scalar};
use super::{Element, Mode, OprfError, SCALAR_LEN, push_prefixed};

/// The server's private key `skS`. Zeroized on drop, never printed, read only through
/// [`SecretKey::to_bytes`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(pub(crate) Scalar);

impl SecretKey {
    /// A uniformly random non-zero key (`RandomScalar`).
    pub fn random(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        SecretKey(random_scalar(rng))
    }

    /// Reads a key from its 32-byte little-endian encoding (`DeserializeScalar`); rejects
    /// non-canonical encodings and zero.
    pub fn from_bytes(bytes: &[u8; SCALAR_LEN]) -> Result<Self, OprfError> {
        secret_scalar(bytes).map(SecretKey)
    }

    /// `SerializeScalar`, in a buffer that zeroizes itself.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key `pkS = skS·G`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(RistrettoPoint::mul_base(&self.0))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The server's public key `pkS`, used by VOPRF clients to verify proofs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) RistrettoPoint);

impl PublicKey {
    /// `SerializeElement(pkS)`.
    pub fn to_element(&self) -> Element {
        Element::from_point(&self.0)
    }

    /// `DeserializeElement(pkS)`, rejecting the identity and non-canonical encodings.
    pub fn from_element(e: &Element) -> Result<Self, OprfError> {
        Ok(PublicKey(e.to_point()?))
    }
}

/// `DeriveKeyPair(seed, info)` (RFC 9497 section 3.2.1): a deterministic key pair from a seed.
pub fn derive_key_pair(
    mode: Mode,
    seed: &[u8; 32],
    info: &[u8],
) -> Result<(SecretKey, PublicKey), OprfError> {
    let mut derive_input = Zeroizing::new(Vec::with_capacity(32 + 2 + info.len()));
    derive_input.extend_from_slice(seed);
    push_prefixed(&mut derive_input, info)?;
    let mut dst = b"DeriveKeyPair".to_vec();
    dst.extend_from_slice(mode.context_string());
    for counter in 0..=255u8 {
        let sk = hash_to_scalar_with_dst(&[&derive_input, &[counter]], &dst)?;
        if sk != Scalar::ZERO {
            let sk = SecretKey(sk);
            let pk = sk.public_key();
            return Ok((sk, pk));
        }
    }
    Err(OprfError::DeriveKeyPair)
}
