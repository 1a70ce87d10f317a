//! The hex of docs/protocol.md section 8, computed there by an independent implementation of
//! the spec (`docs/vectors/golden.py`, Python and libsodium), reproduced byte for byte: keys,
//! tags and every message of a `matches` and a `count` session.

use std::convert::Infallible;
use std::sync::Arc;

use rand_core::{TryCryptoRng, TryRng};
use suyuan_protocol::codec;
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::oprf::SecretKey;
use suyuan_protocol::psi::{
    EpochBuilder, EpochId, Holder, HolderMessage, QuerierMessage, Query, QueryKeys, QueryMode,
};

const K: &str = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e";
const A: &str = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706";

struct ReplayRng(Vec<u8>);
impl TryRng for ReplayRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unimplemented!("the PSI draws whole scalars")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unimplemented!("the PSI draws whole scalars")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}
impl TryCryptoRng for ReplayRng {}

fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// An epoch of key `K` and id `00..0f`, as section 8 has it.
fn golden_epoch() -> EpochBuilder {
    let key = SecretKey::from_bytes(&hex::decode(K).unwrap().try_into().unwrap()).unwrap();
    let id = EpochId(
        hex::decode("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .try_into()
            .unwrap(),
    );
    EpochBuilder::with_key(id, key)
}

fn holder() -> Holder {
    let mut b = golden_epoch();
    b.add(&[
        Key::parse(KeyType::Mobile, "13800138000").unwrap(),
        Key::parse(KeyType::Mobile, "13912345678").unwrap(),
    ]);
    let epoch = b.finish();
    assert_eq!(
        epoch
            .read_tags(KeyType::Mobile, 0..epoch.size(KeyType::Mobile))
            .unwrap()
            .iter()
            .map(|t| hex(t))
            .collect::<Vec<_>>(),
        [
            "4e1952403ff423202b26b6696eb65bfe",
            "7a236895d0dd84fbb342fe4757798b60"
        ]
    );
    Holder::new(Arc::new(epoch))
}

#[test]
fn stored_tags_of_each_key_type() {
    let key = || SecretKey::from_bytes(&hex::decode(K).unwrap().try_into().unwrap()).unwrap();
    for (kt, value, tag16) in [
        (
            KeyType::Mobile,
            "13800138000",
            "4e1952403ff423202b26b6696eb65bfe",
        ),
        (
            KeyType::ResidentId,
            "11010519491231002X",
            "e4c6ee2d910fb0a7c03e65987490e6f2",
        ),
        (KeyType::Email, "a@b.cn", "fccca17dad47927c1c103f0e053786a6"),
        (
            KeyType::NameBirthdate,
            "张慧|19491231",
            "02e5aeecea37a751e4a57d96eca0858d",
        ),
    ] {
        let k = Key::parse(kt, value).unwrap();
        let mut b = EpochBuilder::with_key(EpochId([0; 16]), key());
        b.add(&[k]);
        assert_eq!(
            hex(&b.finish().read_tags(kt, 0..1).unwrap()[0]),
            tag16,
            "{kt}"
        );
    }
}

#[test]
fn complete_session_bytes() {
    let holder = holder();
    let mut rows = QueryKeys::new();
    rows.add_row(&[Key::parse(KeyType::Mobile, "13800138000").unwrap()]);
    rows.add_row(&[Key::parse(KeyType::Email, "a@b.cn").unwrap()]);
    let mut rng = ReplayRng(hex::decode(A).unwrap());
    let query = Arc::new(Query::blind(&mut rng, rows).unwrap());
    assert!(rng.0.is_empty());

    let (start, awaiting) = query.start(QueryMode::Matches);
    let wire_start = QuerierMessage::from(start.clone());
    assert_eq!(
        hex(&codec::encode(&wire_start).unwrap()),
        "000301020001030100"
    );
    // The holder's proof-nonce seed, SHA-256("suyuan golden proof seed").
    let mut holder_rng = ReplayRng(hex::decode(SEED).unwrap());
    let (accept, mut s) = holder.handle_start(start, &mut holder_rng).unwrap();
    assert!(holder_rng.0.is_empty(), "the seed is drawn once");
    assert_eq!(
        hex(&codec::encode(&HolderMessage::from(accept.clone())).unwrap()),
        "0003000102030405060708090a0b0c0d0e0f08f4a56c2f306cafe90769927fdc9dd4994d8ad18f8d35b7c568ececc842da7015020002030000"
    );
    let tags = s.poll_message().unwrap().unwrap();
    assert!(matches!(tags, HolderMessage::Tags(_)));
    assert_eq!(
        hex(&codec::encode(&tags).unwrap()),
        "0100104e1952403ff423207a236895d0dd84fb00"
    );
    let mut q = awaiting.handle_accept(accept).unwrap();
    q.handle(tags).unwrap();
    let blinded = q.poll_message().unwrap();
    assert_eq!(
        hex(&codec::encode(&blinded).unwrap()),
        "01000214f6407fd5eb1d8236c46ee75a64cdc42e5110dacb35e0cbd9b39f1d18bf1333\
         0e4705cd248302476f099e07b519c97be0c583c7cd4bce617790a146bfac935f"
    );
    s.handle(blinded).unwrap();
    let evaluated = s.poll_message().unwrap().unwrap();
    assert_eq!(
        hex(&codec::encode(&evaluated).unwrap()),
        "020002e6f3b0d3819c412953d504974082d4c9ce08baa5e49f235e1b8f42ba2c456367\
         78aa09a8845ff76c5e90c52060525869209e72aa1bc1170ea18c5c5f04c91c00\
         01\
         15d7c1528858a28cd69ff92342487577b8e3fa0ccfd8ea502fed4809ecb7ad03\
         1d6cd5e67b1d6704a4dbd985beda2f4493cbda8b9886a1479084bff18238fb03"
    );
    assert!(s.poll_message().unwrap().is_none() && s.is_finished());
    q.handle(evaluated).unwrap();
    let r = q.finish().unwrap();
    assert_eq!(r.matched_keys[&KeyType::Mobile], 1);
    assert_eq!(r.matched_keys[&KeyType::Email], 0);
    assert_eq!(r.matched_rows, Some(vec![0]));
}

/// The proof-nonce seed of section 8.2, as the holder's random bytes.
const SEED: &str = "c8dbfe6144e1c45420e1b9c96c8ce55658aad813c74662db3798727e7c3b155b";

/// The count session's factor `r` of section 8.3, as the holder's random bytes.
const R: &str = "f8ee856a6f3f4cb79119fa0a941c6b4c900cc944ca7521a3ac50e9f2c0145d00";

#[test]
fn complete_count_session_bytes() {
    let holder = holder();
    let mut rows = QueryKeys::new();
    rows.add_row(&[Key::parse(KeyType::Mobile, "13800138000").unwrap()]);
    rows.add_row(&[Key::parse(KeyType::Email, "a@b.cn").unwrap()]);
    let query = Arc::new(Query::blind(&mut ReplayRng(hex::decode(A).unwrap()), rows).unwrap());

    let (start, awaiting) = query.start(QueryMode::Count);
    assert_eq!(
        hex(&codec::encode(&QuerierMessage::from(start.clone())).unwrap()),
        "000300020001030100"
    );
    let mut holder_rng = ReplayRng(hex::decode(R).unwrap());
    let (accept, mut s) = holder.handle_start(start, &mut holder_rng).unwrap();
    assert!(holder_rng.0.is_empty(), "r is drawn once");
    assert_eq!(
        hex(&codec::encode(&HolderMessage::from(accept.clone())).unwrap()),
        "0003000102030405060708090a0b0c0d0e0f08f4a56c2f306cafe90769927fdc9dd4994d8ad18f8d35b7c568ececc842da7015020002030000"
    );
    let tags = s.poll_message().unwrap().unwrap();
    assert_eq!(
        hex(&codec::encode(&tags).unwrap()),
        "01001086d100af62540a1ebdb247acfcaf986d00"
    );
    let mut q = awaiting.handle_accept(accept).unwrap();
    q.handle(tags).unwrap();
    let blinded = q.poll_message().unwrap();
    s.handle(blinded).unwrap();
    let evaluated = s.poll_message().unwrap().unwrap();
    assert_eq!(
        hex(&codec::encode(&evaluated).unwrap()),
        "02000272cfde9f1e0135b54092e9f1cce3a8f5c1a21bff2fa02a989e256644ece28533\
         304cbf2b7c6a994823d4e2b77032f12a19fe61c458d8fd8623cfe1f10602133e\
         00"
    );
    assert!(s.poll_message().unwrap().is_none() && s.is_finished());
    q.handle(evaluated).unwrap();
    let r = q.finish().unwrap();
    assert_eq!(r.matched_keys[&KeyType::Mobile], 1);
    assert_eq!(r.matched_keys[&KeyType::Email], 0);
    assert_eq!(r.matched_rows, None);
}

/// The label nonce of section 8.4, drawn by the holder after the proof-nonce seed.
const LABEL_NONCE: &str = "1ad58bbf381c3bfa0b4139675664f9e4";

#[test]
fn complete_labelled_session_bytes() {
    use suyuan_protocol::psi::QuerierLimits;
    use suyuan_protocol::psi::labels::{LabelKind, LabelPolicy, LabelSpec};
    let spec = LabelSpec {
        name: "branch".into(),
        kind: LabelKind::Text,
    };
    let mut b = golden_epoch().with_labels(vec![spec]).unwrap();
    for (m, branch) in [("13800138000", "乌鲁木齐分行"), ("13912345678", "北京分行")] {
        b.add_labeled(&[Key::parse(KeyType::Mobile, m).unwrap()], &[Some(branch)])
            .unwrap();
    }
    let holder = Holder::new(Arc::new(b.finish())).with_label_policy(LabelPolicy {
        visible: vec!["branch".into()],
        min_cell: 1,
        share_totals: true,
    });
    let mut rows = QueryKeys::new();
    rows.add_row(&[Key::parse(KeyType::Mobile, "13800138000").unwrap()]);
    rows.add_row(&[Key::parse(KeyType::Email, "a@b.cn").unwrap()]);
    let query = Arc::new(Query::blind(&mut ReplayRng(hex::decode(A).unwrap()), rows).unwrap());
    let (start, awaiting) = query.start_asking(QueryMode::Matches, QuerierLimits::default(), true);
    assert_eq!(
        hex(&codec::encode(&QuerierMessage::from(start.clone())).unwrap()),
        "000301020001030101"
    );
    let mut holder_rng = ReplayRng(hex::decode(format!("{SEED}{LABEL_NONCE}")).unwrap());
    let (accept, mut s) = holder.handle_start(start, &mut holder_rng).unwrap();
    assert!(holder_rng.0.is_empty());
    assert_eq!(
        hex(&codec::encode(&HolderMessage::from(accept.clone())).unwrap()),
        "0003000102030405060708090a0b0c0d0e0f08f4a56c2f306cafe90769927fdc9dd4994d8ad18f8d35b7\
         c568ececc842da701502000203000101066272616e636800010201011ad58bbf381c3bfa0b4139675664f9e4"
    );
    let mut q = awaiting.handle_accept(accept).unwrap();
    let values = s.poll_message().unwrap().unwrap();
    assert_eq!(
        hex(&codec::encode(&values).unwrap()),
        "03000212e4b98ce9b281e69ca8e9bd90e58886e8a18c0ce58c97e4baace58886e8a18c0401000100"
    );
    let tags = s.poll_message().unwrap().unwrap();
    assert_eq!(
        hex(&codec::encode(&tags).unwrap()),
        "0100104e1952403ff423207a236895d0dd84fb109ceee3a2ddca104f24b5b67388ec60e4"
    );
    q.handle(values).unwrap();
    q.handle(tags).unwrap();
    while let Some(m) = q.poll_message() {
        s.handle(m).unwrap();
    }
    while let Some(m) = s.poll_message().unwrap() {
        q.handle(m).unwrap();
    }
    let r = q.finish().unwrap();
    let labels = r.labels.unwrap();
    assert_eq!(labels.values, [vec!["乌鲁木齐分行", "北京分行"]]);
    let mobile_one = std::collections::BTreeMap::from([(KeyType::Mobile, 1)]);
    assert_eq!(
        labels.totals,
        Some(std::collections::BTreeMap::from([
            ((0, 0), mobile_one.clone()),
            ((0, 1), mobile_one)
        ]))
    );
    assert_eq!(
        labels.rows,
        Some(std::collections::BTreeMap::from([(0, vec![(0, 0)])]))
    );
}
