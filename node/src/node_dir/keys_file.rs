//! An epoch's sorted tags and evaluated points, in a flat file beside its store
//! (`epoch-<id>.keys`), which a serving node reads piece by piece as queries stream instead of
//! holding it in memory: a holder's memory then does not grow with its list, and what it reads
//! stays in the kernel's page cache, not in the process. (Read, not mapped: a map needs
//! `unsafe`, which this crate forbids.)
//!
//! Format: `SYEK1` · epoch id (16) · sections (1) · per section: key type code (1), count (u64
//! big-endian) · per section in that order: its tags (16 bytes each), then its points (32
//! bytes each). The file holds no key; the store's digest covers its content.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{Epoch, EpochId, KeySource, Point, TAG_STORED_LEN, Tag};

const MAGIC: &[u8; 5] = b"SYEK1";
/// Keys read or written at a time.
pub const BLOCK: u64 = 1 << 16;
const POINT_LEN: u64 = 32;

/// The file's name for an epoch.
pub fn name(id: EpochId) -> String {
    format!("epoch-{id}.keys")
}

/// Whether `name` is a keys file's name (of any epoch).
pub fn is_keys_file(name: &str) -> bool {
    name.strip_prefix("epoch-")
        .and_then(|r| r.strip_suffix(".keys"))
        .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The header's length for `sections` key types (where the first tags start).
pub fn header_len(sections: usize) -> u64 {
    (MAGIC.len() + 16 + 1 + 9 * sections) as u64
}

/// Writes the header of the keys file of epoch `id` with `sizes` keys per type (types with
/// none left out).
pub fn write_header(
    w: &mut impl Write,
    id: EpochId,
    sizes: &BTreeMap<KeyType, u64>,
) -> std::io::Result<()> {
    let sections: Vec<_> = sizes.iter().filter(|(_, n)| **n > 0).collect();
    w.write_all(MAGIC)?;
    w.write_all(&id.0)?;
    w.write_all(&[sections.len() as u8])?;
    for (kt, n) in sections {
        w.write_all(&[kt.code()])?;
        w.write_all(&n.to_be_bytes())?;
    }
    Ok(())
}

/// Writes `epoch`'s tags and points to a new file at `path` (mode 0600), block by block, and
/// flushes it to the device.
pub fn write(path: &Path, epoch: &Epoch) -> Result<()> {
    let f = super::scratch::create_private(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let sizes = epoch.sizes();
    let mut w = BufWriter::with_capacity(1 << 20, f);
    write_header(&mut w, epoch.id(), &sizes)?;
    for (&kt, &n) in &sizes {
        for start in (0..n).step_by(BLOCK as usize) {
            let tags = epoch.read_tags(kt, start..(start + BLOCK).min(n))?;
            w.write_all(tags.as_flattened())?;
        }
        for start in (0..n).step_by(BLOCK as usize) {
            let points = epoch.read_points(kt, start..(start + BLOCK).min(n))?;
            w.write_all(points.as_flattened())?;
        }
    }
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
        .with_context(|| format!("cannot flush {}", path.display()))
}

/// An opened keys file: where each section's tags and points start.
#[derive(Debug)]
pub struct KeysFile {
    file: File,
    path: PathBuf,
    /// Per key type: its count, where its tags start, where its points start.
    sections: BTreeMap<KeyType, (u64, u64, u64)>,
}

impl KeysFile {
    /// Opens the file of epoch `id` and checks its header against the epoch's sizes and its
    /// length against the header; the error says what does not fit.
    pub fn open(path: &Path, id: EpochId, sizes: &BTreeMap<KeyType, u64>) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let n = sizes.values().filter(|n| **n > 0).count();
        let mut head = vec![0u8; header_len(n) as usize];
        file.read_exact_at(&mut head, 0)
            .map_err(|_| "its keys file is cut short".to_string())?;
        let rest = head.strip_prefix(MAGIC).ok_or("its keys file is not one")?;
        let (file_id, rest) = rest.split_at(16);
        if file_id != id.0 || usize::from(rest[0]) != n {
            return Err("its keys file belongs to another epoch".into());
        }
        let mut sections = BTreeMap::new();
        let mut at = header_len(n);
        for (entry, (kt, count)) in rest[1..]
            .chunks_exact(9)
            .zip(sizes.iter().filter(|(_, n)| **n > 0))
        {
            let c = u64::from_be_bytes(entry[1..9].try_into().map_err(|_| "bad header")?);
            if entry[0] != kt.code() || c != *count {
                return Err("its keys file's sections differ from the epoch record".into());
            }
            let tags = at;
            let points = tags + c * TAG_STORED_LEN as u64;
            at = points + c * POINT_LEN;
            sections.insert(*kt, (c, tags, points));
        }
        let len = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if len != at {
            return Err(format!(
                "its keys file holds {len} bytes where the epoch needs {at}"
            ));
        }
        Ok(KeysFile {
            file,
            path: path.to_path_buf(),
            sections,
        })
    }

    fn read_at(
        &self,
        kt: KeyType,
        start: u64,
        out: &mut [u8],
        item: u64,
        base: impl Fn(&(u64, u64, u64)) -> u64,
    ) -> Result<(), String> {
        let s = self
            .sections
            .get(&kt)
            .ok_or_else(|| format!("no {kt} keys in {}", self.path.display()))?;
        if start + out.len() as u64 / item > s.0 {
            return Err(format!(
                "a read past the {kt} keys of {}",
                self.path.display()
            ));
        }
        self.file
            .read_exact_at(out, base(s) + start * item)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))
    }
}

impl KeySource for KeysFile {
    fn read_tags(&self, key_type: KeyType, start: u64, out: &mut [Tag]) -> Result<(), String> {
        self.read_at(
            key_type,
            start,
            out.as_flattened_mut(),
            TAG_STORED_LEN as u64,
            |s| s.1,
        )
    }

    fn read_points(&self, key_type: KeyType, start: u64, out: &mut [Point]) -> Result<(), String> {
        self.read_at(key_type, start, out.as_flattened_mut(), POINT_LEN, |s| s.2)
    }
}

/// Asserts two epochs hold the same keys, tags and points (tests of the store and the runs).
#[cfg(test)]
pub(crate) fn assert_same_keys(a: &Epoch, b: &Epoch) {
    assert_eq!(a.sizes(), b.sizes());
    for (kt, n) in a.sizes() {
        assert_eq!(
            a.read_tags(kt, 0..n).unwrap(),
            b.read_tags(kt, 0..n).unwrap()
        );
        assert_eq!(
            a.read_points(kt, 0..n).unwrap(),
            b.read_points(kt, 0..n).unwrap()
        );
    }
}
