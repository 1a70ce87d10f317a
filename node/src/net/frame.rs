//! Frames on a query stream: a 4-byte big-endian length, then one message encoded with the
//! protocol's codec. The node wraps the PSI messages with its own hello and refusals.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use suyuan_protocol::codec::{self, MAX_FRAME_LEN};
use suyuan_protocol::psi::{EpochId, HolderMessage, QuerierMessage, QueryMode, Section};
use thiserror::Error;

use crate::node_dir::identity::Role;

/// Version of the node's framing, in every [`Hello`] and [`Welcome`] (3: typed aborts; 4: the
/// minimum per key type, signed statements and answers, protocol version 2 inside; 5: protocol
/// version 3 inside, with labels; 6: warrants and published cases in the hello).
pub const NODE_WIRE_VERSION: u16 = 6;

/// Longest case number accepted.
pub const MAX_CASE_LEN: usize = 128;

/// Largest first frame (the hello) a holder reads before admission.
pub const MAX_HELLO_LEN: usize = 16384;

/// Allowance per element (blinded key or holder tag) in [`query_deadline`]: several times what
/// the whole exchange costs per key on a 2-core machine (`docs/benchmarks.md`).
pub const DEADLINE_PER_ELEMENT: Duration = Duration::from_micros(200);

/// The longest a whole query may run on either side, once its sizes are known: the timeout
/// plus [`DEADLINE_PER_ELEMENT`] per query key and holder tag. Per-frame timeouts catch a
/// stalled peer; this catches one that trickles a frame just inside each timeout.
pub fn query_deadline(timeout: Duration, elements: u64) -> Duration {
    let per = DEADLINE_PER_ELEMENT
        .checked_mul(u32::try_from(elements).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX);
    timeout.saturating_add(per)
}

/// Querier → holder, the first frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`NODE_WIRE_VERSION`].
    pub version: u16,
    /// The case this query belongs to.
    pub case: Option<String>,
    /// The mode asked for; must equal the mode of the query start that follows.
    pub mode: QueryMode,
    /// The holder's tags as this querier kept them from an earlier query, if any: the holder
    /// sends none when they are still its current tags.
    pub kept: Option<KeptTags>,
    /// The querier's id of this query, the same for every holder it asks: the holder's signed
    /// answer names it.
    pub query_id: [u8; 16],
    /// A court's warrant for this query (`crate::evidence::warrant`), where the holder's
    /// policy asks for one.
    pub warrant: Option<crate::evidence::Signed>,
    /// Ask the dump the holder published for the hello's case (`suyuan publish`), not its own
    /// list: an institution checking which of its customers are exposed.
    pub published: bool,
}

impl Hello {
    /// A hello of this wire version, offering no kept tags.
    pub fn new(mode: QueryMode, case: Option<String>) -> Self {
        Hello {
            version: NODE_WIRE_VERSION,
            case,
            mode,
            kept: None,
            query_id: rand::random(),
            warrant: None,
            published: false,
        }
    }
}

/// What a querier says of a tag set it kept ([`suyuan_protocol::psi::TagSet`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptTags {
    /// The epoch they belong to.
    pub epoch: EpochId,
    /// Bytes per kept tag.
    pub tag_len: u8,
    /// [`suyuan_protocol::psi::TagSet::digest`] of the kept set.
    pub digest: [u8; 32],
}

/// Holder → querier when the query is admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// [`NODE_WIRE_VERSION`].
    pub version: u16,
    /// The holder's node name.
    pub node: String,
    /// The epoch that will answer.
    pub epoch: EpochId,
    /// The querier's kept tags are this epoch's current ones: no tag will be sent.
    pub tags_kept: bool,
    /// A count session is being prepared over this many keys of the holder's list before the
    /// accept (0: none, the accept follows at once).
    pub preparing: u64,
    /// The epoch's statement, signed by the holder at import (`crate::evidence`).
    pub statement: Option<crate::evidence::Signed>,
}

/// Why a holder refused a query. Sent to the querier, written to both audit logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum Refusal {
    /// A node wire version this node does not speak.
    #[error("node wire version {0} is not supported (this node speaks {NODE_WIRE_VERSION})")]
    UnsupportedVersion(u16),
    /// The querier's role may not query this node at all.
    #[error("role {0} may not query this node")]
    RoleNotAllowed(Role),
    /// The querier's role may not use this mode here.
    #[error("mode {mode} is not allowed for role {role}")]
    ModeNotAllowed {
        /// The mode asked for.
        mode: QueryMode,
        /// The querier's role from its certificate.
        role: Role,
    },
    /// The policy requires a case number and none was given.
    #[error("a case number is required")]
    CaseRequired,
    /// A case number that is empty, too long or not printable.
    #[error("invalid case number (1 to 128 printable characters)")]
    InvalidCase,
    /// Fewer keys than the policy's minimum.
    #[error("query of {keys} keys is below the minimum of {min}")]
    TooSmall {
        /// Distinct keys in the query.
        keys: u64,
        /// The minimum.
        min: u64,
    },
    /// More keys than the policy's maximum.
    #[error("query of {keys} keys is above the maximum of {max}")]
    TooLarge {
        /// Distinct keys in the query.
        keys: u64,
        /// The maximum.
        max: u64,
    },
    /// The daily budget for this peer would be exceeded.
    #[error("daily budget exhausted: {used} of {limit} keys used today, this query needs {keys}")]
    BudgetExhausted {
        /// Keys already used today.
        used: u64,
        /// The daily limit.
        limit: u64,
        /// Keys in this query.
        keys: u64,
    },
    /// Too many queries in progress.
    #[error("busy: {max} queries already in progress, retry later")]
    Busy {
        /// The concurrency limit.
        max: usize,
    },
    /// The node has no imported list.
    #[error("no customer list has been imported")]
    NoEpoch,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The warrant is missing or not accepted.
    #[error("{0}")]
    Warrant(crate::evidence::warrant::WarrantRefusal),
    /// No dump is published for the case asked (never published, closed, or expired).
    #[error("no dump is published here for case {0:?}")]
    NoSuchCase(String),
    /// The published case names the members that may check it, and not this one.
    #[error("case {0:?} is not published for this node")]
    NotNamedInCase(String),
    /// Key-type sections below the policy's minimum, which applies to each section answered
    /// (so that padding with other types cannot isolate one person). The querier may ask
    /// again without them.
    #[error("{} below the minimum of {min} keys per key type", sections_text(.sections))]
    SectionsTooSmall {
        /// The small sections, with their distinct keys.
        sections: Vec<Section>,
        /// The minimum.
        min: u64,
    },
}

/// `resident_id: 1 key, email: 12 keys`.
fn sections_text(sections: &[Section]) -> String {
    let parts: Vec<String> = sections
        .iter()
        .map(|s| {
            let unit = if s.count == 1 { "key" } else { "keys" };
            format!("{}: {} {unit}", s.key_type, s.count)
        })
        .collect();
    parts.join(", ")
}

/// Every frame a querier sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// First frame.
    Hello(Hello),
    /// A PSI message.
    Psi(QuerierMessage),
}

/// Every frame a holder sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The query is admitted.
    Welcome(Welcome),
    /// The query is refused; the stream ends.
    Refused(Refusal),
    /// A PSI message.
    Psi(HolderMessage),
    /// The holder gave up on the query (peer misbehaviour, shutdown); the stream ends.
    Abort(AbortReason),
    /// The last frame of a completed query: the holder's signed answer (`crate::evidence`).
    Receipt(crate::evidence::Signed),
}

/// Why a holder gave up on a query it had begun to read or serve: sent to the querier in
/// [`ServerFrame::Abort`], written to both audit logs. The codes (variant indices) are listed
/// in `docs/protocol.md` §9; a `String` field is text the holder could not type further (a
/// transport error, or a PSI error of the protocol crate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum AbortReason {
    /// The first frame of the stream was a PSI message.
    #[error("the first frame was not a hello")]
    NotAHello,
    /// The hello could not be read (too large, malformed, too slow).
    #[error("reading the hello: {0}")]
    HelloUnreadable(String),
    /// The holder could not read its own epoch.
    #[error("the store cannot be read")]
    StoreUnreadable,
    /// The frame after the hello was not a query start.
    #[error("expected the query start")]
    ExpectedStart,
    /// The query start could not be read.
    #[error("reading the query start: {0}")]
    StartUnreadable(String),
    /// The start asks for another mode than the hello was admitted for.
    #[error("the query start asks for mode {start} after a hello for mode {hello}")]
    ModeMismatch {
        /// The hello's mode.
        hello: QueryMode,
        /// The start's mode.
        start: QueryMode,
    },
    /// The `admitted` entry could not be written: no query runs unaudited.
    #[error("the audit log cannot be written")]
    AuditUnwritable,
    /// The querier broke the PSI protocol (the protocol crate's error, as text).
    #[error("{0}")]
    PeerMisbehaved(String),
    /// A hello in the middle of a query.
    #[error("a second hello")]
    SecondHello,
    /// The querier ended its stream before sending every chunk.
    #[error("the querier closed the stream midway")]
    ClosedMidway,
    /// No frame from the querier within the timeout.
    #[error("the querier stalled for {0:?}")]
    Stalled(Duration),
    /// A frame could not be read midway.
    #[error("reading: {0}")]
    Unreadable(String),
    /// A frame could not be sent (the querier never sees this one; it is audited).
    #[error("sending: {0}")]
    Unsendable(String),
    /// The evaluation task failed.
    #[error("evaluation task failed: {0}")]
    EvaluationFailed(String),
    /// The node is stopping and the grace period is over.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The whole query took longer than [`query_deadline`].
    #[error("the query ran past its deadline of {0:?}")]
    DeadlinePassed(Duration),
}

/// Why a frame could not be read or written.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The peer took longer than the timeout.
    #[error("timed out after {0:?} waiting for the peer")]
    Timeout(Duration),
    /// A length prefix above the limit.
    #[error("frame of {0} bytes announced, above the limit")]
    TooLarge(u32),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
    /// Bytes that are not a message.
    #[error(transparent)]
    Decode(#[from] codec::DecodeError),
    /// A message that cannot be encoded.
    #[error(transparent)]
    Encode(#[from] codec::EncodeError),
    /// The stream or connection failed.
    #[error("{0}")]
    Read(#[from] quinn::ReadExactError),
    /// The stream or connection failed while sending.
    #[error("{0}")]
    Write(#[from] quinn::WriteError),
}

/// Writes one frame; a peer that stops reading (its flow-control window stays shut) times out.
pub async fn write_frame<T: Serialize>(
    send: &mut quinn::SendStream,
    msg: &T,
    timeout: Duration,
) -> Result<(), FrameError> {
    let body = codec::encode(msg)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    // The codec's limit keeps every body under u32::MAX.
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    match tokio::time::timeout(timeout, send.write_all(&buf)).await {
        Err(_) => Err(FrameError::Timeout(timeout)),
        Ok(r) => Ok(r?),
    }
}

/// Reads one frame, or `None` at a clean end of stream before any byte of a frame.
pub async fn read_frame<T: DeserializeOwned + Serialize>(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
) -> Result<Option<T>, FrameError> {
    read_frame_limited(recv, timeout, MAX_FRAME_LEN).await
}

/// [`read_frame`] with a smaller size limit (for frames read before a peer is admitted).
pub async fn read_frame_limited<T: DeserializeOwned + Serialize>(
    recv: &mut quinn::RecvStream,
    timeout: Duration,
    limit: usize,
) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    match tokio::time::timeout(timeout, recv.read_exact(&mut len)).await {
        Err(_) => return Err(FrameError::Timeout(timeout)),
        Ok(Err(quinn::ReadExactError::FinishedEarly(0))) => return Ok(None),
        Ok(Err(quinn::ReadExactError::FinishedEarly(_))) => return Err(FrameError::Truncated),
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(())) => {}
    }
    let n = u32::from_be_bytes(len);
    if n as usize > limit.min(MAX_FRAME_LEN) {
        return Err(FrameError::TooLarge(n));
    }
    let mut body = vec![0u8; n as usize];
    match tokio::time::timeout(timeout, recv.read_exact(&mut body)).await {
        Err(_) => Err(FrameError::Timeout(timeout)),
        Ok(Err(quinn::ReadExactError::FinishedEarly(_))) => Err(FrameError::Truncated),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(())) => Ok(Some(codec::decode(&body)?)),
    }
}
