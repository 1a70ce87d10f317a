//! `suyuan canary mint`: identifiers an institution plants in one export (a partner file, an
//! outsourcer's copy, one branch's extract) so that a dump holding them names that export.
//! Only identifiers the institution controls can be minted: e-mail addresses at its own domain
//! and mobile numbers in a range it declares it owns. A made-up resident ID or bank card number
//! that passes its check digit may belong to a real person, so those are refused.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::RngExt;
use suyuan_protocol::ident::{Key, KeyType};

/// Most canaries one run mints.
pub const MAX_CANARIES: u64 = 1_000_000;

/// Characters of a minted e-mail's local part.
const LOCAL_CHARS: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
/// Length of a minted e-mail's local part: 32^12 = 2^60 possibilities.
const LOCAL_LEN: usize = 12;

/// What to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanaryKind {
    /// Addresses `RANDOM@DOMAIN`.
    Email {
        /// A domain the institution controls.
        domain: String,
    },
    /// Numbers `PREFIX` followed by random digits, 11 in all.
    Mobile {
        /// The leading digits of a range the institution owns (3 to 10 digits).
        prefix: String,
    },
    /// Refused: a made-up number may be a real person's.
    ResidentId,
    /// Refused: a made-up number may be a real person's.
    BankCard,
}

/// `count` distinct canaries of `kind` for `export`, each a valid identifier of its type.
pub fn mint(kind: &CanaryKind, count: u64) -> Result<Vec<Key>> {
    if count == 0 || count > MAX_CANARIES {
        bail!("--count must be between 1 and {MAX_CANARIES}");
    }
    let mut rng = rand::rng();
    let mut out = BTreeSet::new();
    match kind {
        CanaryKind::Email { domain } => {
            let probe = format!("canary@{domain}");
            Key::parse(KeyType::Email, &probe).map_err(|r| {
                anyhow::anyhow!(
                    "--email-domain {domain:?}: {probe:?} is not a valid e-mail address ({})",
                    r.as_str()
                )
            })?;
            while (out.len() as u64) < count {
                let local: String = (0..LOCAL_LEN)
                    .map(|_| LOCAL_CHARS[rng.random_range(0..LOCAL_CHARS.len())] as char)
                    .collect();
                out.insert(
                    Key::parse(KeyType::Email, &format!("{local}@{domain}")).map_err(|r| {
                        anyhow::anyhow!("a minted address was refused ({})", r.as_str())
                    })?,
                );
            }
        }
        CanaryKind::Mobile { prefix } => {
            let free = check_mobile_prefix(prefix)?;
            // At most half the range, so that drawing distinct numbers ends quickly.
            let capacity = 10u64.pow(free);
            if count > capacity / 2 {
                bail!(
                    "--mobile-range {prefix}: a range of {capacity} numbers gives at most {} canaries; use a shorter prefix",
                    capacity / 2
                );
            }
            while (out.len() as u64) < count {
                let n = rng.random_range(0..capacity);
                let number = format!("{prefix}{n:0width$}", width = free as usize);
                out.insert(Key::parse(KeyType::Mobile, &number).map_err(|r| {
                    anyhow::anyhow!("a minted number was refused ({})", r.as_str())
                })?);
            }
        }
        CanaryKind::ResidentId => bail!(
            "refusing to mint resident ID numbers: any made-up number with a valid check digit may belong to a real person, who would then be reported as a leak; plant IDs the institution holds for itself (a dormant test account's), or use --email-domain or --mobile-range"
        ),
        CanaryKind::BankCard => bail!(
            "refusing to mint bank card numbers: any made-up number that passes the Luhn check may be a real card; plant card numbers the institution issued to itself (test or dormant accounts), or use --email-domain or --mobile-range"
        ),
    }
    Ok(out.into_iter().collect())
}

/// The number of free digits after a valid mobile prefix.
fn check_mobile_prefix(prefix: &str) -> Result<u32> {
    let valid = prefix.len() >= 3
        && prefix.len() <= 10
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && Key::parse(KeyType::Mobile, &format!("{prefix:0<11}")).is_ok();
    if !valid {
        bail!(
            "--mobile-range {prefix:?}: give the leading 3 to 10 digits of an 11-digit mobile range the institution owns (1, then 3 to 9, then more digits), e.g. 1700000"
        );
    }
    Ok(11 - prefix.len() as u32)
}

/// Writes `canaries` of `export` as a list `suyuan` reads (`export` column, then the
/// identifier's), readable by its owner alone: whoever reads it can avoid the canaries. Refuses
/// to overwrite a file.
pub fn write(path: &Path, export: &str, canaries: &[Key]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if export.is_empty()
        || export.len() > 64
        || export
            .chars()
            .any(|c| c.is_control() || c == ',' || c == '"')
    {
        bail!(
            "--export {export:?}: use 1 to 64 characters, without commas, quotes or control characters"
        );
    }
    let Some(first) = canaries.first() else {
        bail!("no canaries to write");
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let cannot = || format!("cannot write {}", path.display());
    writeln!(w, "export,{}", first.key_type().as_str()).with_context(cannot)?;
    for k in canaries {
        writeln!(w, "{export},{}", k.value()).with_context(cannot)?;
    }
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(cannot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_canaries_are_distinct_valid_and_in_the_declared_range() {
        let mobiles = mint(
            &CanaryKind::Mobile {
                prefix: "1700012".into(),
            },
            2000,
        )
        .unwrap();
        assert_eq!(mobiles.len(), 2000);
        assert!(
            mobiles
                .iter()
                .all(|k| k.key_type() == KeyType::Mobile && k.value().starts_with("1700012"))
        );
        let emails = mint(
            &CanaryKind::Email {
                domain: "canary.bank.example.cn".into(),
            },
            500,
        )
        .unwrap();
        assert_eq!(emails.len(), 500);
        assert!(
            emails
                .iter()
                .all(|k| k.value().ends_with("@canary.bank.example.cn"))
        );
    }

    #[test]
    fn what_cannot_be_minted_is_refused_with_the_reason() {
        let e = mint(&CanaryKind::ResidentId, 10).unwrap_err().to_string();
        assert!(e.contains("may belong to a real person"), "{e}");
        let e = mint(&CanaryKind::BankCard, 10).unwrap_err().to_string();
        assert!(e.contains("may be a real card"), "{e}");
        let e = mint(
            &CanaryKind::Mobile {
                prefix: "1700000001".into(),
            },
            6,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gives at most 5 canaries"), "{e}");
        for bad in ["12", "1200000", "17a0000", "17000000000"] {
            let e = mint(&CanaryKind::Mobile { prefix: bad.into() }, 1)
                .unwrap_err()
                .to_string();
            assert!(e.contains("give the leading 3 to 10 digits"), "{bad}: {e}");
        }
        let e = mint(
            &CanaryKind::Email {
                domain: "no domain".into(),
            },
            1,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not a valid e-mail address"), "{e}");
        assert!(
            mint(
                &CanaryKind::Email {
                    domain: "x.cn".into()
                },
                0
            )
            .is_err()
        );
    }

    #[test]
    fn the_file_is_a_list_for_its_owner_only_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canaries.csv");
        let keys = mint(
            &CanaryKind::Mobile {
                prefix: "17000".into(),
            },
            3,
        )
        .unwrap();
        write(&path, "partner-2019", &keys).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "export,mobile");
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("partner-2019,17000"));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = write(&path, "partner-2019", &keys).unwrap_err();
        assert!(format!("{e:#}").contains("it must not exist yet"), "{e:#}");
        assert!(write(&dir.path().join("b.csv"), "a,b", &keys).is_err());
    }
}
