//! Group and hash primitives of RFC 9497 section 4.1 (ristretto255) and RFC 9380 `expand_message_xmd`.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use super::{ELEMENT_LEN, Mode, OprfError};

/// SHA-512's block size (`r_in_bytes`): the zero pad that opens `msg_prime`.
const SHA512_BLOCK: usize = 128;

/// A serialized group element as it travels (`SerializeElement`): 32 bytes, validated on use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Element(pub [u8; ELEMENT_LEN]);

impl Element {
    /// `SerializeElement` of a point.
    pub fn from_point(p: &RistrettoPoint) -> Self {
        Element(p.compress().to_bytes())
    }

    /// `DeserializeElement`: canonical encoding and not the identity, else [`OprfError::InvalidElement`].
    pub fn to_point(&self) -> Result<RistrettoPoint, OprfError> {
        decode_element(&self.0)
    }
}

/// `DeserializeElement` (RFC 9497 section 4.1): rejects non-canonical encodings and the identity.
pub(crate) fn decode_element(bytes: &[u8; ELEMENT_LEN]) -> Result<RistrettoPoint, OprfError> {
    let p = CompressedRistretto(*bytes)
        .decompress()
        .ok_or(OprfError::InvalidElement)?;
    if p.is_identity() {
        return Err(OprfError::InvalidElement);
    }
    Ok(p)
}

/// `expand_message_xmd` (RFC 9380 section 5.3.1) with SHA-512 for exactly 64 output bytes,
/// the only length ristretto255 needs. `msg` is given in parts to avoid concatenating on hot paths.
pub(crate) fn expand_message_xmd_64(msg: &[&[u8]], dst: &[&[u8]]) -> [u8; 64] {
    let dst_len: usize = dst.iter().map(|d| d.len()).sum();
    // Callers pass fixed RFC tags far below 255 bytes.
    debug_assert!(dst_len <= 255);
    let dst_len_byte = [dst_len as u8];

    // The state after the zero block is the same for every call: kept, it saves one of the
    // three or four compressions of a short message.
    static ZERO_PADDED: std::sync::OnceLock<Sha512> = std::sync::OnceLock::new();
    let mut h = ZERO_PADDED
        .get_or_init(|| {
            let mut h = Sha512::new();
            h.update([0u8; SHA512_BLOCK]);
            h
        })
        .clone();
    for part in msg {
        h.update(part);
    }
    h.update(64u16.to_be_bytes()); // l_i_b_str
    h.update([0u8]);
    for d in dst {
        h.update(d);
    }
    h.update(dst_len_byte);
    let b0 = h.finalize();

    // ell = 1: b_1 = H(b_0 || I2OSP(1, 1) || DST_prime).
    let mut h = Sha512::new();
    h.update(b0);
    h.update([1u8]);
    for d in dst {
        h.update(d);
    }
    h.update(dst_len_byte);
    h.finalize().into()
}

/// `HashToGroup` (RFC 9497 section 4.1): `hash_to_ristretto255` of RFC 9380 with
/// DST = `"HashToGroup-" || contextString`. The input is given in parts.
pub fn hash_to_group(mode: Mode, input: &[&[u8]]) -> RistrettoPoint {
    let context = mode.context_string();
    let uniform = expand_message_xmd_64(input, &[b"HashToGroup-", context]);
    RistrettoPoint::from_uniform_bytes(&uniform)
}

/// `HashToScalar` (RFC 9497 section 4.1) with DST = `"HashToScalar-" || contextString`.
pub fn hash_to_scalar(mode: Mode, input: &[&[u8]]) -> Scalar {
    let uniform = expand_message_xmd_64(input, &[b"HashToScalar-", mode.context_string()]);
    Scalar::from_bytes_mod_order_wide(&uniform)
}

/// `HashToScalar` with a DST of the caller's (`DeriveKeyPair`, the proof nonces): fixed tags
/// of this crate, 1 to 255 bytes, which RFC 9380 requires (checked in every build).
pub(crate) fn hash_to_scalar_with_dst(input: &[&[u8]], dst: &[u8]) -> Result<Scalar, OprfError> {
    if dst.is_empty() || dst.len() > 255 {
        return Err(OprfError::InvalidDst(dst.len()));
    }
    Ok(Scalar::from_bytes_mod_order_wide(&expand_message_xmd_64(
        input,
        &[dst],
    )))
}

/// `DeserializeScalar` for a secret (a key, a blind, a nonce): canonical and non-zero.
pub(crate) fn secret_scalar(bytes: &[u8; 32]) -> Result<Scalar, OprfError> {
    let s: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
    match s {
        Some(s) if s != Scalar::ZERO => Ok(s),
        _ => Err(OprfError::InvalidScalar),
    }
}

/// `RandomScalar`: 32 bytes from the RNG, read as a little-endian scalar, redrawn until canonical
/// and non-zero. Reading exactly the scalar's bytes is what lets tests replay the RFC's blinds.
pub(crate) fn random_scalar(rng: &mut (impl CryptoRng + ?Sized)) -> Scalar {
    loop {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let s: Option<Scalar> = Scalar::from_canonical_bytes(bytes).into();
        if let Some(s) = s
            && s != Scalar::ZERO
        {
            return s;
        }
    }
}

#[cfg(test)]
mod dst_tests {
    use super::*;

    #[test]
    fn a_custom_dst_must_be_1_to_255_bytes_in_every_build() {
        assert_eq!(
            hash_to_scalar_with_dst(&[b"x"], b""),
            Err(OprfError::InvalidDst(0))
        );
        assert_eq!(
            hash_to_scalar_with_dst(&[b"x"], &[b'a'; 256]),
            Err(OprfError::InvalidDst(256))
        );
        assert!(hash_to_scalar_with_dst(&[b"x"], &[b'a'; 255]).is_ok());
    }
}
