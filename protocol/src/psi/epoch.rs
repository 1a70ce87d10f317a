//! An epoch: one OPRF key, and for each key of one import its evaluated point `k·H(y)` (the start
//! of every count session's tags) and its `matches`-mode tag.

use std::collections::BTreeMap;
use std::fmt;

use rand_core::CryptoRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::labels::{
    EpochLabels, LabelError, LabelSpec, LabelStats, LabelsBuilder, TypeLabels, merge_pairs,
};
use super::tag::{Tag, finalize_output, finalize_tag, split_output};
use super::{Misuse, PsiError};
use crate::ident::{Key, KeyType};
use crate::oprf::{self, SecretKey};

/// A random 128-bit name for an epoch, shown in reports and audit logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EpochId(pub [u8; 16]);

impl EpochId {
    /// A fresh random id.
    pub fn random(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        EpochId(b)
    }
}

impl fmt::Display for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for EpochId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EpochId({self})")
    }
}

/// A compressed evaluated point `compress(k·H(y))`.
pub type Point = [u8; 32];

/// Where an epoch's sorted tags and evaluated points are kept when they are not in memory: a
/// node serves a large epoch from its store, read piece by piece as a query streams, so a
/// holder's memory does not grow with its list. Reads are in tag order and never overlap the
/// end of a key type's keys ([`Epoch::from_source`] is given the sizes).
pub trait KeySource: Send + Sync {
    /// Copies the tags `start .. start + out.len()` of `key_type` into `out`; the error says
    /// what failed, for the operator.
    fn read_tags(&self, key_type: KeyType, start: u64, out: &mut [Tag]) -> Result<(), String>;
    /// Copies the evaluated points `start .. start + out.len()` of `key_type` into `out`.
    fn read_points(&self, key_type: KeyType, start: u64, out: &mut [Point]) -> Result<(), String>;
}

/// An epoch's tags and points: as built, or in a store.
enum Keys {
    Memory {
        tags: BTreeMap<KeyType, Vec<Tag>>,
        points: BTreeMap<KeyType, Vec<Point>>,
    },
    Source(Box<dyn KeySource>),
}

/// The holder's state for one epoch: its key (secret) and, per key type, its tags sorted
/// ascending without repeats (one per distinct key), each key's evaluated point in the same
/// order, and, if the import had labels, each key's labels in the same order.
pub struct Epoch {
    id: EpochId,
    key: SecretKey,
    sizes: BTreeMap<KeyType, u64>,
    keys: Keys,
    labels: Option<EpochLabels>,
    label_stats: Vec<LabelStats>,
    /// Per label and value, the keys carrying it: counted once, when a querier first asks for
    /// labels ([`Epoch::value_keys`]).
    value_keys: std::sync::OnceLock<super::labels::ValueKeys>,
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Epoch")
            .field("id", &self.id)
            .field("sizes", &self.sizes())
            .finish_non_exhaustive()
    }
}

impl Epoch {
    /// An epoch kept in a store: `sizes` keys of each type (none of a type left out), read from
    /// `source` as they are needed. The store's reader checks its content (order, digest)
    /// before it hands it over; a point that fails to decode is refused when it is used.
    pub fn from_source(
        id: EpochId,
        key: SecretKey,
        sizes: BTreeMap<KeyType, u64>,
        source: Box<dyn KeySource>,
    ) -> Self {
        let sizes = sizes.into_iter().filter(|(_, n)| *n > 0).collect();
        Epoch {
            id,
            key,
            sizes,
            keys: Keys::Source(source),
            labels: None,
            label_stats: Vec::new(),
            value_keys: std::sync::OnceLock::new(),
        }
    }

    /// Attaches stored labels: one run per tag of each key type, in tag order.
    pub fn with_labels(mut self, labels: EpochLabels) -> Result<Self, PsiError> {
        labels.check()?;
        let aligned = labels.per_type.len() == self.sizes.len()
            && self.sizes.iter().all(|(kt, n)| {
                labels
                    .per_type
                    .get(kt)
                    .is_some_and(|l| l.len() as u64 == *n)
            });
        if !aligned {
            return Err(LabelError::Inconsistent("one entry per key of each type").into());
        }
        self.labels = Some(labels);
        Ok(self)
    }

    /// The epoch's labels, if its import had any.
    pub fn labels(&self) -> Option<&EpochLabels> {
        self.labels.as_ref()
    }

    /// Per label and value, the keys of the list carrying it (per key type and in all), for
    /// the totals a holder may share: counted on first use, then kept with the epoch.
    pub(crate) fn value_keys(&self) -> Option<&super::labels::ValueKeys> {
        let labels = self.labels.as_ref()?;
        Some(
            self.value_keys
                .get_or_init(|| super::labels::ValueKeys::of(labels)),
        )
    }

    /// Per label, what the import found (empty for an epoch read back from storage).
    pub fn label_stats(&self) -> &[LabelStats] {
        &self.label_stats
    }

    /// The epoch's id.
    pub fn id(&self) -> EpochId {
        self.id
    }

    /// The epoch's OPRF key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }

    /// Distinct keys of one type (0 if none).
    pub fn size(&self, key_type: KeyType) -> u64 {
        self.sizes.get(&key_type).copied().unwrap_or(0)
    }

    /// Distinct keys per type.
    pub fn sizes(&self) -> BTreeMap<KeyType, u64> {
        self.sizes.clone()
    }

    /// The sorted tags `range` of one key type.
    pub fn read_tags(
        &self,
        key_type: KeyType,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<Tag>, PsiError> {
        self.read(
            key_type,
            range,
            |tags, _| tags,
            |s, kt, at, out| s.read_tags(kt, at, out),
        )
    }

    /// The evaluated points `range` of one key type, in tag order.
    pub fn read_points(
        &self,
        key_type: KeyType,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<Point>, PsiError> {
        self.read(
            key_type,
            range,
            |_, points| points,
            |s, kt, at, out| s.read_points(kt, at, out),
        )
    }

    fn read<T: Copy + Default>(
        &self,
        key_type: KeyType,
        range: std::ops::Range<u64>,
        memory: impl for<'a> Fn(
            &'a BTreeMap<KeyType, Vec<Tag>>,
            &'a BTreeMap<KeyType, Vec<Point>>,
        ) -> &'a BTreeMap<KeyType, Vec<T>>,
        source: impl Fn(&dyn KeySource, KeyType, u64, &mut [T]) -> Result<(), String>,
    ) -> Result<Vec<T>, PsiError> {
        if range.start > range.end || range.end > self.size(key_type) {
            return Err(Misuse::Incomplete("a read past the epoch's keys").into());
        }
        match &self.keys {
            Keys::Memory { tags, points } => {
                let all = memory(tags, points)
                    .get(&key_type)
                    .map_or(&[][..], Vec::as_slice);
                Ok(all[range.start as usize..range.end as usize].to_vec())
            }
            Keys::Source(s) => {
                let mut out = vec![T::default(); (range.end - range.start) as usize];
                source(s.as_ref(), key_type, range.start, &mut out).map_err(PsiError::Store)?;
                Ok(out)
            }
        }
    }
}

/// Builds an epoch from batches of keys: draws the key, tags each batch in parallel as it comes
/// (so an import streams), then sorts.
pub struct EpochBuilder {
    id: EpochId,
    key: SecretKey,
    tags: BTreeMap<KeyType, Vec<Tag>>,
    points: BTreeMap<KeyType, Vec<Point>>,
    labels: Option<LabelsBuilder>,
    /// With [`EpochBuilder::into_sink`]: where each batch's tags and points go instead.
    sink: Option<Box<KeySink>>,
}

/// Takes each batch's tags and points, unsorted, with repeats ([`EpochBuilder::into_sink`]).
pub type KeySink = dyn FnMut(KeyType, &[Tag], &[Point]) -> Result<(), String> + Send;

impl fmt::Debug for EpochBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochBuilder")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl EpochBuilder {
    /// A new epoch with a fresh random id and key.
    pub fn new(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
        Self::with_key(EpochId::random(rng), SecretKey::random(rng))
    }

    /// A new epoch with a given id and key (for test vectors and reproducible research runs;
    /// a node draws both fresh with [`EpochBuilder::new`]).
    pub fn with_key(id: EpochId, key: SecretKey) -> Self {
        EpochBuilder {
            id,
            key,
            tags: BTreeMap::new(),
            points: BTreeMap::new(),
            labels: None,
            sink: None,
        }
    }

    /// Hands every batch's tags and points to `sink` instead of keeping them (an epoch
    /// without labels): a node imports a list larger than its memory by writing them to runs
    /// on disk, sorting and merging them itself, then [`EpochBuilder::finish_with`].
    pub fn into_sink(mut self, sink: Box<KeySink>) -> Result<Self, PsiError> {
        if self.labels.as_ref().is_some_and(|l| !l.specs().is_empty()) {
            return Err(Misuse::Incomplete("an epoch with labels is built in memory").into());
        }
        // Labels given as none at all are no labels.
        self.labels = None;
        self.sink = Some(sink);
        Ok(self)
    }

    /// The epoch built through a sink: `sizes` distinct keys per type, sorted and read from
    /// `source`.
    pub fn finish_with(self, sizes: BTreeMap<KeyType, u64>, source: Box<dyn KeySource>) -> Epoch {
        Epoch::from_source(self.id, self.key, sizes, source)
    }

    /// The epoch's id.
    pub fn id(&self) -> EpochId {
        self.id
    }

    /// Gives the epoch labels (at most [`super::labels::MAX_LABELS`]); then every batch is
    /// added with [`EpochBuilder::add_labeled`].
    pub fn with_labels(mut self, specs: Vec<LabelSpec>) -> Result<Self, PsiError> {
        self.labels = Some(LabelsBuilder::new(specs)?);
        Ok(self)
    }

    /// The labels given, if any.
    pub fn label_specs(&self) -> &[LabelSpec] {
        self.labels.as_ref().map_or(&[], |l| l.specs())
    }

    /// Tags a batch of keys (duplicates are fine; they collapse at [`EpochBuilder::finish`]).
    /// In an epoch with labels, the keys are added without values. A builder with a sink
    /// ignores the sink's failure here: use [`EpochBuilder::try_add`].
    pub fn add(&mut self, keys: &[Key]) {
        let _ = self.try_add(keys);
    }

    /// [`EpochBuilder::add`], failing when the sink fails ([`PsiError::Store`]).
    pub fn try_add(&mut self, keys: &[Key]) -> Result<(), PsiError> {
        if self.labels.is_some() {
            let none = vec![None; self.label_specs().len()];
            // The arity is the epoch's own and no value is given, so this cannot fail.
            let _ = self.add_labeled(keys, &none);
            return Ok(());
        }
        for kt in KeyType::ALL {
            let values: Vec<&str> = keys
                .iter()
                .filter(|k| k.key_type() == kt)
                .map(Key::value)
                .collect();
            if values.is_empty() {
                continue;
            }
            let evaluated = hash_and_evaluate(&self.key, kt, &values);
            let prefix = super::oprf_prefix(kt);
            let tags: Vec<Tag> = values
                .par_iter()
                .zip(&evaluated)
                .map(|(v, p)| finalize_tag(&[&prefix, v.as_bytes()], p))
                .collect();
            if let Some(sink) = self.sink.as_mut() {
                sink(kt, &tags, &evaluated).map_err(PsiError::Store)?;
                continue;
            }
            self.tags.entry(kt).or_default().extend(tags);
            self.points.entry(kt).or_default().extend(evaluated);
        }
        Ok(())
    }

    /// Tags the keys of one record, with that record's label values (one per label given to
    /// [`EpochBuilder::with_labels`], `None` where it has none).
    pub fn add_labeled(&mut self, keys: &[Key], values: &[Option<&str>]) -> Result<(), PsiError> {
        self.add_labeled_rows(&[(keys, values)])
    }

    /// [`EpochBuilder::add_labeled`] for a batch of records, tagged in parallel.
    pub fn add_labeled_rows(&mut self, rows: &[(&[Key], &[Option<&str>])]) -> Result<(), PsiError> {
        let Some(labels) = self.labels.as_mut() else {
            for (keys, _) in rows {
                self.add(keys);
            }
            return Ok(());
        };
        let pairs: Vec<Vec<(u8, u32)>> = rows
            .iter()
            .map(|(_, values)| labels.intern(values))
            .collect::<Result<_, _>>()?;
        for kt in KeyType::ALL {
            let (values, owners): (Vec<&str>, Vec<usize>) = rows
                .iter()
                .enumerate()
                .flat_map(|(r, (keys, _))| {
                    keys.iter()
                        .filter(move |k| k.key_type() == kt)
                        .map(move |k| (k.value(), r))
                })
                .unzip();
            if values.is_empty() {
                continue;
            }
            let evaluated = hash_and_evaluate(&self.key, kt, &values);
            let prefix = super::oprf_prefix(kt);
            let (tags, keys): (Vec<Tag>, Vec<[u8; 32]>) = values
                .par_iter()
                .zip(&evaluated)
                .map(|(v, p)| split_output(&finalize_output(&[&prefix, v.as_bytes()], p)))
                .unzip();
            self.tags.entry(kt).or_default().extend(tags);
            self.points.entry(kt).or_default().extend(evaluated);
            labels.push(kt, keys, owners.iter().map(|r| pairs[*r].clone()));
        }
        Ok(())
    }

    /// Sorts by tag and collapses repeated keys (merging their labels): the epoch is ready to
    /// serve.
    pub fn finish(mut self) -> Epoch {
        let mut labels = self.labels.take();
        let remap = labels.as_mut().map(LabelsBuilder::sort_values);
        let n_labels = labels.as_ref().map_or(0, |l| l.specs().len());
        let mut stats = vec![LabelStats::default(); n_labels];
        let mut per_type = BTreeMap::new();
        let mut tags_out = BTreeMap::new();
        let mut points_out = BTreeMap::new();
        for (kt, tags) in std::mem::take(&mut self.tags) {
            let points = self.points.remove(&kt).unwrap_or_default();
            let mut order: Vec<u32> = (0..tags.len() as u32).collect();
            order.par_sort_unstable_by_key(|i| tags[*i as usize]);
            let (keys, pairs) = labels.as_mut().map(|l| l.take(kt)).unwrap_or_default();
            let mut t_out: Vec<Tag> = Vec::with_capacity(tags.len());
            let mut p_out: Vec<Point> = Vec::with_capacity(tags.len());
            let mut l_out = TypeLabels::default();
            let mut i = 0;
            while i < order.len() {
                let first = order[i] as usize;
                let mut j = i + 1;
                while j < order.len() && tags[order[j] as usize] == tags[first] {
                    j += 1;
                }
                t_out.push(tags[first]);
                p_out.push(points[first]);
                if let Some(remap) = &remap {
                    // The records holding this key, in file order: the first values found win.
                    let mut same: Vec<u32> = order[i..j].to_vec();
                    same.sort_unstable();
                    let runs: Vec<&[(u8, u32)]> =
                        same.iter().map(|k| pairs[*k as usize].as_slice()).collect();
                    let mut capped = [false; super::labels::MAX_LABELS];
                    let start = l_out.pairs.len();
                    merge_pairs(&runs, &remap.1, &mut capped, &mut l_out.pairs);
                    let mut seen = [false; super::labels::MAX_LABELS];
                    for (l, _) in &l_out.pairs[start..] {
                        seen[usize::from(*l)] = true;
                    }
                    for (l, st) in stats.iter_mut().enumerate() {
                        st.keys_with_value += u64::from(seen[l]);
                        st.capped += u64::from(capped[l]);
                    }
                    l_out.keys.push(keys[first]);
                    l_out.ends.push(l_out.pairs.len() as u32);
                }
                i = j;
            }
            if remap.is_some() {
                per_type.insert(kt, l_out);
            }
            tags_out.insert(kt, t_out);
            points_out.insert(kt, p_out);
        }
        let labels = match (labels, remap) {
            (Some(l), Some((values, _))) => {
                for (st, v) in stats.iter_mut().zip(&values) {
                    st.values = v.len() as u64;
                }
                Some(EpochLabels {
                    specs: l.specs().to_vec(),
                    values,
                    per_type,
                })
            }
            _ => None,
        };
        Epoch {
            id: self.id,
            key: self.key,
            sizes: tags_out
                .iter()
                .map(|(k, t): (&KeyType, &Vec<Tag>)| (*k, t.len() as u64))
                .collect(),
            keys: Keys::Memory {
                tags: tags_out,
                points: points_out,
            },
            labels,
            label_stats: stats,
            value_keys: std::sync::OnceLock::new(),
        }
    }
}

/// `compress(k·H(type || 0x00 || value))` for every value of one type.
pub(crate) fn hash_and_evaluate(key: &SecretKey, kt: KeyType, values: &[&str]) -> Vec<Point> {
    oprf::hash_mul_compress_batch(super::HASH_MODE, &key.0, &super::oprf_prefix(kt), values)
}
