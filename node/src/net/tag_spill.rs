//! A holder's tag stream written to disk as it arrives, when it is larger than the querier
//! keeps in memory (`[query] tags_in_memory_mib`): at 10^8 holder keys the stream is 1.1 GB,
//! and the querier's memory must grow with its dump, not with the holder's list. The session
//! checks each chunk and hands it on ([`Exchanging::keep_tags_outside`]); this file keeps it,
//! digests it as it goes (the holder's signed statement is checked without reading it back),
//! and at the end feeds it back to the session's merge, section by section.
//!
//! The file is written in the tag cache's format ([`crate::node_dir::tag_cache`]), in the cache
//! directory under a temporary name, created 0600; it is removed when the query ends.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use suyuan_protocol::psi::{EpochId, Exchanging, PsiError, Section, TagChunk, TagSetHasher};

/// Tags read back at a time for the merge.
const MERGE_BLOCK: usize = 1 << 16;

/// Why a spilled stream failed: the disk, or the session refusing what was fed back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpillError {
    #[error("cannot keep the holder's tags in {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Psi(#[from] PsiError),
}

/// A stream being written.
pub(crate) struct TagSpill {
    path: PathBuf,
    w: BufWriter<File>,
    sections: Vec<Section>,
    tag_len: usize,
    header: u64,
    /// Per section, the digest the holder's statement names (the section alone).
    per_section: Vec<TagSetHasher>,
    /// The whole set's digest (each section's header, then its tags), and how many sections
    /// it has begun.
    whole: TagSetHasher,
    started: usize,
    /// The section being written, and tags written per section.
    current: usize,
    written: Vec<u64>,
}

impl TagSpill {
    /// A new file in `dir` for the tags of `sections` of `epoch`, ℓ = `tag_len`.
    pub(crate) fn create(
        dir: &Path,
        epoch: EpochId,
        tag_len: u8,
        sections: &[Section],
    ) -> Result<TagSpill, SpillError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = dir.join(format!(
            "spill.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |source| SpillError::Io {
            path: path.clone(),
            source,
        };
        if !dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(dir)
                .map_err(io)?;
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let header = crate::node_dir::tag_cache::write_header(&mut w, epoch, tag_len, sections)
            .map_err(io)?;
        let per_section = sections
            .iter()
            .map(|s| {
                let mut h = TagSetHasher::new(epoch, tag_len);
                h.section(s.key_type, s.count);
                h
            })
            .collect();
        Ok(TagSpill {
            path,
            w,
            sections: sections.to_vec(),
            tag_len: usize::from(tag_len),
            header,
            per_section,
            whole: TagSetHasher::new(epoch, tag_len),
            started: 0,
            current: 0,
            written: vec![0; sections.len()],
        })
    }

    fn io(&self) -> impl Fn(std::io::Error) -> SpillError + '_ {
        |source| SpillError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends a chunk the session checked (in order, within its section's count).
    pub(crate) fn write(&mut self, chunk: &TagChunk) -> Result<(), SpillError> {
        while self.sections[self.current].key_type != chunk.key_type
            || self.written[self.current] == self.sections[self.current].count
        {
            self.current += 1;
        }
        self.begin_sections(self.current + 1);
        self.w.write_all(&chunk.tags).map_err(self.io())?;
        self.per_section[self.current].tags(&chunk.tags);
        self.whole.tags(&chunk.tags);
        self.written[self.current] += (chunk.tags.len() / self.tag_len) as u64;
        Ok(())
    }

    /// Hashes the headers of the sections before `end` not yet begun.
    fn begin_sections(&mut self, end: usize) {
        while self.started < end {
            let s = self.sections[self.started];
            self.whole.section(s.key_type, s.count);
            self.started += 1;
        }
    }

    /// Every tag is in: the file is closed with the whole set's digest.
    pub(crate) fn finish(mut self) -> Result<Spilled, SpillError> {
        self.begin_sections(self.sections.len());
        let digest = self.whole.clone().finish();
        self.w.write_all(&digest).map_err(self.io())?;
        let file = match self.w.into_inner() {
            Ok(f) => f,
            Err(e) => {
                return Err(SpillError::Io {
                    path: self.path.clone(),
                    source: e.into_error(),
                });
            }
        };
        Ok(Spilled {
            file,
            path: self.path,
            sections: self.sections,
            tag_len: self.tag_len,
            header: self.header,
            section_digests: self.per_section.into_iter().map(|h| h.finish()).collect(),
        })
    }

    /// The query failed: the file goes.
    pub(crate) fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A stream written whole.
pub(crate) struct Spilled {
    file: File,
    path: PathBuf,
    sections: Vec<Section>,
    tag_len: usize,
    header: u64,
    /// Per section, the digest of that section alone (what the holder's statement names).
    pub(crate) section_digests: Vec<[u8; 32]>,
}

impl Spilled {
    /// Feeds every section back to the session's merge, a block at a time.
    pub(crate) fn merge_into(&self, session: &mut Exchanging) -> Result<(), SpillError> {
        let l = self.tag_len;
        let mut at = self.header;
        let mut buf = vec![0u8; MERGE_BLOCK * l];
        for (i, s) in self.sections.iter().enumerate() {
            let mut left = s.count;
            while left > 0 {
                let n = left.min(MERGE_BLOCK as u64) as usize;
                let b = &mut buf[..n * l];
                self.file
                    .read_exact_at(b, at)
                    .map_err(|source| SpillError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
                session.merge_tags(i, b)?;
                at += b.len() as u64;
                left -= n as u64;
            }
        }
        Ok(())
    }
}

impl Drop for Spilled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use suyuan_protocol::ident::{Key, KeyType};
    use suyuan_protocol::psi::{EpochBuilder, Holder, Query, QueryKeys, QueryMode, TagSet};

    use super::*;

    fn key(i: u32) -> Key {
        match i % 2 {
            0 => Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap(),
            _ => Key::parse(KeyType::Email, &format!("u{i}@example.cn")).unwrap(),
        }
    }

    #[test]
    fn the_file_is_the_cache_format_its_digests_the_statements_and_the_merge_finds_the_same() {
        let mut b = EpochBuilder::new(&mut rand::rng());
        b.add(&(0..12_000).map(key).collect::<Vec<_>>());
        let holder = Holder::new(Arc::new(b.finish()));
        let mut q = QueryKeys::new();
        for i in (0..3000).map(|i| i * 7) {
            q.add_row(&[key(i)]);
        }
        let query = Arc::new(Query::blind(&mut rand::rng(), q).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let run = |outside: bool| {
            let (start, awaiting) = query.start(QueryMode::Matches);
            let (accept, mut s) = holder.handle_start(start, &mut rand::rng()).unwrap();
            let mut ex = awaiting.handle_accept(accept.clone()).unwrap();
            let mut spill = outside.then(|| {
                ex.keep_tags_outside().unwrap();
                TagSpill::create(
                    dir.path(),
                    accept.epoch,
                    accept.tag_len,
                    &accept.holder_sections,
                )
                .unwrap()
            });
            while let Some(m) = ex.poll_message() {
                s.handle(m).unwrap();
            }
            while let Some(m) = s.poll_message().unwrap() {
                ex.handle(m).unwrap();
                while let Some(t) = ex.take_tags() {
                    spill.as_mut().unwrap().write(&t).unwrap();
                }
            }
            (ex, spill)
        };
        let (held, _) = run(false);
        let set: TagSet = held.tag_set().unwrap();
        let expected = held.finish().unwrap();

        let (mut ex, spill) = run(true);
        let spilled = spill.unwrap().finish().unwrap();
        let path = spilled.path.clone();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            crate::node_dir::tag_cache::encode(&set),
            "the cache's format, whole-set digest included"
        );
        for (i, s) in set.sections.iter().enumerate() {
            let one =
                TagSet::new(set.epoch, set.tag_len, vec![*s], vec![set.tags[i].clone()]).unwrap();
            assert_eq!(spilled.section_digests[i], one.digest());
        }
        spilled.merge_into(&mut ex).unwrap();
        assert_eq!(ex.finish().unwrap(), expected);
        drop(spilled);
        assert!(!path.exists(), "removed when the query ends");
    }
}
