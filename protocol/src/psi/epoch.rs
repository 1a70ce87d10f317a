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

/// The holder's state for one epoch: its key (secret) and, per key type, its tags sorted
/// ascending without repeats (one per distinct key), each key's evaluated point in the same
/// order, and, if the import had labels, each key's labels in the same order.
pub struct Epoch {
    id: EpochId,
    key: SecretKey,
    tags: BTreeMap<KeyType, Vec<Tag>>,
    points: BTreeMap<KeyType, Vec<Point>>,
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
    /// Reassembles an epoch from storage. Tags must be strictly ascending per type, with one
    /// point per tag in the same order. (Points are decoded when a count session is prepared.)
    pub fn from_parts(
        id: EpochId,
        key: SecretKey,
        tags: BTreeMap<KeyType, Vec<Tag>>,
        points: BTreeMap<KeyType, Vec<Point>>,
    ) -> Result<Self, PsiError> {
        for (kt, t) in &tags {
            if !t.windows(2).all(|w| w[0] < w[1]) {
                return Err(Misuse::UnsortedEpochTags(*kt).into());
            }
        }
        let tag_sizes: BTreeMap<KeyType, usize> = tags.iter().map(|(k, t)| (*k, t.len())).collect();
        let point_sizes: BTreeMap<KeyType, usize> =
            points.iter().map(|(k, p)| (*k, p.len())).collect();
        if tag_sizes != point_sizes {
            return Err(Misuse::EpochPointsMismatch.into());
        }
        Ok(Epoch {
            id,
            key,
            tags,
            points,
            labels: None,
            label_stats: Vec::new(),
            value_keys: std::sync::OnceLock::new(),
        })
    }

    /// Attaches stored labels: one run per tag of each key type, in tag order.
    pub fn with_labels(mut self, labels: EpochLabels) -> Result<Self, PsiError> {
        labels.check()?;
        let aligned = labels.per_type.len() == self.tags.len()
            && self
                .tags
                .iter()
                .all(|(kt, t)| labels.per_type.get(kt).is_some_and(|l| l.len() == t.len()));
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

    /// The sorted tags of one key type (empty if none).
    pub fn tags(&self, key_type: KeyType) -> &[Tag] {
        self.tags.get(&key_type).map_or(&[], Vec::as_slice)
    }

    /// The evaluated points of one key type (empty if none), ascending.
    pub fn points(&self, key_type: KeyType) -> &[Point] {
        self.points.get(&key_type).map_or(&[], Vec::as_slice)
    }

    /// Distinct keys per type.
    pub fn sizes(&self) -> BTreeMap<KeyType, u64> {
        self.tags
            .iter()
            .map(|(k, t)| (*k, t.len() as u64))
            .collect()
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
}

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
        }
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
    /// In an epoch with labels, the keys are added without values.
    pub fn add(&mut self, keys: &[Key]) {
        if self.labels.is_some() {
            let none = vec![None; self.label_specs().len()];
            // The arity is the epoch's own and no value is given, so this cannot fail.
            let _ = self.add_labeled(keys, &none);
            return;
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
            self.tags.entry(kt).or_default().extend(tags);
            self.points.entry(kt).or_default().extend(evaluated);
        }
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
            tags: tags_out,
            points: points_out,
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
