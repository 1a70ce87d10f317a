//! The querier's side: blind once, then one session per holder.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::keys::{QueryKeys, TypeKeys};
use super::labels::{
    LabelAnswer, LabelOffer, MAX_VALUE_BYTES, Slot, apply_keystream, decode_slots,
};
use super::messages::sections_valid;
use super::tag::{TAG_STORED_LEN, count_output, finalize_output, split_output};
use super::tag_index::TagIndex;
use super::{
    BlindedChunk, EpochId, EvaluatedChunk, HASH_MODE, HolderMessage, LabelValues, LimitExceeded,
    MAX_CHUNK_ELEMENTS, MAX_SET_SIZE, Misuse, PROTOCOL_VERSION, PeerMisbehaved, PsiError,
    QuerierMessage, QueryAccept, QueryMode, QueryStart, Section, TagChunk, TagSet, chunk_len,
    oprf_prefix, section_counts, tag_len,
};
use crate::ident::KeyType;
use crate::oprf::{self, Element, Proof, PublicKey};

/// How a query hides its keys from the holders (protocol.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blinding {
    /// `a·H(x)` under one secret `a` for every key, unblinded by `a⁻¹`: both modes (a `count`
    /// holder returns its evaluations sorted, which only one scalar for all can undo).
    Multiplicative,
    /// `H(x) + ρᵢ·G` with `ρᵢ` derived from a secret seed and the key's position, unblinded by
    /// `E − ρᵢ·pk` once the holder's proof has verified: `matches` mode only. Blinding and each
    /// holder's unblinding are then multiplications of a fixed point, about three times cheaper.
    Additive,
}

impl Blinding {
    /// `multiplicative` or `additive`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Blinding::Multiplicative => "multiplicative",
            Blinding::Additive => "additive",
        }
    }

    /// What a query in `mode` uses unless told otherwise: additive in `matches` mode (each
    /// further holder then costs a fixed-base multiplication per key), multiplicative in
    /// `count` mode (the only one sorted evaluations allow).
    pub const fn for_mode(mode: QueryMode) -> Blinding {
        match mode {
            QueryMode::Matches => Blinding::Additive,
            QueryMode::Count => Blinding::Multiplicative,
        }
    }
}

impl fmt::Display for Blinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Blinding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "multiplicative" => Ok(Blinding::Multiplicative),
            "additive" => Ok(Blinding::Additive),
            other => Err(format!(
                "unknown blinding {other:?}: multiplicative or additive"
            )),
        }
    }
}

/// A query's secret: `a` and `a⁻¹`, or the additive blinds' seed (with each section's first position
/// in the query the seed was applied to, which [`Query::without`] keeps).
enum Secret {
    /// The blind `a` (for chunks not yet blinded) and `a⁻¹`.
    Multiplicative { a: Scalar, unblind: Scalar },
    Additive {
        seed: Zeroizing<[u8; 32]>,
        origins: Vec<u64>,
    },
}

/// A querier's blinded keys, grouped by type, and the secret that unblinds them: `a·H(x)` for
/// every distinct key and `a⁻¹`, or `H(x) + ρᵢ·G` and the seed of the `ρᵢ` ([`Blinding`]).
/// One query can be run against many holders (wrap it in an [`Arc`]).
pub struct Query {
    secret: Secret,
    sections: Vec<Section>,
    /// Encoded blinded elements in section order, one cell per chunk of `MAX_CHUNK_ELEMENTS`
    /// positions, each filled by whoever needs it first ([`Query::blind_all`] running beside
    /// the sessions, or a session about to send it): a query can go out while it is blinded.
    chunks: Vec<std::sync::OnceLock<Box<[[u8; 32]]>>>,
    /// Distinct keys over all sections.
    total: usize,
    /// Per section, the canonical values of its blinded elements (their OPRF input is the
    /// section's type prefix and the value; `Finalize` needs them in `matches` mode): the
    /// input's own arena of that type and, per element, the index of its value there. Kept
    /// rather than copied, so blinding never holds two copies of the dump's values.
    values: Vec<Arc<SectionValues>>,
    rows: u64,
    /// Position in `blinded` of each row's keys; rows delimited by `row_ends`.
    row_positions: Vec<u32>,
    row_ends: Vec<usize>,
}

impl Secret {
    /// A fresh secret: a random blind `a` (drawn as `RandomScalar`, so that a replayed RNG
    /// gives the RFC's blinds), or a random seed.
    fn fresh(rng: &mut (impl CryptoRng + ?Sized), blinding: Blinding) -> Secret {
        match blinding {
            Blinding::Multiplicative => Secret::multiplicative(oprf::random_scalar(rng)),
            Blinding::Additive => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(&mut *seed);
                Secret::additive(seed)
            }
        }
    }

    fn multiplicative(a: Scalar) -> Secret {
        Secret::Multiplicative {
            a,
            unblind: a.invert(),
        }
    }

    fn additive(seed: Zeroizing<[u8; 32]>) -> Secret {
        Secret::Additive {
            seed,
            origins: Vec::new(),
        }
    }
}

impl Drop for Query {
    fn drop(&mut self) {
        if let Secret::Multiplicative { a, unblind } = &mut self.secret {
            a.zeroize();
            unblind.zeroize();
        }
    }
}

impl fmt::Debug for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("rows", &self.rows)
            .field("sections", &self.sections)
            .finish_non_exhaustive()
    }
}

impl Query {
    /// Draws a fresh blind `a` and computes `a·H(type || 0x00 || value)` for every distinct key,
    /// in parallel.
    pub fn blind(rng: &mut (impl CryptoRng + ?Sized), keys: QueryKeys) -> Result<Self, PsiError> {
        Self::blind_as(rng, keys, Blinding::Multiplicative)
    }

    /// [`Query::blind`] with the blinding given: [`Blinding::Additive`] draws a fresh seed
    /// and computes `H(type || 0x00 || value) + ρᵢ·G` for every distinct key.
    pub fn blind_as(
        rng: &mut (impl CryptoRng + ?Sized),
        keys: QueryKeys,
        blinding: Blinding,
    ) -> Result<Self, PsiError> {
        Self::blind_keys(Secret::fresh(rng, blinding), keys)
    }

    /// How this query was blinded.
    pub fn blinding(&self) -> Blinding {
        match self.secret {
            Secret::Multiplicative { .. } => Blinding::Multiplicative,
            Secret::Additive { .. } => Blinding::Additive,
        }
    }

    /// The query's secret, encoded: the blind `a`, or the additive blinds' seed. What an
    /// auditor needs, with the same input, to rebuild this query ([`Query::reblind_as`]) and
    /// replay a session from the holder's messages. As secret as the dump's blinded elements
    /// are revealing: whoever holds it and a holder's evaluations learns the OPRF outputs of
    /// the dump's keys.
    pub fn blind_secret(&self) -> Zeroizing<[u8; 32]> {
        match &self.secret {
            Secret::Multiplicative { a, .. } => Zeroizing::new(a.to_bytes()),
            Secret::Additive { seed, .. } => seed.clone(),
        }
    }

    /// The query of `keys` under a given blind (from [`Query::blind_secret`] of a
    /// multiplicative query): the same blinded elements, in the same order, as the query it
    /// was taken from, if the keys are the same. Refuses a non-canonical or zero scalar.
    pub fn reblind(blind: &[u8; 32], keys: QueryKeys) -> Result<Self, PsiError> {
        Self::reblind_as(blind, keys, Blinding::Multiplicative)
    }

    /// [`Query::reblind`] for either blinding: an additive query's seed may be any 32 bytes.
    pub fn reblind_as(
        secret: &[u8; 32],
        keys: QueryKeys,
        blinding: Blinding,
    ) -> Result<Self, PsiError> {
        let secret = match blinding {
            Blinding::Multiplicative => {
                let a: Option<Scalar> = Scalar::from_canonical_bytes(*secret).into();
                match a {
                    Some(a) if a != Scalar::ZERO => Secret::multiplicative(a),
                    _ => return Err(Misuse::InvalidBlind.into()),
                }
            }
            Blinding::Additive => Secret::additive(Zeroizing::new(*secret)),
        };
        Self::blind_keys(secret, keys)
    }

    /// Blinds every distinct key under `secret`.
    fn blind_keys(secret: Secret, keys: QueryKeys) -> Result<Self, PsiError> {
        let query = Self::plan_keys(secret, keys)?;
        query.blind_all();
        Ok(query)
    }

    /// [`Query::blind_as`] without the blinding: the sections, rows and secret are set, and
    /// each chunk of blinded elements is computed when first needed. Run [`Query::blind_all`]
    /// beside the sessions (on a thread of its own) to have the chunks ready before they are
    /// sent: the holder then evaluates the first chunks while the last are blinded.
    pub fn plan_as(
        rng: &mut (impl CryptoRng + ?Sized),
        keys: QueryKeys,
        blinding: Blinding,
    ) -> Result<Self, PsiError> {
        Self::plan_keys(Secret::fresh(rng, blinding), keys)
    }

    /// Blinds every chunk not blinded yet, in order (each in parallel on rayon's pool).
    pub fn blind_all(&self) {
        for c in 0..self.chunks.len() {
            self.chunk(c);
        }
    }

    /// Whether chunk `seq` is blinded (so that sending it will not compute it).
    pub fn chunk_ready(&self, seq: u32) -> bool {
        self.chunks
            .get(seq as usize)
            .is_none_or(|c| c.get().is_some())
    }

    /// The blinded elements of chunk `c`, computed here if no one has yet.
    fn chunk(&self, c: usize) -> &[[u8; 32]] {
        self.chunks[c].get_or_init(|| self.compute_chunk(c))
    }

    /// The blinded elements at positions `start .. end` (within one chunk or across several).
    fn blinded(&self, start: usize, end: usize) -> Vec<[u8; 32]> {
        let mut out = Vec::with_capacity(end - start);
        let mut p = start;
        while p < end {
            let c = p / MAX_CHUNK_ELEMENTS;
            let chunk = self.chunk(c);
            let from = p - c * MAX_CHUNK_ELEMENTS;
            let to = (end - c * MAX_CHUNK_ELEMENTS).min(chunk.len());
            out.extend_from_slice(&chunk[from..to]);
            p += to - from;
        }
        out
    }

    /// Blinds positions `c·MAX_CHUNK_ELEMENTS ..` of chunk `c`, section run by section run.
    fn compute_chunk(&self, c: usize) -> Box<[[u8; 32]]> {
        let start = c * MAX_CHUNK_ELEMENTS;
        let end = (start + MAX_CHUNK_ELEMENTS).min(self.total);
        let mut out = vec![[0u8; 32]; end - start];
        let mut section_start = 0usize;
        for (s, (section, v)) in self.sections.iter().zip(&self.values).enumerate() {
            let section_end = section_start + section.count as usize;
            let (from, to) = (start.max(section_start), end.min(section_end));
            if from < to {
                let prefix = oprf_prefix(section.key_type);
                let first = from - section_start;
                let value = |i: usize| v.keys.value(v.distinct[first + i] as usize);
                let out = &mut out[from - start..to - start];
                match &self.secret {
                    Secret::Multiplicative { a, .. } => {
                        oprf::hash_mul_compress_into(HASH_MODE, a, &prefix, value, out)
                    }
                    Secret::Additive { seed, origins } => oprf::additive_blind_into(
                        HASH_MODE,
                        seed,
                        origins[s] + first as u64,
                        &prefix,
                        value,
                        out,
                    ),
                }
            }
            section_start = section_end;
        }
        out.into_boxed_slice()
    }

    /// Everything of a query but its blinded elements.
    fn plan_keys(mut secret: Secret, keys: QueryKeys) -> Result<Self, PsiError> {
        // Distinct keys of every type first (sorted indices, 8 bytes per key); the blinded
        // elements are then written chunk by chunk, 32 bytes per key.
        let (plans, total) = match plan(&keys) {
            Ok(p) => p,
            Err(e) => {
                if let Secret::Multiplicative { a, unblind } = &mut secret {
                    a.zeroize();
                    unblind.zeroize();
                }
                return Err(e);
            }
        };
        let mut sections = Vec::new();
        let mut distincts = Vec::new();
        let mut offsets: BTreeMap<KeyType, (u32, Vec<u32>)> = BTreeMap::new();
        let mut start = 0usize;
        for (kt, _, distinct, raw_to_distinct) in plans {
            let end = start + distinct.len();
            if let Secret::Additive { origins, .. } = &mut secret {
                origins.push(start as u64);
            }
            sections.push(Section {
                key_type: kt,
                count: distinct.len() as u64,
            });
            distincts.push((kt, distinct));
            offsets.insert(kt, (start as u32, raw_to_distinct));
            start = end;
        }
        let (row_positions, row_ends) = row_positions(&keys, &offsets);
        drop(offsets);
        let rows = keys.rows();
        let mut types = keys.types;
        let values = distincts
            .into_iter()
            .map(|(kt, distinct)| {
                Arc::new(SectionValues {
                    keys: types.remove(&kt).unwrap_or_default(),
                    distinct,
                })
            })
            .collect();
        Ok(Query {
            secret,
            sections,
            chunks: (0..total.div_ceil(MAX_CHUNK_ELEMENTS))
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            total,
            values,
            rows,
            row_positions,
            row_ends,
        })
    }

    /// The canonical value at a blinded position.
    fn value(&self, position: usize) -> &[u8] {
        let mut start = 0usize;
        for (s, v) in self.sections.iter().zip(&self.values) {
            let end = start + s.count as usize;
            if position < end {
                return v.keys.value(v.distinct[position - start] as usize);
            }
            start = end;
        }
        &[]
    }

    /// Distinct keys per type, in the order they are sent.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Rows of the input.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Distinct keys over all sections: the blinded elements sent to each holder.
    pub fn total_keys(&self) -> u64 {
        self.total as u64
    }

    /// The same query without the sections of `types`: for a holder that will not answer a
    /// section that small (so that no padding of other types isolates one person). Rows keep
    /// their indices; a row whose keys were all of those types can no longer match. Same blind,
    /// so nothing is computed again; `None` if no section would be left.
    pub fn without(&self, types: &[KeyType]) -> Option<Query> {
        let mut sections = Vec::new();
        let mut blinded = Vec::new();
        let mut values = Vec::new();
        let mut origins = Vec::new();
        // Old position -> new position, for kept sections.
        let mut moved: Vec<Option<u32>> = Vec::with_capacity(self.total);
        let mut start = 0usize;
        for (si, (s, v)) in self.sections.iter().zip(&self.values).enumerate() {
            let end = start + s.count as usize;
            if types.contains(&s.key_type) {
                moved.extend(std::iter::repeat_n(None, end - start));
            } else {
                let at = blinded.len() as u32;
                moved.extend((0..(end - start) as u32).map(|i| Some(at + i)));
                blinded.extend(self.blinded(start, end));
                values.push(Arc::clone(v));
                sections.push(*s);
                if let Secret::Additive { origins: o, .. } = &self.secret {
                    origins.push(o[si]);
                }
            }
            start = end;
        }
        if sections.is_empty() {
            return None;
        }
        let mut row_positions = Vec::with_capacity(self.row_positions.len());
        let mut row_ends = Vec::with_capacity(self.row_ends.len());
        let mut from = 0;
        for &end in &self.row_ends {
            row_positions.extend(
                self.row_positions[from..end]
                    .iter()
                    .filter_map(|&p| moved[p as usize]),
            );
            row_ends.push(row_positions.len());
            from = end;
        }
        let secret = match &self.secret {
            Secret::Multiplicative { a, unblind } => Secret::Multiplicative {
                a: *a,
                unblind: *unblind,
            },
            Secret::Additive { seed, .. } => Secret::Additive {
                seed: seed.clone(),
                origins,
            },
        };
        let total = blinded.len();
        Some(Query {
            secret,
            sections,
            chunks: blinded
                .chunks(MAX_CHUNK_ELEMENTS)
                .map(|c| std::sync::OnceLock::from(c.to_vec().into_boxed_slice()))
                .collect(),
            total,
            values,
            rows: self.rows,
            row_positions,
            row_ends,
        })
    }

    /// Opens a session with default limits: returns the first message and the state awaiting
    /// the holder's accept.
    pub fn start(self: &Arc<Self>, mode: QueryMode) -> (QueryStart, AwaitingAccept) {
        self.start_with(mode, QuerierLimits::default())
    }

    /// [`Query::start`] with explicit limits.
    pub fn start_with(
        self: &Arc<Self>,
        mode: QueryMode,
        limits: QuerierLimits,
    ) -> (QueryStart, AwaitingAccept) {
        self.start_asking(mode, limits, false)
    }

    /// [`Query::start_with`], asking (if `labels`) for the labels of matched keys: in `matches`
    /// mode per matched key and row, in `count` mode as counts only ([`LabelAnswer`]).
    pub fn start_asking(
        self: &Arc<Self>,
        mode: QueryMode,
        limits: QuerierLimits,
        labels: bool,
    ) -> (QueryStart, AwaitingAccept) {
        let msg = QueryStart {
            version: PROTOCOL_VERSION,
            mode,
            sections: self.sections.clone(),
            labels,
        };
        (
            msg,
            AwaitingAccept {
                query: Arc::clone(self),
                mode,
                limits,
                labels,
            },
        )
    }
}

/// Per key type: the type, its keys, the sorted indices of its distinct keys and each raw
/// key's distinct index.
type Plan<'a> = (KeyType, &'a TypeKeys, Vec<u32>, Vec<u32>);

/// One section's values: its type's keys as the input gave them (duplicates included) and, per
/// blinded element in the section, the index of its value among them.
#[derive(Debug)]
struct SectionValues {
    keys: TypeKeys,
    distinct: Vec<u32>,
}

/// Deduplicates every type's keys; refuses more than `u32::MAX` in all (positions are `u32`).
fn plan(keys: &QueryKeys) -> Result<(Vec<Plan<'_>>, usize), PsiError> {
    let max = u64::from(u32::MAX);
    let mut plans = Vec::new();
    let mut total = 0u64;
    for (kt, tk) in &keys.types {
        if tk.len() as u64 > max {
            let keys = tk.len() as u64;
            return Err(LimitExceeded::QueryTooLarge { keys, max }.into());
        }
        let (distinct, raw_to_distinct) = tk.dedup();
        total += distinct.len() as u64;
        if total > max {
            return Err(LimitExceeded::QueryTooLarge { keys: total, max }.into());
        }
        plans.push((*kt, tk, distinct, raw_to_distinct));
    }
    Ok((plans, total as usize))
}

/// Where each row's keys sit among the blinded elements, given each type's first position
/// and distinct index per raw key: (positions, the end of each row's run).
fn row_positions(
    keys: &QueryKeys,
    offsets: &BTreeMap<KeyType, (u32, Vec<u32>)>,
) -> (Vec<u32>, Vec<usize>) {
    let mut positions = Vec::with_capacity(keys.row_keys.len());
    let mut ends = Vec::with_capacity(keys.row_ends.len());
    for r in 0..keys.row_ends.len() {
        for (kt, raw) in keys.row(r) {
            if let Some((start, map)) = offsets.get(kt)
                && let Some(d) = map.get(*raw as usize)
            {
                positions.push(start + d);
            }
        }
        ends.push(positions.len());
    }
    (positions, ends)
}

/// What a querier accepts from a holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuerierLimits {
    /// Most tags a holder may announce in total. The querier keeps ℓ bytes (8 to 16) per tag,
    /// so the default of 2^29 bounds that at 8 GiB, above any real customer list.
    pub max_holder_keys: u64,
}

impl Default for QuerierLimits {
    fn default() -> Self {
        QuerierLimits {
            max_holder_keys: 1 << 29,
        }
    }
}

/// The session after [`QueryStart`] was sent, before the holder's [`QueryAccept`].
#[derive(Debug)]
pub struct AwaitingAccept {
    query: Arc<Query>,
    mode: QueryMode,
    limits: QuerierLimits,
    /// Whether labels were asked for.
    labels: bool,
}

impl AwaitingAccept {
    /// Checks the holder's accept (version, key types, sizes, tag length) and moves to the
    /// exchange.
    pub fn handle_accept(self, accept: QueryAccept) -> Result<Exchanging, PsiError> {
        let (tag_len, public_key) = self.check_accept(&accept)?;
        let q = &self.query;
        let n = q.total_keys();
        let key_table = match (&q.secret, self.mode) {
            (Secret::Multiplicative { .. }, _) => None,
            (Secret::Additive { .. }, QueryMode::Matches) => {
                Some(oprf::KeyTable::of_key(&public_key))
            }
            // Sorted evaluations cannot be matched to their positions' blinds.
            (Secret::Additive { .. }, QueryMode::Count) => {
                return Err(Misuse::AdditiveBlindingInCountMode.into());
            }
        };
        Ok(Exchanging {
            key_table,
            // Grown as tags arrive, never reserved from what the peer announced.
            tags: vec![Vec::new(); accept.holder_sections.len()],
            index: Vec::new(),
            tag_section: 0,
            next_send: 0,
            next_eval_seq: 0,
            evaluated: 0,
            matched: if self.mode == QueryMode::Matches {
                vec![false; n as usize]
            } else {
                Vec::new()
            },
            matched_per_section: vec![0; q.sections.len()],
            outside: None,
            prefixes: q.sections.iter().map(|s| oprf_prefix(s.key_type)).collect(),
            last_count_element: None,
            section_ends: q
                .sections
                .iter()
                .scan(0u64, |end, s| {
                    *end += s.count;
                    Some(*end)
                })
                .collect(),
            tag_len: usize::from(tag_len),
            public_key,
            epoch: accept.epoch,
            labels: accept.labels.map(|offer| QuerierLabels {
                values: vec![Vec::new(); offer.specs.len()],
                totals: vec![Vec::new(); offer.specs.len()],
                sealed: vec![Vec::new(); accept.holder_sections.len()],
                found: Vec::new(),
                unreadable: 0,
                offer,
            }),
            holder_sections: accept.holder_sections,
            total: n,
            query: self.query,
            mode: self.mode,
        })
    }

    /// Every check of [`AwaitingAccept::handle_accept`]; returns ℓ.
    fn check_accept(&self, accept: &QueryAccept) -> Result<(u8, PublicKey), PsiError> {
        if accept.version != PROTOCOL_VERSION {
            return Err(PeerMisbehaved::UnsupportedVersion {
                got: accept.version,
                supported: PROTOCOL_VERSION,
            }
            .into());
        }
        let q = &self.query;
        let same_types = accept.holder_sections.len() == q.sections.len()
            && accept
                .holder_sections
                .iter()
                .zip(&q.sections)
                .all(|(h, s)| h.key_type == s.key_type);
        if !same_types || !sections_valid(&accept.holder_sections, false) {
            return Err(PeerMisbehaved::SectionsMismatch.into());
        }
        let holder_total = accept.total_keys();
        let max = self.limits.max_holder_keys.min(MAX_SET_SIZE);
        if holder_total > max {
            return Err(LimitExceeded::HolderSetTooLarge {
                keys: holder_total,
                max,
            }
            .into());
        }
        let expected = tag_len(q.total_keys(), holder_total) as u8;
        if accept.tag_len != expected {
            return Err(PeerMisbehaved::WrongTagLength {
                got: accept.tag_len,
                expected,
            }
            .into());
        }
        let public_key = PublicKey::from_element(&accept.public_key)
            .map_err(|_| PeerMisbehaved::InvalidPublicKey)?;
        if let Some(offer) = &accept.labels
            && (!self.labels || !offer.is_valid())
        {
            return Err(PeerMisbehaved::BadLabelOffer.into());
        }
        Ok((expected, public_key))
    }
}

/// The streaming phase: send blinded chunks ([`Exchanging::poll_message`]), take the holder's
/// tags and evaluations ([`Exchanging::handle`]), then [`Exchanging::finish`].
pub struct Exchanging {
    query: Arc<Query>,
    /// An additive query's table of the holder's key, for `E − ρ·pk`.
    key_table: Option<oprf::KeyTable>,
    mode: QueryMode,
    epoch: EpochId,
    /// The epoch's key, which `matches` evaluations are proven against.
    public_key: PublicKey,
    tag_len: usize,
    holder_sections: Vec<Section>,
    total: u64,
    /// Received tags per section, flat, ℓ bytes each.
    tags: Vec<Vec<u8>>,
    /// Per section, built once every tag is in (at the first evaluation).
    index: Vec<TagIndex>,
    tag_section: usize,
    next_send: u32,
    next_eval_seq: u32,
    evaluated: u64,
    /// `matches` mode: whether the key at each position matched.
    matched: Vec<bool>,
    /// Each query section's OPRF input prefix.
    prefixes: Vec<Vec<u8>>,
    matched_per_section: Vec<u64>,
    /// With the holder's tags kept by the caller ([`Exchanging::keep_tags_outside`]).
    outside: Option<Outside>,
    /// `count` mode: the previous evaluation in the current section.
    last_count_element: Option<[u8; 32]>,
    /// Cumulative ends of the query's sections in the element stream.
    section_ends: Vec<u64>,
    /// With a label offer: the values, the sealed labels and what opened.
    labels: Option<QuerierLabels>,
}

/// The holder's tags kept by the caller instead of in the session: the session checks them as
/// they arrive and hands them on, keeps only its own tags, and at the end matches the two
/// sorted lists in one merge as the caller feeds the holder's back. Memory then grows with the
/// query, not with the holder's set.
#[derive(Debug, Default)]
struct Outside {
    /// Per section: tags received, and the last one (to check the order across chunks).
    received: Vec<u64>,
    last: Vec<Vec<u8>>,
    /// Checked chunks for the caller to take.
    out: VecDeque<TagChunk>,
    /// Per section: each evaluated key's tag (the first ℓ bytes) and its query position,
    /// sorted by tag when the merge starts.
    own: Vec<Vec<([u8; TAG_STORED_LEN], u64)>>,
    /// Per section: the first own tag not yet passed, and the holder's tags merged.
    cursor: Vec<(usize, u64)>,
    sorted: bool,
}

/// What turns an unblinded evaluation into its output (tag and label key), by its position.
#[derive(Clone, Copy)]
struct Tagger<'a> {
    ends: &'a [u64],
    query: &'a Query,
    mode: QueryMode,
    prefixes: &'a [Vec<u8>],
}

impl Tagger<'_> {
    /// The section of stream position `position`, and the `Finalize` (matches) or count output
    /// of its unblinded evaluation `u`.
    fn output(&self, position: u64, u: &[u8; 32]) -> (usize, [u8; 64]) {
        let section = self.ends.partition_point(|&end| end <= position);
        let out = match self.mode {
            QueryMode::Matches => finalize_output(
                &[&self.prefixes[section], self.query.value(position as usize)],
                u,
            ),
            // Sorted: positions say nothing, and no input enters the tag.
            QueryMode::Count => count_output(u),
        };
        (section, out)
    }
}

/// The querier's side of a label offer.
struct QuerierLabels {
    offer: LabelOffer,
    /// Per offered label, its values as received.
    values: Vec<Vec<String>>,
    /// With an offer of totals: per offered label, per value, per holder section.
    totals: Vec<Vec<u64>>,
    /// Per holder section, the sealed labels of its tags, in tag order.
    sealed: Vec<Vec<u8>>,
    /// Per matched key: its position in the query, its key type, and its opened slots.
    found: Vec<OpenedKey>,
    /// Matched keys whose sealed labels named no value of the offer.
    unreadable: u64,
}

impl QuerierLabels {
    /// The first label whose values are not all in, if any.
    fn filling(&self) -> Option<usize> {
        (0..self.values.len())
            .find(|o| self.values[*o].len() < self.offer.value_counts[*o] as usize)
    }
}

impl fmt::Debug for Exchanging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchanging")
            .field("mode", &self.mode)
            .field("epoch", &self.epoch)
            .field("evaluated", &self.evaluated)
            .finish_non_exhaustive()
    }
}

impl Exchanging {
    /// The next blinded chunk to send, or `None` when all are out.
    pub fn poll_message(&mut self) -> Option<QuerierMessage> {
        let len = chunk_len(self.total, u64::from(self.next_send)) as usize;
        if len == 0 {
            return None;
        }
        let start = self.next_send as usize * MAX_CHUNK_ELEMENTS;
        let msg = QuerierMessage::Blinded(BlindedChunk {
            seq: self.next_send,
            elements: self
                .query
                .blinded(start, start + len)
                .into_iter()
                .map(Element)
                .collect(),
        });
        self.next_send += 1;
        Some(msg)
    }

    /// Hands every blinded chunk not yet polled to a separate sender, for transports that send
    /// and receive at the same time. Afterwards [`Exchanging::poll_message`] returns `None` and
    /// the session counts every chunk as sent.
    pub fn take_outgoing(&mut self) -> BlindedChunks {
        let first = self.next_send;
        let total_chunks = self.total.div_ceil(MAX_CHUNK_ELEMENTS as u64) as u32;
        self.next_send = total_chunks;
        BlindedChunks {
            query: Arc::clone(&self.query),
            next: first,
            end: total_chunks,
        }
    }

    /// Takes one holder message: tags first (section by section), then evaluations.
    pub fn handle(&mut self, msg: HolderMessage) -> Result<(), PsiError> {
        match msg {
            HolderMessage::Tags(chunk) => self.handle_tags(chunk),
            HolderMessage::Evaluated(chunk) => self.handle_evaluated(chunk),
            HolderMessage::LabelValues(v) => self.handle_label_values(v),
            other => Err(PeerMisbehaved::UnexpectedMessage {
                expected: self.expecting(),
                got: other.name(),
            }
            .into()),
        }
    }

    fn expecting(&self) -> &'static str {
        if !self.tags_complete() {
            "TagChunk"
        } else if self.evaluated < self.total {
            "EvaluatedChunk"
        } else {
            "end of stream"
        }
    }

    fn tags_received(&self, section: usize) -> u64 {
        match &self.outside {
            Some(o) => o.received[section],
            None => (self.tags[section].len() / self.tag_len) as u64,
        }
    }

    fn skip_full_sections(&mut self) {
        while self.tag_section < self.holder_sections.len()
            && self.tags_received(self.tag_section) == self.holder_sections[self.tag_section].count
        {
            self.tag_section += 1;
        }
    }

    fn tags_complete(&self) -> bool {
        (self.tag_section..self.holder_sections.len())
            .all(|s| self.tags_received(s) == self.holder_sections[s].count)
    }

    fn handle_label_values(&mut self, msg: LabelValues) -> Result<(), PsiError> {
        let bad = |why| Err(PeerMisbehaved::BadLabelValues(why).into());
        let Some(ql) = self.labels.as_mut() else {
            return bad("no labels were offered");
        };
        let Some(o) = ql.filling() else {
            return bad("every offered value is already in");
        };
        if usize::from(msg.label) != o {
            return bad("values for a label out of turn");
        }
        let left = ql.offer.value_counts[o] as usize - ql.values[o].len();
        if msg.values.is_empty() || msg.values.len() > left {
            return bad("more values than the offer announced, or none");
        }
        if msg.values.iter().any(|v| v.len() > MAX_VALUE_BYTES) {
            return bad("a value longer than 128 bytes");
        }
        let sections = &self.holder_sections;
        let due = if ql.offer.totals {
            msg.values.len() * sections.len()
        } else {
            0
        };
        if msg.totals.len() != due {
            return bad("totals missing, unasked, or of the wrong length");
        }
        let within = msg
            .totals
            .chunks(sections.len().max(1))
            .all(|per| per.iter().zip(sections).all(|(n, s)| *n <= s.count));
        if !within {
            return bad("a value's total above the holder's keys of that type");
        }
        ql.values[o].extend(msg.values);
        ql.totals[o].extend(msg.totals);
        Ok(())
    }

    fn handle_tags(&mut self, chunk: TagChunk) -> Result<(), PsiError> {
        if self.labels.as_ref().is_some_and(|l| l.filling().is_some()) {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "LabelValues",
                got: "TagChunk",
            }
            .into());
        }
        self.skip_full_sections();
        let l = self.tag_len;
        let Some(section) = self.holder_sections.get(self.tag_section).copied() else {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: self.expecting(),
                got: "TagChunk",
            }
            .into());
        };
        if chunk.key_type != section.key_type {
            return Err(PeerMisbehaved::UnexpectedTags(chunk.key_type).into());
        }
        if chunk.tags.is_empty() || !chunk.tags.len().is_multiple_of(l) {
            return Err(PeerMisbehaved::RaggedTagChunk {
                len: chunk.tags.len(),
                tag_len: l,
            }
            .into());
        }
        let count = chunk.tags.len() / l;
        if count > MAX_CHUNK_ELEMENTS {
            return Err(PeerMisbehaved::BadChunkSize {
                len: count,
                max: MAX_CHUNK_ELEMENTS,
            }
            .into());
        }
        if self.tags_received(self.tag_section) + count as u64 > section.count {
            return Err(PeerMisbehaved::UnexpectedTags(chunk.key_type).into());
        }
        let buf = &mut self.tags[self.tag_section];
        let prev = match &self.outside {
            Some(o) => Some(o.last[self.tag_section].as_slice()).filter(|t| !t.is_empty()),
            None => buf.len().checked_sub(l).map(|s| &buf[s..]),
        };
        let sorted = prev
            .into_iter()
            .chain(chunk.tags.chunks_exact(l))
            .collect::<Vec<_>>()
            .windows(2)
            .all(|w| w[0] <= w[1]);
        if !sorted {
            return Err(PeerMisbehaved::TagsNotSorted(chunk.key_type).into());
        }
        let expected = self
            .labels
            .as_ref()
            .map_or(0, |ql| count * ql.offer.sealed_len());
        if chunk.labels.len() != expected {
            return Err(PeerMisbehaved::BadSealedLabels {
                got: chunk.labels.len(),
                expected,
            }
            .into());
        }
        if let Some(o) = self.outside.as_mut() {
            o.received[self.tag_section] += count as u64;
            o.last[self.tag_section] = chunk.tags[chunk.tags.len() - l..].to_vec();
            o.out.push_back(chunk);
            self.skip_full_sections();
            return Ok(());
        }
        buf.extend_from_slice(&chunk.tags);
        if let Some(ql) = self.labels.as_mut() {
            ql.sealed[self.tag_section].extend_from_slice(&chunk.labels);
        }
        self.skip_full_sections();
        Ok(())
    }

    fn handle_evaluated(&mut self, chunk: EvaluatedChunk) -> Result<(), PsiError> {
        let (seq, elements) = (chunk.seq, chunk.elements.as_slice());
        self.check_evaluated(seq, elements)?;
        let raw: Vec<[u8; 32]> = elements.iter().map(|e| e.0).collect();
        let invalid = |i: usize| PeerMisbehaved::InvalidElement {
            index: self.evaluated + i as u64,
        };
        // Matches mode checks the chunk's proof: keep the decoded evaluations for it.
        let (unblinded, points) = match (&self.query.secret, &self.key_table, self.mode) {
            (Secret::Multiplicative { unblind, .. }, _, QueryMode::Matches) => {
                oprf::evaluate_batch_keeping(unblind, &raw).map_err(invalid)?
            }
            (Secret::Multiplicative { unblind, .. }, _, QueryMode::Count) => (
                oprf::evaluate_batch(unblind, &raw).map_err(invalid)?,
                oprf::Kept::empty(),
            ),
            (Secret::Additive { seed, origins }, Some(table), QueryMode::Matches) => {
                let start = u64::from(seq) * MAX_CHUNK_ELEMENTS as u64;
                let indices = self.blind_indices(origins, start, raw.len());
                oprf::additive_unblind(table, seed, &indices, &raw).map_err(invalid)?
            }
            (Secret::Additive { .. }, _, _) => {
                return Err(Misuse::AdditiveBlindingInCountMode.into());
            }
        };
        self.check_proof(seq, elements, &points, chunk.proof.as_ref())?;
        self.record_matches(&unblinded);
        if self.mode == QueryMode::Count {
            self.last_count_element = elements.last().map(|e| e.0);
        }
        self.evaluated += unblinded.len() as u64;
        self.next_eval_seq += 1;
        Ok(())
    }

    /// The additive blinds' positions of query positions `start .. start + len`: each
    /// section's origin in the query it was blinded in, plus the offset within the section.
    fn blind_indices(&self, origins: &[u64], start: u64, len: usize) -> Vec<u64> {
        (start..start + len as u64)
            .map(|p| {
                let s = self.section_ends.partition_point(|&end| end <= p);
                let section_start = self.section_ends[s] - self.query.sections[s].count;
                origins[s] + (p - section_start)
            })
            .collect()
    }

    /// Checks a whole evaluated chunk before any state changes, so a refused chunk leaves none
    /// behind.
    fn check_evaluated(&self, seq: u32, elements: &[Element]) -> Result<(), PsiError> {
        if !self.tags_complete() || self.evaluated >= self.total {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: self.expecting(),
                got: "EvaluatedChunk",
            }
            .into());
        }
        if seq != self.next_eval_seq {
            return Err(PeerMisbehaved::ChunkOutOfOrder {
                expected: self.next_eval_seq,
                got: seq,
            }
            .into());
        }
        if elements.is_empty() || elements.len() > MAX_CHUNK_ELEMENTS {
            return Err(PeerMisbehaved::BadChunkSize {
                len: elements.len(),
                max: MAX_CHUNK_ELEMENTS,
            }
            .into());
        }
        let len = elements.len() as u64;
        match self.mode {
            QueryMode::Matches => {
                let expected = chunk_len(self.total, u64::from(seq));
                if len != expected {
                    return Err(PeerMisbehaved::WrongChunkLength {
                        seq,
                        expected,
                        got: len,
                    }
                    .into());
                }
                if seq >= self.next_send {
                    // An answer to a chunk not yet sent.
                    return Err(PeerMisbehaved::UnexpectedMessage {
                        expected: "BlindedChunk answer",
                        got: "EvaluatedChunk",
                    }
                    .into());
                }
                Ok(())
            }
            QueryMode::Count if len > self.total - self.evaluated => {
                Err(PeerMisbehaved::TooManyElements {
                    declared: self.total,
                }
                .into())
            }
            QueryMode::Count => self.check_sorted(elements),
        }
    }

    /// `matches` mode: the chunk's proof must verify against the accept's public key, with the
    /// blinded chunk it answers; `count` mode carries none (its key is the session's own).
    fn check_proof(
        &self,
        seq: u32,
        elements: &[Element],
        points: &oprf::Kept,
        proof: Option<&Proof>,
    ) -> Result<(), PsiError> {
        match (self.mode, proof) {
            (QueryMode::Count, None) => Ok(()),
            (QueryMode::Count, Some(_)) => Err(PeerMisbehaved::UnexpectedProof.into()),
            (QueryMode::Matches, None) => Err(PeerMisbehaved::ProofInvalid { seq }.into()),
            (QueryMode::Matches, Some(proof)) => {
                let start = seq as usize * MAX_CHUNK_ELEMENTS;
                let blinded: Vec<Element> = self
                    .query
                    .blinded(start, start + elements.len())
                    .into_iter()
                    .map(Element)
                    .collect();
                oprf::verify_proof(
                    HASH_MODE,
                    &self.public_key,
                    &blinded,
                    elements,
                    Some(points),
                    proof,
                )
                .map_err(|_| PeerMisbehaved::ProofInvalid { seq }.into())
            }
        }
    }

    /// `count` mode: sorted order is what keeps positions from leaking; anything else is a
    /// holder telling the querier more than the mode allows (or a broken one).
    fn check_sorted(&self, elements: &[Element]) -> Result<(), PsiError> {
        let mut last = self.last_count_element;
        for (i, e) in elements.iter().enumerate() {
            if self.section_ends.contains(&(self.evaluated + i as u64)) {
                last = None;
            }
            // Strictly: distinct keys give distinct evaluations, so an equal neighbour is a
            // holder repeating one evaluation to inflate the count.
            if last.is_some_and(|l| l >= e.0) {
                return Err(PeerMisbehaved::EvaluationsNotSorted.into());
            }
            last = Some(e.0);
        }
        Ok(())
    }

    /// Tags the unblinded elements and looks them up, in parallel too: done serially, this was
    /// the one core's work while the other waited (7% of the unblinding phase at 10^6 holder
    /// tags).
    fn record_matches(&mut self, unblinded: &[[u8; 32]]) {
        if self.outside.is_some() {
            return self.keep_own_tags(unblinded);
        }
        if self.index.len() != self.tags.len() {
            self.index = self
                .tags
                .iter()
                .map(|t| TagIndex::build(t, self.tag_len))
                .collect();
        }
        let start = self.evaluated;
        let (tags, index, l) = (&self.tags, &self.index, self.tag_len);
        let tagger = self.tagger();
        let labels = self.labels.as_ref();
        type Found = (usize, bool, Option<Option<Vec<(u8, Slot)>>>);
        let found: Vec<Found> = unblinded
            .par_iter()
            .enumerate()
            .map(|(i, u)| {
                let (section, out) = tagger.output(start + i as u64, u);
                let (tag, label_key) = split_output(&out);
                let at = index[section].position(&tags[section], l, &tag[..l]);
                let opened = match (labels, at) {
                    (Some(ql), Some(at)) => Some(open_labels(ql, section, at, &label_key)),
                    _ => None,
                };
                (section, at.is_some(), opened)
            })
            .collect();
        for (i, (section, hit, opened)) in found.into_iter().enumerate() {
            if hit {
                self.matched_per_section[section] += 1;
                if let Some(m) = self.matched.get_mut(start as usize + i) {
                    *m = true;
                }
            }
            if let (Some(ql), Some(opened)) = (self.labels.as_mut(), opened) {
                match opened {
                    Some(slots) => {
                        let kt = self.query.sections[section].key_type;
                        ql.found.push((start + i as u64, kt, slots));
                    }
                    None => ql.unreadable += 1,
                }
            }
        }
    }

    /// Takes the holder's tags from a set kept from an earlier query instead of the stream
    /// (the holder was told, and sends none). The set must be of this epoch, for exactly the
    /// holder sections of the accept, with tags at least ℓ long (they are truncated to ℓ,
    /// which keeps them sorted); it must be offered before any tag arrived.
    pub fn use_tag_set(&mut self, set: TagSet) -> Result<(), PsiError> {
        if self.mode == QueryMode::Count {
            return Err(Misuse::NoKeptTagsInCountMode.into());
        }
        if self.labels.is_some() {
            // Labels travel with the tags: a kept set has none.
            return Err(Misuse::TagSetMismatch.into());
        }
        let fits = set.is_well_formed()
            && set.epoch == self.epoch
            && set.sections == self.holder_sections
            && set.tag_len as usize >= self.tag_len
            && self.outside.is_none()
            && self.tags.iter().all(Vec::is_empty);
        if !fits {
            return Err(Misuse::TagSetMismatch.into());
        }
        let (from, to) = (set.tag_len as usize, self.tag_len);
        for (dst, src) in self.tags.iter_mut().zip(set.tags) {
            *dst = if from == to {
                src
            } else {
                src.chunks_exact(from)
                    .flat_map(|t| &t[..to])
                    .copied()
                    .collect()
            };
        }
        self.tag_section = self.holder_sections.len();
        Ok(())
    }

    /// Has the holder's tags kept by the caller: from now on each tag chunk is checked (order,
    /// size, count) and handed back through [`Exchanging::take_tags`] instead of kept; once
    /// every evaluation is in, the caller feeds them back in order through
    /// [`Exchanging::merge_tags`] before [`Exchanging::finish`]. For a holder set larger than
    /// the querier's memory: the caller writes them to disk. Not with labels (they travel with
    /// the tags), and only before any tag arrived.
    pub fn keep_tags_outside(&mut self) -> Result<(), PsiError> {
        if self.labels.is_some() || self.tags.iter().any(|t| !t.is_empty()) {
            return Err(Misuse::TagSetMismatch.into());
        }
        if self.outside.is_none() {
            let n = self.holder_sections.len();
            self.outside = Some(Outside {
                received: vec![0; n],
                last: vec![Vec::new(); n],
                own: vec![Vec::new(); n],
                cursor: vec![(0, 0); n],
                ..Outside::default()
            });
        }
        Ok(())
    }

    /// Takes the holder's tags from a set the caller kept from an earlier query, outside the
    /// session (a file too large to load): the holder was told and sends none, and the caller
    /// feeds them to [`Exchanging::merge_tags`] at the end, cut to this session's ℓ. The set
    /// must be of this epoch, for exactly the accept's holder sections, with tags at least ℓ
    /// long, offered before any tag arrived; as [`Exchanging::use_tag_set`], which checks the
    /// same of a set in memory.
    pub fn use_tags_kept_outside(
        &mut self,
        epoch: EpochId,
        tag_len: u8,
        sections: &[Section],
    ) -> Result<(), PsiError> {
        if self.mode == QueryMode::Count {
            return Err(Misuse::NoKeptTagsInCountMode.into());
        }
        let none_yet = self.tags.iter().all(Vec::is_empty)
            && self
                .outside
                .as_ref()
                .is_none_or(|o| o.received.iter().all(|r| *r == 0));
        let fits = epoch == self.epoch
            && sections == self.holder_sections.as_slice()
            && usize::from(tag_len) >= self.tag_len
            && none_yet;
        if !fits || self.labels.is_some() {
            return Err(Misuse::TagSetMismatch.into());
        }
        self.keep_tags_outside()?;
        if let Some(o) = self.outside.as_mut() {
            o.received = sections.iter().map(|s| s.count).collect();
        }
        self.tag_section = self.holder_sections.len();
        Ok(())
    }

    /// The next checked tag chunk for the caller to keep, in arrival order (with
    /// [`Exchanging::keep_tags_outside`]).
    pub fn take_tags(&mut self) -> Option<TagChunk> {
        self.outside.as_mut()?.out.pop_front()
    }

    fn tagger(&self) -> Tagger<'_> {
        Tagger {
            ends: &self.section_ends,
            query: &self.query,
            mode: self.mode,
            prefixes: &self.prefixes,
        }
    }

    /// Keeps the tags of evaluated keys for the merge, in parallel.
    fn keep_own_tags(&mut self, unblinded: &[[u8; 32]]) {
        let (start, l, tagger) = (self.evaluated, self.tag_len, self.tagger());
        let tagged: Vec<(usize, [u8; TAG_STORED_LEN], u64)> = unblinded
            .par_iter()
            .enumerate()
            .map(|(i, u)| {
                let position = start + i as u64;
                let (section, out) = tagger.output(position, u);
                let mut tag = split_output(&out).0;
                tag[l..].fill(0);
                (section, tag, position)
            })
            .collect();
        if let Some(o) = self.outside.as_mut() {
            for (section, tag, position) in tagged {
                o.own[section].push((tag, position));
            }
        }
    }

    /// With [`Exchanging::keep_tags_outside`], once every evaluation is in: the next holder
    /// tags of `section` (ℓ bytes each, concatenated), in the order they came, as the caller
    /// kept them. Each evaluated key matches when its tag is among them.
    pub fn merge_tags(&mut self, section: usize, tags: &[u8]) -> Result<(), PsiError> {
        let l = self.tag_len;
        if self.evaluated != self.total || !self.tags_complete() {
            return Err(Misuse::Incomplete("the merge starts once every message is in").into());
        }
        let Some(o) = self.outside.as_mut() else {
            return Err(Misuse::Incomplete("no tags are kept outside this session").into());
        };
        if !o.sorted {
            o.own.par_iter_mut().for_each(|own| own.par_sort_unstable());
            o.sorted = true;
        }
        let fits = tags.len().is_multiple_of(l)
            && o.cursor.get(section).is_some_and(|c| {
                c.1 + (tags.len() / l) as u64 <= self.holder_sections[section].count
            });
        if !fits {
            return Err(Misuse::TagSetMismatch.into());
        }
        let (own, (k, merged)) = (&o.own[section], &mut o.cursor[section]);
        for theirs in tags.chunks_exact(l) {
            while *k < own.len() && &own[*k].0[..l] < theirs {
                *k += 1;
            }
            // Several keys may share a tag cut to ℓ bytes: each of them matches.
            while *k < own.len() && &own[*k].0[..l] == theirs {
                self.matched_per_section[section] += 1;
                if let Some(m) = self.matched.get_mut(own[*k].1 as usize) {
                    *m = true;
                }
                *k += 1;
            }
        }
        *merged += (tags.len() / l) as u64;
        Ok(())
    }

    /// The holder's tags as received (or taken from a kept set), copied; only once every tag
    /// has arrived. [`Exchanging::finish_keeping_tags`] moves them instead.
    pub fn tag_set(&self) -> Option<TagSet> {
        let kept_here = self.outside.is_none();
        (self.mode == QueryMode::Matches && kept_here && self.tags_complete()).then(|| TagSet {
            epoch: self.epoch,
            tag_len: self.tag_len as u8,
            sections: self.holder_sections.clone(),
            tags: self.tags.clone(),
        })
    }

    /// The holder's sections, as its accept announced them.
    pub fn holder_sections(&self) -> &[Section] {
        &self.holder_sections
    }

    /// ℓ, the tag length of this session.
    pub fn tag_len(&self) -> u8 {
        self.tag_len as u8
    }

    /// The mode of this session.
    pub fn mode(&self) -> QueryMode {
        self.mode
    }

    /// Whether every tag has arrived (evaluations come next).
    pub fn tags_done(&self) -> bool {
        self.tags_complete()
    }

    /// Whether any evaluation has arrived yet.
    pub fn any_evaluated(&self) -> bool {
        self.evaluated > 0
    }

    /// Whether every tag and every evaluation has arrived.
    pub fn is_complete(&self) -> bool {
        self.tags_complete() && self.evaluated == self.total
    }

    /// The result; fails with [`Misuse::Incomplete`] before [`Exchanging::is_complete`].
    pub fn finish(self) -> Result<QueryResult, PsiError> {
        self.result()
    }

    /// [`Exchanging::finish`], also handing back the holder's tags (moved, not copied) to keep
    /// for the next query.
    pub fn finish_keeping_tags(self) -> Result<(QueryResult, TagSet), PsiError> {
        if self.mode == QueryMode::Count {
            return Err(Misuse::NoKeptTagsInCountMode.into());
        }
        if self.outside.is_some() {
            return Err(Misuse::Incomplete("the holder's tags were kept by the caller").into());
        }
        let result = self.result()?;
        let set = TagSet {
            epoch: self.epoch,
            tag_len: self.tag_len as u8,
            sections: self.holder_sections,
            tags: self.tags,
        };
        Ok((result, set))
    }

    fn result(&self) -> Result<QueryResult, PsiError> {
        if !self.tags_complete() {
            return Err(Misuse::Incomplete("tags missing").into());
        }
        if let Some(o) = &self.outside {
            let merged = o
                .cursor
                .iter()
                .zip(&self.holder_sections)
                .all(|(c, s)| c.1 == s.count);
            if !merged {
                return Err(Misuse::Incomplete("the holder's tags are not all merged").into());
            }
        }
        if self.evaluated != self.total {
            return Err(Misuse::Incomplete("evaluations missing").into());
        }
        let q = &self.query;
        let matched_rows = (self.mode == QueryMode::Matches).then(|| {
            let mut rows = Vec::new();
            let mut start = 0;
            for (r, &end) in q.row_ends.iter().enumerate() {
                if q.row_positions[start..end]
                    .iter()
                    .any(|&p| self.matched[p as usize])
                {
                    rows.push(r as u64);
                }
                start = end;
            }
            rows
        });
        let labels = self.labels.as_ref().map(|ql| self.label_answer(ql));
        Ok(QueryResult {
            labels,
            mode: self.mode,
            epoch: self.epoch,
            tag_len: self.tag_len as u8,
            query_keys: section_counts(&q.sections),
            holder_keys: section_counts(&self.holder_sections),
            matched_keys: q
                .sections
                .iter()
                .zip(&self.matched_per_section)
                .map(|(s, m)| (s.key_type, *m))
                .collect(),
            matched_rows,
        })
    }
}

impl Exchanging {
    /// Sums what opened: per (label, value) the matched keys of each type carrying it, per
    /// (label, type) those carrying a value too rare to show, and in `matches` mode each matched
    /// row's values.
    fn label_answer(&self, ql: &QuerierLabels) -> LabelAnswer {
        let q = &self.query;
        let mut counts: BTreeMap<(u8, u16), BTreeMap<KeyType, u64>> = BTreeMap::new();
        let mut rare: BTreeMap<(u8, KeyType), u64> = BTreeMap::new();
        // Only `matches` mode reports per row.
        let per_row = self.mode == QueryMode::Matches;
        let mut by_position: BTreeMap<u64, Vec<(u8, u16)>> = BTreeMap::new();
        for (position, kt, slots) in &ql.found {
            let kt = *kt;
            let mut rare_seen = [false; super::labels::MAX_LABELS];
            for (o, slot) in slots {
                match slot {
                    Slot::Value(v) => {
                        *counts.entry((*o, *v)).or_default().entry(kt).or_default() += 1;
                        if per_row {
                            by_position.entry(*position).or_default().push((*o, *v));
                        }
                    }
                    Slot::Rare if !rare_seen[usize::from(*o)] => {
                        rare_seen[usize::from(*o)] = true;
                        *rare.entry((*o, kt)).or_default() += 1;
                    }
                    Slot::Rare => {}
                }
            }
        }
        let rows = per_row.then(|| {
            let mut rows = BTreeMap::new();
            let mut start = 0;
            for (r, &end) in q.row_ends.iter().enumerate() {
                let mut values: Vec<(u8, u16)> = q.row_positions[start..end]
                    .iter()
                    .filter_map(|p| by_position.get(&u64::from(*p)))
                    .flatten()
                    .copied()
                    .collect();
                if !values.is_empty() {
                    values.sort_unstable();
                    values.dedup();
                    rows.insert(r as u64, values);
                }
                start = end;
            }
            rows
        });
        LabelAnswer {
            specs: ql.offer.specs.clone(),
            values: ql.values.clone(),
            min_cell: ql.offer.min_cell,
            counts,
            rare,
            rows,
            unreadable: ql.unreadable,
            totals: ql.offer.totals.then(|| {
                let n = self.holder_sections.len().max(1);
                let mut out: BTreeMap<(u8, u16), BTreeMap<KeyType, u64>> = BTreeMap::new();
                for (o, per_label) in ql.totals.iter().enumerate() {
                    for (v, per) in per_label.chunks(n).enumerate() {
                        for (s, t) in self.holder_sections.iter().zip(per) {
                            if *t > 0 {
                                out.entry((o as u8, v as u16))
                                    .or_default()
                                    .insert(s.key_type, *t);
                            }
                        }
                    }
                }
                out
            }),
        }
    }
}

/// Opens the sealed labels of the holder's key at `at` in `section` (the first of the tags
/// equal to the matched one), with the label key this side derived for its own input.
fn open_labels(
    ql: &QuerierLabels,
    section: usize,
    at: usize,
    label_key: &super::labels::LabelKey,
) -> Option<Vec<(u8, Slot)>> {
    let w = ql.offer.sealed_len();
    let sealed = ql.sealed.get(section)?.get(at * w..(at + 1) * w)?;
    // At most 64 bytes (a valid offer's eight labels): on the stack, not one allocation a hit.
    let mut buf = [0u8; 64];
    let buf = buf.get_mut(..w)?;
    buf.copy_from_slice(sealed);
    apply_keystream(label_key, &ql.offer.nonce, buf);
    decode_slots(buf, &ql.offer.value_counts)
}

/// A matched key's position in the query, its key type, and its opened label slots.
type OpenedKey = (u64, KeyType, Vec<(u8, Slot)>);

/// The blinded chunks of a query, in order, for a sender of their own (see
/// [`Exchanging::take_outgoing`]).
#[derive(Debug)]
pub struct BlindedChunks {
    query: Arc<Query>,
    next: u32,
    end: u32,
}

impl BlindedChunks {
    /// Whether the next chunk is blinded (or none is left), so that [`Iterator::next`] will not
    /// have to compute it.
    pub fn ready(&self) -> bool {
        self.next >= self.end || self.query.chunk_ready(self.next)
    }
}

impl Iterator for BlindedChunks {
    type Item = QuerierMessage;

    fn next(&mut self) -> Option<QuerierMessage> {
        if self.next >= self.end {
            return None;
        }
        let total = self.query.total as u64;
        let len = chunk_len(total, u64::from(self.next)) as usize;
        let start = self.next as usize * MAX_CHUNK_ELEMENTS;
        let msg = QuerierMessage::Blinded(BlindedChunk {
            seq: self.next,
            elements: self
                .query
                .blinded(start, start + len)
                .into_iter()
                .map(Element)
                .collect(),
        });
        self.next += 1;
        Some(msg)
    }
}

/// What a querier learns from one holder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryResult {
    /// The mode run.
    pub mode: QueryMode,
    /// The holder's epoch.
    pub epoch: EpochId,
    /// ℓ used.
    pub tag_len: u8,
    /// Distinct keys of the query per type.
    pub query_keys: BTreeMap<KeyType, u64>,
    /// The holder's distinct keys per type (for the query's types).
    pub holder_keys: BTreeMap<KeyType, u64>,
    /// Distinct query keys found in the holder's set, per type.
    pub matched_keys: BTreeMap<KeyType, u64>,
    /// `matches` mode: 0-based indices of rows with at least one matched key, ascending.
    pub matched_rows: Option<Vec<u64>>,
    /// With a label offer: the labels of the matched keys.
    pub labels: Option<LabelAnswer>,
}
