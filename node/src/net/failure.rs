//! Why a querier got no answer from a holder: typed until printed, naming the peer once.

use std::fmt;
use std::time::Duration;

use suyuan_protocol::psi::{EpochId, LimitExceeded, PsiError};

use crate::net::frame::{AbortReason, FrameError, NODE_WIRE_VERSION, Refusal};
use crate::node_dir::audit::Outcome;
use crate::node_dir::identity::{PeerIdentity, Role};
use crate::text::printable;

/// A failed query to one peer.
#[derive(Debug, Clone)]
pub struct QueryFailure {
    /// The peer's name, as dialled.
    pub peer: String,
    /// Who answered, once its certificate was read.
    pub holder: Option<PeerIdentity>,
    /// The holder had welcomed the query: a transport failure from then on aborts it.
    pub welcomed: bool,
    /// What went wrong.
    pub kind: FailureKind,
}

/// What went wrong, without the peer's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The peer's address did not resolve (the resolver's text).
    Resolve(String),
    /// No local address to bind for the peer's address family.
    BadBindAddress,
    /// No local socket (the OS's text).
    Socket(String),
    /// The connection could not be started (quinn's text).
    Connect(String),
    /// No handshake within the timeout.
    NoAnswerWithin {
        /// The address dialled.
        address: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The handshake failed over certificates: the peer is not of this federation.
    NotAMember(String),
    /// A TLS alert after the handshake: the peer does not take us as a member.
    Rejected(String),
    /// QUIC's idle timeout.
    StoppedAnswering,
    /// The peer closed the connection, with its reason if it gave one.
    Closed(Option<String>),
    /// Another connection failure (quinn's text).
    ConnectionLost(String),
    /// The peer's certificate could not be read.
    Certificate(String),
    /// The peer is not an institution.
    NotAnInstitution(Role),
    /// A published case was asked of a node that is not a police node.
    NotPolice(Role),
    /// The peer answered with another key than the federation directory lists for it.
    UnlistedKey,
    /// No stream opened within the timeout.
    NoStream(Duration),
    /// No frame within the timeout.
    Stalled(Duration),
    /// Another frame error (its text).
    Frame(String),
    /// The welcome names another node or wire version.
    WrongWelcome {
        /// The node it names.
        node: String,
        /// Its wire version.
        version: u16,
    },
    /// The holder refused the query.
    Refused(Refusal),
    /// The holder aborted the query.
    Aborted(AbortReason),
    /// A PSI message before the welcome.
    AnsweredBeforeWelcome,
    /// The stream ended before any answer.
    NoAnswer,
    /// The frame after the welcome was not an accept.
    NoAccept,
    /// The accept is of another epoch than the welcome.
    EpochSwitched {
        /// The welcome's epoch.
        welcomed: EpochId,
        /// The accept's epoch.
        answered: EpochId,
    },
    /// The welcome said our kept tags are current, but we offered none.
    KeptTagsNotOffered,
    /// The welcome carried no epoch statement.
    NoStatement,
    /// The epoch statement is not signed by the holder we reached, or not readable.
    StatementUnsigned(String),
    /// The answer differs from the holder's signed epoch statement.
    Statement(crate::evidence::StatementMismatch),
    /// The holder's signed answer is missing, not signed by it, or says something else.
    Receipt(String),
    /// The holder broke the PSI protocol, or the querier's limits.
    Psi(PsiError),
    /// The whole query took longer than its deadline.
    DeadlinePassed(Duration),
    /// A frame other than a PSI message or an abort, midway.
    UnexpectedFrame,
    /// The stream ended midway.
    ClosedMidway,
    /// The unblinding task failed.
    UnblindingFailed(String),
    /// The holder's tags could not be written to disk or read back (this side's fault).
    Spill(String),
}

impl QueryFailure {
    /// The outcome in the querier's audit log.
    pub fn outcome(&self) -> Outcome {
        use FailureKind::*;
        match &self.kind {
            Refused(_) => Outcome::Refused,
            Resolve(_)
            | BadBindAddress
            | Socket(_)
            | Connect(_)
            | NoAnswerWithin { .. }
            | NotAMember(_)
            | Rejected(_)
            | StoppedAnswering
            | Closed(_)
            | ConnectionLost(_)
            | Certificate(_)
            | NotAnInstitution(_)
            | NotPolice(_)
            | UnlistedKey
            | NoStream(_)
            | Stalled(_)
            | Frame(_)
                if !self.welcomed =>
            {
                Outcome::Failed
            }
            _ => Outcome::Aborted,
        }
    }
}

impl fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FailureKind::*;
        let p = &self.peer;
        match &self.kind {
            Resolve(e) | Socket(e) | Connect(e) | Certificate(e) | Frame(e) => {
                write!(f, "{p}: {e}")
            }
            BadBindAddress => f.write_str("bad bind address"),
            NoAnswerWithin { address, timeout } => {
                write!(f, "{p} did not answer at {address} within {timeout:?}")
            }
            NotAMember(e) => write!(f, "{p} is not a member of this federation: {e}"),
            Rejected(e) => write!(
                f,
                "{p} did not accept us as a member of this federation, or is not one ({e})"
            ),
            StoppedAnswering => write!(f, "{p} stopped answering (timed out)"),
            Closed(None) => write!(f, "{p} closed the connection (no reason given)"),
            // The peer's words, shown but never interpreted by a terminal.
            Closed(Some(r)) => write!(f, "{p} closed the connection: {}", printable(r)),
            ConnectionLost(e) => write!(f, "{p}: connection lost: {e}"),
            UnlistedKey => write!(
                f,
                "{p} answered with another key than the federation directory lists; not queried"
            ),
            NotAnInstitution(role) => {
                write!(f, "{p} is a {role} node, not an institution; not queried")
            }
            NotPolice(role) => write!(
                f,
                "{p} is not a police node (its certificate says {role}); only police nodes publish cases; not asked"
            ),
            NoStream(t) => write!(f, "{p} allowed no query stream within {t:?}"),
            Stalled(t) => write!(f, "{p} stalled: no answer within {t:?}"),
            WrongWelcome { node, version } => write!(
                f,
                "{p} sent a welcome for node \"{}\" in wire version {version} (expected {p} in version {NODE_WIRE_VERSION})",
                printable(node)
            ),
            Refused(r) => write!(f, "{p} refused: {r}"),
            Aborted(why) => write!(f, "{p} aborted the query: {why}"),
            AnsweredBeforeWelcome => write!(f, "{p} answered before admitting the query"),
            NoAnswer => write!(f, "{p} closed the query without an answer"),
            NoAccept => write!(f, "{p} did not accept the query as the protocol requires"),
            EpochSwitched { welcomed, answered } => write!(
                f,
                "{p} welcomed the query with epoch {welcomed} but answered with epoch {answered}"
            ),
            KeptTagsNotOffered => {
                write!(f, "{p} said our kept tags are current, but we offered none")
            }
            NoStatement => write!(f, "{p} sent no signed epoch statement"),
            StatementUnsigned(why) => write!(f, "{p}'s epoch statement: {why}"),
            Statement(m) => write!(f, "{p} broke its signed epoch statement: {m}"),
            Receipt(why) => write!(f, "{p}'s signed answer: {why}"),
            Psi(e @ PsiError::Limit(LimitExceeded::HolderSetTooLarge { .. })) => {
                write!(f, "{p}: {e} ([query] max_holder_keys in node.toml)")
            }
            Psi(e) => write!(f, "{p}: {e}"),
            DeadlinePassed(d) => write!(f, "{p} ran past the query's deadline of {d:?}"),
            UnexpectedFrame => write!(f, "{p} sent an unexpected frame"),
            ClosedMidway => write!(f, "{p} closed the query midway"),
            UnblindingFailed(e) => write!(f, "{p}: unblinding failed: {e}"),
            Spill(e) => write!(f, "{p}: {e}"),
        }
    }
}

impl std::error::Error for QueryFailure {}

/// Classifies a connection error by its values: TLS alerts (QUIC crypto errors
/// 0x100..=0x1ff) are certificate problems.
pub fn connection_failure(e: &quinn::ConnectionError) -> FailureKind {
    if tls_alert(e) {
        return FailureKind::Rejected(e.to_string());
    }
    match e {
        quinn::ConnectionError::TimedOut => FailureKind::StoppedAnswering,
        quinn::ConnectionError::ApplicationClosed(c) if c.reason.is_empty() => {
            FailureKind::Closed(None)
        }
        quinn::ConnectionError::ApplicationClosed(c) => {
            let reason = String::from_utf8_lossy(&c.reason)
                .chars()
                .take(200)
                .collect();
            FailureKind::Closed(Some(reason))
        }
        other => FailureKind::ConnectionLost(other.to_string()),
    }
}

/// A connection error while connecting: a TLS alert (sent by either side's rustls, which
/// alerts on every certificate it refuses) means the peer is not of this federation; QUIC's
/// idle timeout equals ours and may fire first.
pub fn connect_failure(
    e: &quinn::ConnectionError,
    address: &str,
    timeout: Duration,
) -> FailureKind {
    if tls_alert(e) {
        FailureKind::NotAMember(e.to_string())
    } else if matches!(e, quinn::ConnectionError::TimedOut) {
        FailureKind::NoAnswerWithin {
            address: address.to_string(),
            timeout,
        }
    } else {
        connection_failure(e)
    }
}

/// A frame error, classified.
pub fn frame_failure(e: FrameError) -> FailureKind {
    match e {
        FrameError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(c))) => {
            connection_failure(&c)
        }
        FrameError::Write(quinn::WriteError::ConnectionLost(c)) => connection_failure(&c),
        FrameError::Timeout(t) => FailureKind::Stalled(t),
        other => FailureKind::Frame(other.to_string()),
    }
}

fn tls_alert(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => u64::from(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        _ => return false,
    };
    (0x100..=0x1ff).contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(welcomed: bool, kind: FailureKind) -> QueryFailure {
        QueryFailure {
            peer: "bank".into(),
            holder: None,
            welcomed,
            kind,
        }
    }

    #[test]
    fn the_outcome_follows_the_kind_and_whether_the_query_was_welcomed() {
        let stalled = || FailureKind::Stalled(Duration::from_secs(5));
        assert_eq!(failure(false, stalled()).outcome(), Outcome::Failed);
        assert_eq!(failure(true, stalled()).outcome(), Outcome::Aborted);
        let refused = FailureKind::Refused(Refusal::NoEpoch);
        assert_eq!(failure(false, refused).outcome(), Outcome::Refused);
        // A holder that answers wrongly aborted the query, welcomed or not.
        assert_eq!(
            failure(false, FailureKind::AnsweredBeforeWelcome).outcome(),
            Outcome::Aborted
        );
    }

    #[test]
    fn the_text_names_the_peer_once_and_escapes_its_words() {
        let refused = FailureKind::Refused(Refusal::TooSmall { keys: 2, min: 1000 });
        assert_eq!(
            failure(false, refused).to_string(),
            "bank refused: query of 2 keys is below the minimum of 1000"
        );
        let late = FailureKind::NoAnswerWithin {
            address: "127.0.0.1:7788".into(),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            failure(false, late).to_string(),
            "bank did not answer at 127.0.0.1:7788 within 5s"
        );
        let closed = FailureKind::Closed(Some("bye\u{1b}[2J".into()));
        assert!(!failure(false, closed).to_string().contains('\u{1b}'));
        let aborted = FailureKind::Aborted(AbortReason::Stalled(Duration::from_secs(3)));
        assert_eq!(
            failure(true, aborted).to_string(),
            "bank aborted the query: the querier stalled for 3s"
        );
    }
}
