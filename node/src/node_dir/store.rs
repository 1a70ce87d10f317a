//! The epoch store: one redb file per epoch, `epoch.redb` in the node directory, holding the
//! epoch's key, its description and labels, and naming the flat file beside it,
//! `epoch-<id>.keys` ([`super::keys_file`]), that holds its sorted tags and its evaluated
//! points `k·H(y)` (where each count session's tags start). A serving node reads that file
//! piece by piece; it never loads it. An import writes the new keys file, then
//! `epoch.redb.tmp`, and renames that over the old store: the switch is atomic, and a crash
//! midway leaves the old epoch in place. The old store is then overwritten with zeros through a
//! handle opened before the switch, so its key (and any copy of it redb kept in an older page)
//! does not stay on disk in the freed blocks; the old keys file, which holds no key, is
//! removed (a node still answering from it keeps it open until that query ends).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::oprf::SecretKey;
use suyuan_protocol::psi::labels::{EpochLabels, LabelKind, LabelSpec, LabelStats, TypeLabels};
use suyuan_protocol::psi::{Epoch, EpochId, Tag};
use zeroize::Zeroizing;

use crate::node_dir::NodeDir;
use crate::node_dir::identity::{self, PrivateFileError};

/// The current epoch's file.
pub const EPOCH_FILE: &str = "epoch.redb";
/// A new epoch's file before the switch.
pub const EPOCH_TMP: &str = "epoch.redb.tmp";

const META: TableDefinition<'static, &str, &str> = TableDefinition::new("meta");
const SECRET: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("secret");
const TAGS_PER_CHUNK: usize = 1 << 16;
/// `(key type code, chunk index)` → the label keys of up to [`TAGS_PER_CHUNK`] keys, 32 bytes
/// each, in tag order (format 3, an import with labels).
const LABEL_KEYS: TableDefinition<'static, (u8, u32), &[u8]> = TableDefinition::new("label_keys");
/// `(key type code, chunk index)` → the labels of up to [`TAGS_PER_CHUNK`] keys in tag order:
/// per key a count byte, then that many `(label: u8, value id: u16 big-endian)`.
const LABEL_SETS: TableDefinition<'static, (u8, u32), &[u8]> = TableDefinition::new("label_sets");
/// The `META` entry holding the labels' specifications and values (JSON).
const LABELS: &str = "labels";
/// The `META` entry holding [`digest`] in hex.
const DIGEST: &str = "digest";
/// The `META` entry naming the store's format.
const FORMAT: &str = "format";
/// The `META` entry naming the epoch's keys file.
const KEYS: &str = "keys";
/// This version's store format: 2 added the evaluated points and `Finalize` tags of protocol
/// version 2; 3 keeps the points in tag order and adds labels; 4 moves tags and points out of
/// redb into the flat keys file, which a node reads instead of loading (and which takes 48
/// bytes per key on disk where redb's pages took 162). Older stores are refused with what to do.
pub const STORE_FORMAT: u32 = 4;
/// The oldest format this version reads.
const OLDEST_READABLE: u32 = 4;

/// What `status` and reports say about an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochMeta {
    /// Hex epoch id.
    pub id: String,
    /// Unix time of the import.
    pub created: u64,
    /// Distinct keys per type.
    pub sizes: BTreeMap<KeyType, u64>,
    /// Rows of the imported file.
    pub rows: u64,
    /// The imported file's name.
    pub source: String,
    /// The epoch statement, signed with the node key at import (`crate::evidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<crate::evidence::Signed>,
    /// The labels the import attached, with what it found for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<LabelSummary>,
    /// The canaries it planted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canaries: Option<CanarySummary>,
}

/// The canaries an import planted (`import --canaries`): held like any record with the label
/// `canary` = their export, and not among the list's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanarySummary {
    /// The canary file's name.
    pub file: String,
    /// Its records.
    pub records: u64,
    /// The exports they name.
    pub exports: Vec<String>,
}

/// One label of an epoch, as `import` and `status` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSummary {
    /// The label's name.
    pub name: String,
    /// `text` or `month`.
    pub kind: LabelKind,
    /// The column it was read from.
    pub header: String,
    /// Distinct values, keys with a value, keys that kept only the first values.
    #[serde(flatten)]
    pub stats: LabelStats,
    /// Non-empty cells that could not be read (a `month` label's unreadable dates).
    pub unreadable: u64,
}

/// The labels' specifications and values, as stored under [`LABELS`].
#[derive(Serialize, Deserialize)]
struct StoredLabels {
    specs: Vec<LabelSpec>,
    values: Vec<Vec<String>>,
}

/// Why the current epoch cannot be served from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database library cannot open the file.
    #[error(
        "the store {} cannot be read ({reason}); refusing to serve from it. Re-import the customer list.",
        path.display()
    )]
    Unreadable {
        /// The store.
        path: PathBuf,
        /// The library's words.
        reason: String,
    },
    /// The file opens but its content is not a whole, consistent epoch.
    #[error(
        "the store {} is corrupt ({what}); refusing to serve from it. Re-import the customer list.",
        path.display()
    )]
    Corrupt {
        /// The store.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A store written by an older suyuan, whose tags this version cannot serve.
    #[error(
        "the store {} was written by an older suyuan (store format {found}; this version needs {STORE_FORMAT}). Re-import the customer list with `suyuan import`.",
        path.display()
    )]
    OldFormat {
        /// The store.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
    /// Others may read the file that holds the epoch key.
    #[error(transparent)]
    NotPrivate(#[from] PrivateFileError),
    /// The database library failed while reading.
    #[error(transparent)]
    Db(#[from] redb::Error),
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        StoreError::Db(e.into())
    }
}

impl From<redb::TransactionError> for StoreError {
    fn from(e: redb::TransactionError) -> Self {
        StoreError::Db(e.into())
    }
}

/// Identifies an epoch file (device, inode, mtime), to notice an import while serving.
pub type Stamp = (u64, u64, i64);

/// A node's epoch store.
#[derive(Debug, Clone)]
pub struct EpochStore {
    dir: PathBuf,
    file: PathBuf,
    tmp: PathBuf,
}

impl EpochStore {
    /// The store of a node directory.
    pub fn of(node: &NodeDir) -> Self {
        EpochStore::in_dir(node.path())
    }

    /// The store kept in `dir` (a published case's, `crate::node_dir::published`).
    pub fn in_dir(dir: &Path) -> Self {
        EpochStore {
            dir: dir.to_path_buf(),
            file: dir.join(EPOCH_FILE),
            tmp: dir.join(EPOCH_TMP),
        }
    }

    /// Overwrites the epoch's file (and any unfinished new one) with zeros and removes them:
    /// its key is gone.
    pub fn destroy(&self) -> std::io::Result<()> {
        discard(&self.tmp)?;
        discard(&self.file)?;
        self.remove_keys_files(None)?;
        File::open(&self.dir)?.sync_all()
    }

    /// Removes every epoch's keys file in the directory but `keep`'s.
    fn remove_keys_files(&self, keep: Option<&str>) -> std::io::Result<()> {
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = super::keys_file::is_keys_file(name)
                || name
                    .strip_suffix(".tmp")
                    .is_some_and(super::keys_file::is_keys_file);
            if stale && Some(name) != keep {
                match fs::remove_file(self.dir.join(name)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Where an import writes the keys file of epoch `id` before the switch
    /// ([`EpochStore::write_adopting`]).
    pub fn keys_tmp(&self, id: EpochId) -> PathBuf {
        self.dir.join(format!("{}.tmp", super::keys_file::name(id)))
    }

    /// Writes `epoch` as the node's current epoch, atomically replacing the previous one,
    /// whose file is then overwritten (see the module comment).
    pub fn write(&self, epoch: &Epoch, meta: &EpochMeta) -> Result<()> {
        self.write_keys(epoch, meta, false)
    }

    /// [`EpochStore::write`] for an epoch whose keys file the import already wrote, complete
    /// and flushed, at [`EpochStore::keys_tmp`] (from its runs, [`super::key_runs`]).
    pub fn write_adopting(&self, epoch: &Epoch, meta: &EpochMeta) -> Result<()> {
        self.write_keys(epoch, meta, true)
    }

    fn write_keys(&self, epoch: &Epoch, meta: &EpochMeta, adopt: bool) -> Result<()> {
        let tmp = &self.tmp;
        // A previous import that died leaves its file here (perhaps with its key); it was
        // never the current epoch.
        discard(tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
        let keys_name = super::keys_file::name(epoch.id());
        let keys = self.dir.join(&keys_name);
        let keys_tmp = self.keys_tmp(epoch.id());
        let wrote = if adopt {
            Ok(())
        } else {
            let _ = fs::remove_file(&keys_tmp);
            super::keys_file::write(&keys_tmp, epoch)
        };
        let written = wrote
            .and_then(|()| Ok(fs::rename(&keys_tmp, &keys)?))
            .with_context(|| format!("writing the new epoch's keys to {}", keys.display()))
            .and_then(|()| {
                write_tmp(tmp, epoch, meta, &keys_name)
                    .with_context(|| format!("writing the new epoch to {}", tmp.display()))
            });
        if written.is_err() {
            // A full disk is the usual cause: give the space back. The old epoch is untouched.
            let _ = discard(tmp);
            let _ = fs::remove_file(&keys_tmp);
            let _ = fs::remove_file(&keys);
        }
        written?;
        // Opened before the switch: afterwards the old file has no name left to open it by.
        let old = match open_to_overwrite(&self.file) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("cannot open the old epoch to overwrite it after the switch: {e}");
                None
            }
        };
        fs::rename(tmp, &self.file).context("switching to the new epoch")?;
        File::open(&self.dir)?.sync_all()?;
        if let Some(old) = old
            && let Err(e) = overwrite(&old)
        {
            // The new epoch is in place either way; only the old file's residue is at stake.
            tracing::warn!("the old epoch's file was not fully overwritten: {e}");
        }
        if let Err(e) = self.remove_keys_files(Some(&keys_name)) {
            tracing::warn!("the old epoch's keys file was not removed: {e}");
        }
        Ok(())
    }

    /// The current epoch, fully loaded and checked (tags sorted, sizes as recorded, digest).
    pub fn read(&self) -> Result<Option<(Epoch, EpochMeta)>, StoreError> {
        let before = self.stamp();
        match self.guarded(|| self.read_unguarded()) {
            // An import switched files while we read the old one, and is overwriting it: what
            // we read was being erased, not damaged. The new file is the current epoch.
            Err(_) if self.stamp() != before => self.guarded(|| self.read_unguarded()),
            r => r,
        }
    }

    /// Identifies the current epoch file, to notice an import while serving.
    pub fn stamp(&self) -> Option<Stamp> {
        fs::metadata(&self.file)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.mtime()))
    }
}

/// Opens a regular file of ours for overwriting: not through a symbolic link, not a FIFO or
/// device, and not one with other names (a hard-linked backup would be erased with it).
fn open_to_overwrite(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() || m.nlink() != 1 {
        return Err(std::io::Error::other(
            "not a regular file with a single name; left as it is",
        ));
    }
    Ok(f)
}

/// Overwrites a file (best effort) and removes it; a missing file is not an error.
fn discard(path: &Path) -> std::io::Result<()> {
    if let Ok(f) = open_to_overwrite(path) {
        let _ = overwrite(&f);
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Overwrites a whole file with zeros and flushes it to the device. Best effort against
/// recovery: journaling, copy-on-write filesystems and flash may keep older copies, which is
/// why the key directory belongs on an encrypted volume (`operations.md`).
fn overwrite(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

fn write_tmp(tmp: &Path, epoch: &Epoch, meta: &EpochMeta, keys_name: &str) -> Result<()> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let db = redb::Builder::new()
        .create_with_backend(redb::backends::FileBackend::new(file)?)
        .with_context(|| format!("cannot create the store {}", tmp.display()))?;
    let txn = db.begin_write()?;
    {
        let mut meta_t = txn.open_table(META)?;
        meta_t.insert("epoch", serde_json::to_string(meta)?.as_str())?;
        let mut secret = txn.open_table(SECRET)?;
        let key = epoch.key().to_bytes();
        secret.insert("key", key.as_slice())?;
        if let Some(labels) = epoch.labels() {
            write_labels(&txn, &mut meta_t, labels)?;
        }
        meta_t.insert(FORMAT, STORE_FORMAT.to_string().as_str())?;
        meta_t.insert(KEYS, keys_name)?;
        let digest = digest(epoch).map_err(anyhow::Error::msg)?;
        meta_t.insert(DIGEST, hex::encode(digest).as_str())?;
    }
    txn.commit().context("committing the new epoch")?;
    drop(db);
    File::open(tmp)?.sync_all()?;
    Ok(())
}

fn write_labels(
    txn: &redb::WriteTransaction,
    meta: &mut redb::Table<'_, &str, &str>,
    labels: &EpochLabels,
) -> Result<()> {
    let stored = StoredLabels {
        specs: labels.specs.clone(),
        values: labels.values.clone(),
    };
    meta.insert(LABELS, serde_json::to_string(&stored)?.as_str())?;
    let mut keys = txn.open_table(LABEL_KEYS)?;
    let mut sets = txn.open_table(LABEL_SETS)?;
    for (kt, t) in &labels.per_type {
        for (i, chunk) in t.keys.chunks(TAGS_PER_CHUNK).enumerate() {
            keys.insert((kt.code(), i as u32), chunk.concat().as_slice())?;
        }
        for (c, start) in (0..t.len()).step_by(TAGS_PER_CHUNK).enumerate() {
            let mut bytes = Vec::new();
            for k in start..(start + TAGS_PER_CHUNK).min(t.len()) {
                let pairs = t.of(k);
                // At most MAX_LABELS · MAX_VALUES_PER_KEY = 32 pairs: the count fits a byte.
                bytes.push(pairs.len() as u8);
                for (l, v) in pairs {
                    bytes.push(*l);
                    bytes.extend_from_slice(&v.to_be_bytes());
                }
            }
            sets.insert((kt.code(), c as u32), bytes.as_slice())?;
        }
    }
    Ok(())
}

/// SHA-256 over the key, every tag and every point (and, with labels, every label), recorded at
/// import and checked at every load: a store damaged on disk is refused instead of answering
/// queries wrongly. Read in blocks, in one pass that also checks that the tags ascend.
pub fn digest(epoch: &Epoch) -> Result<[u8; 32], String> {
    use super::keys_file::BLOCK;
    let mut h = Sha256::new();
    h.update(b"suyuan epoch v2");
    h.update(epoch.id().0);
    h.update(epoch.key().to_bytes());
    for kt in KeyType::ALL {
        let n = epoch.size(kt);
        h.update([kt.code()]);
        h.update(n.to_le_bytes());
        let mut last: Option<Tag> = None;
        for start in (0..n).step_by(BLOCK as usize) {
            let tags = epoch
                .read_tags(kt, start..(start + BLOCK).min(n))
                .map_err(|e| e.to_string())?;
            if last.iter().chain(&tags).is_sorted_by(|a, b| a < b) {
                last = tags.last().copied();
            } else {
                return Err(format!("its {kt} tags are out of order"));
            }
            h.update(tags.as_flattened());
        }
        for start in (0..n).step_by(BLOCK as usize) {
            let points = epoch
                .read_points(kt, start..(start + BLOCK).min(n))
                .map_err(|e| e.to_string())?;
            h.update(points.as_flattened());
        }
    }
    // An epoch without labels keeps the digest of format 2, so such stores still load.
    if let Some(labels) = epoch.labels() {
        h.update(b"labels");
        for (s, values) in labels.specs.iter().zip(&labels.values) {
            h.update((s.name.len() as u64).to_le_bytes());
            h.update(s.name.as_bytes());
            h.update([u8::from(s.kind == LabelKind::Month)]);
            h.update((values.len() as u64).to_le_bytes());
            for v in values {
                h.update((v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
        }
        for (kt, t) in &labels.per_type {
            h.update([kt.code()]);
            for k in &t.keys {
                h.update(k);
            }
            for e in &t.ends {
                h.update(e.to_le_bytes());
            }
            for (l, v) in &t.pairs {
                h.update([*l]);
                h.update(v.to_le_bytes());
            }
        }
    }
    Ok(h.finalize().into())
}

/// redb's page cache while an epoch is read.
const READ_CACHE_BYTES: usize = 16 << 20;

impl EpochStore {
    fn open(&self) -> Result<Option<redb::ReadOnlyDatabase>, StoreError> {
        let p = &self.file;
        if !p.exists() {
            return Ok(None);
        }
        // The store holds the epoch's OPRF key.
        identity::check_private(p)?;
        // Every page is read once, in order, into the epoch: redb's default cache (1 GiB) would
        // only hold a second copy of the store in memory (1.3 GB resident at 10^7 keys).
        let db = redb::Builder::new()
            .set_cache_size(READ_CACHE_BYTES)
            .open_read_only(p)
            .map_err(|e| StoreError::Unreadable {
                path: p.clone(),
                reason: e.to_string(),
            })?;
        Ok(Some(db))
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.file.clone(),
            what: what.to_string(),
        }
    }

    /// Runs `f`, turning a panic inside the database library into a refusal. redb panics on
    /// some damaged files ("malformed allocator state"); a damaged store must be an error, not
    /// a crash, and the panic message is kept off the terminal.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !IN_STORE.with(std::cell::Cell::get) {
                    default(info);
                }
            }));
        });
        IN_STORE.with(|c| c.set(true));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        IN_STORE.with(|c| c.set(false));
        r.unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the database library failed".to_string());
            Err(self.corrupt(&why))
        })
    }

    fn read_unguarded(&self) -> Result<Option<(Epoch, EpochMeta)>, StoreError> {
        // One open, one transaction: the description, key and tags come from the same file
        // even if an import renames a new one into place meanwhile (and if it then erases the
        // old one under us, `read` reads again).
        let Some(db) = self.open()? else {
            return Ok(None);
        };
        let txn = db.begin_read()?;
        self.check_format(&txn)?;
        let meta = self.meta_of(&txn)?;
        let key = self.key_of(&txn)?;
        let id = parse_epoch_id(&meta.id).ok_or_else(|| self.corrupt("invalid epoch id"))?;
        let named = txn
            .open_table(META)
            .map_err(|_| self.corrupt("no meta table"))?
            .get(KEYS)?
            .map(|v| v.value().to_string());
        let keys_name = super::keys_file::name(id);
        if named.as_deref() != Some(keys_name.as_str()) {
            return Err(self.corrupt("it names no keys file of its epoch"));
        }
        let keys_path = self.dir.join(&keys_name);
        identity::check_private(&keys_path)?;
        let keys = super::keys_file::KeysFile::open(&keys_path, id, &meta.sizes)
            .map_err(|what| self.corrupt(&what))?;
        let mut epoch = Epoch::from_source(id, key, meta.sizes.clone(), Box::new(keys));
        if let Some(labels) = self.labels_of(&txn)? {
            epoch = epoch
                .with_labels(labels)
                .map_err(|e| self.corrupt(&e.to_string()))?;
        }
        self.check_digest(&txn, &epoch)?;
        Ok(Some((epoch, meta)))
    }

    fn meta_of(&self, txn: &redb::ReadTransaction) -> Result<EpochMeta, StoreError> {
        let t = txn
            .open_table(META)
            .map_err(|_| self.corrupt("no meta table"))?;
        let raw = t
            .get("epoch")?
            .ok_or_else(|| self.corrupt("no epoch record"))?;
        serde_json::from_str(raw.value()).map_err(|_| self.corrupt("unreadable epoch record"))
    }

    fn key_of(&self, txn: &redb::ReadTransaction) -> Result<SecretKey, StoreError> {
        let secret = txn
            .open_table(SECRET)
            .map_err(|_| self.corrupt("no key table"))?;
        let raw = secret.get("key")?.ok_or_else(|| self.corrupt("no key"))?;
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            raw.value()
                .try_into()
                .map_err(|_| self.corrupt("key of the wrong length"))?,
        );
        SecretKey::from_bytes(&bytes).map_err(|_| self.corrupt("invalid key"))
    }

    /// A store of this version's format (an older one without a `format` entry is format 1).
    fn check_format(&self, txn: &redb::ReadTransaction) -> Result<(), StoreError> {
        let t = txn
            .open_table(META)
            .map_err(|_| self.corrupt("no meta table"))?;
        let found = match t.get(FORMAT)? {
            None => 1,
            Some(v) => v
                .value()
                .parse()
                .map_err(|_| self.corrupt("unreadable format"))?,
        };
        if !(OLDEST_READABLE..=STORE_FORMAT).contains(&found) {
            return Err(StoreError::OldFormat {
                path: self.file.clone(),
                found,
            });
        }
        Ok(())
    }

    /// Every stored tag (or point) per key type, `N` bytes each, the chunks checked complete
    /// and whole.
    fn chunks_of<const N: usize>(
        &self,
        txn: &redb::ReadTransaction,
        table: TableDefinition<'static, (u8, u32), &[u8]>,
        what: &str,
    ) -> Result<BTreeMap<KeyType, Vec<[u8; N]>>, StoreError> {
        let t = txn
            .open_table(table)
            .map_err(|_| self.corrupt(&format!("no {what} table")))?;
        let mut out: BTreeMap<KeyType, Vec<[u8; N]>> = BTreeMap::new();
        let mut expected_chunk: BTreeMap<u8, u32> = BTreeMap::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            let (code, chunk) = k.value();
            let kt = KeyType::from_code(code).ok_or_else(|| self.corrupt("unknown key type"))?;
            let next = expected_chunk.entry(code).or_insert(0);
            if chunk != *next {
                return Err(self.corrupt(&format!("a {what} chunk is missing")));
            }
            *next += 1;
            let v = v.value();
            if v.len() % N != 0 {
                return Err(self.corrupt(&format!("a {what} chunk has a ragged length")));
            }
            let list = out.entry(kt).or_default();
            list.extend(v.chunks_exact(N).map(|t| {
                let mut item = [0u8; N];
                item.copy_from_slice(t);
                item
            }));
        }
        Ok(out)
    }

    /// The stored labels, if the import had any.
    fn labels_of(&self, txn: &redb::ReadTransaction) -> Result<Option<EpochLabels>, StoreError> {
        let t = txn
            .open_table(META)
            .map_err(|_| self.corrupt("no meta table"))?;
        let Some(raw) = t.get(LABELS)? else {
            return Ok(None);
        };
        let stored: StoredLabels = serde_json::from_str(raw.value())
            .map_err(|_| self.corrupt("unreadable label record"))?;
        let keys = self.chunks_of::<32>(txn, LABEL_KEYS, "label key")?;
        let sets = txn
            .open_table(LABEL_SETS)
            .map_err(|_| self.corrupt("no label table"))?;
        let mut per_type = BTreeMap::new();
        for (kt, keys) in keys {
            let mut t = TypeLabels {
                keys,
                ..TypeLabels::default()
            };
            let mut chunk = 0u32;
            while t.ends.len() < t.keys.len() {
                let raw = sets
                    .get((kt.code(), chunk))?
                    .ok_or_else(|| self.corrupt("a label chunk is missing"))?;
                self.parse_sets(raw.value(), &mut t)?;
                chunk += 1;
            }
            if t.ends.len() != t.keys.len() {
                return Err(self.corrupt("label chunks of the wrong size"));
            }
            per_type.insert(kt, t);
        }
        Ok(Some(EpochLabels {
            specs: stored.specs,
            values: stored.values,
            per_type,
        }))
    }

    /// Appends one chunk of encoded label sets to `t`.
    fn parse_sets(&self, mut b: &[u8], t: &mut TypeLabels) -> Result<(), StoreError> {
        while let Some((&n, rest)) = b.split_first() {
            let len = usize::from(n) * 3;
            if rest.len() < len {
                return Err(self.corrupt("a label chunk is cut short"));
            }
            for p in rest[..len].chunks_exact(3) {
                t.pairs.push((p[0], u16::from_be_bytes([p[1], p[2]])));
            }
            t.ends.push(t.pairs.len() as u32);
            b = &rest[len..];
        }
        Ok(())
    }

    fn check_digest(&self, txn: &redb::ReadTransaction, epoch: &Epoch) -> Result<(), StoreError> {
        let recorded = txn
            .open_table(META)
            .map_err(|_| self.corrupt("no meta table"))?
            .get(DIGEST)?
            .map(|v| v.value().to_string());
        let computed = digest(epoch).map_err(|what| self.corrupt(&what))?;
        match recorded {
            Some(d) if hex::encode(computed) != d => {
                Err(self.corrupt("its content no longer matches its digest"))
            }
            Some(_) => Ok(()),
            None => Err(self.corrupt("it has no digest")),
        }
    }
}

thread_local! {
    static IN_STORE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn parse_epoch_id(s: &str) -> Option<EpochId> {
    let b = hex::decode(s).ok()?;
    Some(EpochId(b.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use suyuan_protocol::ident::Key;
    use suyuan_protocol::psi::EpochBuilder;

    use crate::node_dir::keys_file::{self, assert_same_keys};

    fn store(dir: &Path) -> EpochStore {
        NodeDir::at(dir).store()
    }

    fn epoch(n: u64) -> (Epoch, EpochMeta) {
        let mut b = EpochBuilder::new(&mut rand::rng());
        let keys: Vec<Key> = (0..n)
            .map(|i| Key::parse(KeyType::Mobile, &format!("{}", 13_800_000_000 + i)).unwrap())
            .collect();
        b.add(&keys);
        let e = b.finish();
        let meta = EpochMeta {
            id: e.id().to_string(),
            created: 0,
            sizes: e.sizes(),
            rows: n,
            source: "test.csv".into(),
            statement: None,
            labels: Vec::new(),
            canaries: None,
        };
        (e, meta)
    }

    #[test]
    fn labels_survive_the_store_in_tag_order_and_damage_to_them_is_refused() {
        use suyuan_protocol::psi::labels::{LabelKind, LabelSpec};
        let dir = tempfile::tempdir().unwrap();
        let specs = vec![LabelSpec {
            name: "branch".into(),
            kind: LabelKind::Text,
        }];
        // Over one chunk of keys, so the chunked tables are exercised.
        let n = TAGS_PER_CHUNK as u64 + 500;
        let mut b = EpochBuilder::new(&mut rand::rng())
            .with_labels(specs)
            .unwrap();
        let branches = ["乌鲁木齐分行", "北京分行", "上海分行"];
        let rows: Vec<(Vec<Key>, [Option<&str>; 1])> = (0..n)
            .map(|i| {
                let k = Key::parse(KeyType::Mobile, &format!("{}", 13_800_000_000 + i)).unwrap();
                let v = (i % 4 != 3).then(|| branches[(i % 3) as usize]);
                (vec![k], [v])
            })
            .collect();
        let batch: Vec<(&[Key], &[Option<&str>])> = rows
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        b.add_labeled_rows(&batch).unwrap();
        let e = b.finish();
        let (_, mut meta) = epoch(0);
        meta.id = e.id().to_string();
        meta.sizes = e.sizes();
        let s = store(dir.path());
        s.write(&e, &meta).unwrap();
        let (read, _) = s.read().unwrap().unwrap();
        assert_eq!(read.labels(), e.labels());
        assert_same_keys(&read, &e);

        // A flipped value id is caught by the digest.
        let db = redb::Database::open(dir.path().join(EPOCH_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(LABEL_SETS).unwrap();
            let mut v = t
                .get((KeyType::Mobile.code(), 0))
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            let at = v.iter().position(|b| *b == 1).unwrap() + 3;
            v[at] ^= 1;
            t.insert((KeyType::Mobile.code(), 0), v.as_slice()).unwrap();
        }
        txn.commit().unwrap();
        drop(db);
        let err = s.read().unwrap_err().to_string();
        assert!(
            err.contains("is corrupt") && (err.contains("digest") || err.contains("labels")),
            "{err}"
        );
    }

    #[test]
    fn a_store_of_an_older_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let (e, meta) = epoch(20);
        let s = store(dir.path());
        s.write(&e, &meta).unwrap();
        let (read, _) = s.read().unwrap().unwrap();
        assert_same_keys(&read, &e);
        // As a version-3 store, which kept its tags and points in redb.
        let db = redb::Database::open(dir.path().join(EPOCH_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(FORMAT, "3").unwrap();
        txn.commit().unwrap();
        drop(db);
        let err = s.read().unwrap_err();
        assert!(
            matches!(err, StoreError::OldFormat { found: 3, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the store {} was written by an older suyuan (store format 3; this version needs 4). Re-import the customer list with `suyuan import`.",
                dir.path().join(EPOCH_FILE).display()
            )
        );
    }

    #[test]
    fn the_keys_file_is_read_in_pieces_and_damage_to_it_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Over one block of keys, so reads cross blocks.
        let (e, meta) = epoch(keys_file::BLOCK + 300);
        let s = store(dir.path());
        s.write(&e, &meta).unwrap();
        let keys = dir.path().join(keys_file::name(e.id()));
        let len = fs::metadata(&keys).unwrap().len();
        assert_eq!(len, 5 + 16 + 1 + 9 + 48 * (keys_file::BLOCK + 300));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (read, _) = s.read().unwrap().unwrap();
        assert_same_keys(&read, &e);
        let n = e.size(KeyType::Mobile);
        assert_eq!(
            read.read_tags(KeyType::Mobile, n - 2..n).unwrap(),
            e.read_tags(KeyType::Mobile, n - 2..n).unwrap()
        );
        assert!(read.read_tags(KeyType::Mobile, n - 2..n + 1).is_err());

        let original = fs::read(&keys).unwrap();
        let refused = |bytes: &[u8]| {
            fs::write(&keys, bytes).unwrap();
            let err = s.read().unwrap_err().to_string();
            fs::write(&keys, &original).unwrap();
            err
        };
        // A flipped bit in a point: the digest.
        let mut b = original.clone();
        *b.last_mut().unwrap() ^= 1;
        assert!(refused(&b).contains("no longer matches its digest"));
        // Two tags swapped: out of order.
        let mut b = original.clone();
        let t = 31;
        let (x, y) = (b[t..t + 16].to_vec(), b[t + 16..t + 32].to_vec());
        b[t..t + 16].copy_from_slice(&y);
        b[t + 16..t + 32].copy_from_slice(&x);
        assert!(
            refused(&b).contains("tags are out of order"),
            "{}",
            refused(&b)
        );
        // Cut short, or another epoch's file.
        assert!(refused(&original[..original.len() - 1]).contains("where the epoch needs"));
        let mut b = original.clone();
        b[5] ^= 1;
        assert!(refused(&b).contains("belongs to another epoch"));
        assert!(s.read().is_ok());
        // Gone: refused, with the store named.
        fs::remove_file(&keys).unwrap();
        let err = s.read().unwrap_err().to_string();
        assert!(err.contains(&keys.display().to_string()), "{err}");
    }

    #[test]
    fn a_new_epoch_removes_the_old_keys_file_but_a_reader_keeps_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let (first, meta) = epoch(2000);
        let s = store(dir.path());
        s.write(&first, &meta).unwrap();
        let (serving, _) = s.read().unwrap().unwrap();
        let (second, meta) = epoch(10);
        s.write(&second, &meta).unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".keys"))
            .collect();
        assert_eq!(names, vec![keys_file::name(second.id())]);
        // A node answering from the old epoch finishes its query.
        assert_same_keys(&serving, &first);
        s.destroy().unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_new_epoch_overwrites_the_old_file_key_included() {
        let dir = tempfile::tempdir().unwrap();
        let (first, meta) = epoch(3000);
        store(dir.path()).write(&first, &meta).unwrap();
        let key = first.key().to_bytes();
        // A reader that had the old file open (as a process restoring freed blocks would).
        let mut old = File::open(dir.path().join(EPOCH_FILE)).unwrap();
        let mut before = Vec::new();
        old.read_to_end(&mut before).unwrap();
        assert!(before.windows(32).any(|w| w == key.as_slice()));

        let (second, meta) = epoch(10);
        store(dir.path()).write(&second, &meta).unwrap();
        let mut after = Vec::new();
        std::io::Seek::rewind(&mut old).unwrap();
        old.read_to_end(&mut after).unwrap();
        assert_eq!(after.len(), before.len());
        assert!(
            after.iter().all(|&b| b == 0),
            "the old file still holds data"
        );
        // The new epoch is the one that loads.
        let (loaded, _) = store(dir.path()).read().unwrap().unwrap();
        assert_eq!(loaded.id(), second.id());
        assert_eq!(loaded.key().to_bytes(), second.key().to_bytes());
    }

    #[test]
    fn a_hard_linked_backup_of_the_old_epoch_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (first, meta) = epoch(500);
        store(dir.path()).write(&first, &meta).unwrap();
        let backup = dir.path().join("backup.redb");
        fs::hard_link(dir.path().join(EPOCH_FILE), &backup).unwrap();
        let before = fs::read(&backup).unwrap();
        let (second, meta) = epoch(10);
        store(dir.path()).write(&second, &meta).unwrap();
        assert_eq!(fs::read(&backup).unwrap(), before, "the backup was erased");
        assert_eq!(
            store(dir.path()).read().unwrap().unwrap().0.id(),
            second.id()
        );
    }

    #[test]
    fn a_stale_tmp_that_is_a_link_or_a_fifo_is_removed_without_touching_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(EPOCH_TMP);
        let victim = dir.path().join("victim");
        fs::write(&victim, b"not ours to erase").unwrap();
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let (e, meta) = epoch(10);
        store(dir.path()).write(&e, &meta).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"not ours to erase");
        assert!(!tmp.exists());

        // A FIFO must not block the import (opening it for writing would wait for a reader).
        let made = std::process::Command::new("mkfifo").arg(&tmp).status();
        if made.is_ok_and(|s| s.success()) {
            let d = dir.path().to_path_buf();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let (e, meta) = epoch(10);
                let _ = tx.send(store(&d).write(&e, &meta).map(|()| e.id()));
            });
            let id = rx
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("the import does not hang on a FIFO")
                .unwrap();
            assert_eq!(store(dir.path()).read().unwrap().unwrap().0.id(), id);
        }
    }
}
