//! The federation's identities: the CA, node certificates binding a name and a role, and the
//! reading of a peer's certificate. The role lives in the certificate, never in what a peer says.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::clock;
use crate::node_dir::NodeDir;

/// File names inside a CA directory and a node directory.
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key (mode 0600).
pub const CA_KEY: &str = "ca.key";
/// A node's certificate.
pub const NODE_CERT: &str = "node.crt";
/// A node's private key (mode 0600).
pub const NODE_KEY: &str = "node.key";

/// URI SAN prefix that carries the role, e.g. `urn:suyuan:role:police`.
const ROLE_URI: &str = "urn:suyuan:role:";

/// What a node is, as its certificate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A bank, telecom, courier, hospital: holds a customer list.
    Institution,
    /// A police unit: queries with seized dumps.
    Police,
    /// A researcher: runs tests and benchmarks against willing nodes.
    Researcher,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Institution, Role::Police, Role::Researcher];

    /// `institution`, `police` or `researcher`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Institution => "institution",
            Role::Police => "police",
            Role::Researcher => "researcher",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .with_context(|| {
                format!("unknown role {s:?} (expected institution, police or researcher)")
            })
    }
}

/// A node name: a DNS label (lower-case letters, digits, hyphens; 1 to 63 characters), because
/// it is the name a peer's certificate is checked against.
pub fn check_node_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "invalid node name {name:?}: use 1-63 lower-case letters, digits and hyphens (e.g. bank-beijing)"
        );
    }
    Ok(())
}

/// Writes a new file with the given mode, refusing to overwrite.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Writes a file that must be read by its owner alone (0600), refusing to overwrite.
pub fn write_secret(path: &Path, contents: &[u8]) -> Result<()> {
    write_new(path, contents, 0o600)
}

fn write_public(path: &Path, contents: &[u8]) -> Result<()> {
    write_new(path, contents, 0o644)
}

/// Creates a directory (mode 0700) that must not exist yet or must be empty.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} already exists and is not empty; refusing to overwrite",
                dir.display()
            );
        }
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn validity(params: &mut CertificateParams, years: i64) {
    let today = (clock::now_unix() / 86_400) as i64;
    let (y, m, d) = clock::civil_from_days(today - 1);
    params.not_before = rcgen::date_time_ymd(y as i32, m as u8, d as u8);
    // The 28th exists in every month.
    params.not_after = rcgen::date_time_ymd((y + years) as i32, m as u8, d.min(28) as u8);
}

/// `suyuan ca init`: a fresh federation CA in `dir`.
pub fn ca_init(dir: &Path, name: &str) -> Result<String> {
    create_private_dir(dir)?;
    let key = KeyPair::generate().context("generating the CA key")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "suyuan federation");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, 10);
    let cert = params.self_signed(&key)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_secret(&dir.join(CA_KEY), key_pem.as_bytes())?;
    write_public(&dir.join(CA_CERT), cert.pem().as_bytes())?;
    Ok(fingerprint(cert.der()))
}

/// `suyuan ca issue`: a node identity signed by the CA in `ca_dir`, written to `out`.
pub fn ca_issue(ca_dir: &Path, name: &str, role: Role, out: &Path) -> Result<String> {
    check_node_name(name)?;
    let ca_cert_pem = fs::read_to_string(ca_dir.join(CA_CERT))
        .with_context(|| format!("cannot read {}", ca_dir.join(CA_CERT).display()))?;
    check_private(&ca_dir.join(CA_KEY))?;
    let ca_key_pem = Zeroizing::new(
        fs::read_to_string(ca_dir.join(CA_KEY))
            .with_context(|| format!("cannot read {}", ca_dir.join(CA_KEY).display()))?,
    );
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("reading the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).context("reading the CA certificate")?;

    create_private_dir(out)?;
    let key = KeyPair::generate().context("generating the node key")?;
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    params
        .subject_alt_names
        .push(SanType::URI(format!("{ROLE_URI}{role}").try_into()?));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationalUnitName, role.as_str());
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every node is a server (serve) and a client (query).
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 2);
    let cert = params.signed_by(&key, &issuer)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_secret(&out.join(NODE_KEY), key_pem.as_bytes())?;
    write_public(&out.join(NODE_CERT), cert.pem().as_bytes())?;
    write_public(&out.join(CA_CERT), ca_cert_pem.as_bytes())?;
    // The CA keeps a copy, so that `ca revoke --name` finds the serial number.
    let issued = ca_dir.join(super::revocation::ISSUED_DIR);
    fs::create_dir_all(&issued).with_context(|| format!("cannot create {}", issued.display()))?;
    write_public(&issued.join(format!("{name}.crt")), cert.pem().as_bytes())?;
    Ok(fingerprint(cert.der()))
}

/// SHA-256 of a certificate's DER, in hex: how audit logs name a peer's exact certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// What a certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The node name (the certificate's DNS name).
    pub name: String,
    /// The role bound into the certificate.
    pub role: Role,
    /// SHA-256 of the certificate.
    pub fingerprint: String,
}

/// Reads name and role from a (TLS-verified) end-entity certificate.
pub fn peer_identity(der: &[u8]) -> Result<PeerIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("unreadable certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| anyhow::anyhow!("unreadable subject alternative names: {e}"))?
        .context("certificate has no subject alternative names")?;
    let mut name = None;
    let mut roles = Vec::new();
    for gn in &san.value.general_names {
        match gn {
            x509_parser::extensions::GeneralName::DNSName(n) => name = name.or(Some(n.to_string())),
            x509_parser::extensions::GeneralName::URI(u) => {
                if let Some(r) = u.strip_prefix(ROLE_URI) {
                    roles.push(r.parse::<Role>()?);
                }
            }
            _ => {}
        }
    }
    let name = name.context("certificate names no node")?;
    // The name goes into audit logs and reports: only a valid node name is taken from a peer.
    check_node_name(&name).context("the certificate's node name")?;
    let role = match roles.as_slice() {
        [r] => *r,
        [] => bail!("certificate of {name} carries no suyuan role"),
        _ => bail!("certificate of {name} carries more than one role"),
    };
    Ok(PeerIdentity {
        name,
        role,
        fingerprint: fingerprint(der),
    })
}

/// A file holding a secret that others may read or write, or whose mode cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateFileError {
    /// Its metadata could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Group or other permission bits are set.
    #[error("{} is readable by others (mode {mode:o}); run chmod 600 on it", path.display())]
    Shared {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Refuses a file holding a secret (a key, the epoch store) that others may read or write.
pub fn check_private(path: &Path) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| PrivateFileError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(PrivateFileError::Shared {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// This node's identity, as loaded from its directory.
pub struct NodeIdentity {
    /// Name and role from our own certificate.
    pub me: PeerIdentity,
    /// Our certificate.
    pub cert: CertificateDer<'static>,
    /// Our private key. Not wiped on drop: rustls-pki-types gives it no `Drop`, and rustls
    /// keeps its own copies; it lives as long as the process (docs/security.md).
    pub key: PrivateKeyDer<'static>,
    /// The federation CA certificate.
    pub ca: CertificateDer<'static>,
    /// The revocation list installed, if any: revoked peers fail the handshake both ways.
    pub crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn read_pem_cert(path: &Path) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("{}: not a readable PEM certificate: {e}", path.display()))
}

pub(crate) fn load(node: &NodeDir) -> Result<NodeIdentity> {
    let key_path = node.node_key();
    if !key_path.exists() {
        bail!(
            "{} is not a node directory (no {NODE_KEY}; create one with `suyuan ca issue`)",
            node.path().display()
        );
    }
    check_private(&key_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow::anyhow!("{}: unreadable key: {e}", key_path.display()))?;
    let cert = read_pem_cert(&node.node_cert())?;
    let ca = read_pem_cert(&node.ca_cert())?;
    let me = peer_identity(&cert).with_context(|| format!("{}", node.node_cert().display()))?;
    let crls = super::revocation::installed(node)?.into_iter().collect();
    Ok(NodeIdentity {
        me,
        cert,
        key,
        ca,
        crls,
    })
}
