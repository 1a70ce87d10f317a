//! The federation directory: the members a querier may ask (name, role, address, key), signed
//! by the federation CA, numbered and dated. `suyuan ca directory` writes one;
//! `suyuan query --directory FILE --all-institutions` (or `--peer NAME`) asks its members. A
//! directory that was edited, signed by another CA, or past its expiry is refused with the
//! reason; a member that answers with another key than the directory lists is not queried.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::Signed;
use crate::clock;
use crate::node_dir::identity::{self, CA_CERT, Role};
use crate::node_dir::revocation::{self, ISSUED_DIR};

/// The context string the CA signs a directory under.
pub const DIRECTORY_CONTEXT: &str = "suyuan federation directory v1";
/// Days a directory is current for unless said otherwise.
pub const DEFAULT_DIRECTORY_DAYS: u32 = 90;
/// The CA's count of directories signed, in its directory.
const NUMBER_FILE: &str = "directory.number";

/// One member as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its node name.
    pub name: String,
    /// Its role, from its certificate.
    pub role: Role,
    /// `HOST:PORT` to dial.
    pub address: String,
    /// SHA-256 of its certificate's public key (the same across renewals).
    pub key: String,
}

/// The signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Grows with each directory the CA signs.
    pub number: u64,
    /// When it was signed (Unix seconds).
    pub created: u64,
    /// When it stops being current (Unix seconds).
    pub expires: u64,
    /// The members, in the order given.
    pub members: Vec<Member>,
}

/// `suyuan ca directory`: signs a directory of `members` (`NAME=HOST:PORT`, each a member the
/// CA issued a certificate to and did not revoke), current for `days`, and writes it to `out`.
pub fn ca_directory(
    ca_dir: &Path,
    members: &[(String, String)],
    days: u32,
    out: &Path,
) -> Result<Directory> {
    if !(1..=3650).contains(&days) {
        bail!("--days must be between 1 and 3650");
    }
    if members.is_empty() {
        bail!("no member given: add --add NAME=HOST:PORT");
    }
    let revoked = revocation::revoked_serials(ca_dir)?;
    let mut listed = Vec::new();
    for (name, address) in members {
        if listed.iter().any(|m: &Member| m.name == *name) {
            bail!("{name} is given twice");
        }
        let cert = latest_issued(ca_dir, name, &revoked)?;
        let id = identity::peer_identity(&cert)?;
        listed.push(Member {
            name: name.clone(),
            role: id.role,
            address: address.clone(),
            key: id.key,
        });
    }
    let number_path = ca_dir.join(NUMBER_FILE);
    let number = fs::read_to_string(&number_path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let created = clock::now_unix();
    let dir = Directory {
        number,
        created,
        expires: created + u64::from(days) * 86_400,
        members: listed,
    };
    let ca_cert = CertificateDer::from_pem_file(ca_dir.join(CA_CERT))
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca_dir.join(CA_CERT).display()))?;
    let key_pem = identity::ca_key_pem(ca_dir)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("reading the CA key: {e}"))?;
    let signed =
        Signed::sign(DIRECTORY_CONTEXT, &dir, &key, &ca_cert).context("signing the directory")?;
    let text = format!(
        "# suyuan federation directory number {number}, signed by the federation CA; any edit breaks the signature.\n{}",
        toml::to_string(&signed).context("writing the directory")?
    );
    fs::write(&number_path, format!("{number}\n"))
        .with_context(|| format!("cannot write {}", number_path.display()))?;
    fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(dir)
}

/// The newest certificate the CA issued to `name` that has not expired, of a key none of whose
/// certificates is revoked.
fn latest_issued(ca_dir: &Path, name: &str, revoked: &[String]) -> Result<CertificateDer<'static>> {
    let dir = ca_dir.join(ISSUED_DIR);
    let prefix = format!("{name}.");
    let now = clock::now_unix();
    // (expiry, when the CA wrote it, key, revoked, certificate)
    let mut all = Vec::new();
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if !file.starts_with(&prefix) || !file.ends_with(".crt") {
            continue;
        }
        let der = CertificateDer::from_pem_file(e.path())
            .map_err(|err| anyhow::anyhow!("{}: {err}", e.path().display()))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).map_err(|err| {
            anyhow::anyhow!("{}: unreadable certificate: {err}", e.path().display())
        })?;
        let is_revoked = revoked.contains(&hex::encode(parsed.raw_serial()));
        let written = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let key = identity::peer_identity(&der)?.key;
        all.push((identity::not_after(&der)?, written, key, is_revoked, der));
    }
    let revoked_keys: Vec<&String> = all.iter().filter(|c| c.3).map(|c| &c.2).collect();
    // Newest by expiry, then by when the CA wrote it (certificates of one day expire together).
    let best = all
        .iter()
        .filter(|c| c.0 > now && !revoked_keys.contains(&&c.2))
        .max_by_key(|c| (c.0, c.1));
    match best {
        Some(c) => Ok(c.4.clone()),
        None if !revoked_keys.is_empty() => bail!("{name} is revoked: not listed"),
        None if !all.is_empty() => bail!("{name}'s certificates have all expired: not listed"),
        None => bail!(
            "{}: no certificate issued to {name} by this CA",
            dir.display()
        ),
    }
}

/// Reads the directory in `path` and checks it: signed by `ca` (the federation CA certificate
/// this node trusts), unedited, and current at `now`.
pub fn load(path: &Path, ca: &CertificateDer<'static>, now: u64) -> Result<Directory> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let signed: Signed = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a federation directory: {e}", path.display()))?;
    let cert = signed
        .certificate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if identity::fingerprint(&cert) != identity::fingerprint(ca) {
        bail!("{}: not signed by this federation's CA", path.display());
    }
    let dir: Directory = signed.open(DIRECTORY_CONTEXT).map_err(|e| {
        anyhow::anyhow!(
            "{}: refused, its signature does not verify (edited after signing?): {e}",
            path.display()
        )
    })?;
    if now >= dir.expires {
        bail!(
            "{}: directory number {} expired on {}; ask the CA for a current one (`suyuan ca directory`)",
            path.display(),
            dir.number,
            clock::rfc3339(dir.expires)
        );
    }
    Ok(dir)
}

impl Directory {
    /// The member called `name`.
    pub fn member(&self, name: &str) -> Result<&Member> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .with_context(|| {
                format!(
                    "{name} is not in the federation directory (number {})",
                    self.number
                )
            })
    }

    /// Every institution it lists.
    pub fn institutions(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == Role::Institution)
    }
}
