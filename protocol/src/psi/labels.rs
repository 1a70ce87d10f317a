//! Segments of a holder's list: labels such as the branch that opened an account (开户网点),
//! the system or product it lives in, or the month it was opened. Each key of an epoch carries
//! the distinct values of every label found on the records holding it, so a querier can be
//! told *which part* of an institution its matches sit in.
//!
//! Values are interned per label (at most [`MAX_LABEL_VALUES`] distinct values, at most
//! [`MAX_VALUE_BYTES`] bytes each): a label is a segment, not an identifier. A key keeps at
//! most [`MAX_VALUES_PER_KEY`] values per label, the first found in file order; the import
//! counts the keys that had more ([`LabelStats::capped`]).
//!
//! Each key also carries its *label key*, bytes 32..64 of its `Finalize` output (the tag is
//! bytes 0..16 of the same output). Only a querier that evaluated the same input can derive it,
//! which is what lets labels travel encrypted to the querier for matched keys alone.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::ident::KeyType;

/// The label of planted records: its value names the export a canary was planted in. Offered
/// to every querier that asks for labels, and never suppressed (a canary is nobody).
pub const CANARY_LABEL: &str = "canary";

/// Most labels one import may carry (with the `canary` label, one more).
pub const MAX_LABELS: usize = 8;
/// Most distinct values one label may take across an epoch (a slot on the wire holds a value
/// id plus one, with 0 for none and `0xFFFF` for a value too rare to show).
pub const MAX_LABEL_VALUES: usize = 65_534;
/// Longest value, in UTF-8 bytes.
pub const MAX_VALUE_BYTES: usize = 128;
/// Most values of one label a single key keeps.
pub const MAX_VALUES_PER_KEY: usize = 4;
/// Longest label name, in bytes.
pub const MAX_NAME_BYTES: usize = 32;

/// A key's label key: bytes 32..64 of its `Finalize` output.
pub type LabelKey = [u8; 32];

/// How a label's values were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// The cell's text, trimmed.
    Text,
    /// A date or month, kept as `YYYY-MM` ([`crate::ident::canonical_month`]).
    Month,
}

impl LabelKind {
    /// `text` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelKind::Text => "text",
            LabelKind::Month => "month",
        }
    }
}

/// A label's name and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabelSpec {
    /// Lower-case ASCII letters, digits and `_`, 1 to [`MAX_NAME_BYTES`] bytes (`branch`).
    pub name: String,
    /// How its values are read.
    pub kind: LabelKind,
}

/// Labels that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// More than [`MAX_LABELS`] labels.
    #[error("{0} labels given; at most {MAX_LABELS} are allowed")]
    TooManyLabels(usize),
    /// A name outside `[a-z0-9_]{1,32}`.
    #[error(
        "label name {0:?}: use 1 to {MAX_NAME_BYTES} lower-case ASCII letters, digits or '_' (e.g. branch, opened)"
    )]
    BadName(String),
    /// The same name twice.
    #[error("label {0:?} is given twice")]
    DuplicateName(String),
    /// A label with more distinct values than [`MAX_LABEL_VALUES`].
    #[error(
        "label {label:?} has more than {MAX_LABEL_VALUES} distinct values: a label is a segment (branch, system, month), not an identifier"
    )]
    TooManyValues {
        /// The label.
        label: String,
    },
    /// A value longer than [`MAX_VALUE_BYTES`].
    #[error(
        "a value of label {label:?} is {len} bytes long; at most {MAX_VALUE_BYTES} are allowed"
    )]
    ValueTooLong {
        /// The label.
        label: String,
        /// Its length.
        len: usize,
    },
    /// Values given for a different number of labels than the epoch has.
    #[error("{got} label values given for {expected} labels")]
    WrongArity {
        /// Labels of the epoch.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// Stored labels that do not fit their epoch (a damaged store).
    #[error("the stored labels do not fit the epoch: {0}")]
    Inconsistent(&'static str),
}

// One keystream block seals a key's every slot ([`keystream`]).
const _: () = assert!(MAX_LABELS * MAX_VALUES_PER_KEY * 2 <= 64);

/// Checks a set of label specifications: at most [`MAX_LABELS`], the canary label counted
/// among them (every per-key array and the keystream are sized by it).
pub fn check_specs(specs: &[LabelSpec]) -> Result<(), LabelError> {
    if specs.len() > MAX_LABELS {
        return Err(LabelError::TooManyLabels(specs.len()));
    }
    for (i, s) in specs.iter().enumerate() {
        let ok = !s.name.is_empty()
            && s.name.len() <= MAX_NAME_BYTES
            && s.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(LabelError::BadName(s.name.clone()));
        }
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(LabelError::DuplicateName(s.name.clone()));
        }
    }
    Ok(())
}

/// The labels of one key type, in tag order: each key's label key and its `(label, value id)`
/// pairs, sorted and distinct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeLabels {
    /// One label key per key, in tag order.
    pub keys: Vec<LabelKey>,
    /// `ends[i]`: the end of key `i`'s pairs in `pairs`.
    pub ends: Vec<u32>,
    /// Every key's pairs, concatenated.
    pub pairs: Vec<(u8, u16)>,
}

impl TypeLabels {
    /// The `(label, value id)` pairs of key `i`.
    pub fn of(&self, i: usize) -> &[(u8, u16)] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.pairs[start..self.ends[i] as usize]
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// An epoch's labels: their specifications, the values of each (sorted, so a value id is its
/// rank), and per key type the labels of every key in tag order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochLabels {
    /// The labels, in the order given at import.
    pub specs: Vec<LabelSpec>,
    /// Per label, its values ascending; a pair's value id indexes this.
    pub values: Vec<Vec<String>>,
    /// Per key type, aligned with the epoch's tags.
    pub per_type: BTreeMap<KeyType, TypeLabels>,
}

impl EpochLabels {
    /// Checks the structure: specs valid, values sorted and bounded, pairs in range, sorted,
    /// distinct, and at most [`MAX_VALUES_PER_KEY`] per label and key.
    pub fn check(&self) -> Result<(), LabelError> {
        check_specs(&self.specs)?;
        if self.values.len() != self.specs.len() {
            return Err(LabelError::Inconsistent("a value list per label"));
        }
        for v in &self.values {
            if v.len() > MAX_LABEL_VALUES || !v.windows(2).all(|w| w[0] < w[1]) {
                return Err(LabelError::Inconsistent("values sorted and distinct"));
            }
        }
        for t in self.per_type.values() {
            if t.ends.len() != t.keys.len()
                || !t.ends.windows(2).all(|w| w[0] <= w[1])
                || t.ends.last().map_or(0, |e| *e as usize) != t.pairs.len()
            {
                return Err(LabelError::Inconsistent("one run of pairs per key"));
            }
            for i in 0..t.keys.len() {
                let pairs = t.of(i);
                if !pairs.windows(2).all(|w| w[0] < w[1]) {
                    return Err(LabelError::Inconsistent("pairs sorted and distinct"));
                }
                for (l, v) in pairs {
                    let values = self
                        .values
                        .get(usize::from(*l))
                        .ok_or(LabelError::Inconsistent("a pair's label exists"))?;
                    if usize::from(*v) >= values.len() {
                        return Err(LabelError::Inconsistent("a pair's value exists"));
                    }
                }
                for l in 0..self.specs.len() {
                    if pairs.iter().filter(|(pl, _)| usize::from(*pl) == l).count()
                        > MAX_VALUES_PER_KEY
                    {
                        return Err(LabelError::Inconsistent("values per key bounded"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// What an import's labels came to, per label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelStats {
    /// Distinct values.
    pub values: u64,
    /// Keys (of any type) with at least one value.
    pub keys_with_value: u64,
    /// Keys that had more than [`MAX_VALUES_PER_KEY`] distinct values and kept the first.
    pub capped: u64,
}

/// Collects labels while an epoch is built: interns values, keeps each key's pairs beside its
/// tag until [`LabelsBuilder::finish`] sorts them into tag order.
#[derive(Debug)]
pub(crate) struct LabelsBuilder {
    specs: Vec<LabelSpec>,
    /// Per label: value → provisional id (first-seen order), and the values by id.
    ids: Vec<HashMap<String, u32>>,
    values: Vec<Vec<String>>,
    /// Per key type, one entry per key added (duplicates included): label key and pairs
    /// (label, provisional id).
    keys: BTreeMap<KeyType, Vec<LabelKey>>,
    pairs: BTreeMap<KeyType, Vec<Vec<(u8, u32)>>>,
}

impl LabelsBuilder {
    pub(crate) fn new(specs: Vec<LabelSpec>) -> Result<Self, LabelError> {
        check_specs(&specs)?;
        let n = specs.len();
        Ok(LabelsBuilder {
            specs,
            ids: vec![HashMap::new(); n],
            values: vec![Vec::new(); n],
            keys: BTreeMap::new(),
            pairs: BTreeMap::new(),
        })
    }

    /// The provisional `(label, id)` pairs of one row's values (`None`: no value).
    pub(crate) fn intern(&mut self, row: &[Option<&str>]) -> Result<Vec<(u8, u32)>, LabelError> {
        if row.len() != self.specs.len() {
            return Err(LabelError::WrongArity {
                expected: self.specs.len(),
                got: row.len(),
            });
        }
        let mut out = Vec::new();
        for (l, v) in row.iter().enumerate() {
            let Some(v) = v else { continue };
            let label = &self.specs[l].name;
            if v.len() > MAX_VALUE_BYTES {
                return Err(LabelError::ValueTooLong {
                    label: label.clone(),
                    len: v.len(),
                });
            }
            let id = match self.ids[l].get(*v) {
                Some(id) => *id,
                None => {
                    if self.values[l].len() >= MAX_LABEL_VALUES {
                        return Err(LabelError::TooManyValues {
                            label: label.clone(),
                        });
                    }
                    let id = self.values[l].len() as u32;
                    self.ids[l].insert((*v).to_owned(), id);
                    self.values[l].push((*v).to_owned());
                    id
                }
            };
            out.push((l as u8, id));
        }
        Ok(out)
    }

    /// Records the label keys of a batch of keys of one type, each with its record's pairs.
    pub(crate) fn push(
        &mut self,
        kt: KeyType,
        keys: Vec<LabelKey>,
        pairs: impl Iterator<Item = Vec<(u8, u32)>>,
    ) {
        self.keys.entry(kt).or_default().extend(keys);
        self.pairs.entry(kt).or_default().extend(pairs);
    }

    /// Takes the label keys and pairs of one type, in the order they were pushed.
    pub(crate) fn take(&mut self, kt: KeyType) -> (Vec<LabelKey>, Vec<Vec<(u8, u32)>>) {
        (
            self.keys.remove(&kt).unwrap_or_default(),
            self.pairs.remove(&kt).unwrap_or_default(),
        )
    }

    /// Sorts each label's values and returns, per label, provisional id → final id.
    pub(crate) fn sort_values(&mut self) -> (Vec<Vec<String>>, Vec<Vec<u16>>) {
        let mut values = Vec::with_capacity(self.values.len());
        let mut remap = Vec::with_capacity(self.values.len());
        for v in std::mem::take(&mut self.values) {
            let mut order: Vec<u32> = (0..v.len() as u32).collect();
            order.sort_by(|a, b| v[*a as usize].cmp(&v[*b as usize]));
            let mut map = vec![0u16; v.len()];
            for (rank, id) in order.iter().enumerate() {
                // At most MAX_LABEL_VALUES (65,535) values: a rank fits in 16 bits.
                map[*id as usize] = rank as u16;
            }
            let mut sorted: Vec<String> = Vec::with_capacity(v.len());
            let mut v: Vec<Option<String>> = v.into_iter().map(Some).collect();
            for id in order {
                sorted.push(v[id as usize].take().unwrap_or_default());
            }
            values.push(sorted);
            remap.push(map);
        }
        (values, remap)
    }

    pub(crate) fn specs(&self) -> &[LabelSpec] {
        &self.specs
    }
}

/// Merges the pairs of the records holding one key: final ids, sorted, distinct, at most
/// [`MAX_VALUES_PER_KEY`] per label (the first found in file order). Returns whether a label
/// lost values, per label index, in `capped`.
pub(crate) fn merge_pairs(
    runs: &[&[(u8, u32)]],
    remap: &[Vec<u16>],
    capped: &mut [bool],
    out: &mut Vec<(u8, u16)>,
) {
    let start = out.len();
    let mut per_label = [0usize; MAX_LABELS];
    for run in runs {
        for (l, id) in *run {
            let pair = (*l, remap[usize::from(*l)][*id as usize]);
            if out[start..].contains(&pair) {
                continue;
            }
            let li = usize::from(*l);
            if per_label[li] == MAX_VALUES_PER_KEY {
                capped[li] = true;
                continue;
            }
            per_label[li] += 1;
            out.push(pair);
        }
    }
    out[start..].sort_unstable();
}

/// Domain-separation prefix of the keystream that seals each key's labels.
pub const LABEL_STREAM_DST: &[u8] = b"suyuan-label-stream-v3";
/// Values per [`super::LabelValues`] message: 4,096 values of at most 128 bytes fit a frame.
pub const VALUES_PER_MESSAGE: usize = 4096;
/// A slot holding no value.
pub const SLOT_EMPTY: u16 = 0;
/// A slot holding a value that fewer than the offer's `min_cell` keys of the holder's whole
/// list carry: shown as suppressed, never by name.
pub const SLOT_RARE: u16 = 0xFFFF;

/// What a holder lets one querier see of its labels: the labels named (in the epoch's order),
/// how many values each has (sent next), the smallest cell the holder lets be reported, and
/// the session's nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelOffer {
    /// The labels offered, 1..=[`MAX_LABELS`].
    pub specs: Vec<LabelSpec>,
    /// Values of each offered label, ≤ [`MAX_LABEL_VALUES`].
    pub value_counts: Vec<u32>,
    /// The holder's `min_label_cell`: fewer matched keys than this in a cell is not reported.
    pub min_cell: u64,
    /// Whether each value comes with its keys in the holder's whole list (`share_label_totals`),
    /// so the querier can tell a segment over-represented among its matches from a large one.
    pub totals: bool,
    /// Fresh per session: each key's label key seals once per session.
    pub nonce: [u8; 16],
}

impl LabelOffer {
    /// Bytes of one key's sealed labels: [`MAX_VALUES_PER_KEY`] two-byte slots per label.
    pub fn sealed_len(&self) -> usize {
        self.specs.len() * MAX_VALUES_PER_KEY * 2
    }

    /// Whether the offer is well formed (a querier checks it before anything else).
    pub fn is_valid(&self) -> bool {
        !self.specs.is_empty()
            && check_specs(&self.specs).is_ok()
            && self.value_counts.len() == self.specs.len()
            && self
                .value_counts
                .iter()
                .all(|n| *n as usize <= MAX_LABEL_VALUES)
    }
}

/// Which labels the holder's policy shows this querier, and its smallest reportable cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelPolicy {
    /// Label names this querier may see; labels the epoch lacks are ignored.
    pub visible: Vec<String>,
    /// `min_label_cell`.
    pub min_cell: u64,
    /// `share_label_totals`: send each shown value's keys in the whole list, per key type.
    pub share_totals: bool,
}

/// `SHA-512(LABEL_STREAM_DST || label key || nonce)`: one block of keystream, as long as the
/// longest sealed labels (8 labels · 4 slots · 2 bytes).
fn keystream(key: &LabelKey, nonce: &[u8; 16]) -> [u8; 64] {
    Sha512::new()
        .chain_update(LABEL_STREAM_DST)
        .chain_update(key)
        .chain_update(nonce)
        .finalize()
        .into()
}

/// XORs `buf` (at most 64 bytes) with the keystream of `key` and `nonce`: seals and opens alike.
pub(crate) fn apply_keystream(key: &LabelKey, nonce: &[u8; 16], buf: &mut [u8]) {
    for (b, k) in buf.iter_mut().zip(keystream(key, nonce)) {
        *b ^= k;
    }
}

/// The slots of one key for an offer: per offered label (by its index in the epoch),
/// [`MAX_VALUES_PER_KEY`] big-endian slots, each a value id plus one, [`SLOT_RARE`] for a value
/// in `rare`, [`SLOT_EMPTY`] for none.
pub(crate) fn encode_slots(
    pairs: &[(u8, u16)],
    offered: &[u8],
    rare: &[Vec<bool>],
    out: &mut [u8],
) {
    // Each offered label owns MAX_VALUES_PER_KEY two-byte slots; values past them (none
    // after an import's cap) are not written.
    for ((o, label), slots) in offered
        .iter()
        .enumerate()
        .zip(out.chunks_exact_mut(MAX_VALUES_PER_KEY * 2))
    {
        let mut values = pairs.iter().filter(|(l, _)| l == label).map(|(_, v)| {
            if rare[o].get(usize::from(*v)).copied().unwrap_or(true) {
                SLOT_RARE
            } else {
                v + 1
            }
        });
        for slot in slots.chunks_exact_mut(2) {
            slot.copy_from_slice(&values.next().unwrap_or(SLOT_EMPTY).to_be_bytes());
        }
    }
}

/// What one opened slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// A value, by its id in the offer's values of that label.
    Value(u16),
    /// A value too rare in the holder's list to be shown.
    Rare,
}

/// Reads the opened slots of one key: `(offered label, slot)` for every non-empty slot, or
/// `None` when a slot names a value the offer does not have (a holder that sealed garbage, or
/// a tag that collided at ℓ bytes with another key's).
pub(crate) fn decode_slots(plain: &[u8], value_counts: &[u32]) -> Option<Vec<(u8, Slot)>> {
    let mut out = Vec::new();
    for (o, chunk) in plain.chunks_exact(MAX_VALUES_PER_KEY * 2).enumerate() {
        for s in chunk.chunks_exact(2) {
            match u16::from_be_bytes([s[0], s[1]]) {
                SLOT_EMPTY => {}
                SLOT_RARE => out.push((o as u8, Slot::Rare)),
                v if u32::from(v) <= *value_counts.get(o)? => {
                    out.push((o as u8, Slot::Value(v - 1)));
                }
                _ => return None,
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Per key type, per label, per value: how many keys of that type carry it.
fn value_key_counts(labels: &EpochLabels) -> BTreeMap<KeyType, Vec<Vec<u64>>> {
    let mut out = BTreeMap::new();
    for (kt, t) in &labels.per_type {
        let mut counts: Vec<Vec<u64>> = labels.values.iter().map(|v| vec![0; v.len()]).collect();
        for (l, v) in &t.pairs {
            if let Some(c) = counts
                .get_mut(usize::from(*l))
                .and_then(|c| c.get_mut(usize::from(*v)))
            {
                *c += 1;
            }
        }
        out.insert(*kt, counts);
    }
    out
}

/// Per label and value, the keys of a list carrying it: per key type, and over every type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ValueKeys {
    pub(crate) per_type: BTreeMap<KeyType, Vec<Vec<u64>>>,
    pub(crate) all: Vec<Vec<u64>>,
}

impl ValueKeys {
    pub(crate) fn of(labels: &EpochLabels) -> Self {
        let per_type = value_key_counts(labels);
        ValueKeys {
            all: all_types(&per_type, labels),
            per_type,
        }
    }
}

/// Per label, per value: keys of the whole list (every type) carrying it.
fn all_types(per_type: &BTreeMap<KeyType, Vec<Vec<u64>>>, labels: &EpochLabels) -> Vec<Vec<u64>> {
    let mut sum: Vec<Vec<u64>> = labels.values.iter().map(|v| vec![0; v.len()]).collect();
    for counts in per_type.values() {
        for (s, c) in sum.iter_mut().zip(counts) {
            for (a, b) in s.iter_mut().zip(c) {
                *a += b;
            }
        }
    }
    sum
}

/// What a querier learns of the labels of one holder's matched keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelAnswer {
    /// The labels offered.
    pub specs: Vec<LabelSpec>,
    /// Per offered label, its values (a value id indexes this).
    pub values: Vec<Vec<String>>,
    /// The holder's smallest reportable cell.
    pub min_cell: u64,
    /// `(label, value)` → key type → distinct matched query keys held by at least one of the
    /// holder's records carrying that value.
    pub counts: BTreeMap<(u8, u16), BTreeMap<KeyType, u64>>,
    /// `(label, key type)` → matched keys carrying a value too rare in the holder's list to show.
    pub rare: BTreeMap<(u8, KeyType), u64>,
    /// `matches` mode: each matched row (0-based) with a labelled key, and its `(label, value)`
    /// pairs; `None` in `count` mode, where labels are counts alone.
    pub rows: Option<BTreeMap<u64, Vec<(u8, u16)>>>,
    /// Matched keys whose sealed labels named no value of the offer (a tag collision at ℓ
    /// bytes, or a holder sealing garbage).
    pub unreadable: u64,
    /// With `share_label_totals`: `(label, value)` → key type → the holder's keys of that type
    /// carrying the value (values too rare to name have none).
    pub totals: Option<BTreeMap<(u8, u16), BTreeMap<KeyType, u64>>>,
}
