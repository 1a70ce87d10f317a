use thiserror::Error;

use crate::codec::{DecodeError, EncodeError};
use crate::ident::KeyType;

/// Everything a PSI session can fail with, grouped by whose fault it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PsiError {
    /// Bytes that are not a message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A message that cannot be encoded within the frame limit.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The peer sent something the protocol does not allow.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// A size limit of this side was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(#[from] LimitExceeded),
    /// The caller used the API wrongly.
    #[error("misuse: {0}")]
    Misuse(#[from] Misuse),
    /// The OPRF layer failed on this side's own data.
    #[error(transparent)]
    Oprf(#[from] crate::oprf::OprfError),
    /// An epoch's labels cannot be built or do not fit it.
    #[error(transparent)]
    Labels(#[from] super::labels::LabelError),
    /// The store an epoch's keys are read from (or an import's written to) failed.
    #[error("the store of the epoch's keys failed: {0}")]
    Store(String),
}

/// A protocol violation by the peer. Sessions stop at the first one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// A version this implementation does not speak.
    #[error("unsupported protocol version {got} (this side speaks {supported})")]
    UnsupportedVersion {
        /// The version received.
        got: u16,
        /// The version spoken here.
        supported: u16,
    },
    /// A message that does not belong at this point of the session.
    #[error("unexpected {got} message, expected {expected}")]
    UnexpectedMessage {
        /// What the session was waiting for.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// Sections not in strictly ascending key-type order, or with a zero count.
    #[error("sections must be in ascending key-type order, without repeats or zero counts")]
    BadSections,
    /// The holder's sections do not name the query's key types.
    #[error("the holder's sections do not match the query's key types")]
    SectionsMismatch,
    /// A chunk with a sequence number other than the next one.
    #[error("chunk {got} arrived where chunk {expected} was due")]
    ChunkOutOfOrder {
        /// The next sequence number.
        expected: u32,
        /// The one received.
        got: u32,
    },
    /// A chunk of the wrong length.
    #[error("chunk {seq} has {got} elements, expected {expected}")]
    WrongChunkLength {
        /// Its sequence number.
        seq: u32,
        /// The length due.
        expected: u64,
        /// The length received.
        got: u64,
    },
    /// A chunk over [`super::MAX_CHUNK_ELEMENTS`] or an empty one.
    #[error("chunk of {len} elements (allowed 1..={max})")]
    BadChunkSize {
        /// Elements in the chunk.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More elements than the session declared.
    #[error("more elements than the {declared} declared")]
    TooManyElements {
        /// The declared total.
        declared: u64,
    },
    /// A group element that is not a canonical, non-identity ristretto255 encoding.
    #[error("invalid group element at position {index}")]
    InvalidElement {
        /// Its 0-based position in the stream.
        index: u64,
    },
    /// A label offer the querier did not ask for, or one that is not well formed.
    #[error("a label offer that was not asked for or is malformed")]
    BadLabelOffer,
    /// Label values out of place: before the accept's offer, for the wrong label, more than
    /// announced, too long, or after tags began.
    #[error("label values out of place or malformed: {0}")]
    BadLabelValues(&'static str),
    /// Sealed labels of the wrong length for the tags they come with.
    #[error("a tag chunk with {got} bytes of sealed labels where {expected} are due")]
    BadSealedLabels {
        /// Bytes received.
        got: usize,
        /// Bytes due.
        expected: usize,
    },
    /// The holder chose a tag length other than the formula's.
    #[error("tag length {got} where the size formula gives {expected}")]
    WrongTagLength {
        /// What the holder announced.
        got: u8,
        /// What the formula gives.
        expected: u8,
    },
    /// Tag bytes that are not a whole number of tags.
    #[error("tag chunk of {len} bytes is not a multiple of the tag length {tag_len}")]
    RaggedTagChunk {
        /// Bytes received.
        len: usize,
        /// The tag length.
        tag_len: usize,
    },
    /// Tags for a key type out of turn, or more of them than announced.
    #[error("unexpected or surplus tags for key type {0}")]
    UnexpectedTags(KeyType),
    /// `count` mode: evaluations not strictly ascending within a section.
    #[error("count-mode evaluations are not sorted within their section")]
    EvaluationsNotSorted,
    /// A tag stream that is not sorted.
    #[error("tags for key type {0} are not sorted")]
    TagsNotSorted(KeyType),
    /// The accept's public key is not a valid element.
    #[error("the holder's public key is not a valid group element")]
    InvalidPublicKey,
    /// `matches` mode: an evaluated chunk without its proof, or whose proof does not verify
    /// against the accept's public key: the holder did not evaluate with its epoch key.
    #[error("evaluated chunk {seq} is not proven to use the epoch's key")]
    ProofInvalid {
        /// The chunk.
        seq: u32,
    },
    /// `count` mode: a proof where none belongs.
    #[error("a count-mode evaluation carries a proof")]
    UnexpectedProof,
}

/// A size limit of this side.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// The query declares more keys than this holder accepts.
    #[error("query of {keys} keys exceeds the limit of {max}")]
    QueryTooLarge {
        /// Keys declared.
        keys: u64,
        /// The limit.
        max: u64,
    },
    /// The holder announces more tags than this querier accepts.
    #[error("holder set of {keys} keys exceeds the limit of {max}")]
    HolderSetTooLarge {
        /// Keys announced.
        keys: u64,
        /// The limit.
        max: u64,
    },
}

/// The API was used in a way the session cannot honour.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Misuse {
    /// `finish` before every tag and evaluation arrived.
    #[error("the session is not complete: {0}")]
    Incomplete(&'static str),
    /// A kept tag set that does not fit this session (another epoch, other key types or
    /// counts, shorter tags), or offered after tags began to arrive.
    #[error("the kept tag set does not fit this query")]
    TagSetMismatch,
    /// An evaluated point of the epoch that is not a valid element (a damaged store).
    #[error("evaluated point {index} of {key_type} in the epoch is not a valid element")]
    InvalidEpochPoint {
        /// Its key type.
        key_type: KeyType,
        /// Its position among that type's points.
        index: usize,
    },
    /// A count session prepared for another epoch than the holder's.
    #[error("the prepared count session belongs to another epoch")]
    PreparedForAnotherEpoch,
    /// Kept tags in `count` mode, whose tags are fresh in every session.
    #[error("count mode has no tags to keep: each session's are new")]
    NoKeptTagsInCountMode,
    /// A blind to rebuild a query with that is not a canonical, non-zero scalar.
    #[error("the blind is not a canonical, non-zero scalar")]
    InvalidBlind,
    /// An additively blinded query asked in `count` mode, whose sorted evaluations cannot be
    /// matched to their positions' blinds.
    #[error("an additively blinded query can only be asked in matches mode")]
    AdditiveBlindingInCountMode,
}
