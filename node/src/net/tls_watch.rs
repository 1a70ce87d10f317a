//! The serving node's TLS configuration kept current: a newly installed revocation list or a
//! renewed certificate is applied to new connections within a second (or at SIGHUP), and the
//! node warns when either is near its end.

use std::time::Duration;

use rustls::pki_types::pem::PemObject;

use crate::net::tls;
use crate::node_dir::NodeDir;
use crate::node_dir::identity;
use crate::node_dir::revocation;

/// The node's key and certificate, which sign its answers.
pub(crate) type Signer = (
    rustls::pki_types::PrivateKeyDer<'static>,
    rustls::pki_types::CertificateDer<'static>,
);

/// What rebuilding the TLS configuration needs when the revocation list changes.
pub(crate) struct TlsWatch {
    dir: std::path::PathBuf,
    timeout: Duration,
    streams: u32,
    /// The list's bytes as last applied (`None`: no list).
    seen: Option<Vec<u8>>,
    /// `node.crt` as last applied: a renewed certificate is used without a restart.
    cert: Option<Vec<u8>>,
    /// The day (since 1970) the certificate's expiry was last warned about.
    expiry_warned: Option<u64>,
    /// The list number last warned about as past its next update.
    stale_warned: Option<u64>,
}

impl TlsWatch {
    /// Watches `node`'s list and certificate as they are now, and warns at once if either is
    /// near its end.
    pub(crate) fn new(node: &NodeDir, timeout: Duration, streams: u32) -> Self {
        let mut w = TlsWatch {
            dir: node.path().to_path_buf(),
            timeout,
            streams,
            seen: std::fs::read(node.crl_file()).ok(),
            cert: std::fs::read(node.node_cert()).ok(),
            stale_warned: None,
            expiry_warned: None,
        };
        w.warn_if_stale();
        w.warn_if_expiring();
        w
    }

    /// Applies a changed list (or any list, `forced`) to `endpoint`: new handshakes are judged
    /// by it at once; a list that cannot be read leaves the previous one in force.
    pub(crate) fn apply(
        &mut self,
        endpoint: &quinn::Endpoint,
        signer: &std::sync::Mutex<Signer>,
        forced: bool,
    ) {
        let now = std::fs::read(self.dir.join(revocation::CRL_FILE)).ok();
        let cert = std::fs::read(self.dir.join(identity::NODE_CERT)).ok();
        if now != self.seen || cert != self.cert || forced {
            let rebuilt = NodeDir::open(&self.dir)
                .and_then(|n| n.identity())
                .and_then(|id| Ok((tls::server_config(&id, self.timeout, self.streams)?, id)));
            match rebuilt {
                Ok((cfg, id)) => {
                    endpoint.set_server_config(Some(cfg));
                    *signer
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        (id.key.clone_key(), id.cert.clone());
                    tracing::info!("certificate and revocation list applied to new connections");
                }
                Err(e) => tracing::warn!(
                    "the certificate or revocation list was not applied (the previous ones stay in force): {e:#}"
                ),
            }
            self.seen = now;
            self.cert = cert;
        }
        self.warn_if_stale();
        self.warn_if_expiring();
    }

    /// Once a day while the node's certificate is within its warning period.
    fn warn_if_expiring(&mut self) {
        let now = crate::clock::now_unix();
        if self.expiry_warned == Some(now / 86_400) {
            return;
        }
        let warning = NodeDir::open(&self.dir)
            .and_then(|n| n.identity())
            .ok()
            .and_then(|id| identity::expiry_warning(&id, now));
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        self.expiry_warned = Some(now / 86_400);
    }

    fn warn_if_stale(&mut self) {
        let Some(bytes) = &self.seen else { return };
        let info = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(bytes)
            .ok()
            .and_then(|der| revocation::crl_info(&der).ok());
        if let Some(info) = info
            && let Some(w) = info.stale(crate::clock::now_unix())
            && self.stale_warned != Some(info.number)
        {
            tracing::warn!("{w}");
            self.stale_warned = Some(info.number);
        }
    }
}
