//! A `count` session's own key and tags. The holder draws a fresh factor `r` per session,
//! evaluates the query under `r·k`, and sends the tags of `r·k·H(y)` for its set: what a
//! querier unblinds in one session equals nothing it unblinds in another, so sessions cannot be
//! linked to learn which keys matched. Preparing costs one multiplication per key of the
//! holder's set; a node prepares sessions ahead, while idle.

use std::collections::BTreeMap;
use std::fmt;

use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::epoch::Epoch;
use super::labels::LabelKey;

/// What a labelled session keeps per key beside its tag: the key's label key in the session
/// and its place in the epoch.
const LABELLED_KEY_BYTES: usize = std::mem::size_of::<(LabelKey, u32)>();
use super::tag::{TAG_STORED_LEN, Tag, count_output, count_tag, split_output};
use super::{EpochId, Misuse, PsiError};
use crate::ident::KeyType;
use crate::oprf;

/// Keys prepared between two looks at whether to go on, counted once per session prepared in
/// the pass (about 0.5 s on one core).
pub const PREPARE_BLOCK: usize = 1 << 15;

/// Where a prepared session's sorted tags are read from when they are not in memory: a node
/// writes a large session to disk (about 16 bytes per key of its list) and serves it from
/// there. Reads are in order and within each key type's count (the epoch's).
pub trait TagSource: Send + Sync {
    /// Copies the sorted tags `start .. start + out.len()` of `key_type` into `out`.
    fn read_tags(&self, key_type: KeyType, start: u64, out: &mut [Tag]) -> Result<(), String>;
}

/// A session's sorted tags: in memory, or where the caller keeps them.
enum SessionTags {
    Memory(BTreeMap<KeyType, Vec<Tag>>),
    Source(Box<dyn TagSource>),
}

/// A labelled session's tag, with its key's label key in the session and place in the epoch.
type LabelledTag = (Tag, LabelKey, u32);

/// One count session's key `r·k` and the sorted tags of `r·k·H(y)` for every key of the epoch.
/// Used by exactly one session ([`super::Holder::handle_start_prepared`] consumes it).
pub struct PreparedCount {
    epoch: EpochId,
    key: Scalar,
    sizes: BTreeMap<KeyType, u64>,
    tags: SessionTags,
    /// An epoch with labels: per sorted tag, the key's label key in this session and its index
    /// in the epoch (where its labels are).
    labels: BTreeMap<KeyType, Vec<(LabelKey, u32)>>,
}

impl Drop for PreparedCount {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for PreparedCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedCount")
            .field("epoch", &self.epoch)
            .field("bytes", &self.size_bytes())
            .finish_non_exhaustive()
    }
}

impl PreparedCount {
    /// Draws a fresh `r` and computes the session's tags from the epoch's evaluated points,
    /// in parallel. Fails only on a damaged point (a store that passed its digest check holds
    /// none).
    pub fn prepare(epoch: &Epoch, rng: &mut (impl CryptoRng + ?Sized)) -> Result<Self, PsiError> {
        Self::prepare_while(epoch, rng, || true)?
            .ok_or_else(|| Misuse::Incomplete("a preparation that never stops stopped").into())
    }

    /// [`PreparedCount::prepare`] that asks `go_on` before each block of
    /// [`PREPARE_BLOCK`] keys and gives up (`Ok(None)`) when it says no: a node preparing while
    /// idle stops as soon as a query arrives, so the query has the cores.
    pub fn prepare_while(
        epoch: &Epoch,
        rng: &mut (impl CryptoRng + ?Sized),
        go_on: impl Fn() -> bool,
    ) -> Result<Option<Self>, PsiError> {
        Ok(Self::prepare_many_while(epoch, 1, rng, go_on)?.and_then(|mut v| v.pop()))
    }

    /// `sessions` sessions in one pass over the epoch, each with its own `r`: every stored
    /// point is decompressed once for all of them (a quarter of one session's cost), so a pool
    /// that prepares several at a time pays little more than the multiplication per key. Asks
    /// `go_on` before each block (the same amount of work, [`PREPARE_BLOCK`] keys' worth, at
    /// any `sessions`) and gives up on all of them (`Ok(None)`) when it says no.
    pub fn prepare_many_while(
        epoch: &Epoch,
        sessions: usize,
        rng: &mut (impl CryptoRng + ?Sized),
        go_on: impl Fn() -> bool,
    ) -> Result<Option<Vec<Self>>, PsiError> {
        let labeled = epoch.labels().is_some();
        let mut tags: Vec<BTreeMap<KeyType, Vec<Tag>>> = vec![BTreeMap::new(); sessions];
        // An epoch with labels keeps each tag's label key and epoch index through the sort.
        let mut per: Vec<BTreeMap<KeyType, Vec<LabelledTag>>> = vec![BTreeMap::new(); sessions];
        let pending = Self::evaluate_many_while(epoch, sessions, rng, go_on, |s, kt, base, e| {
            let n = epoch.size(kt) as usize;
            if labeled {
                let list = per[s].entry(kt).or_insert_with(|| Vec::with_capacity(n));
                list.par_extend(e.par_iter().enumerate().map(|(i, e)| {
                    let (tag, key) = split_output(&count_output(e));
                    (tag, key, base as u32 + i as u32)
                }));
            } else {
                let list = tags[s].entry(kt).or_insert_with(|| Vec::with_capacity(n));
                list.par_extend(e.par_iter().map(count_tag));
            }
            Ok(())
        })?;
        let Some(pending) = pending else {
            return Ok(None);
        };
        Ok(Some(
            pending
                .into_iter()
                .zip(tags.into_iter().zip(per))
                .map(|(p, (mut tags, per))| {
                    for t in tags.values_mut() {
                        t.par_sort_unstable();
                    }
                    let mut labels = BTreeMap::new();
                    for (kt, mut l) in per {
                        l.par_sort_unstable_by_key(|(t, _, _)| *t);
                        let (kt_tags, kt_labels) =
                            l.into_iter().map(|(t, k, i)| (t, (k, i))).unzip();
                        tags.insert(kt, kt_tags);
                        labels.insert(kt, kt_labels);
                    }
                    p.finish(SessionTags::Memory(tags), labels)
                })
                .collect(),
        ))
    }

    /// Draws `sessions` factors and evaluates the epoch's points under each, a block at a time,
    /// handing each block's evaluations `r·k·H(y)` to `sink(session, key type, first index,
    /// evaluations)` unsorted; asks `go_on` before each block. What [`PendingCount`] then
    /// needs is its sorted tags.
    fn evaluate_many_while(
        epoch: &Epoch,
        sessions: usize,
        rng: &mut (impl CryptoRng + ?Sized),
        go_on: impl Fn() -> bool,
        mut sink: impl FnMut(usize, KeyType, usize, &[[u8; 32]]) -> Result<(), PsiError>,
    ) -> Result<Option<Vec<PendingCount>>, PsiError> {
        let factors: Zeroizing<Vec<Scalar>> =
            Zeroizing::new((0..sessions).map(|_| oprf::random_scalar(rng)).collect());
        let block = (PREPARE_BLOCK / sessions.max(1)).max(oprf::par_chunk_len());
        for (kt, n) in epoch.sizes() {
            let n = n as usize;
            for (b, start) in (0..n).step_by(block).enumerate() {
                if !go_on() {
                    return Ok(None);
                }
                let chunk = epoch.read_points(kt, start as u64..(start + block).min(n) as u64)?;
                let evaluated = oprf::evaluate_under_each(&factors, &chunk).map_err(|i| {
                    Misuse::InvalidEpochPoint {
                        key_type: kt,
                        index: b * block + i,
                    }
                })?;
                for (s, e) in evaluated.iter().enumerate() {
                    sink(s, kt, start, e)?;
                }
            }
        }
        let key = &epoch.key().0;
        Ok(Some(
            factors
                .iter()
                .map(|r| PendingCount {
                    epoch: epoch.id(),
                    key: r * key,
                    sizes: epoch.sizes(),
                })
                .collect(),
        ))
    }

    /// Sessions of an epoch without labels whose tags the caller keeps (a node writes them to
    /// disk when they are larger than it holds in memory): for each block, `sink(session, key
    /// type, tags)` receives the session's tags of that block, unsorted. The caller sorts each
    /// session's tags per key type and hands them back with [`PendingCount::with_tags`].
    pub fn stream_many_while(
        epoch: &Epoch,
        sessions: usize,
        rng: &mut (impl CryptoRng + ?Sized),
        go_on: impl Fn() -> bool,
        mut sink: impl FnMut(usize, KeyType, &[Tag]) -> Result<(), String>,
    ) -> Result<Option<Vec<PendingCount>>, PsiError> {
        if epoch.labels().is_some() {
            return Err(
                Misuse::Incomplete("an epoch with labels keeps its sessions in memory").into(),
            );
        }
        Self::evaluate_many_while(epoch, sessions, rng, go_on, |s, kt, _, e| {
            let tags: Vec<Tag> = e.par_iter().map(count_tag).collect();
            sink(s, kt, &tags).map_err(PsiError::Store)
        })
    }

    /// The epoch it was prepared from.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// Bytes its tags take ([`TAG_STORED_LEN`] per key, and 36 more with labels), in memory or
    /// where the caller keeps them, for sizing a pool of them.
    pub fn size_bytes(&self) -> u64 {
        let tags: u64 = self.sizes.values().sum::<u64>() * TAG_STORED_LEN as u64;
        let labels: u64 = self
            .labels
            .values()
            .map(|l| (l.len() * LABELLED_KEY_BYTES) as u64)
            .sum();
        tags + labels
    }

    /// Bytes one session of `epoch` will take once prepared: [`TAG_STORED_LEN`] per key, and
    /// with labels 36 more (its label key in the session and its place in the epoch).
    pub fn size_of(epoch: &Epoch) -> u64 {
        let per_key = TAG_STORED_LEN as u64
            + if epoch.labels().is_some() {
                LABELLED_KEY_BYTES as u64
            } else {
                0
            };
        epoch.sizes().values().sum::<u64>() * per_key
    }

    /// An epoch with labels: the label key and epoch index of the `i`-th sorted tag.
    pub(crate) fn label_of(&self, key_type: KeyType, i: usize) -> Option<&(LabelKey, u32)> {
        self.labels.get(&key_type)?.get(i)
    }

    pub(crate) fn key(&self) -> &Scalar {
        &self.key
    }

    /// Whether its tags are kept outside memory.
    pub fn is_outside(&self) -> bool {
        matches!(self.tags, SessionTags::Source(_))
    }

    /// The sorted tags `range` of one key type.
    pub(crate) fn read_tags(
        &self,
        key_type: KeyType,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<Tag>, PsiError> {
        let n = self.sizes.get(&key_type).copied().unwrap_or(0) as usize;
        if range.start > range.end || range.end > n {
            return Err(Misuse::Incomplete("a read past the session's tags").into());
        }
        match &self.tags {
            SessionTags::Memory(t) => {
                Ok(t.get(&key_type).map_or(&[][..], Vec::as_slice)[range].to_vec())
            }
            SessionTags::Source(s) => {
                let mut out = vec![[0u8; TAG_STORED_LEN]; range.len()];
                s.read_tags(key_type, range.start as u64, &mut out)
                    .map_err(PsiError::Store)?;
                Ok(out)
            }
        }
    }
}

/// A session evaluated but not yet whole: its key, waiting for its sorted tags.
pub struct PendingCount {
    epoch: EpochId,
    key: Scalar,
    sizes: BTreeMap<KeyType, u64>,
}

impl Drop for PendingCount {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for PendingCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingCount")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl PendingCount {
    /// The session, with its tags sorted ascending per key type where `source` reads them
    /// (as many per type as the epoch's keys).
    pub fn with_tags(self, source: Box<dyn TagSource>) -> PreparedCount {
        self.finish(SessionTags::Source(source), BTreeMap::new())
    }

    fn finish(
        mut self,
        tags: SessionTags,
        labels: BTreeMap<KeyType, Vec<(LabelKey, u32)>>,
    ) -> PreparedCount {
        PreparedCount {
            epoch: self.epoch,
            key: std::mem::replace(&mut self.key, Scalar::ZERO),
            sizes: std::mem::take(&mut self.sizes),
            tags,
            labels,
        }
    }
}
