//! An epoch: one OPRF key, and for each key of one import its evaluated point `k·H(y)` (the start
//! of every count session's tags) and its `matches`-mode tag.

use std::collections::BTreeMap;
use std::fmt;

use rand_core::CryptoRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::tag::{Tag, finalize_tag};
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

/// The holder's state for one epoch: its key (secret) and, per key type, its tags and its
/// evaluated points, each sorted ascending without repeats (one of each per distinct key).
pub struct Epoch {
    id: EpochId,
    key: SecretKey,
    tags: BTreeMap<KeyType, Vec<Tag>>,
    points: BTreeMap<KeyType, Vec<Point>>,
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
    /// Reassembles an epoch from storage. Tags and points must be strictly ascending per type,
    /// and as many of each. (Points are decoded when a count session is prepared.)
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
        for (kt, p) in &points {
            if !p.windows(2).all(|w| w[0] < w[1]) {
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
        })
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
        }
    }

    /// Tags a batch of keys (duplicates are fine; they collapse at [`EpochBuilder::finish`]).
    pub fn add(&mut self, keys: &[Key]) {
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

    /// Sorts and deduplicates the tags: the epoch is ready to serve.
    pub fn finish(mut self) -> Epoch {
        for t in self.tags.values_mut() {
            t.par_sort_unstable();
            t.dedup();
        }
        for p in self.points.values_mut() {
            p.par_sort_unstable();
            p.dedup();
        }
        Epoch {
            id: self.id,
            key: self.key,
            tags: std::mem::take(&mut self.tags),
            points: std::mem::take(&mut self.points),
        }
    }
}

/// `compress(k·H(type || 0x00 || value))` for every value of one type.
pub(crate) fn hash_and_evaluate(key: &SecretKey, kt: KeyType, values: &[&str]) -> Vec<Point> {
    oprf::hash_mul_compress_batch(super::HASH_MODE, &key.0, &super::oprf_prefix(kt), values)
}
