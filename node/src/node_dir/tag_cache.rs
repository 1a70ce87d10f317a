//! The querier's kept tag sets, one file per holder in `NODE_DIR/tag-cache/`: a repeated query
//! to the same epoch offers the kept set (by epoch id and digest) instead of downloading it
//! again. Bounded in bytes, least recently used first out; `suyuan cache clear` empties it.
//! The order of use is recorded, not guessed from file times: each use of a set writes the
//! next use number (one more than any recorded) to `PEER.used` beside `PEER.tags`.
//!
//! File format: `SYTS1` · epoch id (16) · ℓ (1) · sections (1) · per section: key type code
//! (1), count (u64 BE) · the tags of every section concatenated · the set's digest (32). A file
//! whose digest does not match its content is deleted, not used.

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{EpochId, Section, TagSet};

use crate::node_dir::NodeDir;
use crate::node_dir::identity::check_node_name;

/// The directory inside a node directory.
pub const CACHE_DIR: &str = "tag-cache";
const MAGIC: &[u8; 5] = b"SYTS1";

/// One kept set: its file, its size, and when it was last used (a use number, 0 if never
/// recorded).
struct Kept {
    path: PathBuf,
    len: u64,
    used: u64,
}

/// One node's cache of kept tag sets.
#[derive(Debug, Clone)]
pub struct TagCache {
    dir: PathBuf,
    limit: u64,
}

impl TagCache {
    /// The cache of a node directory, holding at most `limit` bytes (0: keep nothing).
    pub fn of(node: &NodeDir, limit: u64) -> Self {
        TagCache {
            dir: node.tag_cache_dir(),
            limit,
        }
    }

    /// Its directory (which may not exist yet).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, peer: &str) -> Option<PathBuf> {
        // Node names are DNS labels, so a name is a safe file name; anything else is not kept.
        check_node_name(peer).ok()?;
        Some(self.dir.join(format!("{peer}.tags")))
    }

    /// The set kept for `peer`, if there is one and it is intact, with its digest (checked
    /// while reading, so the caller need not hash the set again). Marks it recently used.
    pub fn load(&self, peer: &str) -> Option<(TagSet, [u8; 32])> {
        let path = self.path(peer)?;
        let bytes = fs::read(&path).ok()?;
        match decode(&bytes) {
            Some(set) => {
                self.mark_used(&path);
                let (_, digest) = bytes.split_last_chunk::<32>()?;
                Some((set, *digest))
            }
            None => {
                tracing::warn!(file = %path.display(), "kept tag set damaged; removed");
                let _ = fs::remove_file(&path);
                let _ = fs::remove_file(path.with_extension("used"));
                None
            }
        }
    }

    /// The set kept for `peer` without loading it: its description, if the file is intact
    /// (its digest checked in one pass, a block at a time). Marks it recently used. For a set
    /// too large to hold in memory; [`TagCache::load`] loads a small one.
    pub fn peek(&self, peer: &str) -> Option<KeptFile> {
        let path = self.path(peer)?;
        match read_described(&path) {
            Some(kept) => {
                self.mark_used(&path);
                Some(kept)
            }
            None => {
                if path.exists() {
                    tracing::warn!(file = %path.display(), "kept tag set damaged; removed");
                    let _ = fs::remove_file(&path);
                    let _ = fs::remove_file(path.with_extension("used"));
                }
                None
            }
        }
    }

    /// Keeps the complete file at `file` (this module's format, written by the caller in
    /// this cache's directory) for `peer`, by renaming it; then evicts as
    /// [`TagCache::store`] does. A file larger than the whole limit is removed instead.
    pub fn adopt(&self, peer: &str, file: &Path) -> Result<()> {
        let len = fs::metadata(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .len();
        let Some(path) = self.path(peer).filter(|_| len <= self.limit) else {
            return fs::remove_file(file)
                .with_context(|| format!("cannot remove {}", file.display()));
        };
        if let Err(e) = fs::rename(file, &path) {
            let _ = fs::remove_file(file);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        self.mark_used(&path);
        self.evict(&path)
    }

    /// Keeps `set` for `peer` (replacing what was kept), then drops the least recently used
    /// sets until the cache fits its limit. A set larger than the whole limit is not kept.
    pub fn store(&self, peer: &str, set: &TagSet) -> Result<()> {
        let Some(path) = self.path(peer) else {
            return Ok(());
        };
        if encoded_len(set) > self.limit {
            let _ = fs::remove_file(&path);
            let _ = fs::remove_file(path.with_extension("used"));
            return Ok(());
        }
        super::scratch::ensure_private_dir(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // A temporary name of its own: two queries of this node may keep sets at once.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            "{peer}.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = BufWriter::new(f);
            write_set(&mut w, set)?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        self.mark_used(&path);
        self.evict(&path)
    }

    /// Records that the set in `path` is now the most recently used. Best effort: a set whose
    /// use was not recorded is merely the first to go.
    fn mark_used(&self, path: &Path) {
        let next = self.entries().iter().map(|k| k.used).max().unwrap_or(0) + 1;
        if let Err(e) = fs::write(path.with_extension("used"), next.to_string()) {
            tracing::debug!(file = %path.display(), "cannot record the use of a kept set: {e}");
        }
    }

    fn entries(&self) -> Vec<Kept> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "tags"))
            .filter_map(|e| {
                let path = e.path();
                let used = fs::read_to_string(path.with_extension("used"))
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                let len = e.metadata().ok()?.len();
                Some(Kept { path, len, used })
            })
            .collect()
    }

    /// Drops the least recently used sets other than `keep` until the cache fits its limit.
    fn evict(&self, keep: &Path) -> Result<()> {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|k| k.len).sum();
        entries.sort_by(|a, b| (a.used, &a.path).cmp(&(b.used, &b.path)));
        for k in entries {
            if total <= self.limit {
                break;
            }
            if k.path != keep {
                remove(&k.path)?;
                total -= k.len;
            }
        }
        Ok(())
    }

    /// Sets kept and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        let e = self.entries();
        (e.len(), e.iter().map(|k| k.len).sum())
    }

    /// Removes every kept set; returns how many there were and their bytes.
    pub fn clear(&self) -> Result<(usize, u64)> {
        let entries = self.entries();
        for k in &entries {
            remove(&k.path)?;
        }
        Ok((entries.len(), entries.iter().map(|k| k.len).sum()))
    }
}

/// Removes a kept set and its use record; another query of this node may have removed them
/// first.
fn remove(path: &Path) -> Result<()> {
    let _ = fs::remove_file(path.with_extension("used"));
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A kept set described but not loaded ([`TagCache::peek`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFile {
    /// The file.
    pub path: PathBuf,
    /// Its epoch, tag length and sections.
    pub epoch: EpochId,
    /// Bytes per tag.
    pub tag_len: u8,
    /// Key types and counts, as in the file.
    pub sections: Vec<Section>,
    /// Where its tags start.
    pub header: u64,
    /// [`TagSet::digest`] of its content (checked).
    pub digest: [u8; 32],
}

/// Reads a kept file's header and checks its digest against its content in one pass, without
/// loading it; `None` for anything malformed or damaged.
fn read_described(path: &Path) -> Option<KeptFile> {
    use std::io::Read;
    use suyuan_protocol::psi::TagSetHasher;
    let file = fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; 5 + 16 + 2];
    r.read_exact(&mut head).ok()?;
    let rest = head.strip_prefix(MAGIC)?;
    let (epoch, rest) = rest.split_first_chunk::<16>()?;
    let (&[tag_len, n], _) = rest.split_first_chunk::<2>()?;
    let mut sections = Vec::new();
    for _ in 0..n {
        let mut entry = [0u8; 9];
        r.read_exact(&mut entry).ok()?;
        let count = u64::from_be_bytes(entry[1..].try_into().ok()?);
        sections.push(Section {
            key_type: KeyType::from_code(entry[0])?,
            count,
        });
    }
    // The shape [`TagSet::is_well_formed`] asks of a loaded set; the tags are checked below.
    let ascending = sections.windows(2).all(|w| w[0].key_type < w[1].key_type);
    if !(1..=suyuan_protocol::psi::TAG_STORED_LEN).contains(&usize::from(tag_len)) || !ascending {
        return None;
    }
    let header = (MAGIC.len() + 16 + 2 + 9 * sections.len()) as u64;
    let body = sections.iter().try_fold(0u64, |t, s| {
        t.checked_add(s.count.checked_mul(u64::from(tag_len))?)
    })?;
    if header.checked_add(body)?.checked_add(32)? != len {
        return None;
    }
    let mut h = TagSetHasher::new(EpochId(*epoch), tag_len);
    let mut buf = vec![0u8; 1 << 20];
    let l = usize::from(tag_len);
    for s in &sections {
        h.section(s.key_type, s.count);
        let mut left = s.count * u64::from(tag_len);
        let mut last: Vec<u8> = Vec::new();
        while left > 0 {
            let n = left.min((buf.len() / l * l) as u64) as usize;
            r.read_exact(&mut buf[..n]).ok()?;
            // Sorted, as the session checked them when they arrived.
            let sorted = last
                .chunks_exact(l)
                .chain(buf[..n].chunks_exact(l))
                .is_sorted();
            if !sorted {
                return None;
            }
            last = buf[n - l..n].to_vec();
            h.tags(&buf[..n]);
            left -= n as u64;
        }
    }
    let mut digest = [0u8; 32];
    r.read_exact(&mut digest).ok()?;
    (h.finish() == digest).then(|| KeptFile {
        path: path.to_path_buf(),
        epoch: EpochId(*epoch),
        tag_len,
        sections,
        header,
        digest,
    })
}

fn encoded_len(set: &TagSet) -> u64 {
    (MAGIC.len() + 16 + 2 + 9 * set.sections.len() + set.byte_len() + 32) as u64
}

/// Writes the header of this module's format; returns its length (where the tags start).
pub(crate) fn write_header(
    w: &mut impl Write,
    epoch: EpochId,
    tag_len: u8,
    sections: &[Section],
) -> std::io::Result<u64> {
    w.write_all(MAGIC)?;
    w.write_all(&epoch.0)?;
    w.write_all(&[tag_len, sections.len() as u8])?;
    for s in sections {
        w.write_all(&[s.key_type.code()])?;
        w.write_all(&s.count.to_be_bytes())?;
    }
    Ok((MAGIC.len() + 16 + 2 + 9 * sections.len()) as u64)
}

/// Writes the file format of this module (streamed: no second copy of the tags).
fn write_set(w: &mut impl Write, set: &TagSet) -> std::io::Result<()> {
    write_header(w, set.epoch, set.tag_len, &set.sections)?;
    for t in &set.tags {
        w.write_all(t)?;
    }
    w.write_all(&set.digest())
}

/// The file format of this module, as bytes.
pub fn encode(set: &TagSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(set) as usize);
    // Writing to a Vec cannot fail.
    let _ = write_set(&mut out, set);
    out
}

/// Reads the file format of this module; `None` for anything malformed, incoherent, or whose
/// digest does not match its content. Never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Option<TagSet> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (epoch, rest) = rest.split_first_chunk::<16>()?;
    let (&[tag_len, n], mut rest) = rest.split_first_chunk::<2>()?;
    let mut sections = Vec::new();
    for _ in 0..n {
        let (&[code], r) = rest.split_first_chunk::<1>()?;
        let (count, r) = r.split_first_chunk::<8>()?;
        sections.push(Section {
            key_type: KeyType::from_code(code)?,
            count: u64::from_be_bytes(*count),
        });
        rest = r;
    }
    let (body, digest) = rest.split_last_chunk::<32>()?;
    let mut tags = Vec::new();
    let mut body = body;
    for s in &sections {
        let len = usize::try_from(s.count.checked_mul(u64::from(tag_len))?).ok()?;
        let (t, r) = body.split_at_checked(len)?;
        tags.push(t.to_vec());
        body = r;
    }
    let set = TagSet::new(EpochId(*epoch), tag_len, sections, tags)?;
    (body.is_empty() && set.digest() == *digest).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(epoch: u8, n: u64) -> TagSet {
        let tags: Vec<u8> = (0..n).flat_map(|i| (i * 7919).to_be_bytes()).collect();
        let sections = vec![Section {
            key_type: KeyType::Mobile,
            count: n,
        }];
        TagSet::new(EpochId([epoch; 16]), 8, sections, vec![tags]).unwrap()
    }

    #[test]
    fn kept_sets_round_trip_and_damage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let c = TagCache::of(&NodeDir::at(dir.path()), 1 << 20);
        assert_eq!(c.load("bank"), None);
        c.store("bank", &set(1, 100)).unwrap();
        assert_eq!(c.load("bank").map(|k| k.0), Some(set(1, 100)));
        let file = dir.path().join(CACHE_DIR).join("bank.tags");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut bytes = fs::read(&file).unwrap();
        bytes[60] ^= 1;
        fs::write(&file, &bytes).unwrap();
        assert_eq!(c.load("bank"), None, "a damaged set is not used");
        assert!(!file.exists(), "and is removed");
        // Names that are not node names are never turned into paths.
        c.store("../x", &set(1, 1)).unwrap();
        assert_eq!(c.usage(), (0, 0));
    }

    #[test]
    fn a_kept_file_is_described_without_loading_and_adopted_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let c = TagCache::of(&NodeDir::at(dir.path()), 1 << 20);
        assert_eq!(c.peek("bank"), None);
        let kept = set(7, 3000);
        c.store("bank", &kept).unwrap();
        let k = c.peek("bank").unwrap();
        assert_eq!(
            (k.epoch, k.tag_len, &k.sections, k.digest),
            (kept.epoch, kept.tag_len, &kept.sections, kept.digest())
        );
        assert_eq!(k.header, 5 + 16 + 2 + 9);
        // Unsorted tags with a digest redone to match: refused all the same, and removed.
        let file = dir.path().join(CACHE_DIR).join("bank.tags");
        let mut bytes = fs::read(&file).unwrap();
        let h = k.header as usize;
        bytes.copy_within(h..h + 8, h + 8 * 10);
        let n = bytes.len();
        let mut unsorted = kept.clone();
        unsorted.tags[0][80..88].copy_from_slice(&kept.tags[0][..8]);
        bytes[n - 32..].copy_from_slice(&unsorted.digest());
        fs::write(&file, &bytes).unwrap();
        assert_eq!(c.peek("bank"), None);
        assert!(!file.exists());
        // A file written beside the cache becomes the kept set by a rename.
        let written = dir.path().join(CACHE_DIR).join("spill.1.2.tmp");
        fs::write(&written, encode(&kept)).unwrap();
        c.adopt("bank", &written).unwrap();
        assert!(!written.exists());
        assert_eq!(c.peek("bank").map(|k| k.digest), Some(kept.digest()));
        // Larger than the limit: removed, not kept.
        let small = TagCache::of(&NodeDir::at(dir.path()), 10);
        fs::write(&written, encode(&kept)).unwrap();
        small.adopt("police", &written).unwrap();
        assert!(!written.exists() && small.peek("police").is_none());
    }

    #[test]
    fn the_least_recently_used_sets_go_first_and_clear_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = encode(&set(1, 100)).len() as u64;
        let c = TagCache::of(&NodeDir::at(dir.path()), 2 * one + 10);
        c.store("a", &set(1, 100)).unwrap();
        c.store("b", &set(2, 100)).unwrap();
        assert!(c.load("a").is_some()); // a is now the most recently used
        let used =
            |p: &str| fs::read_to_string(dir.path().join(CACHE_DIR).join(format!("{p}.used")));
        assert_eq!(
            (used("b").unwrap(), used("a").unwrap()),
            ("2".into(), "3".into())
        );
        c.store("c", &set(3, 100)).unwrap();
        assert!(c.load("b").is_none(), "b was least recently used");
        assert!(used("b").is_err(), "its use record went with it");
        assert!(c.load("a").is_some() && c.load("c").is_some());
        assert_eq!(c.usage(), (2, 2 * one));
        // Larger than the whole limit: not kept.
        c.store("d", &set(4, 1000)).unwrap();
        assert!(c.load("d").is_none());
        assert_eq!(c.clear().unwrap(), (2, 2 * one));
        assert_eq!(c.usage(), (0, 0));
        assert_eq!(fs::read_dir(dir.path().join(CACHE_DIR)).unwrap().count(), 0);
        // Limit 0: nothing is ever kept.
        let off = TagCache::of(&NodeDir::at(dir.path()), 0);
        off.store("a", &set(1, 1)).unwrap();
        assert_eq!(off.usage(), (0, 0));
    }
}
