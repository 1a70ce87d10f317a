use thiserror::Error;

/// Failures of the OPRF layer. Cryptographic failures stay opaque on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OprfError {
    /// `InvalidInputError`: the input hashes to the identity element.
    #[error("invalid input: it hashes to the identity element")]
    InvalidInput,
    /// `DeserializeError`: a group element that is not a canonical, non-identity encoding.
    #[error("invalid group element")]
    InvalidElement,
    /// A scalar that is not canonical (or is zero where zero is not allowed).
    #[error("invalid scalar")]
    InvalidScalar,
    /// `VerifyError`: a DLEQ proof did not verify.
    #[error("verification failed")]
    VerifyFailed,
    /// `DeriveKeyPairError`: 256 attempts all gave a zero scalar.
    #[error("key derivation failed")]
    DeriveKeyPair,
    /// An input or info string longer than 65535 bytes (the RFC's I2OSP length limit).
    #[error("input longer than 65535 bytes")]
    InputTooLong,
    /// A domain-separation tag that RFC 9380 does not allow: empty or over 255 bytes.
    #[error("a domain-separation tag of {0} bytes (1 to 255 allowed)")]
    InvalidDst(usize),
    /// Batch arguments of different lengths.
    #[error("batch length mismatch: {left} vs {right}")]
    LengthMismatch {
        /// Length of the first list.
        left: usize,
        /// Length of the second list.
        right: usize,
    },
}
