//! The holder's side of a query's opening: from the hello to an admitted query, or a refusal
//! or abort. The driver ([`crate::net::server`]) does what [`HolderHandshake::poll_event`]
//! asks (read a frame, take a slot, load the epoch, charge and audit) and hands back the
//! result; every decision, and their order, is here.

use std::sync::Arc;

use suyuan_protocol::psi::{Epoch, EpochId, QuerierMessage, QueryStart, TAG_STORED_LEN};

use crate::evidence::warrant::WarrantRefusal;
use crate::net::frame::{AbortReason, ClientFrame, Hello, KeptTags, NODE_WIRE_VERSION, Refusal};
use crate::node_dir::config::Policy;
use crate::node_dir::identity::Role;

/// What the driver must do next, or how the handshake ended.
#[derive(Debug)]
pub enum HolderEvent {
    /// Read the first frame (hello-sized) and pass it to [`HolderHandshake::handle_hello`].
    ReadHello,
    /// Check the hello's warrant ([`crate::evidence::warrant::check`], with the policy's
    /// minimum receipt count `min_count`); pass the outcome to
    /// [`HolderHandshake::handle_warrant`].
    CheckWarrant {
        /// The warrant sent.
        warrant: crate::evidence::Signed,
        /// The policy's minimum count on its receipt, if it asks for one.
        min_count: Option<u64>,
    },
    /// Try to take a query slot; pass whether one was free to [`HolderHandshake::handle_slot`].
    TakeSlot,
    /// Load the current epoch, or the dump published for the case when `published`; pass it
    /// to [`HolderHandshake::handle_epoch`] (or a refusal to
    /// [`HolderHandshake::handle_epoch_refused`]).
    LoadEpoch {
        /// The hello asks for the dump published for `case`.
        published: Option<String>,
    },
    /// Read the query start (hello-sized); pass it to [`HolderHandshake::handle_start`].
    ReadStart,
    /// Charge `keys` to the peer's daily budget, and if that passes, append the `admitted`
    /// entry; pass the outcome to [`HolderHandshake::handle_charged`].
    Charge {
        /// Distinct keys of the query.
        keys: u64,
        /// The epoch that will answer, for the entry.
        epoch: EpochId,
    },
    /// Send the refusal and end the stream.
    Refuse(Refusal),
    /// Send the abort and end the stream.
    Abort(AbortReason),
    /// The query is admitted, charged and audited: serve it.
    Admitted(Box<Admitted>),
}

/// An admitted query, ready to serve.
#[derive(Debug)]
pub struct Admitted {
    /// The querier's hello.
    pub hello: Hello,
    /// Its query start (mode equal to the hello's).
    pub start: QueryStart,
    /// The epoch answering.
    pub epoch: Arc<Epoch>,
    /// Distinct keys of the query, as charged.
    pub keys: u64,
}

/// The charge's outcome, as the driver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charged {
    /// Charged and audited.
    Recorded,
    /// The budget refused (nothing charged).
    Refused(Refusal),
    /// Charged, but the audit entry could not be written (the driver took the charge back).
    Unrecorded,
}

#[derive(Debug)]
enum Stage {
    Hello,
    Warrant,
    Slot,
    Epoch,
    Start,
    Charge(QueryStart),
    Done,
}

/// One stream's opening, holder side. Checks, in order: hello version, shutting down, role /
/// mode / case, the warrant, a free slot, an epoch (or the published case), the start, the
/// start's mode against the hello's, size, budget (and its audit entry).
#[derive(Debug)]
pub struct HolderHandshake<'a> {
    policy: &'a Policy,
    role: Role,
    stage: Stage,
    hello: Option<Hello>,
    epoch: Option<Arc<Epoch>>,
    event: Option<HolderEvent>,
}

impl<'a> HolderHandshake<'a> {
    /// A stream just opened by a peer of `role`, judged by `policy`.
    pub fn new(policy: &'a Policy, role: Role) -> Self {
        HolderHandshake {
            policy,
            role,
            stage: Stage::Hello,
            hello: None,
            epoch: None,
            event: Some(HolderEvent::ReadHello),
        }
    }

    /// The hello the querier sent, once read (for audit entries).
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// The next thing to do; `None` once the handshake ended and its end was taken, or while
    /// waiting for the answer to the last event.
    pub fn poll_event(&mut self) -> Option<HolderEvent> {
        self.event.take()
    }

    /// The first frame (`Err` with the read error's text); `draining` says the node is
    /// stopping. `Ok(None)` (the querier ended the stream at once) ends the handshake silently.
    pub fn handle_hello(&mut self, frame: Result<Option<ClientFrame>, String>, draining: bool) {
        let hello = match frame {
            Ok(Some(ClientFrame::Hello(h))) => h,
            Ok(Some(ClientFrame::Psi(_))) => return self.abort(AbortReason::NotAHello),
            Ok(None) => return self.stage = Stage::Done,
            Err(e) => return self.abort(AbortReason::HelloUnreadable(e)),
        };
        let version = hello.version;
        let (mode, case) = (hello.mode, hello.case.clone());
        let (warrant, published) = (hello.warrant.clone(), hello.published);
        self.hello = Some(hello);
        if version != NODE_WIRE_VERSION {
            return self.refuse(Refusal::UnsupportedVersion(version));
        }
        if draining {
            return self.refuse(Refusal::ShuttingDown);
        }
        if let Err(r) = self.policy.admit(self.role, mode, case.as_deref()) {
            return self.refuse(r);
        }
        if published && case.is_none() {
            // A published dump is found by its case.
            return self.refuse(Refusal::CaseRequired);
        }
        match warrant {
            // A warrant sent is judged even where none is needed: a bad one is not let by.
            Some(warrant) => {
                let min_count = self.policy.warrant.min_receipt();
                self.next(
                    Stage::Warrant,
                    HolderEvent::CheckWarrant { warrant, min_count },
                );
            }
            None if self.policy.warrant.required(mode) => {
                self.refuse(Refusal::Warrant(WarrantRefusal::Missing(mode)));
            }
            None => self.next(Stage::Slot, HolderEvent::TakeSlot),
        }
    }

    /// Whether the warrant passed ([`crate::evidence::warrant::check`]).
    pub fn handle_warrant(&mut self, checked: Result<(), WarrantRefusal>) {
        match checked {
            Ok(()) => self.next(Stage::Slot, HolderEvent::TakeSlot),
            Err(why) => self.refuse(Refusal::Warrant(why)),
        }
    }

    /// Whether a query slot was free (the driver holds it until the query ends).
    pub fn handle_slot(&mut self, free: bool) {
        if !free {
            let max = self.policy.max_concurrent_queries;
            return self.refuse(Refusal::Busy { max });
        }
        let published = self
            .hello
            .as_ref()
            .filter(|h| h.published)
            .and_then(|h| h.case.clone());
        self.next(Stage::Epoch, HolderEvent::LoadEpoch { published });
    }

    /// The published case asked for cannot be served to this peer (unknown, expired, or not
    /// published for it).
    pub fn handle_epoch_refused(&mut self, r: Refusal) {
        self.refuse(r);
    }

    /// The current epoch: `Ok(None)` if no list was imported, `Err` if it cannot be read
    /// (the driver logs why).
    pub fn handle_epoch(&mut self, epoch: Result<Option<Arc<Epoch>>, ()>) {
        match epoch {
            Ok(Some(e)) => {
                self.epoch = Some(e);
                self.next(Stage::Start, HolderEvent::ReadStart);
            }
            Ok(None) => self.refuse(Refusal::NoEpoch),
            Err(()) => self.abort(AbortReason::StoreUnreadable),
        }
    }

    /// The frame after the hello (`Err` with the read error's text).
    pub fn handle_start(&mut self, frame: Result<Option<ClientFrame>, String>) {
        let start = match frame {
            Ok(Some(ClientFrame::Psi(QuerierMessage::Start(s)))) => s,
            Ok(_) => return self.abort(AbortReason::ExpectedStart),
            Err(e) => return self.abort(AbortReason::StartUnreadable(e)),
        };
        let hello_mode = self.hello.as_ref().map(|h| h.mode);
        if hello_mode != Some(start.mode) {
            // Admission was for the hello's mode; a start asking for another is a lie.
            return self.abort(AbortReason::ModeMismatch {
                hello: hello_mode.unwrap_or(start.mode),
                start: start.mode,
            });
        }
        let keys = start.total_keys();
        if let Err(r) = self.policy.check_size(&start.sections) {
            return self.refuse(r);
        }
        let Some(epoch) = self.epoch.as_ref().map(|e| e.id()) else {
            return self.abort(AbortReason::StoreUnreadable);
        };
        self.next(Stage::Charge(start), HolderEvent::Charge { keys, epoch });
    }

    /// How charging the budget and writing the `admitted` entry went.
    pub fn handle_charged(&mut self, charged: Charged) {
        let start = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Charge(s) => s,
            other => {
                self.stage = other;
                return;
            }
        };
        match charged {
            Charged::Refused(r) => self.refuse(r),
            // No query runs unaudited.
            Charged::Unrecorded => self.abort(AbortReason::AuditUnwritable),
            Charged::Recorded => {
                let (Some(hello), Some(epoch)) = (self.hello.clone(), self.epoch.take()) else {
                    return self.abort(AbortReason::StoreUnreadable);
                };
                let keys = start.total_keys();
                let admitted = Admitted {
                    hello,
                    start,
                    epoch,
                    keys,
                };
                self.event = Some(HolderEvent::Admitted(Box::new(admitted)));
            }
        }
    }

    fn next(&mut self, stage: Stage, event: HolderEvent) {
        self.stage = stage;
        self.event = Some(event);
    }

    fn refuse(&mut self, r: Refusal) {
        self.next(Stage::Done, HolderEvent::Refuse(r));
    }

    fn abort(&mut self, why: AbortReason) {
        self.next(Stage::Done, HolderEvent::Abort(why));
    }
}

/// Whether a querier's kept tags may stand in for this session's: of the serving epoch, at
/// least the session's tag length ℓ and at most what is stored. The digest must then equal
/// [`Epoch::tag_set_digest`] at the kept length (see [`kept_tags_current`]).
pub fn kept_tags_fit(kept: &KeptTags, epoch: &Epoch, session_tag_len: u8) -> bool {
    kept.epoch == epoch.id()
        && kept.tag_len >= session_tag_len
        && usize::from(kept.tag_len) <= TAG_STORED_LEN
}

/// The whole kept-tags rule: [`kept_tags_fit`] and the holder's digest of its tags at the
/// kept length (`None` if it could not be computed) equal to the querier's.
pub fn kept_tags_current(
    kept: &KeptTags,
    epoch: &Epoch,
    session_tag_len: u8,
    digest: Option<[u8; 32]>,
) -> bool {
    kept_tags_fit(kept, epoch, session_tag_len) && digest == Some(kept.digest)
}

/// Judges a frame read while serving: a PSI message, or why the query is over.
pub fn serving_frame(
    frame: Result<Option<ClientFrame>, crate::net::frame::FrameError>,
) -> Result<QuerierMessage, AbortReason> {
    use crate::net::frame::FrameError;
    match frame {
        Ok(Some(ClientFrame::Psi(m))) => Ok(m),
        Ok(Some(ClientFrame::Hello(_))) => Err(AbortReason::SecondHello),
        Ok(None) => Err(AbortReason::ClosedMidway),
        Err(FrameError::Timeout(t)) => Err(AbortReason::Stalled(t)),
        Err(e) => Err(AbortReason::Unreadable(e.to_string())),
    }
}
