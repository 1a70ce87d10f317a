//! Labels follow their keys through an epoch's sort and merge, and each key's label key is what
//! a querier holding the same input derives from its own `Finalize` output.

use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::oprf::{SecretKey, VoprfServer};
use suyuan_protocol::psi::labels::{
    LabelError, LabelKind, LabelSpec, MAX_LABEL_VALUES, MAX_VALUES_PER_KEY,
};
use suyuan_protocol::psi::{Epoch, EpochBuilder, PsiError};

fn specs() -> Vec<LabelSpec> {
    vec![
        LabelSpec {
            name: "branch".into(),
            kind: LabelKind::Text,
        },
        LabelSpec {
            name: "opened".into(),
            kind: LabelKind::Month,
        },
    ]
}

fn mobile(s: &str) -> Key {
    Key::parse(KeyType::Mobile, s).unwrap()
}

/// The values of each label that `key` carries in `epoch`, found the way a querier would:
/// by its tag, with its label key checked against the RFC's `Evaluate`.
fn labels_of(epoch: &Epoch, key: &Key) -> Vec<Vec<String>> {
    let sk = SecretKey::from_bytes(&epoch.key().to_bytes()).unwrap();
    let out = VoprfServer::new(sk).evaluate(&key.oprf_input()).unwrap();
    let kt = key.key_type();
    let tags = epoch.read_tags(kt, 0..epoch.size(kt)).unwrap();
    let pos = tags
        .binary_search_by(|t| t.as_slice().cmp(&out[..16]))
        .expect("the key's tag is in the epoch");
    let labels = epoch.labels().unwrap();
    let t = &labels.per_type[&key.key_type()];
    assert_eq!(
        t.keys[pos].as_slice(),
        &out[32..],
        "label key = Finalize[32..64]"
    );
    let mut per_label = vec![Vec::new(); labels.specs.len()];
    for (l, v) in t.of(pos) {
        per_label[usize::from(*l)].push(labels.values[usize::from(*l)][usize::from(*v)].clone());
    }
    per_label
}

#[test]
fn labels_follow_their_keys_through_sort_and_merge() {
    let mut rng = rand::rng();
    let mut b = EpochBuilder::new(&mut rng).with_labels(specs()).unwrap();
    // 300 customers, each at one of three branches; the first also opened a second account
    // elsewhere, and one record has no opening date.
    let customers: Vec<String> = (0..300).map(|i| format!("138{i:08}")).collect();
    let branch = |i: usize| ["乌鲁木齐分行", "北京分行", "上海分行"][i % 3];
    for (i, m) in customers.iter().enumerate() {
        let opened = if i == 7 { None } else { Some("2019-03") };
        b.add_labeled(&[mobile(m)], &[Some(branch(i)), opened])
            .unwrap();
    }
    b.add_labeled(
        &[mobile(&customers[0])],
        &[Some("北京分行"), Some("2020-11")],
    )
    .unwrap();
    let epoch = b.finish();
    assert_eq!(epoch.size(KeyType::Mobile), 300);
    assert_eq!(
        labels_of(&epoch, &mobile(&customers[0])),
        [vec!["乌鲁木齐分行", "北京分行"], vec!["2019-03", "2020-11"]] // in value order
    );
    for i in [1, 2, 3, 150, 299] {
        assert_eq!(
            labels_of(&epoch, &mobile(&customers[i])),
            [vec![branch(i).to_string()], vec!["2019-03".to_string()]],
            "customer {i}"
        );
    }
    assert_eq!(
        labels_of(&epoch, &mobile(&customers[7])),
        [vec![branch(7).to_string()], vec![]]
    );
    let labels = epoch.labels().unwrap();
    assert_eq!(labels.values[0], ["上海分行", "乌鲁木齐分行", "北京分行"]); // sorted
    let stats = epoch.label_stats();
    assert_eq!(
        (stats[0].values, stats[0].keys_with_value, stats[0].capped),
        (3, 300, 0)
    );
    assert_eq!((stats[1].values, stats[1].keys_with_value), (2, 299));
}

#[test]
fn a_key_keeps_the_first_values_found_and_the_import_counts_it() {
    let mut rng = rand::rng();
    let mut b = EpochBuilder::new(&mut rng).with_labels(specs()).unwrap();
    let k = mobile("13800138000");
    let branches = ["b1", "b2", "b3", "b4", "b5", "b6"];
    for br in branches {
        b.add_labeled(std::slice::from_ref(&k), &[Some(br), None])
            .unwrap();
    }
    b.add_labeled(&[mobile("13900139000")], &[Some("b6"), None])
        .unwrap();
    let epoch = b.finish();
    assert_eq!(labels_of(&epoch, &k)[0], branches[..MAX_VALUES_PER_KEY]);
    assert_eq!(labels_of(&epoch, &mobile("13900139000"))[0], ["b6"]);
    assert_eq!(epoch.label_stats()[0].capped, 1);
    assert_eq!(epoch.label_stats()[0].values, 6);
}

#[test]
fn an_epoch_without_labels_is_unchanged_and_keys_added_plainly_carry_none() {
    let mut rng = rand::rng();
    let mut plain = EpochBuilder::new(&mut rng);
    plain.add(&[mobile("13800138000")]);
    let plain = plain.finish();
    assert!(plain.labels().is_none() && plain.label_stats().is_empty());

    let mut b = EpochBuilder::new(&mut rng).with_labels(specs()).unwrap();
    b.add(&[mobile("13800138000")]);
    let e = b.finish();
    assert_eq!(
        labels_of(&e, &mobile("13800138000")),
        [Vec::<String>::new(), vec![]]
    );
}

#[test]
fn bad_labels_are_refused_with_the_reason() {
    let mut rng = rand::rng();
    let err = |specs: Vec<LabelSpec>| {
        EpochBuilder::new(&mut rand::rng())
            .with_labels(specs)
            .unwrap_err()
    };
    let text = |n: &str| LabelSpec {
        name: n.into(),
        kind: LabelKind::Text,
    };
    assert_eq!(
        err((0..9).map(|i| text(&format!("l{i}"))).collect()).to_string(),
        "9 labels given; at most 8 are allowed"
    );
    assert!(matches!(
        err(vec![text("Branch")]),
        PsiError::Labels(LabelError::BadName(_))
    ));
    assert!(matches!(
        err(vec![text("")]),
        PsiError::Labels(LabelError::BadName(_))
    ));
    assert_eq!(
        err(vec![text("branch"), text("branch")]).to_string(),
        "label \"branch\" is given twice"
    );

    let mut b = EpochBuilder::new(&mut rng).with_labels(specs()).unwrap();
    let k = [mobile("13800138000")];
    assert_eq!(
        b.add_labeled(&k, &[Some("x")]).unwrap_err().to_string(),
        "1 label values given for 2 labels"
    );
    let long = "分".repeat(43);
    assert_eq!(
        b.add_labeled(&k, &[Some(&long), None])
            .unwrap_err()
            .to_string(),
        "a value of label \"branch\" is 129 bytes long; at most 128 are allowed"
    );
    for i in 0..MAX_LABEL_VALUES {
        b.add_labeled(&[], &[Some(&i.to_string()), None]).unwrap();
    }
    assert!(matches!(
        b.add_labeled(&k, &[Some("one more"), None]),
        Err(PsiError::Labels(LabelError::TooManyValues { .. }))
    ));
    // A value already known is still accepted at the bound.
    b.add_labeled(&k, &[Some("0"), None]).unwrap();
}

/// A holder with labels shown to everyone, and a querier's session up to the accept.
fn labelled_session(
    ask_labels: bool,
) -> (
    suyuan_protocol::psi::QueryAccept,
    suyuan_protocol::psi::AwaitingAccept,
    Vec<suyuan_protocol::psi::HolderMessage>,
) {
    use std::sync::Arc;
    use suyuan_protocol::psi::labels::LabelPolicy;
    use suyuan_protocol::psi::{Holder, QuerierLimits, Query, QueryKeys, QueryMode};
    let mut b = EpochBuilder::new(&mut rand::rng())
        .with_labels(specs())
        .unwrap();
    for i in 0..50 {
        b.add_labeled(
            &[mobile(&format!("138{i:08}"))],
            &[Some("b"), Some("2019-03")],
        )
        .unwrap();
    }
    let holder = Holder::new(Arc::new(b.finish())).with_label_policy(LabelPolicy {
        visible: vec!["branch".into(), "opened".into()],
        min_cell: 1,
        share_totals: false,
    });
    let mut keys = QueryKeys::new();
    keys.add_row(&[mobile("13800000001")]);
    let query = Arc::new(Query::blind(&mut rand::rng(), keys).unwrap());
    let (start, awaiting) =
        query.start_asking(QueryMode::Matches, QuerierLimits::default(), ask_labels);
    let (accept, mut hs) = holder.handle_start(start, &mut rand::rng()).unwrap();
    let mut sent = Vec::new();
    while let Some(m) = hs.poll_message().unwrap() {
        sent.push(m);
    }
    (accept, awaiting, sent)
}

fn refused(e: PsiError) -> suyuan_protocol::psi::PeerMisbehaved {
    match e {
        PsiError::PeerMisbehaved(p) => p,
        other => panic!("expected a refusal of the holder, got {other:?}"),
    }
}

#[test]
fn label_messages_out_of_place_are_refused_with_the_reason() {
    use suyuan_protocol::psi::{HolderMessage, PeerMisbehaved};
    // Not asked: no offer, no values, no sealed bytes.
    let (accept, _, sent) = labelled_session(false);
    assert!(accept.labels.is_none());
    assert!(sent.iter().all(|m| match m {
        HolderMessage::Tags(t) => t.labels.is_empty(),
        HolderMessage::LabelValues(_) => false,
        _ => true,
    }));
    // An offer nobody asked for.
    let (asked, _, _) = labelled_session(true);
    let (mut accept, awaiting, _) = labelled_session(false);
    accept.labels = asked.labels.clone();
    assert_eq!(
        refused(awaiting.handle_accept(accept).unwrap_err()),
        PeerMisbehaved::BadLabelOffer
    );
    // Asked: the values come first, then tags with 16 sealed bytes each (2 labels · 4 slots).
    let (accept, awaiting, sent) = labelled_session(true);
    let offer = accept.labels.clone().unwrap();
    assert_eq!(
        (offer.sealed_len(), offer.value_counts.clone()),
        (16, vec![1, 1])
    );
    assert!(matches!(sent[0], HolderMessage::LabelValues(_)));
    let mut q = awaiting.handle_accept(accept.clone()).unwrap();
    // Tags before the values.
    let err = q.handle(sent[2].clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "peer misbehaved: unexpected TagChunk message, expected LabelValues"
    );
    // Values out of turn (the second label's first).
    let (_, awaiting, _) = labelled_session(true);
    let mut q = awaiting
        .handle_accept(accept.clone())
        .unwrap_or_else(|_| unreachable!());
    let HolderMessage::LabelValues(mut second) = sent[1].clone() else {
        unreachable!()
    };
    assert_eq!(
        refused(
            q.handle(HolderMessage::LabelValues(second.clone()))
                .unwrap_err()
        ),
        PeerMisbehaved::BadLabelValues("values for a label out of turn")
    );
    // More values than announced.
    second.label = 0;
    second.values.push("extra".into());
    let (_, awaiting, _) = labelled_session(true);
    let mut q2 = awaiting
        .handle_accept(accept.clone())
        .unwrap_or_else(|_| unreachable!());
    assert_eq!(
        refused(q2.handle(HolderMessage::LabelValues(second)).unwrap_err()),
        PeerMisbehaved::BadLabelValues("more values than the offer announced, or none")
    );
    // Sealed labels one byte short.
    q.handle(sent[0].clone()).unwrap();
    q.handle(sent[1].clone()).unwrap();
    let HolderMessage::Tags(mut tags) = sent[2].clone() else {
        unreachable!()
    };
    let expected = tags.labels.len();
    tags.labels.pop();
    assert_eq!(
        refused(q.handle(HolderMessage::Tags(tags)).unwrap_err()),
        PeerMisbehaved::BadSealedLabels {
            got: expected - 1,
            expected
        }
    );
}

/// Eight labels plus the canary would be nine: more than the per-key arrays and the one
/// keystream block hold (its last label's slots would travel unsealed). Refused when the epoch
/// is built, and an offer of nine from a holder is not well formed.
#[test]
fn the_canary_label_counts_among_the_eight() {
    use suyuan_protocol::psi::labels::{CANARY_LABEL, LabelOffer, MAX_LABELS, check_specs};
    let mut nine: Vec<LabelSpec> = (0..MAX_LABELS)
        .map(|i| LabelSpec {
            name: format!("l{i}"),
            kind: LabelKind::Text,
        })
        .collect();
    nine.push(LabelSpec {
        name: CANARY_LABEL.into(),
        kind: LabelKind::Text,
    });
    assert_eq!(check_specs(&nine), Err(LabelError::TooManyLabels(9)));
    assert!(
        EpochBuilder::new(&mut rand::rng())
            .with_labels(nine.clone())
            .is_err()
    );
    let offer = LabelOffer {
        value_counts: vec![1; nine.len()],
        specs: nine,
        min_cell: 10,
        totals: false,
        nonce: [0; 16],
    };
    assert!(!offer.is_valid());
    assert!(check_specs(&offer.specs[1..]).is_ok());
}
