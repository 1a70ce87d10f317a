//! Signed JSON: the exact bytes signed travel with the signature, so a verifier never depends
//! on re-serialising. Each kind of document has its own context string, signed first, so that
//! a signature on one kind can never pass for another.

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A document and its signature by the certificate that travels with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The document, as the JSON text that was signed.
    pub body: String,
    /// ECDSA P-256 SHA-256 signature (ASN.1 DER), hex, over `context || 0x00 || body`.
    pub signature: String,
    /// The signer's certificate, DER in hex (checked against the federation CA by the verifier).
    pub certificate: String,
}

/// Why a signed document is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// The node's key cannot sign (not the P-256 PKCS#8 key `ca issue` makes).
    #[error("the node key cannot sign: {0}")]
    UnusableKey(String),
    /// The signature, certificate or body is not readable.
    #[error("unreadable signed document: {0}")]
    Unreadable(String),
    /// The signature does not verify under the certificate's key.
    #[error("the signature does not verify")]
    BadSignature,
}

fn message(context: &str, body: &str) -> Vec<u8> {
    let mut m = context.as_bytes().to_vec();
    m.push(0);
    m.extend_from_slice(body.as_bytes());
    m
}

impl Signed {
    /// Signs `doc` (as JSON) under `context` with the node's key.
    pub fn sign<T: Serialize>(
        context: &str,
        doc: &T,
        key: &PrivateKeyDer<'_>,
        cert: &CertificateDer<'_>,
    ) -> Result<Signed, SignatureError> {
        let body =
            serde_json::to_string(doc).map_err(|e| SignatureError::Unreadable(e.to_string()))?;
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, key.secret_der(), &rng)
                .map_err(|e| SignatureError::UnusableKey(e.to_string()))?;
        let sig = pair
            .sign(&rng, &message(context, &body))
            .map_err(|e| SignatureError::UnusableKey(e.to_string()))?;
        Ok(Signed {
            body,
            signature: hex::encode(sig.as_ref()),
            certificate: hex::encode(cert.as_ref()),
        })
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> Result<CertificateDer<'static>, SignatureError> {
        hex::decode(&self.certificate)
            .map(CertificateDer::from)
            .map_err(|e| SignatureError::Unreadable(format!("certificate: {e}")))
    }

    /// Checks the signature under `context` with the key of the certificate it carries (whose
    /// chain to the CA the caller checks), and reads the document.
    pub fn open<T: DeserializeOwned>(&self, context: &str) -> Result<T, SignatureError> {
        let der = self.certificate()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| SignatureError::Unreadable(format!("certificate: {e}")))?;
        let spki = cert.public_key();
        if spki.algorithm.algorithm.to_id_string() != "1.2.840.10045.2.1" {
            return Err(SignatureError::Unreadable(
                "not an EC certificate key".into(),
            ));
        }
        let sig = hex::decode(&self.signature)
            .map_err(|e| SignatureError::Unreadable(format!("signature: {e}")))?;
        ring::signature::UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            spki.subject_public_key.data.as_ref(),
        )
        .verify(&message(context, &self.body), &sig)
        .map_err(|_| SignatureError::BadSignature)?;
        serde_json::from_str(&self.body).map_err(|e| SignatureError::Unreadable(e.to_string()))
    }
}
