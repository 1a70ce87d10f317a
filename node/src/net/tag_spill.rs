//! A holder's tag stream written to disk as it arrives, when it is larger than the querier
//! keeps in memory (`[query] tags_in_memory_mib`): at 10^8 holder keys the stream is 1.1 GB,
//! and the querier's memory must grow with its dump, not with the holder's list. The session
//! checks each chunk and hands it on ([`Exchanging::keep_tags_outside`]); this file keeps it,
//! and at the end feeds it back to the session's merge, section by section, digesting each
//! section as it goes for the holder's signed statement.
//!
//! The file is written in the tag cache's format ([`crate::node_dir::tag_cache`]), in the cache
//! directory under a temporary name, created 0600: after a `matches` query the cache adopts it
//! as the holder's kept set, and the next query merges against it where it lies
//! ([`Spilled::kept`]); otherwise it is removed when the query ends.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use suyuan_protocol::psi::{EpochId, Exchanging, PsiError, Section, TagChunk, TagSetHasher};

use crate::node_dir::tag_cache::KeptFile;

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
    /// Removes the file if the query ends before it is whole.
    guard: FreshFile,
    w: BufWriter<File>,
    sections: Vec<Section>,
    tag_len: usize,
    header: u64,
    epoch: EpochId,
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
        crate::node_dir::scratch::ensure_private_dir(dir).map_err(io)?;
        let f = crate::node_dir::scratch::create_private(&path).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let header = crate::node_dir::tag_cache::write_header(&mut w, epoch, tag_len, sections)
            .map_err(io)?;
        Ok(TagSpill {
            guard: FreshFile(Some(path.clone())),
            path,
            w,
            sections: sections.to_vec(),
            tag_len: usize::from(tag_len),
            header,
            epoch,
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
        loop {
            let Some(s) = self.sections.get(self.current) else {
                // The session checked the chunk against these very sections: not reached.
                return Err(
                    PsiError::from(suyuan_protocol::psi::PeerMisbehaved::UnexpectedTags(
                        chunk.key_type,
                    ))
                    .into(),
                );
            };
            if s.key_type == chunk.key_type && self.written[self.current] < s.count {
                break;
            }
            self.current += 1;
        }
        self.begin_sections(self.current + 1);
        self.w.write_all(&chunk.tags).map_err(self.io())?;
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
        // From here the file is the `Spilled`'s to remove.
        let path = self.guard.take();
        Ok(Spilled {
            file,
            path,
            epoch: self.epoch,
            sections: self.sections,
            stride: self.tag_len,
            header: self.header,
            remove: true,
        })
    }
}

/// A holder's tags in a file, whole: a stream just written, or a set the cache kept.
pub(crate) struct Spilled {
    file: File,
    path: PathBuf,
    epoch: EpochId,
    sections: Vec<Section>,
    /// Bytes per tag in the file (a kept set's tags may be longer than the session's ℓ).
    stride: usize,
    header: u64,
    /// Whether dropping it removes the file (a stream not handed to the cache).
    remove: bool,
}

impl Spilled {
    /// A set the cache kept ([`crate::node_dir::tag_cache::TagCache::peek`]), read where it is.
    pub(crate) fn kept(k: &KeptFile) -> Result<Spilled, SpillError> {
        let file = File::open(&k.path).map_err(|source| SpillError::Io {
            path: k.path.clone(),
            source,
        })?;
        Ok(Spilled {
            file,
            path: k.path.clone(),
            epoch: k.epoch,
            sections: k.sections.clone(),
            stride: usize::from(k.tag_len),
            header: k.header,
            remove: false,
        })
    }

    /// Feeds every section back to the session's merge, a block at a time, each tag cut to
    /// the session's ℓ; returns each section's digest at ℓ as fed ([`TagSet::digest`] of a
    /// set of that section alone: what the holder's statement names).
    ///
    /// [`TagSet::digest`]: suyuan_protocol::psi::TagSet::digest
    pub(crate) fn merge_into(&self, session: &mut Exchanging) -> Result<Vec<[u8; 32]>, SpillError> {
        let (stride, l) = (self.stride, usize::from(session.tag_len()));
        let mut at = self.header;
        let mut buf = vec![0u8; MERGE_BLOCK * stride];
        let mut cut = Vec::with_capacity(if stride == l { 0 } else { MERGE_BLOCK * l });
        let mut digests = Vec::with_capacity(self.sections.len());
        for (i, s) in self.sections.iter().enumerate() {
            let mut h = TagSetHasher::new(self.epoch, session.tag_len());
            h.section(s.key_type, s.count);
            let mut left = s.count;
            while left > 0 {
                let n = left.min(MERGE_BLOCK as u64) as usize;
                let b = &mut buf[..n * stride];
                self.file
                    .read_exact_at(b, at)
                    .map_err(|source| SpillError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
                let fed: &[u8] = if stride == l {
                    b
                } else {
                    cut.clear();
                    for t in b.chunks_exact(stride) {
                        cut.extend_from_slice(&t[..l]);
                    }
                    &cut
                };
                h.tags(fed);
                session.merge_tags(i, fed)?;
                at += (n * stride) as u64;
                left -= n as u64;
            }
            digests.push(h.finish());
        }
        Ok(digests)
    }

    /// The file, to hand to the cache: dropping it no longer removes it, and dropping the
    /// returned name does.
    pub(crate) fn into_fresh(mut self) -> FreshFile {
        self.remove = false;
        FreshFile(Some(self.path.clone()))
    }
}

impl Drop for Spilled {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A stream written whole, waiting for the cache to adopt it; removed if it never is.
#[derive(Debug)]
pub(crate) struct FreshFile(Option<PathBuf>);

impl FreshFile {
    /// The file's name, now the caller's to keep or remove.
    pub(crate) fn take(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for FreshFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
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
        let digests = spilled.merge_into(&mut ex).unwrap();
        for (i, s) in set.sections.iter().enumerate() {
            let one =
                TagSet::new(set.epoch, set.tag_len, vec![*s], vec![set.tags[i].clone()]).unwrap();
            assert_eq!(digests[i], one.digest());
        }
        assert_eq!(ex.finish().unwrap(), expected);
        drop(spilled);
        assert!(!path.exists(), "removed when the query ends");
    }
}
