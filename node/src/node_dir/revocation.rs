//! Certificate revocation. The CA keeps what it revoked (`revocations.json`) and signs a
//! revocation list (`crl.pem`, RFC 5280: a number that only grows, this and next update);
//! each node installs the list in its directory (`crl.pem`) and refuses revoked peers in both
//! directions during the TLS handshake. `serve` picks a newly installed list up within a
//! second, or at SIGHUP, without restarting.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rcgen::{CertificateRevocationListParams, RevokedCertParams, SerialNumber};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use serde::{Deserialize, Serialize};

use super::NodeDir;
use crate::clock;

/// The list's file name, in the CA's directory and in each node's.
pub const CRL_FILE: &str = "crl.pem";
/// What the CA revoked, in its directory.
const REVOCATIONS_FILE: &str = "revocations.json";
/// Copies of every certificate the CA issued, by node name, in its directory.
pub const ISSUED_DIR: &str = "issued";
/// Days a list is current for unless said otherwise.
pub const DEFAULT_CRL_DAYS: u32 = 30;

/// One revoked certificate, as the CA records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The certificate's serial number, hex.
    pub serial: String,
    /// The node it named.
    pub name: String,
    /// Why, as the operator said it.
    pub reason: String,
    /// When (Unix seconds).
    pub time: u64,
}

/// The CA's record: the last list's number and every revocation.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Revocations {
    crl_number: u64,
    revoked: Vec<Revoked>,
}

/// A list's facts, for messages and `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// Its number.
    pub number: u64,
    /// Certificates it revokes.
    pub revoked: usize,
    /// When the next list is due (Unix seconds).
    pub next_update: u64,
}

impl CrlInfo {
    /// A warning if the list is past its next update at `now`.
    pub fn stale(&self, now: u64) -> Option<String> {
        (now >= self.next_update).then(|| {
            format!(
                "the certificate revocation list (number {}) was due to be replaced on {}; ask the CA for a current one (`suyuan ca crl`) and install it",
                self.number,
                clock::rfc3339(self.next_update)
            )
        })
    }
}

/// Reads a list's number, size and next update.
pub fn crl_info(der: &[u8]) -> Result<CrlInfo> {
    let (_, crl) = x509_parser::parse_x509_crl(der)
        .map_err(|e| anyhow::anyhow!("not a certificate revocation list: {e}"))?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n).ok())
        .context("the list has no CRL number")?;
    let next_update = crl
        .next_update()
        .map(|t| t.timestamp().max(0) as u64)
        .context("the list has no next-update time")?;
    Ok(CrlInfo {
        number,
        revoked: crl.iter_revoked_certificates().count(),
        next_update,
    })
}

/// `suyuan ca revoke`: records the revocation of every certificate the CA issued to `name`
/// (renewals included; or only `cert`) and signs a new list. Returns the list's path and facts.
pub fn ca_revoke(
    ca_dir: &Path,
    name: &str,
    cert: Option<&Path>,
    reason: &str,
    days: u32,
) -> Result<(PathBuf, CrlInfo)> {
    if reason.trim().is_empty() || reason.len() > 256 || reason.chars().any(char::is_control) {
        bail!("--reason: say why in 1 to 256 printable characters");
    }
    let files = match cert {
        Some(c) => vec![c.to_path_buf()],
        None => issued_to(ca_dir, name)?,
    };
    if files.is_empty() {
        bail!(
            "{}: no certificate of {name} to revoke; give its node.crt with --cert",
            ca_dir.join(ISSUED_DIR).display()
        );
    }
    let mut record = read_revocations(ca_dir)?;
    for path in files {
        let der = CertificateDer::from_pem_file(&path)
            .map_err(|e| anyhow::anyhow!("{}: not a readable certificate: {e}", path.display()))?;
        let named = super::identity::peer_identity(&der)?;
        if named.name != name {
            bail!("{} names {}, not {name}", path.display(), named.name);
        }
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anyhow::anyhow!("{}: unreadable certificate: {e}", path.display()))?;
        let serial = hex::encode(parsed.raw_serial());
        if !record.revoked.iter().any(|r| r.serial == serial) {
            record.revoked.push(Revoked {
                serial,
                name: name.to_string(),
                reason: reason.trim().to_string(),
                time: clock::now_unix(),
            });
        }
    }
    sign_and_write(ca_dir, &mut record, days)
}

/// The copies of the certificates the CA issued to `name`.
fn issued_to(ca_dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let dir = ca_dir.join(ISSUED_DIR);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{name}.");
    let mut out = Vec::new();
    for e in entries {
        let path = e
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        if file.starts_with(&prefix) && file.ends_with(".crt") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// `suyuan ca crl`: a freshly signed list (the next number, a new next-update time) of every
/// revocation so far; also kept in the CA's directory.
pub fn ca_crl(ca_dir: &Path, days: u32) -> Result<(PathBuf, CrlInfo)> {
    let mut record = read_revocations(ca_dir)?;
    sign_and_write(ca_dir, &mut record, days)
}

/// Serial numbers (hex) the CA has revoked.
pub fn revoked_serials(ca_dir: &Path) -> Result<Vec<String>> {
    Ok(read_revocations(ca_dir)?
        .revoked
        .into_iter()
        .map(|r| r.serial)
        .collect())
}

fn read_revocations(ca_dir: &Path) -> Result<Revocations> {
    let path = ca_dir.join(REVOCATIONS_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{}: unreadable revocation record", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revocations::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn sign_and_write(
    ca_dir: &Path,
    record: &mut Revocations,
    days: u32,
) -> Result<(PathBuf, CrlInfo)> {
    if !(1..=366).contains(&days) {
        bail!("--days must be between 1 and 366");
    }
    record.crl_number += 1;
    let today = (clock::now_unix() / 86_400) as i64;
    let pem = sign_crl(ca_dir, record, today, today + i64::from(days))?;
    // The record first: a list is never signed with a number the record has not kept.
    super::identity::replace_public(
        &ca_dir.join(REVOCATIONS_FILE),
        (serde_json::to_string_pretty(&record)? + "\n").as_bytes(),
    )?;
    let path = ca_dir.join(CRL_FILE);
    super::identity::replace_public(&path, pem.as_bytes())?;
    let der = CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the new list does not read back: {e}"))?;
    Ok((path, crl_info(&der)?))
}

/// Signs the list of `record` with the CA key, valid from day `from` to day `until` (days
/// since 1970, UTC midnight).
fn sign_crl(ca_dir: &Path, record: &Revocations, from: i64, until: i64) -> Result<String> {
    let (_, issuer) = super::identity::ca_issuer(ca_dir)?;
    let day = |d: i64| {
        let (y, m, dd) = clock::civil_from_days(d);
        rcgen::date_time_ymd(y as i32, m as u8, dd as u8)
    };
    let mut revoked = Vec::new();
    for r in &record.revoked {
        let serial = hex::decode(&r.serial).context("a serial number in the revocation record")?;
        revoked.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: day((r.time / 86_400) as i64),
            reason_code: None,
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update: day(from),
        next_update: day(until),
        crl_number: SerialNumber::from(record.crl_number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    Ok(params
        .signed_by(&issuer)
        .context("signing the revocation list")?
        .pem()?)
}

/// `suyuan crl install`: checks `file` against this node's CA and its current list, and
/// installs it. Returns its facts and warnings (stale, or this node's own certificate revoked).
pub fn install(node: &NodeDir, file: &Path) -> Result<(CrlInfo, Vec<String>)> {
    let der = CertificateRevocationListDer::from_pem_file(file).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a PEM certificate revocation list: {e}",
            file.display()
        )
    })?;
    let info = crl_info(&der).with_context(|| format!("{}", file.display()))?;
    // Read directly, not through `identity()`, which would refuse a damaged installed list: a
    // good list must be able to replace it.
    let ca = CertificateDer::from_pem_file(node.ca_cert())
        .map_err(|e| anyhow::anyhow!("{}: {e}", node.ca_cert().display()))?;
    let own = CertificateDer::from_pem_file(node.node_cert())
        .map_err(|e| anyhow::anyhow!("{}: {e}", node.node_cert().display()))?;
    // Judged while the node's own certificate is valid, so that its expiry is not taken for a
    // bad list.
    let at = clock::now_unix().min(super::identity::not_after(&own)?.saturating_sub(1));
    let mut warnings = Vec::new();
    match check_against(&ca, &own, std::slice::from_ref(&der), at) {
        Ok(()) => {}
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)) => warnings.push(
            "this node's own certificate is revoked by this list: no other member will accept it"
                .to_string(),
        ),
        Err(e) => bail!(
            "{}: not a revocation list of this federation's CA ({e})",
            file.display()
        ),
    }
    let current = match installed(node) {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("replacing an unreadable list: {e:#}"));
            None
        }
    };
    let installed_info = current
        .as_ref()
        .and_then(|c| crl_info(c).ok().map(|i| (c, i)));
    if let Some((current, now)) = installed_info
        && (info.number < now.number
            || (info.number == now.number && current.as_ref() != der.as_ref()))
    {
        bail!(
            "{}: list number {} is not newer than the installed one (number {}); refusing to go back",
            file.display(),
            info.number,
            now.number
        );
    }
    warnings.extend(info.stale(clock::now_unix()));
    let pem = fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    super::identity::replace_public(&node.crl_file(), &pem)?;
    Ok((info, warnings))
}

/// The list installed in `node`, if any.
pub fn installed(node: &NodeDir) -> Result<Option<CertificateRevocationListDer<'static>>> {
    let path = node.crl_file();
    if !path.exists() {
        return Ok(None);
    }
    CertificateRevocationListDer::from_pem_file(&path)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: unreadable revocation list: {e}", path.display()))
}

/// Whether `cert` passes the handshake's checks at Unix time `at` with `crls` (the lists'
/// signatures by the CA included).
fn check_against(
    ca: &CertificateDer<'static>,
    cert: &CertificateDer<'static>,
    crls: &[CertificateRevocationListDer<'static>],
    at: u64,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone())?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .with_crls(crls.iter().cloned())
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    let when = UnixTime::since_unix_epoch(Duration::from_secs(at));
    verifier.verify_client_cert(cert, &[], when).map(|_| ())
}

/// Whether the CA `ca` issued `cert` (judged at Unix time `at`, when it was valid).
pub(crate) fn issued_by(
    ca: &CertificateDer<'static>,
    cert: &CertificateDer<'static>,
    at: u64,
) -> Result<(), rustls::Error> {
    check_against(ca, cert, &[], at)
}

/// Refuses when `serial` or any certificate the CA issued to `name` with the same key (hex
/// SHA-256 of its public key) is revoked.
pub(crate) fn check_key_not_revoked(
    ca_dir: &Path,
    name: &str,
    key: &str,
    serial: &[u8],
) -> Result<()> {
    let revoked = revoked_serials(ca_dir)?;
    let mut serials = vec![hex::encode(serial)];
    for path in issued_to(ca_dir, name)? {
        let der = CertificateDer::from_pem_file(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if super::identity::peer_identity(&der)?.key == key {
            let (_, c) = x509_parser::parse_x509_certificate(&der)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            serials.push(hex::encode(c.raw_serial()));
        }
    }
    if serials.iter().any(|s| revoked.contains(s)) {
        bail!("{name}'s key is revoked: issue a new identity with `suyuan ca issue` instead");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn sign_crl_for_test(ca_dir: &Path, from_day: i64, until_day: i64) -> Result<String> {
    let mut record = read_revocations(ca_dir)?;
    record.crl_number += 1;
    super::identity::replace_public(
        &ca_dir.join(REVOCATIONS_FILE),
        serde_json::to_string(&record)?.as_bytes(),
    )?;
    sign_crl(ca_dir, &record, from_day, until_day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_dir::identity::{Role, test_member};

    #[test]
    fn a_list_past_its_next_update_is_installed_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = test_member(dir.path(), "bank", Role::Institution);
        let today = (clock::now_unix() / 86_400) as i64;
        let pem = sign_crl_for_test(&ca, today - 10, today - 1).unwrap();
        let file = dir.path().join("old.pem");
        fs::write(&file, pem).unwrap();
        let node = NodeDir::open(&dir.path().join("bank")).unwrap();
        let (info, warnings) = install(&node, &file).unwrap();
        assert_eq!(info.revoked, 0);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("was due to be replaced on"),
            "{warnings:?}"
        );
        assert!(info.stale(clock::now_unix()).is_some());
        // The node loads it with its identity, and a revoked peer's list says so.
        assert_eq!(node.identity().unwrap().crls.len(), 1);
        let (_, info) = ca_revoke(&ca, "bank", None, "test", 30).unwrap();
        assert!(info.stale(clock::now_unix()).is_none());
        let (_, warnings) = install(&node, &ca.join(CRL_FILE)).unwrap();
        assert_eq!(
            warnings,
            ["this node's own certificate is revoked by this list: no other member will accept it"]
        );
    }
}
