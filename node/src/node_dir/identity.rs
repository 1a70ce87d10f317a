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
    /// A court or prosecutor's office: signs warrants (`suyuan warrant issue`), queries nobody.
    Court,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Institution,
        Role::Police,
        Role::Researcher,
        Role::Court,
    ];

    /// `institution`, `police` or `researcher`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Institution => "institution",
            Role::Police => "police",
            Role::Researcher => "researcher",
            Role::Court => "court",
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
                format!("unknown role {s:?} (expected institution, police, researcher or court)")
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

/// Replaces a public file whole (written beside it, then renamed over it), mode 0644.
pub(crate) fn replace_public(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("new");
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, contents, 0o644)?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
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

/// Days a node certificate is valid for unless `ca issue --days` says otherwise: two years.
pub const DEFAULT_CERT_DAYS: u32 = 730;

/// `serve`, `query` and `status` warn this many days before the node's certificate expires.
pub const EXPIRY_WARNING_DAYS: u64 = 30;

/// `suyuan ca issue`: a node identity signed by the CA in `ca_dir`, written to `out`, valid
/// for [`DEFAULT_CERT_DAYS`].
/// For unit tests: a CA in `dir/ca` and one member `name` of `role` in `dir/name`; returns
/// both directories.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_member(dir: &Path, name: &str, role: Role) -> (PathBuf, PathBuf) {
    let ca = dir.join("ca");
    ca_init(&ca, "test CA").unwrap();
    let node = dir.join(name);
    ca_issue(&ca, name, role, &node).unwrap();
    (ca, node)
}

pub fn ca_issue(ca_dir: &Path, name: &str, role: Role, out: &Path) -> Result<String> {
    ca_issue_for(ca_dir, name, role, out, DEFAULT_CERT_DAYS)
}

/// The CA's private key (PEM), once its file is checked to be the owner's alone.
pub(crate) fn ca_key_pem(ca_dir: &Path) -> Result<Zeroizing<String>> {
    let path = ca_dir.join(CA_KEY);
    check_private(&path)?;
    Ok(Zeroizing::new(fs::read_to_string(&path).with_context(
        || format!("cannot read {}", path.display()),
    )?))
}

/// The CA's certificate and key, to sign with.
pub(crate) fn ca_issuer(ca_dir: &Path) -> Result<(String, Issuer<'static, KeyPair>)> {
    let ca_cert_pem = fs::read_to_string(ca_dir.join(CA_CERT))
        .with_context(|| format!("cannot read {}", ca_dir.join(CA_CERT).display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem(ca_dir)?).context("reading the CA key")?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).context("reading the CA certificate")?;
    Ok((ca_cert_pem, issuer))
}

/// [`ca_issue`] valid for `days` (1 to 3650).
pub fn ca_issue_for(
    ca_dir: &Path,
    name: &str,
    role: Role,
    out: &Path,
    days: u32,
) -> Result<String> {
    check_node_name(name)?;
    check_days(days)?;
    let (ca_cert_pem, issuer) = ca_issuer(ca_dir)?;
    create_private_dir(out)?;
    let key = KeyPair::generate().context("generating the node key")?;
    let cert = node_params(name, role, days)?.signed_by(&key, &issuer)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_secret(&out.join(NODE_KEY), key_pem.as_bytes())?;
    write_public(&out.join(NODE_CERT), cert.pem().as_bytes())?;
    write_public(&out.join(CA_CERT), ca_cert_pem.as_bytes())?;
    keep_issued(ca_dir, name, &cert.pem(), cert.der())?;
    Ok(fingerprint(cert.der()))
}

/// `suyuan ca renew`: a new certificate for the node in `node_dir`, for the same name, role
/// and key (the key never leaves the node), valid for `days`; the old one is kept as
/// `node.crt.previous`. Returns the new fingerprint and expiry (Unix seconds).
pub fn ca_renew(ca_dir: &Path, node_dir: &Path, days: u32) -> Result<(String, u64)> {
    check_days(days)?;
    let cert_path = node_dir.join(NODE_CERT);
    let old = read_pem_cert(&cert_path)?;
    let me = peer_identity(&old).with_context(|| format!("{}", cert_path.display()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&old)
        .map_err(|e| anyhow::anyhow!("{}: unreadable certificate: {e}", cert_path.display()))?;
    // Only a certificate this CA issued, of a key it has not revoked, is renewed: a renewal
    // must never bring a revoked (stolen) key back.
    let ca = read_pem_cert(&ca_dir.join(CA_CERT))?;
    let valid_at = (parsed.validity().not_before.timestamp().max(0) as u64) + 1;
    super::revocation::issued_by(&ca, &old, valid_at).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a certificate of this CA ({e})",
            cert_path.display()
        )
    })?;
    super::revocation::check_key_not_revoked(ca_dir, &me.name, &me.key, parsed.raw_serial())?;
    let spki = rcgen::SubjectPublicKeyInfo::from_der(parsed.public_key().raw)
        .context("reading the node's public key")?;
    let (_, issuer) = ca_issuer(ca_dir)?;
    let cert = node_params(&me.name, me.role, days)?.signed_by(&spki, &issuer)?;
    // The CA keeps both: revoking the name revokes the old certificate too.
    let old_pem = fs::read_to_string(&cert_path)
        .with_context(|| format!("cannot read {}", cert_path.display()))?;
    keep_issued(ca_dir, &me.name, &old_pem, &old)?;
    fs::copy(&cert_path, node_dir.join("node.crt.previous"))
        .with_context(|| format!("cannot keep {}", cert_path.display()))?;
    replace_public(&cert_path, cert.pem().as_bytes())?;
    keep_issued(ca_dir, &me.name, &cert.pem(), cert.der())?;
    Ok((fingerprint(cert.der()), not_after(cert.der())?))
}

fn check_days(days: u32) -> Result<()> {
    if !(1..=3650).contains(&days) {
        bail!("--days must be between 1 and 3650");
    }
    Ok(())
}

/// The CA keeps a copy of every certificate it issues (`issued/NAME.FINGERPRINT.crt`), so that
/// `ca revoke --name` finds every serial number of that name, renewals included.
fn keep_issued(ca_dir: &Path, name: &str, pem: &str, der: &[u8]) -> Result<()> {
    let issued = ca_dir.join(super::revocation::ISSUED_DIR);
    fs::create_dir_all(&issued).with_context(|| format!("cannot create {}", issued.display()))?;
    let fp = fingerprint(der);
    let path = issued.join(format!("{name}.{}.crt", &fp[..16]));
    if path.exists() {
        return Ok(());
    }
    write_public(&path, pem.as_bytes())
}

/// When a certificate expires (Unix seconds).
pub fn not_after(der: &[u8]) -> Result<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("unreadable certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp().max(0) as u64)
}

/// A warning when this node's certificate expires within [`EXPIRY_WARNING_DAYS`] of `now`.
pub fn expiry_warning(id: &NodeIdentity, now: u64) -> Option<String> {
    let until = not_after(&id.cert).ok()?;
    let left = until.saturating_sub(now) / 86_400;
    (until <= now + EXPIRY_WARNING_DAYS * 86_400).then(|| match until > now {
        true => format!(
            "this node's certificate ({}) expires on {} ({left} days left): ask the CA for a new one (`suyuan ca renew`)",
            id.me.name,
            clock::rfc3339(until)
        ),
        false => format!(
            "this node's certificate ({}) expired on {}: no member will accept it; ask the CA for a new one (`suyuan ca renew`)",
            id.me.name,
            clock::rfc3339(until)
        ),
    })
}

/// A node certificate's parameters: name, role, uses and validity.
fn node_params(name: &str, role: Role, days: u32) -> Result<CertificateParams> {
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
    // Random, so that a renewal (the same key) gets a serial number of its own (RFC 5280
    // 4.1.2.2: unique per CA; rcgen would derive it from the key). Positive: top bit clear.
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let today = (clock::now_unix() / 86_400) as i64;
    let day = |d: i64| {
        let (y, m, dd) = clock::civil_from_days(d);
        rcgen::date_time_ymd(y as i32, m as u8, dd as u8)
    };
    params.not_before = day(today - 1);
    params.not_after = day(today + i64::from(days));
    Ok(params)
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
    /// SHA-256 of the certificate's public key (SubjectPublicKeyInfo): the same across a
    /// renewal (`ca renew`), so what the node signed before it still names this node.
    pub key: String,
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
        key: hex::encode(Sha256::digest(cert.public_key().raw)),
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
