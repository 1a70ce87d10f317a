//! The hex of docs/protocol.md section 8, computed there by an independent implementation of
//! the spec, reproduced byte for byte: keys, tags and every message of a session.

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

fn holder() -> Holder {
    let key = SecretKey::from_bytes(&hex::decode(K).unwrap().try_into().unwrap()).unwrap();
    let id = EpochId(
        hex::decode("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .try_into()
            .unwrap(),
    );
    let mut b = EpochBuilder::with_key(id, key);
    b.add(&[
        Key::parse(KeyType::Mobile, "13800138000").unwrap(),
        Key::parse(KeyType::Mobile, "13912345678").unwrap(),
    ]);
    let epoch = b.finish();
    assert_eq!(
        epoch
            .tags(KeyType::Mobile)
            .iter()
            .map(|t| hex(t))
            .collect::<Vec<_>>(),
        [
            "6fa78f763c109f793d39898d6d82b795",
            "7d04b86242a0930eee3a3fdf0dbde5f0"
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
            "6fa78f763c109f793d39898d6d82b795",
        ),
        (
            KeyType::ResidentId,
            "11010519491231002X",
            "a6d2e743d853b6472f26c090b01b64eb",
        ),
        (KeyType::Email, "a@b.cn", "c22851d3ff2fea028034256aec988490"),
        (
            KeyType::NameBirthdate,
            "张慧|19491231",
            "7178549267082db1f59cbe3fa1b67ef3",
        ),
    ] {
        let k = Key::parse(kt, value).unwrap();
        let mut b = EpochBuilder::with_key(EpochId([0; 16]), key());
        b.add(&[k]);
        assert_eq!(hex(&b.finish().tags(kt)[0]), tag16, "{kt}");
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
        "0001010200010301"
    );
    let (accept, mut s) = holder.handle_start(start).unwrap();
    assert_eq!(
        hex(&codec::encode(&HolderMessage::from(accept.clone())).unwrap()),
        "0001000102030405060708090a0b0c0d0e0f080200020300"
    );
    let tags = s.poll_message().unwrap();
    assert!(matches!(tags, HolderMessage::Tags(_)));
    assert_eq!(
        hex(&codec::encode(&tags).unwrap()),
        "0100106fa78f763c109f797d04b86242a0930e"
    );
    let mut q = awaiting.handle_accept(accept).unwrap();
    q.handle(tags).unwrap();
    let blinded = q.poll_message().unwrap();
    assert_eq!(
        hex(&codec::encode(&blinded).unwrap()),
        "0100024e8220bb85b8e1521a6adcbd6e4f50cc15684e924befe61967784901ea3c4b6c\
         5200b02e119da8524461f67319245acefb6aef87f344213bfe2d346ccf50e82f"
    );
    s.handle(blinded).unwrap();
    let evaluated = s.poll_message().unwrap();
    assert_eq!(
        hex(&codec::encode(&evaluated).unwrap()),
        "020002dcbbbd44d2c9159ed55d6887905cce4a19e83f8bca85fe1fe427843a1398c777\
         a2d164c60a7c40b8b5a06b9da994242f638130d11b3cfaee9e9d4b383de9a91a"
    );
    assert!(s.poll_message().is_none() && s.is_finished());
    q.handle(evaluated).unwrap();
    let r = q.finish().unwrap();
    assert_eq!(r.matched_keys[&KeyType::Mobile], 1);
    assert_eq!(r.matched_keys[&KeyType::Email], 0);
    assert_eq!(r.matched_rows, Some(vec![0]));
}
