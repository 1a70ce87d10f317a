//! Count sessions prepared to disk, for a list whose session is larger than the pool may hold
//! in memory (16 bytes per key: 1.6 GB at 10^8 keys). The session's tags come out of the
//! curve work unsorted; each goes to one of up to 64 run files by its first bits (tags are
//! uniform hashes, so the runs are even), then each run is sorted in memory (1/64 of the
//! session, or more with many sessions and key types at once, so that at most
//! [`MAX_RUN_FILES`] are open) and appended to the session's file. Memory stays at a run and the write buffers;
//! the disk holds the session once (and its runs while it is being prepared).
//!
//! Files live in `NODE_DIR/count-sessions/`, created 0600 and unlinked as soon as they are
//! open: a session's file disappears with the session (or the process), and nothing is left
//! behind by a crash. The session's key `r·k` never leaves memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{Epoch, PreparedCount, TAG_STORED_LEN, Tag, TagSource};

use crate::node_dir::scratch::{anonymous, ensure_private_dir};

/// The directory inside a node directory.
pub const SESSIONS_DIR: &str = "count-sessions";
/// Most run files open at once in one pass (well under the usual limit of 1024 descriptors).
const MAX_RUN_FILES: usize = 256;
/// Most run files per session and key type: by a tag's first six bits.
const MAX_BUCKETS: usize = 64;
const RUN_BUFFER: usize = 64 << 10;

/// One session's tags of one key type, split into runs by prefix.
struct Runs {
    files: Vec<BufWriter<File>>,
    counts: Vec<u64>,
}

/// Prepares `sessions` count sessions of `epoch` (an epoch without labels) with their tags on
/// disk under `dir`; `Ok(None)` when `go_on` said stop.
pub fn prepare(
    epoch: &Epoch,
    sessions: usize,
    dir: &Path,
    go_on: impl Fn() -> bool,
) -> Result<Option<Vec<PreparedCount>>> {
    ensure_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let per_pass = sessions * epoch.sizes().len().max(1);
    // A power of two from 4 to 64, by the first `bits` bits of a tag.
    let most = (MAX_RUN_FILES / per_pass).clamp(4, MAX_BUCKETS);
    let buckets = 1usize << (usize::BITS - 1 - most.leading_zeros());
    let shift = 8 - buckets.trailing_zeros();
    let mut runs: Vec<BTreeMap<KeyType, Runs>> = (0..sessions).map(|_| BTreeMap::new()).collect();
    for s in &mut runs {
        for kt in epoch.sizes().into_keys() {
            let files = (0..buckets)
                .map(|_| anonymous(dir, "run").map(|f| BufWriter::with_capacity(RUN_BUFFER, f)))
                .collect::<Result<_>>()?;
            s.insert(
                kt,
                Runs {
                    files,
                    counts: vec![0; buckets],
                },
            );
        }
    }
    let pending = PreparedCount::stream_many_while(
        epoch,
        sessions,
        &mut rand::rng(),
        go_on,
        |s, kt, tags| {
            let r = runs[s]
                .get_mut(&kt)
                .ok_or("a key type the epoch has none of")?;
            for t in tags {
                let b = usize::from(t[0] >> shift);
                r.files[b]
                    .write_all(t)
                    .map_err(|e| format!("cannot write a count session's run: {e}"))?;
                r.counts[b] += 1;
            }
            Ok(())
        },
    )?;
    let Some(pending) = pending else {
        return Ok(None);
    };
    let mut prepared = Vec::with_capacity(sessions);
    for (p, session_runs) in pending.into_iter().zip(runs) {
        let file = anonymous(dir, "session")?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut sections = BTreeMap::new();
        let mut at = 0u64;
        for (kt, r) in session_runs {
            let total: u64 = r.counts.iter().sum();
            sections.insert(kt, (total, at));
            at += total * TAG_STORED_LEN as u64;
            for (run, n) in r.files.into_iter().zip(r.counts) {
                let run = run.into_inner().map_err(|e| e.into_error())?;
                let mut tags = vec![[0u8; TAG_STORED_LEN]; n as usize];
                run.read_exact_at(tags.as_flattened_mut(), 0)
                    .context("reading back a count session's run")?;
                tags.sort_unstable();
                w.write_all(tags.as_flattened())
                    .context("writing a count session")?;
            }
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        prepared.push(p.with_tags(Box::new(SessionFile {
            file,
            sections,
            dir: dir.to_path_buf(),
        })));
    }
    Ok(Some(prepared))
}

/// A session's sorted tags in its (unlinked) file: per key type, its count and first byte.
struct SessionFile {
    file: File,
    sections: BTreeMap<KeyType, (u64, u64)>,
    dir: PathBuf,
}

impl TagSource for SessionFile {
    fn read_tags(&self, key_type: KeyType, start: u64, out: &mut [Tag]) -> Result<(), String> {
        let (n, at) = self
            .sections
            .get(&key_type)
            .copied()
            .ok_or_else(|| format!("the count session holds no {key_type} tags"))?;
        if start + out.len() as u64 > n {
            return Err("a read past the count session's tags".into());
        }
        self.file
            .read_exact_at(out.as_flattened_mut(), at + start * TAG_STORED_LEN as u64)
            .map_err(|e| format!("cannot read a count session in {}: {e}", self.dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use suyuan_protocol::ident::Key;
    use suyuan_protocol::psi::{EpochBuilder, Holder, Query, QueryKeys, QueryMode};

    use super::*;

    fn key(i: u32) -> Key {
        match i % 3 {
            0 | 1 => Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap(),
            _ => Key::parse(KeyType::Email, &format!("u{i}@example.cn")).unwrap(),
        }
    }

    /// Runs a count query on `prepared` and returns what it counted.
    fn count_on(
        holder: &Holder,
        query: &Arc<Query>,
        prepared: PreparedCount,
    ) -> BTreeMap<KeyType, u64> {
        let (start, awaiting) = query.start(QueryMode::Count);
        let (accept, mut s) = holder
            .handle_start_prepared(start, prepared, &mut rand::rng())
            .unwrap();
        let mut ex = awaiting.handle_accept(accept).unwrap();
        while let Some(m) = ex.poll_message() {
            s.handle(m).unwrap();
        }
        while let Some(m) = s.poll_message().unwrap() {
            ex.handle(m).unwrap();
        }
        ex.finish().unwrap().matched_keys
    }

    #[test]
    fn sessions_on_disk_are_sorted_count_right_leave_no_file_and_differ() {
        let mut b = EpochBuilder::new(&mut rand::rng());
        b.add(&(0..30_000).map(key).collect::<Vec<_>>());
        let epoch = Arc::new(b.finish());
        let holder = Holder::new(Arc::clone(&epoch));
        let mut q = QueryKeys::new();
        for i in 25_000..35_000 {
            q.add_row(&[key(i)]);
        }
        let query = Arc::new(Query::blind(&mut rand::rng(), q).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let sessions = prepare(&epoch, 2, &dir.path().join(SESSIONS_DIR), || true)
            .unwrap()
            .unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join(SESSIONS_DIR))
                .unwrap()
                .count(),
            0,
            "every file unlinked once open"
        );
        let mut firsts = Vec::new();
        for p in sessions {
            assert!(p.is_outside());
            assert_eq!(p.size_bytes(), 30_000 * 16);
            // Sorted, whole, per type (read through the session as the holder does).
            let (start, _) = query.start(QueryMode::Count);
            let (_, mut s) = holder
                .handle_start_prepared(start.clone(), p, &mut rand::rng())
                .unwrap();
            let mut tags: BTreeMap<KeyType, Vec<Vec<u8>>> = BTreeMap::new();
            while let Some(suyuan_protocol::psi::HolderMessage::Tags(t)) = s.poll_message().unwrap()
            {
                let l = s.tag_len() as usize;
                tags.entry(t.key_type)
                    .or_default()
                    .extend(t.tags.chunks(l).map(<[u8]>::to_vec));
            }
            for (kt, t) in &tags {
                assert_eq!(t.len() as u64, epoch.size(*kt));
                assert!(t.is_sorted(), "{kt}");
            }
            firsts.push(tags[&KeyType::Mobile][..4].to_vec());
        }
        assert_ne!(firsts[0], firsts[1], "each session its own factor");
        // Against the plain intersection: keys 25000..30000 are the customers'.
        let expected: BTreeMap<KeyType, u64> =
            (25_000..30_000).fold(BTreeMap::new(), |mut m, i| {
                *m.entry(key(i).key_type()).or_insert(0) += 1;
                m
            });
        let p = prepare(&epoch, 1, &dir.path().join(SESSIONS_DIR), || true)
            .unwrap()
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(count_on(&holder, &query, p), expected);
        // Told to stop: nothing.
        assert!(
            prepare(&epoch, 1, &dir.path().join(SESSIONS_DIR), || false)
                .unwrap()
                .is_none()
        );
    }
}
