//! The PSI messages. Encoded with [`crate::codec`]; every field is checked by the receiving session.

use serde::{Deserialize, Serialize};

use super::labels::LabelOffer;
use super::{EpochId, QueryMode};
use crate::ident::KeyType;
use crate::oprf::{Element, Proof};

/// How many keys of one type a side holds. Lists of sections are in ascending key-type order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// The key type.
    pub key_type: KeyType,
    /// Distinct keys of that type.
    pub count: u64,
}

/// Querier → holder, first: what is asked and how many blinded elements of each type follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStart {
    /// [`super::PROTOCOL_VERSION`].
    pub version: u16,
    /// `count` or `matches`.
    pub mode: QueryMode,
    /// Blinded elements per key type, in the order they will be sent; counts ≥ 1.
    pub sections: Vec<Section>,
    /// Whether the querier asks for the labels of matched keys ([`super::labels`]).
    pub labels: bool,
}

/// Holder → querier, first: the epoch answering, the tag length ℓ, and the holder's set size for
/// each of the query's key types (0 where it has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAccept {
    /// [`super::PROTOCOL_VERSION`].
    pub version: u16,
    /// The epoch whose key evaluates this query.
    pub epoch: EpochId,
    /// ℓ, from [`super::tag_len`] of the two totals.
    pub tag_len: u8,
    /// The epoch's public key `k·G`: `matches` evaluations are proven against it.
    pub public_key: Element,
    /// One section per query section, same key types, same order.
    pub holder_sections: Vec<Section>,
    /// The labels this querier may see, if it asked and the holder's policy shows any: their
    /// values follow in [`LabelValues`] messages before the first tag chunk, and every tag
    /// chunk carries each key's encrypted labels.
    pub labels: Option<LabelOffer>,
}

/// Querier → holder: the next blinded elements `a·H(x)`, in section order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlindedChunk {
    /// 0, 1, 2, ...
    pub seq: u32,
    /// 1..=[`super::MAX_CHUNK_ELEMENTS`] elements.
    pub elements: Vec<Element>,
}

/// Holder → querier: evaluations `k·a·H(x)`. In `matches` mode chunk `i` answers blinded chunk
/// `i` element for element; in `count` mode the whole stream is sorted within each section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluatedChunk {
    /// 0, 1, 2, ...
    pub seq: u32,
    /// 1..=[`super::MAX_CHUNK_ELEMENTS`] elements.
    pub elements: Vec<Element>,
    /// `matches` mode: the RFC 9497 batched DLEQ proof that these are the blinded chunk's
    /// elements times the key behind the accept's public key; `None` in `count` mode.
    pub proof: Option<Proof>,
}

/// Holder → querier: sorted ℓ-byte tags of one key type, concatenated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChunk {
    /// The section these tags belong to.
    pub key_type: KeyType,
    /// `count · ℓ` bytes, 1 ≤ count ≤ [`super::MAX_CHUNK_ELEMENTS`].
    pub tags: Vec<u8>,
    /// With a label offer: `count · w` bytes, each tag's key's encrypted labels
    /// ([`super::labels::LabelOffer::sealed_len`]); empty otherwise.
    pub labels: Vec<u8>,
}

/// Holder → querier, after the accept and before any tag: the values of one offered label, in
/// value-id order, split over as many messages as needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelValues {
    /// The label's index in the offer.
    pub label: u8,
    /// 1..=[`super::labels::VALUES_PER_MESSAGE`] values.
    pub values: Vec<String>,
    /// With an offer of totals: per value, per holder section (in the accept's order), the
    /// holder's keys of that type carrying it (0 for a value too rare to name); empty otherwise.
    pub totals: Vec<u64>,
}

/// Every message the querier sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuerierMessage {
    /// The first message.
    Start(QueryStart),
    /// Blinded elements.
    Blinded(BlindedChunk),
}

/// Every message the holder sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HolderMessage {
    /// The first message.
    Accept(QueryAccept),
    /// Tags.
    Tags(TagChunk),
    /// Evaluations.
    Evaluated(EvaluatedChunk),
    /// The values of an offered label.
    LabelValues(LabelValues),
}

impl QueryStart {
    /// Blinded elements declared in all sections, saturating (a hostile querier can send
    /// `u64::MAX` counts; [`super::Holder::handle_start`] refuses those).
    pub fn total_keys(&self) -> u64 {
        total(&self.sections)
    }
}

impl QueryAccept {
    /// The holder's keys over all sections, saturating (the holder's word, checked by
    /// [`super::AwaitingAccept::handle_accept`]).
    pub fn total_keys(&self) -> u64 {
        total(&self.holder_sections)
    }
}

impl From<QueryStart> for QuerierMessage {
    fn from(s: QueryStart) -> Self {
        QuerierMessage::Start(s)
    }
}

impl From<QueryAccept> for HolderMessage {
    fn from(a: QueryAccept) -> Self {
        HolderMessage::Accept(a)
    }
}

impl QuerierMessage {
    /// The message's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            QuerierMessage::Start(_) => "QueryStart",
            QuerierMessage::Blinded(_) => "BlindedChunk",
        }
    }
}

impl HolderMessage {
    /// The message's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            HolderMessage::Accept(_) => "QueryAccept",
            HolderMessage::Tags(_) => "TagChunk",
            HolderMessage::Evaluated(_) => "EvaluatedChunk",
            HolderMessage::LabelValues(_) => "LabelValues",
        }
    }
}

/// Checks a section list: strictly ascending key types, and (if `nonzero`) counts ≥ 1.
pub(crate) fn sections_valid(sections: &[Section], nonzero: bool) -> bool {
    sections.windows(2).all(|w| w[0].key_type < w[1].key_type)
        && (!nonzero || sections.iter().all(|s| s.count > 0))
}

/// Each section's count by key type: the sizes a report and a signed answer state.
pub fn section_counts(sections: &[Section]) -> std::collections::BTreeMap<KeyType, u64> {
    sections.iter().map(|s| (s.key_type, s.count)).collect()
}

/// Sum of section counts, saturating (a hostile peer can send u64::MAX).
pub(crate) fn total(sections: &[Section]) -> u64 {
    sections.iter().fold(0u64, |a, s| a.saturating_add(s.count))
}
