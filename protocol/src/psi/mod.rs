//! Private set intersection on the OPRF, as sans-IO sessions.
//!
//! The [`Holder`] (an institution) owns one [`Epoch`]: an OPRF key and the sorted tags of its
//! customer keys. The querier (police) blinds its keys once into a [`Query`] with a fresh scalar
//! `a`, then runs one session per holder:
//!
//! ```text
//! querier                                   holder
//! QueryStart {version, mode, sections}  ->
//!                                       <-  QueryAccept {version, epoch, tag_len, holder_sections}
//! BlindedChunk* (a·H(x))                ->  <-  TagChunk* (sorted, per section; concurrently)
//!                                       <-  EvaluatedChunk* (k·a·H(x), after the last tag;
//!                                                            sorted per section in count mode)
//! ```
//!
//! In `count` mode the holder evaluates under `r·k` for a fresh `r` of that session alone
//! ([`PreparedCount`]), so no two sessions can be linked.
//!
//! Sessions are typestates where a phase happens once ([`Query::start`],
//! [`AwaitingAccept::handle_accept`], [`Exchanging::finish`]) and event-driven inside the
//! streaming phase (`handle_*` in, `poll_*` out). The caller moves the bytes (see [`crate::codec`]).

mod count;
mod epoch;
mod error;
mod holder;
mod keys;
pub mod labels;
mod local;
mod messages;
mod querier;
mod tag;
mod tag_index;
mod tag_set;

pub use count::{PREPARE_BLOCK, PendingCount, PreparedCount, TagSource};
pub use epoch::{Epoch, EpochBuilder, EpochId, KeySink, KeySource, Point};
pub use error::{LimitExceeded, Misuse, PeerMisbehaved, PsiError};
pub use holder::{Holder, HolderLimits, HolderSession, PROOF_NONCE_DST};
pub use keys::QueryKeys;
pub use local::run_local;
pub use messages::{
    BlindedChunk, EvaluatedChunk, HolderMessage, LabelValues, QuerierMessage, QueryAccept,
    QueryStart, Section, TagChunk, section_counts,
};
pub use querier::{
    AwaitingAccept, BlindedChunks, Blinding, Exchanging, QuerierLimits, Query, QueryResult,
};
pub use tag::{COUNT_TAG_DST, TAG_STORED_LEN, Tag, tag_len};
pub use tag_set::{TAG_SET_DST, TagSet, TagSetHasher};

use serde::{Deserialize, Serialize};

use crate::oprf;

/// The protocol version carried in the first message of each direction. (The node's transport
/// is versioned apart, by its ALPN.) Version 1 tagged `k·H(y)` alone and used one key for every
/// session of an epoch; version 2 brought the tags and domain-separation tags (`-v2`) still in
/// use; version 3 adds labels (the start's request, the accept's offer, [`LabelValues`], the
/// encrypted labels in each [`TagChunk`]), whose own tags end in `-v3`.
pub const PROTOCOL_VERSION: u16 = 3;

/// Keys map to the group with RFC 9497's `HashToGroup` of the VOPRF mode, so that a `matches`
/// evaluation is exactly the RFC's VOPRF `BlindEvaluate` and can carry its proof.
pub(crate) const HASH_MODE: oprf::Mode = oprf::Mode::Voprf;

/// Most elements in one chunk, in either direction.
pub const MAX_CHUNK_ELEMENTS: usize = 4096;

/// Most keys in a query or a holder's set: keeps the tag length within [`TAG_STORED_LEN`].
pub const MAX_SET_SIZE: u64 = 1 << 40;

/// What the querier is allowed to learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryMode {
    /// Only how many distinct keys matched, per key type: evaluations come back sorted.
    Count,
    /// Which rows matched: evaluations come back in query order.
    Matches,
}

impl QueryMode {
    /// `count` or `matches`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryMode::Count => "count",
            QueryMode::Matches => "matches",
        }
    }
}

impl std::fmt::Display for QueryMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for QueryMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "count" => Ok(QueryMode::Count),
            "matches" => Ok(QueryMode::Matches),
            other => Err(format!(
                "unknown mode {other:?} (expected count or matches)"
            )),
        }
    }
}

/// Splits `n` elements into chunks of [`MAX_CHUNK_ELEMENTS`]: the length of chunk `seq`.
pub(crate) fn chunk_len(total: u64, seq: u64) -> u64 {
    let start = seq.saturating_mul(MAX_CHUNK_ELEMENTS as u64);
    total.saturating_sub(start).min(MAX_CHUNK_ELEMENTS as u64)
}

/// `type tag || 0x00`: what precedes a canonical value in its OPRF input.
pub(crate) fn oprf_prefix(kt: crate::ident::KeyType) -> Vec<u8> {
    let mut p = kt.as_str().as_bytes().to_vec();
    p.push(0);
    p
}
