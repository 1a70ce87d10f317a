//! The handshakes driven by hand: no sockets, no clock but the one passed in.

use std::sync::Arc;

use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::{
    Epoch, EpochBuilder, EpochId, HolderMessage, QuerierMessage, QueryAccept, QueryMode,
    QueryStart, Section,
};

use super::holder::{
    Charged, HolderEvent, HolderHandshake, kept_tags_current, kept_tags_fit, serving_frame,
};
use super::querier::QuerierHandshake;
use crate::net::budget::DailyBudget;
use crate::net::failure::FailureKind;
use crate::net::frame::{
    AbortReason, ClientFrame, FrameError, Hello, KeptTags, NODE_WIRE_VERSION, Refusal, ServerFrame,
    Welcome,
};
use crate::node_dir::config::Policy;
use crate::node_dir::identity::Role;

fn epoch() -> Arc<Epoch> {
    let mut b = EpochBuilder::new(&mut rand::rng());
    b.add(&[Key::parse(KeyType::Mobile, "13800138000").unwrap()]);
    Arc::new(b.finish())
}

fn hello(mode: QueryMode) -> Hello {
    Hello::new(mode, Some("2026-001".into()))
}

fn start(mode: QueryMode, keys: u64) -> ClientFrame {
    ClientFrame::Psi(QuerierMessage::Start(QueryStart {
        version: suyuan_protocol::psi::PROTOCOL_VERSION,
        mode,
        sections: vec![Section {
            key_type: KeyType::Mobile,
            count: keys,
        }],
        labels: false,
    }))
}

/// Drives a holder handshake: hello, slot, epoch, start; returns the event after the start.
fn up_to_start(policy: &Policy, hello: Hello, free: bool, frame: ClientFrame) -> HolderEvent {
    let mut hs = HolderHandshake::new(policy, Role::Police);
    assert!(matches!(hs.poll_event(), Some(HolderEvent::ReadHello)));
    hs.handle_hello(Ok(Some(ClientFrame::Hello(hello))), false);
    match hs.poll_event() {
        Some(HolderEvent::TakeSlot) => {}
        other => return other.unwrap(),
    }
    hs.handle_slot(free);
    match hs.poll_event() {
        Some(HolderEvent::LoadEpoch { published: None }) => {}
        other => return other.unwrap(),
    }
    hs.handle_epoch(Ok(Some(epoch())));
    assert!(matches!(hs.poll_event(), Some(HolderEvent::ReadStart)));
    hs.handle_start(Ok(Some(frame)));
    hs.poll_event().unwrap()
}

fn refusal(e: HolderEvent) -> Refusal {
    match e {
        HolderEvent::Refuse(r) => r,
        other => panic!("not a refusal: {other:?}"),
    }
}

fn abort(e: HolderEvent) -> AbortReason {
    match e {
        HolderEvent::Abort(a) => a,
        other => panic!("not an abort: {other:?}"),
    }
}

#[test]
fn the_hello_is_judged_version_first_then_shutdown_then_policy() {
    let policy = Policy::default();
    let judge = |h: Hello, draining: bool| {
        let mut hs = HolderHandshake::new(&policy, Role::Institution);
        hs.poll_event();
        hs.handle_hello(Ok(Some(ClientFrame::Hello(h))), draining);
        hs.poll_event().unwrap()
    };
    // An institution may not query at all, yet an old version is what it is told first.
    let old = Hello {
        version: 2,
        ..hello(QueryMode::Matches)
    };
    assert_eq!(refusal(judge(old, true)), Refusal::UnsupportedVersion(2));
    assert_eq!(
        refusal(judge(hello(QueryMode::Matches), true)),
        Refusal::ShuttingDown
    );
    assert_eq!(
        refusal(judge(hello(QueryMode::Matches), false)),
        Refusal::RoleNotAllowed(Role::Institution)
    );
    assert_eq!(
        Refusal::UnsupportedVersion(2).to_string(),
        format!("node wire version 2 is not supported (this node speaks {NODE_WIRE_VERSION})")
    );
}

#[test]
fn a_stream_that_does_not_open_with_a_hello_is_aborted_or_dropped() {
    let policy = Policy::default();
    let mut hs = HolderHandshake::new(&policy, Role::Police);
    hs.poll_event();
    hs.handle_hello(Ok(Some(start(QueryMode::Count, 1000))), false);
    assert_eq!(abort(hs.poll_event().unwrap()), AbortReason::NotAHello);

    let mut hs = HolderHandshake::new(&policy, Role::Police);
    hs.poll_event();
    hs.handle_hello(Err("timed out".into()), false);
    let why = abort(hs.poll_event().unwrap());
    assert_eq!(why.to_string(), "reading the hello: timed out");

    // Ended before a word: nothing to answer, nothing to audit.
    let mut hs = HolderHandshake::new(&policy, Role::Police);
    hs.poll_event();
    hs.handle_hello(Ok(None), false);
    assert!(hs.poll_event().is_none());
}

#[test]
fn policy_refusals_come_before_the_slot_and_the_slot_before_the_epoch() {
    let policy = Policy::default();
    let no_case = Hello::new(QueryMode::Count, None);
    let frame = start(QueryMode::Count, 1000);
    assert_eq!(
        refusal(up_to_start(&policy, no_case, false, frame.clone())),
        Refusal::CaseRequired
    );
    assert_eq!(
        refusal(up_to_start(
            &policy,
            hello(QueryMode::Matches),
            false,
            frame.clone()
        )),
        Refusal::ModeNotAllowed {
            mode: QueryMode::Matches,
            role: Role::Police
        }
    );
    assert_eq!(
        refusal(up_to_start(&policy, hello(QueryMode::Count), false, frame)),
        Refusal::Busy {
            max: policy.max_concurrent_queries
        }
    );
    let mut hs = HolderHandshake::new(&policy, Role::Police);
    hs.poll_event();
    hs.handle_hello(Ok(Some(ClientFrame::Hello(hello(QueryMode::Count)))), false);
    hs.poll_event();
    hs.handle_slot(true);
    hs.poll_event();
    hs.handle_epoch(Ok(None));
    assert_eq!(refusal(hs.poll_event().unwrap()), Refusal::NoEpoch);
}

#[test]
fn the_start_must_follow_the_hello_in_its_mode_and_size() {
    let policy = Policy::default();
    let count = || hello(QueryMode::Count);
    assert_eq!(
        abort(up_to_start(
            &policy,
            count(),
            true,
            start(QueryMode::Matches, 1000)
        )),
        AbortReason::ModeMismatch {
            hello: QueryMode::Count,
            start: QueryMode::Matches
        }
    );
    assert_eq!(
        abort(up_to_start(
            &policy,
            count(),
            true,
            ClientFrame::Hello(count())
        )),
        AbortReason::ExpectedStart
    );
    // The mode check comes before the size check.
    assert!(matches!(
        abort(up_to_start(
            &policy,
            count(),
            true,
            start(QueryMode::Matches, 1)
        )),
        AbortReason::ModeMismatch { .. }
    ));
    assert_eq!(
        refusal(up_to_start(
            &policy,
            count(),
            true,
            start(QueryMode::Count, 999)
        )),
        Refusal::TooSmall {
            keys: 999,
            min: 1000
        }
    );
    // A hostile size saturates instead of wrapping into range.
    assert!(matches!(
        refusal(up_to_start(
            &policy,
            count(),
            true,
            start(QueryMode::Count, u64::MAX)
        )),
        Refusal::TooLarge { .. }
    ));
    match up_to_start(&policy, count(), true, start(QueryMode::Count, 1000)) {
        HolderEvent::Charge { keys: 1000, .. } => {}
        other => panic!("{other:?}"),
    }
}

/// Drives a handshake to its charge, then charges a real budget at `now`.
fn charged_at(budget: &mut DailyBudget, now: u64) -> HolderEvent {
    let policy = Policy::default();
    let mut hs = HolderHandshake::new(&policy, Role::Police);
    hs.poll_event();
    hs.handle_hello(Ok(Some(ClientFrame::Hello(hello(QueryMode::Count)))), false);
    hs.poll_event();
    hs.handle_slot(true);
    hs.poll_event();
    hs.handle_epoch(Ok(Some(epoch())));
    hs.poll_event();
    hs.handle_start(Ok(Some(start(QueryMode::Count, 1000))));
    let Some(HolderEvent::Charge { keys, .. }) = hs.poll_event() else {
        panic!("no charge");
    };
    let charged = match budget.charge("police", keys, now) {
        Ok(_) => Charged::Recorded,
        Err(r) => Charged::Refused(r),
    };
    hs.handle_charged(charged);
    hs.poll_event().unwrap()
}

#[test]
fn the_budget_refuses_until_the_second_of_utc_midnight() {
    const MIDNIGHT: u64 = 1_796_083_200; // 2026-12-01T00:00:00Z
    let mut budget = DailyBudget::new(2000);
    for now in [MIDNIGHT - 100, MIDNIGHT - 2] {
        assert!(matches!(
            charged_at(&mut budget, now),
            HolderEvent::Admitted(_)
        ));
    }
    assert_eq!(
        refusal(charged_at(&mut budget, MIDNIGHT - 1)),
        Refusal::BudgetExhausted {
            used: 2000,
            limit: 2000,
            keys: 1000
        }
    );
    match charged_at(&mut budget, MIDNIGHT) {
        HolderEvent::Admitted(a) => {
            assert_eq!(a.keys, 1000);
            assert_eq!(a.hello.mode, QueryMode::Count);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_query_runs_unaudited() {
    let policy = Policy::default();
    let mut hs = HolderHandshake::new(&policy, Role::Police);
    hs.poll_event();
    hs.handle_hello(Ok(Some(ClientFrame::Hello(hello(QueryMode::Count)))), false);
    hs.poll_event();
    hs.handle_slot(true);
    hs.poll_event();
    hs.handle_epoch(Ok(Some(epoch())));
    hs.poll_event();
    hs.handle_start(Ok(Some(start(QueryMode::Count, 1000))));
    hs.poll_event();
    hs.handle_charged(Charged::Unrecorded);
    assert_eq!(
        abort(hs.poll_event().unwrap()),
        AbortReason::AuditUnwritable
    );
    assert!(hs.poll_event().is_none());
}

#[test]
fn kept_tags_stand_in_only_for_the_same_epoch_long_enough_and_equal() {
    let e = epoch();
    let digest = e.tag_set_digest(&[KeyType::Mobile], 10).unwrap();
    let kept = KeptTags {
        epoch: e.id(),
        tag_len: 10,
        digest,
    };
    assert!(kept_tags_current(&kept, &e, 10, Some(digest)));
    assert!(
        kept_tags_current(&kept, &e, 8, Some(digest)),
        "longer tags truncate"
    );
    assert!(
        !kept_tags_fit(&kept, &e, 11),
        "shorter than the session's ℓ"
    );
    assert!(!kept_tags_current(&kept, &e, 10, Some([0; 32])));
    assert!(!kept_tags_current(&kept, &e, 10, None));
    let other = KeptTags {
        epoch: EpochId([9; 16]),
        ..kept.clone()
    };
    assert!(!kept_tags_fit(&other, &e, 10));
    let too_long = KeptTags {
        tag_len: 200,
        ..kept
    };
    assert!(!kept_tags_fit(&too_long, &e, 10));
}

#[test]
fn serving_ends_on_a_second_hello_a_stall_or_an_early_end() {
    let t = std::time::Duration::from_secs(3);
    let second = serving_frame(Ok(Some(ClientFrame::Hello(hello(QueryMode::Count)))));
    assert_eq!(second, Err(AbortReason::SecondHello));
    assert_eq!(serving_frame(Ok(None)), Err(AbortReason::ClosedMidway));
    let stalled = serving_frame(Err(FrameError::Timeout(t))).unwrap_err();
    assert_eq!(stalled.to_string(), "the querier stalled for 3s");
}

fn welcome(node: &str, epoch: EpochId, tags_kept: bool) -> Option<ServerFrame> {
    Some(ServerFrame::Welcome(Welcome {
        version: NODE_WIRE_VERSION,
        node: node.into(),
        epoch,
        tags_kept,
        preparing: 0,
        statement: None,
    }))
}

fn accept(epoch: EpochId) -> Option<ServerFrame> {
    Some(ServerFrame::Psi(HolderMessage::Accept(QueryAccept {
        version: suyuan_protocol::psi::PROTOCOL_VERSION,
        epoch,
        tag_len: 8,
        public_key: suyuan_protocol::oprf::SecretKey::random(&mut rand::rng())
            .public_key()
            .to_element(),
        holder_sections: vec![],
        labels: None,
    })))
}

#[test]
fn the_welcome_must_come_from_the_node_dialled_in_this_version() {
    let e = EpochId([1; 16]);
    let mut q = QuerierHandshake::new("bank", false);
    assert_eq!(
        q.handle_welcome(welcome("shop", e, false)),
        Err(FailureKind::WrongWelcome {
            node: "shop".into(),
            version: NODE_WIRE_VERSION
        })
    );
    let old = Some(ServerFrame::Welcome(Welcome {
        version: 2,
        node: "bank".into(),
        epoch: e,
        tags_kept: false,
        preparing: 0,
        statement: None,
    }));
    assert!(matches!(
        QuerierHandshake::new("bank", false).handle_welcome(old),
        Err(FailureKind::WrongWelcome { version: 2, .. })
    ));
    let refused = Some(ServerFrame::Refused(Refusal::NoEpoch));
    assert_eq!(
        QuerierHandshake::new("bank", false).handle_welcome(refused),
        Err(FailureKind::Refused(Refusal::NoEpoch))
    );
    let aborted = Some(ServerFrame::Abort(AbortReason::StoreUnreadable));
    assert_eq!(
        QuerierHandshake::new("bank", false).handle_welcome(aborted),
        Err(FailureKind::Aborted(AbortReason::StoreUnreadable))
    );
    assert_eq!(
        QuerierHandshake::new("bank", false).handle_welcome(accept(e)),
        Err(FailureKind::AnsweredBeforeWelcome)
    );
    assert_eq!(
        QuerierHandshake::new("bank", false).handle_welcome(None),
        Err(FailureKind::NoAnswer)
    );
    assert_eq!(
        QuerierHandshake::new("bank", false).handle_welcome(welcome("bank", e, true)),
        Err(FailureKind::KeptTagsNotOffered)
    );
}

#[test]
fn the_accept_must_be_of_the_welcomed_epoch() {
    let (e, f) = (EpochId([1; 16]), EpochId([2; 16]));
    let mut q = QuerierHandshake::new("bank", true);
    assert!(
        q.handle_welcome(welcome("bank", e, true))
            .unwrap()
            .tags_kept
    );
    assert_eq!(
        q.handle_accept(accept(f)),
        Err(FailureKind::EpochSwitched {
            welcomed: e,
            answered: f
        })
    );
    let mut q = QuerierHandshake::new("bank", false);
    q.handle_welcome(welcome("bank", e, false)).unwrap();
    assert_eq!(q.handle_accept(accept(e)).unwrap().epoch, e);
    let mut q = QuerierHandshake::new("bank", false);
    q.handle_welcome(welcome("bank", e, false)).unwrap();
    assert_eq!(
        q.handle_accept(welcome("bank", e, false)),
        Err(FailureKind::NoAccept)
    );
}

/// A hello read by a fresh handshake under `policy`; the event after it.
fn after_hello(policy: &Policy, hello: Hello) -> (HolderHandshake<'_>, HolderEvent) {
    let mut hs = HolderHandshake::new(policy, Role::Police);
    assert!(matches!(hs.poll_event(), Some(HolderEvent::ReadHello)));
    hs.handle_hello(Ok(Some(ClientFrame::Hello(hello))), false);
    let e = hs.poll_event().unwrap();
    (hs, e)
}

fn a_signed_document() -> crate::evidence::Signed {
    crate::evidence::Signed {
        body: "{}".into(),
        signature: "00".into(),
        certificate: "00".into(),
    }
}

#[test]
fn a_warrant_is_required_where_the_policy_says_and_judged_wherever_it_is_sent() {
    use crate::evidence::warrant::WarrantRefusal;
    let mut policy = Policy::default();
    policy
        .allow
        .insert(Role::Police, vec![QueryMode::Count, QueryMode::Matches]);
    policy.warrant.matches = true;
    let (_, e) = after_hello(&policy, hello(QueryMode::Matches));
    assert_eq!(
        refusal(e),
        Refusal::Warrant(WarrantRefusal::Missing(QueryMode::Matches))
    );
    // Count needs none here: straight to a slot.
    let (_, e) = after_hello(&policy, hello(QueryMode::Count));
    assert!(matches!(e, HolderEvent::TakeSlot));
    // A warrant sent is checked, with the policy's minimum receipt count.
    policy.warrant.receipt = true;
    for mode in [QueryMode::Matches, QueryMode::Count] {
        let with = Hello {
            warrant: Some(a_signed_document()),
            ..hello(mode)
        };
        let (mut hs, e) = after_hello(&policy, with);
        assert!(
            matches!(
                e,
                HolderEvent::CheckWarrant {
                    min_count: Some(3000),
                    ..
                }
            ),
            "{e:?}"
        );
        let why = WarrantRefusal::Forged("ab".into(), "bad".into());
        hs.handle_warrant(Err(why.clone()));
        assert_eq!(refusal(hs.poll_event().unwrap()), Refusal::Warrant(why));
    }
    let with = Hello {
        warrant: Some(a_signed_document()),
        ..hello(QueryMode::Matches)
    };
    let (mut hs, _) = after_hello(&policy, with);
    hs.handle_warrant(Ok(()));
    assert!(matches!(hs.poll_event(), Some(HolderEvent::TakeSlot)));
}

#[test]
fn a_published_case_is_asked_by_its_case_and_may_be_refused_when_loaded() {
    let policy = Policy {
        require_case: false,
        ..Policy::default()
    };
    let no_case = Hello {
        published: true,
        ..Hello::new(QueryMode::Count, None)
    };
    let (_, e) = after_hello(&policy, no_case);
    assert_eq!(refusal(e), Refusal::CaseRequired);
    let asked = Hello {
        published: true,
        ..hello(QueryMode::Count)
    };
    let (mut hs, e) = after_hello(&policy, asked);
    assert!(matches!(e, HolderEvent::TakeSlot));
    hs.handle_slot(true);
    match hs.poll_event() {
        Some(HolderEvent::LoadEpoch { published }) => {
            assert_eq!(published.as_deref(), Some("2026-001"));
        }
        other => panic!("{other:?}"),
    }
    hs.handle_epoch_refused(Refusal::NoSuchCase("2026-001".into()));
    assert_eq!(
        refusal(hs.poll_event().unwrap()),
        Refusal::NoSuchCase("2026-001".into())
    );
}
