//! TLS 1.3 for QUIC, mutual authentication against the federation CA and its revocation list,
//! ring as the only provider, ALPN `suyuan/6`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;

use crate::node_dir::identity::NodeIdentity;

/// ALPN of node wire version 6 ([`crate::net::frame::NODE_WIRE_VERSION`]).
/// Version 2 added kept tag sets to the hello and welcome, version 3 typed abort reasons
/// (`docs/protocol.md` §9). A node of another version fails the TLS handshake with
/// `no_application_protocol`, cleanly.
pub const ALPN: &[u8] = b"suyuan/6";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &rustls::pki_types::CertificateDer<'static>) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .context("the federation CA certificate is not a valid trust anchor")?;
    Ok(Arc::new(roots))
}

fn transport_config(idle: Duration) -> Result<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(idle).context("idle timeout out of range")?,
    ));
    t.keep_alive_interval(Some(idle / 3));
    // Room for several 128 KiB chunks in flight, so evaluation and transfer overlap.
    t.stream_receive_window(quinn::VarInt::from_u32(4 << 20));
    t.receive_window(quinn::VarInt::from_u32(16 << 20));
    t.send_window(16 << 20);
    Ok(t)
}

/// The server side: client certificates are mandatory and must chain to the federation CA.
pub fn server_config(
    id: &NodeIdentity,
    idle: Duration,
    max_streams: u32,
) -> Result<quinn::ServerConfig> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&id.ca)?, provider())
        .with_crls(id.crls.iter().cloned())
        .build()
        .context("building the client certificate verifier")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())
        .context("our certificate and key do not match")?;
    // No resumption: every connection presents and verifies its certificate afresh, so
    // an expired certificate is noticed at once.
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut t = transport_config(idle)?;
    // A peer may open only as many query streams as could be admitted, and no others.
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(max_streams));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    cfg.transport_config(Arc::new(t));
    Ok(cfg)
}

/// The client side: the server must present a certificate of the federation for the name we
/// dial, and we present ours.
pub fn client_config(id: &NodeIdentity, idle: Duration) -> Result<quinn::ClientConfig> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(&id.ca)?, provider())
        .with_crls(id.crls.iter().cloned())
        .build()
        .context("building the server certificate verifier")?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())
        .context("our certificate and key do not match")?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut t = transport_config(idle)?;
    // A querier opens its streams itself; a holder may open none towards it.
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(0));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    cfg.transport_config(Arc::new(t));
    Ok(cfg)
}

/// Whether `cert` is a member certificate of the federation whose CA is `ca`, as the TLS
/// handshake would judge it at Unix time `at` (chain, validity, client use), and who it names.
/// For checking signed documents long after the connection (`suyuan verify`).
pub fn member_certificate(
    ca: &rustls::pki_types::CertificateDer<'static>,
    cert: &rustls::pki_types::CertificateDer<'static>,
    at: u64,
) -> Result<crate::node_dir::identity::PeerIdentity> {
    member_certificate_checked(ca, &[], cert, at)
}

/// [`member_certificate`], also refusing a certificate the revocation lists `crls` name.
pub fn member_certificate_checked(
    ca: &rustls::pki_types::CertificateDer<'static>,
    crls: &[rustls::pki_types::CertificateRevocationListDer<'static>],
    cert: &rustls::pki_types::CertificateDer<'static>,
    at: u64,
) -> Result<crate::node_dir::identity::PeerIdentity> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider())
        .with_crls(crls.iter().cloned())
        .build()
        .context("building the certificate verifier")?;
    let when = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(at));
    verifier
        .verify_client_cert(cert, &[], when)
        .map_err(|e| anyhow::anyhow!("not a certificate of this federation: {e}"))?;
    crate::node_dir::identity::peer_identity(cert)
}
