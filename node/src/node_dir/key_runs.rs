//! An import larger than memory: each batch's tags and points go, unsorted, to one of 64 run
//! files per key type by the tag's first six bits (tags are uniform hashes, so runs are even),
//! as the list is read. At the end each run is sorted and its repeats dropped in memory (1/64
//! of the list), and the runs, in prefix order, become the epoch's keys file
//! ([`super::keys_file`]) directly. The import then holds a batch and one run, not the list
//! (188 bytes per key held in memory before: 18.8 GB at 10^8 keys).
//!
//! Run files are created 0600 in the node directory and unlinked as soon as they are open: a
//! crash leaves nothing behind.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{EpochId, KeySink, Point, TAG_STORED_LEN, Tag};

use super::keys_file;
use super::scratch::{anonymous, create_private};

const BUCKETS: usize = 64;
const RECORD: usize = TAG_STORED_LEN + 32;
const RUN_BUFFER: usize = 256 << 10;

/// The runs of one import.
#[derive(Clone)]
pub struct KeyRuns {
    dir: PathBuf,
    state: Arc<Mutex<Runs>>,
}

#[derive(Default)]
struct Runs {
    /// Per key type, its runs and the records in each.
    files: BTreeMap<KeyType, (Vec<BufWriter<File>>, Vec<u64>)>,
}

impl KeyRuns {
    /// Runs kept in `dir`.
    pub fn new(dir: &Path) -> Self {
        KeyRuns {
            dir: dir.to_path_buf(),
            state: Arc::default(),
        }
    }

    /// What the epoch builder hands its batches to.
    pub fn sink(&self) -> Box<KeySink> {
        let runs = self.clone();
        Box::new(move |kt, tags, points| runs.add(kt, tags, points).map_err(|e| format!("{e:#}")))
    }

    fn add(&self, kt: KeyType, tags: &[Tag], points: &[Point]) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (files, counts) = match s.files.entry(kt) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let files = (0..BUCKETS)
                    .map(|_| {
                        anonymous(&self.dir, "import-run")
                            .map(|f| BufWriter::with_capacity(RUN_BUFFER, f))
                    })
                    .collect::<Result<Vec<_>>>()?;
                e.insert((files, vec![0; BUCKETS]))
            }
        };
        for (t, p) in tags.iter().zip(points) {
            let b = usize::from(t[0] >> 2);
            files[b]
                .write_all(t)
                .and_then(|()| files[b].write_all(p))
                .context("writing an import run")?;
            counts[b] += 1;
        }
        Ok(())
    }

    /// Sorts each run, drops repeated keys, and writes the epoch's keys file at `path`
    /// (created 0600, flushed to the device); returns the distinct keys per type.
    pub fn write_keys_file(self, id: EpochId, path: &Path) -> Result<BTreeMap<KeyType, u64>> {
        let written = self.write_unguarded(id, path);
        if written.is_err() {
            // A full disk is the usual cause: give the space back.
            let _ = std::fs::remove_file(path);
        }
        written
    }

    fn write_unguarded(self, id: EpochId, path: &Path) -> Result<BTreeMap<KeyType, u64>> {
        let runs = std::mem::take(&mut *self.state.lock().unwrap_or_else(PoisonError::into_inner));
        let out =
            create_private(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut at = keys_file::header_len(runs.files.len());
        let mut sizes = BTreeMap::new();
        for (kt, (files, counts)) in runs.files {
            let points = anonymous(&self.dir, "import-points")?;
            let mut points_w = BufWriter::with_capacity(1 << 20, points);
            let mut distinct = 0u64;
            for (run, n) in files.into_iter().zip(counts) {
                let run = run.into_inner().map_err(|e| e.into_error())?;
                let mut records = vec![[0u8; RECORD]; n as usize];
                run.read_exact_at(records.as_flattened_mut(), 0)
                    .context("reading back an import run")?;
                drop(run);
                records.sort_unstable_by(|a, b| a[..TAG_STORED_LEN].cmp(&b[..TAG_STORED_LEN]));
                // One key gives one tag and one point: a repeated tag is a repeated key.
                records.dedup_by(|a, b| a[..TAG_STORED_LEN] == b[..TAG_STORED_LEN]);
                let mut tags = Vec::with_capacity(records.len() * TAG_STORED_LEN);
                for r in &records {
                    tags.extend_from_slice(&r[..TAG_STORED_LEN]);
                    points_w
                        .write_all(&r[TAG_STORED_LEN..])
                        .context("writing the import's points")?;
                }
                out.write_all_at(&tags, at)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                at += tags.len() as u64;
                distinct += records.len() as u64;
            }
            let points = points_w.into_inner().map_err(|e| e.into_error())?;
            let mut buf = vec![0u8; 1 << 20];
            let len = distinct * 32;
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                points
                    .read_exact_at(&mut buf[..n], done)
                    .context("reading back the import's points")?;
                out.write_all_at(&buf[..n], at)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                at += n as u64;
                done += n as u64;
            }
            sizes.insert(kt, distinct);
        }
        let mut head = Vec::new();
        keys_file::write_header(&mut head, id, &sizes)?;
        out.write_all_at(&head, 0)
            .with_context(|| format!("cannot write {}", path.display()))?;
        out.sync_all()
            .with_context(|| format!("cannot flush {}", path.display()))?;
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests {
    use suyuan_protocol::ident::Key;
    use suyuan_protocol::psi::EpochBuilder;

    use super::*;
    use crate::node_dir::keys_file::KeysFile;

    #[test]
    fn an_import_through_runs_is_the_import_in_memory_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Key> = (0..20_000u32)
            .map(|i| match i % 3 {
                0 | 1 => Key::parse(KeyType::Mobile, &format!("138{:08}", i % 15_000)).unwrap(),
                _ => Key::parse(KeyType::Email, &format!("u{i}@example.cn")).unwrap(),
            })
            .collect();
        let memory = {
            let mut b = EpochBuilder::new(&mut rand::rng());
            for batch in keys.chunks(3000) {
                b.add(batch);
            }
            b.finish()
        };
        let runs = KeyRuns::new(dir.path());
        let mut b = EpochBuilder::with_key(
            memory.id(),
            suyuan_protocol::oprf::SecretKey::from_bytes(&memory.key().to_bytes()).unwrap(),
        )
        .into_sink(runs.sink())
        .unwrap();
        for batch in keys.chunks(3000) {
            b.try_add(batch).unwrap();
        }
        let path = dir.path().join(keys_file::name(memory.id()));
        let sizes = runs.write_keys_file(memory.id(), &path).unwrap();
        assert_eq!(sizes, memory.sizes(), "repeats dropped");
        let source = KeysFile::open(&path, memory.id(), &sizes).unwrap();
        let from_runs = b.finish_with(sizes, Box::new(source));
        keys_file::assert_same_keys(&from_runs, &memory);
        // The file is the one the store writes from the epoch in memory.
        let written = dir.path().join("written.keys");
        keys_file::write(&written, &memory).unwrap();
        assert_eq!(
            std::fs::read(&written).unwrap(),
            std::fs::read(&path).unwrap()
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no run left behind"
        );
    }
}
