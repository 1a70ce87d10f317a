//! A node's directory and everything kept in it: its identity (certificate and key), its
//! `node.toml`, the epoch store, the hash-chained audit log and the tag cache. [`NodeDir`]
//! owns every path in it, its locks and its permission checks.

pub mod audit;
pub mod config;
pub mod identity;
pub mod key_runs;
pub mod keys_file;
pub mod published;
pub mod revocation;
pub mod scratch;
pub mod store;
pub mod tag_cache;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use audit::AuditLog;
use config::NodeConfig;
use identity::NodeIdentity;
use store::EpochStore;
use tag_cache::TagCache;

/// A node directory, checked when opened to hold a node certificate.
#[derive(Debug, Clone)]
pub struct NodeDir {
    root: PathBuf,
}

/// What a lock keeps to one process at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// `suyuan serve`: budgets are counted in one process.
    Serve,
    /// `suyuan import`: one new epoch at a time.
    Import,
}

impl Lock {
    /// The command it belongs to, as the lock file and messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Lock::Serve => "serve",
            Lock::Import => "import",
        }
    }
}

impl NodeDir {
    /// Opens the node directory at `path`; fails unless it holds a node certificate.
    pub fn open(path: &Path) -> Result<NodeDir> {
        let node = NodeDir::at(path);
        if !node.node_cert().exists() {
            bail!(
                "{} is not a node directory (create one with `suyuan ca issue`)",
                path.display()
            );
        }
        Ok(node)
    }

    /// The directory at `path`, unchecked: for the path-taking entry points of the modules.
    pub(crate) fn at(path: &Path) -> NodeDir {
        NodeDir {
            root: path.to_path_buf(),
        }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `node.crt`.
    pub fn node_cert(&self) -> PathBuf {
        self.root.join(identity::NODE_CERT)
    }

    /// `node.key` (must be private).
    pub fn node_key(&self) -> PathBuf {
        self.root.join(identity::NODE_KEY)
    }

    /// `crl.pem`, the revocation list installed (`suyuan crl install`), if any.
    pub fn crl_file(&self) -> PathBuf {
        self.root.join(revocation::CRL_FILE)
    }

    /// `ca.crt`, the federation's trust anchor.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join(identity::CA_CERT)
    }

    /// `node.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.root.join(config::NODE_TOML)
    }

    /// `epoch.redb`, the current epoch (must be private: it holds the OPRF key).
    pub fn epoch_file(&self) -> PathBuf {
        self.root.join(store::EPOCH_FILE)
    }

    /// `epoch.redb.tmp`, an import's new epoch before the switch.
    pub fn epoch_tmp(&self) -> PathBuf {
        self.root.join(store::EPOCH_TMP)
    }

    /// `audit.log`.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join(audit::AUDIT_LOG)
    }

    /// `audit.head`.
    pub fn audit_head(&self) -> PathBuf {
        self.root.join(audit::AUDIT_HEAD)
    }

    /// `audit.torn`, uncommitted appends set aside.
    pub fn audit_torn(&self) -> PathBuf {
        self.root.join(audit::AUDIT_TORN)
    }

    /// `tag-cache/`.
    pub fn tag_cache_dir(&self) -> PathBuf {
        self.root.join(tag_cache::CACHE_DIR)
    }

    /// `serve.lock`, `import.lock`.
    pub fn lock_file(&self, what: Lock) -> PathBuf {
        self.root.join(format!("{}.lock", what.as_str()))
    }

    /// Takes an exclusive lock for as long as the returned file lives, so two `serve` (or two
    /// `import`) processes never work on one node at once.
    pub fn lock(&self, what: Lock) -> Result<File> {
        let path = self.lock_file(what);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another `suyuan {}` is already running on {}",
                what.as_str(),
                self.root.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// This node's identity; refuses a key others may read.
    pub fn identity(&self) -> Result<NodeIdentity> {
        identity::load(self)
    }

    /// `node.toml`, checked (the defaults when absent); deprecated names are logged.
    pub fn config(&self) -> Result<NodeConfig, config::ConfigError> {
        config::load_file(&self.config_file())
    }

    /// The audit log.
    pub fn audit(&self) -> AuditLog {
        AuditLog::of(self)
    }

    /// The epoch store.
    pub fn store(&self) -> EpochStore {
        EpochStore::of(self)
    }

    /// The tag cache, holding at most `limit` bytes.
    pub fn tag_cache(&self, limit: u64) -> TagCache {
        TagCache::of(self, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_directory_is_checked_once_opened_and_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let err = NodeDir::open(dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a node directory (create one with `suyuan ca issue`)",
                dir.path().display()
            )
        );
        std::fs::write(dir.path().join(identity::NODE_CERT), "").unwrap();
        let node = NodeDir::open(dir.path()).unwrap();
        assert_eq!(node.epoch_file(), dir.path().join("epoch.redb"));
        let held = node.lock(Lock::Serve).unwrap();
        assert_eq!(
            node.lock(Lock::Serve).unwrap_err().to_string(),
            format!(
                "another `suyuan serve` is already running on {}",
                dir.path().display()
            )
        );
        let import = node.lock(Lock::Import).unwrap();
        drop((held, import));
        assert!(node.lock(Lock::Serve).is_ok());
    }
}
