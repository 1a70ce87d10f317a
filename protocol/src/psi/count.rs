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

/// One count session's key `r·k` and the sorted tags of `r·k·H(y)` for every key of the epoch.
/// Used by exactly one session ([`super::Holder::handle_start_prepared`] consumes it).
pub struct PreparedCount {
    epoch: EpochId,
    key: Scalar,
    tags: BTreeMap<KeyType, Vec<Tag>>,
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
        let factors: Zeroizing<Vec<Scalar>> =
            Zeroizing::new((0..sessions).map(|_| oprf::random_scalar(rng)).collect());
        let block = (PREPARE_BLOCK / sessions.max(1)).max(oprf::par_chunk_len());
        let mut tags: Vec<BTreeMap<KeyType, Vec<Tag>>> = vec![BTreeMap::new(); sessions];
        let mut labels: Vec<BTreeMap<KeyType, Vec<(LabelKey, u32)>>> =
            vec![BTreeMap::new(); sessions];
        let labeled = epoch.labels().is_some();
        for (kt, _) in epoch.sizes() {
            let n = epoch.size(kt) as usize;
            // An epoch with labels keeps each tag's label key and epoch index through the sort.
            let mut per: Vec<Vec<(Tag, LabelKey, u32)>> = (0..sessions)
                .map(|_| Vec::with_capacity(if labeled { n } else { 0 }))
                .collect();
            let mut plain: Vec<Vec<Tag>> = (0..sessions)
                .map(|_| Vec::with_capacity(if labeled { 0 } else { n }))
                .collect();
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
                let base = (b * block) as u32;
                for (s, evaluated) in evaluated.into_iter().enumerate() {
                    if labeled {
                        per[s].par_extend(evaluated.par_iter().enumerate().map(|(i, e)| {
                            let (tag, key) = split_output(&count_output(e));
                            (tag, key, base + i as u32)
                        }));
                    } else {
                        plain[s].par_extend(evaluated.par_iter().map(count_tag));
                    }
                }
            }
            for (s, (mut t, mut l)) in plain.into_iter().zip(per).enumerate() {
                if labeled {
                    l.par_sort_unstable_by_key(|(t, _, _)| *t);
                    let (kt_tags, kt_labels) = l.into_iter().map(|(t, k, i)| (t, (k, i))).unzip();
                    tags[s].insert(kt, kt_tags);
                    labels[s].insert(kt, kt_labels);
                } else {
                    t.par_sort_unstable();
                    tags[s].insert(kt, t);
                }
            }
        }
        let key = &epoch.key().0;
        Ok(Some(
            factors
                .iter()
                .zip(tags.into_iter().zip(labels))
                .map(|(r, (tags, labels))| PreparedCount {
                    epoch: epoch.id(),
                    key: r * key,
                    tags,
                    labels,
                })
                .collect(),
        ))
    }

    /// The epoch it was prepared from.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// Bytes its tags take ([`TAG_STORED_LEN`] per key, and 36 more with labels), for sizing
    /// a pool of them.
    pub fn size_bytes(&self) -> u64 {
        let tags: u64 = self
            .tags
            .values()
            .map(|t| (t.len() * TAG_STORED_LEN) as u64)
            .sum();
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

    pub(crate) fn tags(&self, key_type: KeyType) -> &[Tag] {
        self.tags.get(&key_type).map_or(&[], Vec::as_slice)
    }
}
