//! Published cases: a police node's seized dump, imported as a holder epoch of its own (fresh
//! key, own store) so that institutions can check which of their own customers it holds
//! (`suyuan check`), and other police units link their seizures to it in `count` mode. Each
//! case lives in `published/<digest of the case>/` with its store and `case.json`; it is
//! destroyed (store overwritten, then removed) at its expiry or by `suyuan publish --close`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::{EpochMeta, EpochStore};
use super::{Lock, NodeDir};
use crate::Progress;
use crate::lists::{InputOptions, InputSummary};

/// The directory of published cases inside a node directory.
pub const PUBLISHED_DIR: &str = "published";
/// A case's description, written last: a case without it was never published.
const CASE_FILE: &str = "case.json";
/// Longest a case may stay published.
pub const MAX_PUBLISH_DAYS: u64 = 3650;
/// Most members a case may name with `--allow`.
pub const MAX_ALLOWED: usize = 256;

/// What `case.json` says of a published case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseMeta {
    /// The case number.
    pub case: String,
    /// Unix time published.
    pub created: u64,
    /// Unix time from which it is destroyed.
    pub expires: u64,
    /// Members that may check it (empty: every member the policy lets in).
    pub allow: Vec<String>,
    /// The file it was read from (name only).
    pub source: String,
    /// Rows read.
    pub rows: u64,
    /// The epoch's id.
    pub epoch: String,
}

impl CaseMeta {
    /// Whether `member` may check the case.
    pub fn allows(&self, member: &str) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|m| m == member)
    }
}

/// What `publish` is asked to do.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The case number.
    pub case: String,
    /// The dump.
    pub input: PathBuf,
    /// How to read it.
    pub options: InputOptions,
    /// Seconds until it is destroyed.
    pub valid_for: u64,
    /// Members that may check it (empty: any the policy lets in).
    pub allow: Vec<String>,
}

fn cases_dir(node: &NodeDir) -> PathBuf {
    node.path().join(PUBLISHED_DIR)
}

/// The directory of `case`: named by a digest, since case numbers hold any printable text.
fn case_dir(node: &NodeDir, case: &str) -> PathBuf {
    let d = Sha256::digest(case.as_bytes());
    cases_dir(node).join(hex::encode(&d[..16]))
}

fn read_meta(dir: &Path) -> Result<Option<CaseMeta>> {
    let path = dir.join(CASE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("{} is damaged", path.display()))
}

/// `suyuan publish`: imports the dump as the case's own epoch and publishes it until
/// `valid_for` seconds from `now`. A case already published must be closed first.
pub fn publish(
    node: &Path,
    p: &Publication,
    now: u64,
    progress: &mut dyn Progress,
) -> Result<(InputSummary, EpochMeta, CaseMeta)> {
    let node = NodeDir::open(node)?;
    if !crate::node_dir::config::valid_case(&p.case) {
        bail!("--case {:?}: use 1 to 128 printable characters", p.case);
    }
    if p.valid_for < 3600 || p.valid_for > MAX_PUBLISH_DAYS * 86400 {
        bail!("--expires: between an hour and {MAX_PUBLISH_DAYS} days");
    }
    if p.allow.len() > MAX_ALLOWED {
        bail!("--allow: at most {MAX_ALLOWED} members per case");
    }
    for m in &p.allow {
        crate::node_dir::identity::check_node_name(m).with_context(|| format!("--allow {m:?}"))?;
    }
    sweep(&node, now);
    let _lock = node.lock(Lock::Import)?;
    let dir = case_dir(&node, &p.case);
    if let Some(m) = read_meta(&dir)? {
        bail!(
            "case {:?} is already published (until {}); close it first with `suyuan publish --close`",
            m.case,
            crate::clock::rfc3339(m.expires)
        );
    }
    // Left over from a publication that died midway: it was never published.
    if dir.exists() {
        EpochStore::in_dir(&dir)
            .destroy()
            .with_context(|| format!("clearing {}", dir.display()))?;
    }
    let parent = cases_dir(&node);
    if !parent.exists() {
        crate::node_dir::identity::create_private_dir(&parent)?;
    }
    crate::node_dir::identity::create_private_dir(&dir)?;
    let (summary, epoch, meta) =
        crate::lists::import::build_signed(&node, &p.input, &p.options, progress, None)?;
    EpochStore::in_dir(&dir)
        .write(&epoch, &meta)
        .context("storing the case's epoch")?;
    let case = CaseMeta {
        case: p.case.clone(),
        created: now,
        expires: now.saturating_add(p.valid_for),
        allow: p.allow.clone(),
        source: meta.source.clone(),
        rows: meta.rows,
        epoch: meta.id.clone(),
    };
    let json = serde_json::to_vec_pretty(&case)?;
    // Written beside and renamed: a crash leaves no half description (the case is then simply
    // not published, and the next publication clears its directory).
    let tmp = dir.join(format!("{CASE_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    crate::node_dir::identity::write_secret(&tmp, &json)?;
    fs::rename(&tmp, dir.join(CASE_FILE))
        .with_context(|| format!("cannot publish {}", dir.display()))?;
    fs::File::open(&dir)?.sync_all()?;
    Ok((summary, meta, case))
}

/// Destroys the case's store and removes it. `Ok(false)`: nothing was published under it.
pub fn close(node: &NodeDir, case: &str) -> Result<bool> {
    // Not while a publication (of this case, perhaps) is being written.
    let _lock = node.lock(Lock::Import)?;
    let dir = case_dir(node, case);
    if !dir.exists() {
        return Ok(false);
    }
    destroy(&dir)?;
    Ok(true)
}

fn destroy(dir: &Path) -> Result<()> {
    // The description goes first: a case half destroyed is no longer published.
    match fs::remove_file(dir.join(CASE_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", dir.display()));
        }
        _ => {}
    }
    EpochStore::in_dir(dir)
        .destroy()
        .with_context(|| format!("overwriting the store in {}", dir.display()))?;
    fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// Every published case (expired ones included, until swept).
pub fn list(node: &NodeDir) -> Result<Vec<CaseMeta>> {
    Ok(found(node).into_iter().map(|(_, m)| m).collect())
}

/// Every case directory with a readable description, by case number. One that cannot be read
/// is skipped with a warning: it must not stop the others from being listed or swept.
fn found(node: &NodeDir) -> Vec<(PathBuf, CaseMeta)> {
    let dir = cases_dir(node);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        match read_meta(&path) {
            Ok(Some(m)) => out.push((path, m)),
            Ok(None) => {}
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
    out.sort_by(|a, b| a.1.case.cmp(&b.1.case));
    out
}

/// Destroys every case past its expiry; returns their numbers. Skipped while a publication or
/// closing runs (the next sweep comes a second later); failures are logged and tried again.
pub fn sweep(node: &NodeDir, now: u64) -> Vec<String> {
    let mut closed = Vec::new();
    let Ok(_lock) = node.lock(Lock::Import) else {
        return closed;
    };
    for (dir, m) in found(node).into_iter().filter(|(_, m)| m.expires <= now) {
        match destroy(&dir) {
            Ok(()) => closed.push(m.case),
            Err(e) => tracing::warn!("case {:?} expired but was not destroyed: {e:#}", m.case),
        }
    }
    closed
}

/// The store and description of a case published and not expired at `now`.
pub fn open(node: &NodeDir, case: &str, now: u64) -> Result<Option<(EpochStore, CaseMeta)>> {
    let dir = case_dir(node, case);
    match read_meta(&dir)? {
        Some(m) if m.case == case && m.expires > now => Ok(Some((EpochStore::in_dir(&dir), m))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_dir::identity::{self, Role};

    fn police() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (_, node) = identity::test_member(dir.path(), "police", Role::Police);
        let dump = dir.path().join("dump.csv");
        let mut text = String::from("手机号\n");
        for i in 0..50u64 {
            text.push_str(&format!("138{:08}\n", 1000 + i));
        }
        fs::write(&dump, text).unwrap();
        (dir, node, dump)
    }

    fn publication(case: &str, dump: &Path, days: u64) -> Publication {
        Publication {
            case: case.into(),
            input: dump.to_path_buf(),
            options: InputOptions::default(),
            valid_for: days * 86400,
            allow: vec!["bank".into()],
        }
    }

    #[test]
    fn a_case_is_published_found_refused_twice_closed_and_swept() {
        let (_d, node, dump) = police();
        let now = 1_800_000_000;
        let (_, meta, case) = publish(
            &node,
            &publication("2026-京-0042", &dump, 90),
            now,
            &mut crate::Silent,
        )
        .unwrap();
        assert_eq!(case.rows, 50);
        assert_eq!(case.epoch, meta.id);
        assert!(case.allows("bank") && !case.allows("telecom"));
        let dir = NodeDir::open(&node).unwrap();
        let (store, found) = open(&dir, "2026-京-0042", now + 1).unwrap().unwrap();
        assert_eq!(found, case);
        let (epoch, _) = store.read().unwrap().unwrap();
        assert_eq!(epoch.id().to_string(), meta.id);
        assert!(open(&dir, "2026-京-0043", now).unwrap().is_none());
        let again = publish(
            &node,
            &publication("2026-京-0042", &dump, 90),
            now,
            &mut crate::Silent,
        )
        .unwrap_err()
        .to_string();
        assert!(again.contains("already published"), "{again}");
        // Expired: not served, then destroyed by the sweep.
        assert!(
            open(&dir, "2026-京-0042", now + 90 * 86400)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            sweep(&dir, now + 90 * 86400),
            vec!["2026-京-0042".to_string()]
        );
        assert!(list(&dir).unwrap().is_empty());
        assert!(!case_dir(&dir, "2026-京-0042").exists());
        // Published again, closed by hand.
        publish(
            &node,
            &publication("2026-京-0042", &dump, 1),
            now,
            &mut crate::Silent,
        )
        .unwrap();
        assert!(close(&dir, "2026-京-0042").unwrap());
        assert!(!close(&dir, "2026-京-0042").unwrap());
        assert!(open(&dir, "2026-京-0042", now).unwrap().is_none());
    }
}
