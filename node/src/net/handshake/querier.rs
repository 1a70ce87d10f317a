//! The querier's side of a query's opening: the holder's welcome (or refusal or abort), then
//! its accept. The driver (`net/querier.rs`) reads the frames; the checks are here.

use suyuan_protocol::psi::{EpochId, HolderMessage, QueryAccept};

use crate::net::failure::FailureKind;
use crate::net::frame::{NODE_WIRE_VERSION, ServerFrame};

/// What the welcome said: whether the holder found our kept tags current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcomed {
    /// No tag will be sent; the kept ones stand in.
    pub tags_kept: bool,
    /// Keys the holder prepares a count session over before its accept.
    pub preparing: u64,
    /// The holder's signed epoch statement.
    pub statement: Option<crate::evidence::Signed>,
}

/// One stream's opening, querier side: the welcome must come from the node dialled, in this
/// wire version; the accept must be of the epoch the welcome named.
#[derive(Debug)]
pub struct QuerierHandshake {
    peer: String,
    offered_kept: bool,
    welcome_epoch: Option<EpochId>,
}

impl QuerierHandshake {
    /// A query to the node named `peer`, offering kept tags or not.
    pub fn new(peer: &str, offered_kept: bool) -> Self {
        QuerierHandshake {
            peer: peer.to_string(),
            offered_kept,
            welcome_epoch: None,
        }
    }

    /// The holder's first frame (`None`: it ended the stream).
    pub fn handle_welcome(&mut self, frame: Option<ServerFrame>) -> Result<Welcomed, FailureKind> {
        let w = match frame {
            Some(ServerFrame::Welcome(w)) => w,
            Some(ServerFrame::Refused(r)) => return Err(FailureKind::Refused(r)),
            Some(ServerFrame::Abort(why)) => return Err(FailureKind::Aborted(why)),
            Some(ServerFrame::Psi(_) | ServerFrame::Receipt(_)) => {
                return Err(FailureKind::AnsweredBeforeWelcome);
            }
            None => return Err(FailureKind::NoAnswer),
        };
        if w.version != NODE_WIRE_VERSION || w.node != self.peer {
            return Err(FailureKind::WrongWelcome {
                node: w.node,
                version: w.version,
            });
        }
        if w.tags_kept && !self.offered_kept {
            return Err(FailureKind::KeptTagsNotOffered);
        }
        self.welcome_epoch = Some(w.epoch);
        Ok(Welcomed {
            tags_kept: w.tags_kept,
            preparing: w.preparing,
            statement: w.statement,
        })
    }

    /// The holder's second frame, after the welcome.
    pub fn handle_accept(
        &mut self,
        frame: Option<ServerFrame>,
    ) -> Result<QueryAccept, FailureKind> {
        let accept = match frame {
            Some(ServerFrame::Psi(HolderMessage::Accept(a))) => a,
            Some(ServerFrame::Abort(why)) => return Err(FailureKind::Aborted(why)),
            _ => return Err(FailureKind::NoAccept),
        };
        // The kept tags were judged against the welcome's epoch: the answer must be of it.
        match self.welcome_epoch {
            Some(welcomed) if welcomed == accept.epoch => Ok(accept),
            Some(welcomed) => Err(FailureKind::EpochSwitched {
                welcomed,
                answered: accept.epoch,
            }),
            None => Err(FailureKind::AnsweredBeforeWelcome),
        }
    }
}
