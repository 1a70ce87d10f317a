//! Entry points shared by the coverage-guided targets in `fuzz/` and the property-based fuzzing
//! in `tests/tests/fuzz_inputs.rs`. Each takes arbitrary bytes, must never panic, and asserts
//! what must hold of whatever it accepts. A panic here is a bug in the library or the node.

use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rand::SeedableRng;
use rand::rngs::StdRng;
use suyuan_node::lists as input;
use suyuan_node::net::frame as wire;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::audit::{self, Head, Outcome, Record, Side};
use suyuan_node::node_dir::{config, identity, tag_cache};
use suyuan_protocol::codec;
use suyuan_protocol::ident::{Key, KeySelection, KeyType};
use suyuan_protocol::oprf::SecretKey;
use suyuan_protocol::psi::{
    Epoch, EpochBuilder, EpochId, Holder, HolderLimits, HolderMessage, HolderSession,
    QuerierMessage, Query, QueryKeys, QueryMode, Section, TagSet,
};

/// Splits fuzz input into frames: a big-endian `u16` length, then that many bytes (a short
/// tail is the last frame). Lets one input drive a whole session.
pub fn split_frames(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        rest = &rest[2..];
        let take = n.min(rest.len());
        out.push(&rest[..take]);
        rest = &rest[take..];
    }
    out
}

/// The inverse of [`split_frames`] (frames longer than `u16::MAX` are not representable).
pub fn join_frames(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let n = u16::try_from(f.len()).expect("a frame under 64 KiB");
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn roundtrips<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if let Ok(m) = codec::decode::<T>(data) {
        let again = codec::encode(&m).expect("an accepted message re-encodes");
        assert_eq!(again, data, "a non-canonical encoding was accepted: {m:?}");
    }
}

/// Every frame a peer can send: whatever decodes must be the one canonical encoding of its
/// value (so two implementations never disagree on what a frame meant).
pub fn frames(data: &[u8]) {
    roundtrips::<wire::ClientFrame>(data);
    roundtrips::<wire::ServerFrame>(data);
    roundtrips::<QuerierMessage>(data);
    roundtrips::<HolderMessage>(data);
}

fn universe(i: u32) -> Key {
    Key::parse(KeyType::Mobile, &format!("139{i:08}")).expect("a valid mobile")
}

/// The holder side of the session harness: a fixed key and 64 customers.
pub fn fuzz_epoch() -> Arc<Epoch> {
    static EPOCH: OnceLock<Arc<Epoch>> = OnceLock::new();
    Arc::clone(EPOCH.get_or_init(|| {
        let key = SecretKey::from_bytes(&[7u8; 32]).expect("a canonical scalar");
        let mut b = EpochBuilder::with_key(EpochId([9u8; 16]), key);
        let keys: Vec<Key> = (0..64).map(universe).collect();
        b.add(&keys);
        Arc::new(b.finish())
    }))
}

/// The querier side: 64 keys (32 of them customers), blinded with a fixed seed so that a
/// recorded holder transcript stays valid input.
pub fn fuzz_query() -> Arc<Query> {
    static QUERY: OnceLock<Arc<Query>> = OnceLock::new();
    Arc::clone(QUERY.get_or_init(|| {
        let mut keys = QueryKeys::new();
        for i in 32..96 {
            keys.add_row(&[universe(i)]);
        }
        Arc::new(Query::blind(&mut StdRng::seed_from_u64(1), keys).expect("a small query"))
    }))
}

fn drain(s: &mut HolderSession) {
    while let Ok(Some(_)) = s.poll_message() {}
}

/// A hostile querier against a holder: frames decoded as querier messages and fed to a holder
/// session until one is refused. Every refusal must be a typed error, never a panic. Returns
/// how many frames were accepted.
pub fn holder_session(data: &[u8]) -> usize {
    let holder = Holder::with_limits(
        fuzz_epoch(),
        HolderLimits {
            max_query_keys: 4096,
        },
    );
    let mut frames = split_frames(data).into_iter();
    let Some(Ok(QuerierMessage::Start(start))) = frames.next().map(codec::decode::<QuerierMessage>)
    else {
        return 0;
    };
    let Ok((_accept, mut session)) = holder.handle_start(start, &mut rand::rng()) else {
        return 0;
    };
    drain(&mut session);
    let mut accepted = 1;
    for f in frames {
        let Ok(m) = codec::decode::<QuerierMessage>(f) else {
            break;
        };
        if session.handle(m).is_err() {
            break;
        }
        drain(&mut session);
        accepted += 1;
    }
    accepted
}

/// A hostile holder against a querier: the first byte picks the mode, the rest are frames
/// decoded as holder messages. A result that comes out must be plausible. Returns whether a
/// result came out.
pub fn querier_session(data: &[u8]) -> bool {
    let Some((&mode, data)) = data.split_first() else {
        return false;
    };
    let mode = if mode & 1 == 0 {
        QueryMode::Count
    } else {
        QueryMode::Matches
    };
    let query = fuzz_query();
    let (_start, awaiting) = query.start(mode);
    let mut frames = split_frames(data).into_iter();
    let Some(Ok(HolderMessage::Accept(accept))) = frames.next().map(codec::decode::<HolderMessage>)
    else {
        return false;
    };
    let Ok(mut ex) = awaiting.handle_accept(accept) else {
        return false;
    };
    while ex.poll_message().is_some() {}
    for f in frames {
        let Ok(m) = codec::decode::<HolderMessage>(f) else {
            return false;
        };
        if ex.handle(m).is_err() {
            return false;
        }
        while ex.poll_message().is_some() {}
    }
    if !ex.is_complete() {
        return false;
    }
    let Ok(r) = ex.finish() else {
        return false;
    };
    for (kt, n) in &r.matched_keys {
        assert!(*n <= r.query_keys.get(kt).copied().unwrap_or(0), "{r:?}");
    }
    if let Some(rows) = &r.matched_rows {
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
        assert!(rows.iter().all(|&i| i < 64), "{rows:?}");
    }
    true
}

/// A record file: any bytes are either read or refused with an error; every key read is
/// canonical (parsing it again gives itself). Returns the rows read, or the error.
pub fn records(data: &[u8]) -> anyhow::Result<u64> {
    let Some((&kind, data)) = data.split_first() else {
        return Ok(0);
    };
    let name = if kind & 1 == 0 {
        "dump.csv"
    } else {
        "dump.tsv"
    };
    let opts = input::InputOptions {
        overrides: Vec::new(),
        selection: KeySelection::all(),
        labels: Vec::new(),
        canaries: None,
    };
    let mut rows = 0;
    input::read_records(
        Cursor::new(data.to_vec()),
        Path::new(name),
        &opts,
        |_, keys| {
            rows += 1;
            for k in &keys.keys {
                let again = Key::parse(k.key_type(), k.value());
                assert_eq!(again.as_ref(), Ok(k), "a key that is not canonical");
            }
            Ok(())
        },
    )?;
    Ok(rows)
}

/// Identifiers: canonicalisation accepts or rejects with a reason, and is idempotent.
pub fn identifiers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for kt in KeyType::ALL {
        if let Ok(k) = Key::parse(kt, &text) {
            let again = Key::parse(kt, k.value());
            assert_eq!(again.as_ref(), Ok(&k), "{kt}: {text:?} → {:?}", k.value());
        }
    }
}

/// `node.toml`: parsed and checked, or refused with an error; what is accepted is coherent.
pub fn node_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((cfg, _)) = config::parse(text, Path::new("node.toml")) {
        assert!(cfg.policy.min_query_keys <= cfg.policy.max_query_keys);
        assert!((1..=config::MAX_CONCURRENT_QUERIES).contains(&cfg.policy.max_concurrent_queries));
        assert!((1..=3600).contains(&cfg.network.timeout_secs));
    }
}

/// A kept tag-set file (`tag-cache/*.tags`): whatever is accepted is coherent and is the one
/// encoding of its content.
pub fn kept_tags(data: &[u8]) {
    if let Some(set) = tag_cache::decode(data) {
        assert!(set.is_well_formed(), "{set:?}");
        assert_eq!(
            tag_cache::encode(&set),
            data,
            "a non-canonical file was accepted"
        );
    }
}

/// An evidence file (`suyuan verify --evidence`): refused with a reason, or read, and then
/// written back byte for byte (nothing non-canonical is accepted).
pub fn evidence(data: &[u8]) {
    use suyuan_node::evidence::Evidence;
    if let Ok(ev) = Evidence::decode(std::path::Path::new("fuzz.evidence"), data) {
        assert_eq!(&ev.encode()[..], data, "a non-canonical file was accepted");
    }
}

/// Splits an `audit_chain` input: the text of `audit.head` up to the first newline (none if
/// empty), then the log's bytes.
pub fn split_audit(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(p) => (&data[..p], &data[p + 1..]),
        None => (data, &[]),
    }
}

/// An audit log and its head (see [`split_audit`]): the chain check accepts or names a break,
/// never panics, and what it accepts is numbered 1, 2, 3... and covers the head's count.
/// Returns whether the chain verified.
pub fn audit_chain(data: &[u8]) -> bool {
    let (head, log) = split_audit(data);
    let head = if head.is_empty() {
        None
    } else {
        match Head::parse(head) {
            Ok(h) => Some(h),
            Err(_) => return false,
        }
    };
    let Ok(entries) = audit::verify_chain(log, head.as_ref()) else {
        return false;
    };
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "{entries:?}");
    }
    assert!(entries.len() as u64 >= head.map_or(0, |h| h.count));
    true
}

/// An intact audit log of `n` entries, as [`audit_chain`] takes it (head line, then log).
pub fn intact_audit_log(n: u64) -> Vec<u8> {
    let records = (0..n).map(|i| {
        let mut r = Record::new(Side::Holder, format!("bank-{i}"), Outcome::Refused);
        r.detail = Some(format!("refusal {i}: 案件 \"x\"\n"));
        r.query_keys = Some(i * 1000);
        (r, 1_795_822_282 + i * 3600)
    });
    let (log, head) = audit::build_chain(records);
    let head = format!("{{\"count\":{},\"hash\":\"{}\"}}\n", head.count, head.hash);
    [head.into_bytes(), log].concat()
}

/// A peer certificate's identity: a name that is a valid node name and exactly one role.
pub fn certificate(data: &[u8]) {
    if let Ok(id) = identity::peer_identity(data) {
        assert!(
            identity::check_node_name(&id.name).is_ok(),
            "{:?} accepted as a node name",
            id.name
        );
    }
}

/// Valid inputs for each target, to start the fuzzers deep inside the formats: whole sessions
/// in both modes, real record files, a real certificate. `(target, name, bytes)`.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let holder = Holder::new(fuzz_epoch());
    for mode in [QueryMode::Count, QueryMode::Matches] {
        let (up, down) = transcript(&holder, mode);
        out.push(("holder_session", format!("{mode}"), join_frames(&up)));
        let mut q = vec![u8::from(mode == QueryMode::Matches)];
        q.extend(join_frames(&down));
        out.push(("querier_session", format!("{mode}"), q));
        for (i, f) in up.iter().chain(&down).take(4).enumerate() {
            out.push(("frames", format!("{mode}-{i}"), f.clone()));
        }
    }
    let hello = wire::ClientFrame::Hello(wire::Hello {
        version: wire::NODE_WIRE_VERSION,
        case: Some("2026-刑-001".to_string()),
        mode: QueryMode::Count,
        kept: None,
        // Fixed, so the seed file stays the same bytes.
        query_id: [7; 16],
        warrant: None,
        published: false,
    });
    out.push((
        "frames",
        "hello".into(),
        codec::encode(&hello).expect("encode"),
    ));
    let refused = wire::ServerFrame::Refused(wire::Refusal::BudgetExhausted {
        used: 1,
        limit: 2,
        keys: 3,
    });
    out.push((
        "frames",
        "refused".into(),
        codec::encode(&refused).expect("encode"),
    ));
    let abort = wire::ServerFrame::Abort(wire::AbortReason::Stalled(
        std::time::Duration::from_secs(3),
    ));
    out.push((
        "frames",
        "abort".into(),
        codec::encode(&abort).expect("encode"),
    ));
    let csv = "姓名,手机号码,身份证号,银行卡号,邮箱,出生日期\n\
               张三,+86 138-0013-8000,11010519491231002X,6222 0000 0000 0000 000,A@Example.CN,1949-12-31\n\
               \"李,四\",13900139000,,,,\n";
    out.push((
        "records",
        "utf8-csv".into(),
        [b"\x00".as_slice(), csv.as_bytes()].concat(),
    ));
    let tsv = csv.replace(',', "\t");
    let (gbk, _, _) = encoding_rs::GB18030.encode(&tsv);
    out.push((
        "records",
        "gb18030-tsv".into(),
        [b"\x01".as_slice(), &gbk].concat(),
    ));
    for (name, id) in [
        ("mobile", "+86 138 0013 8000"),
        ("resident_id", "11010519491231002x"),
        ("legacy_id", "110105491231002"),
        ("bank_card", "6222-0000-0000-0000-000"),
        ("email", " Zhang.San+x@Example.CN "),
        ("name_birthdate", "张 三|1949年12月31日"),
        ("name_mobile", "ZHANG San|13800138000"),
    ] {
        out.push(("identifiers", name.into(), id.as_bytes().to_vec()));
    }
    let toml = "[network]\nlisten = \"127.0.0.1:7443\"\ntimeout_secs = 30\n\n[policy]\n\
                min_query_keys = 1000\nmax_query_keys = 20000000\nkeys_per_peer_per_day = 50000000\n\
                require_case = true\nmax_concurrent_queries = 4\n\n[policy.allow]\n\
                police = [\"count\"]\ninstitution = []\n";
    out.push(("node_toml", "full".into(), toml.as_bytes().to_vec()));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca = dir.path().join("ca");
    identity::ca_init(&ca, "fuzz CA").expect("ca init");
    let node = dir.path().join("police-1");
    identity::ca_issue(&ca, "police-1", identity::Role::Police, &node).expect("ca issue");
    let id = NodeDir::open(&node)
        .expect("a node directory")
        .identity()
        .expect("load");
    out.push(("certificate", "police".into(), id.cert.to_vec()));
    let epoch = fuzz_epoch();
    let n = epoch.size(KeyType::Mobile);
    let tags: Vec<u8> = epoch
        .read_tags(KeyType::Mobile, 0..n)
        .expect("in memory")
        .iter()
        .flat_map(|t| t[..8].iter().copied())
        .collect();
    let sections = vec![Section {
        key_type: KeyType::Mobile,
        count: n,
    }];
    let kept = TagSet::new(epoch.id(), 8, sections, vec![tags]).expect("a well-formed set");
    out.push(("kept_tags", "mobile-64".into(), tag_cache::encode(&kept)));
    out.push(("audit_chain", "three".into(), intact_audit_log(3)));
    let query = fuzz_query();
    let mut ev = suyuan_node::evidence::Evidence::new(&query, [9; 16], QueryMode::Matches);
    ev.peers
        .push(("bank".into(), transcript(&holder, QueryMode::Matches).1));
    out.push(("evidence", "matches".into(), ev.encode().to_vec()));
    out
}

/// Every message of one honest session, encoded: (querier → holder, holder → querier).
fn transcript(holder: &Holder, mode: QueryMode) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let query = fuzz_query();
    let (start, awaiting) = query.start(mode);
    let mut up = vec![enc(&QuerierMessage::from(start.clone()))];
    let (accept, mut session) = holder
        .handle_start(start, &mut rand::rng())
        .expect("an honest start");
    let mut down = vec![enc(&HolderMessage::from(accept.clone()))];
    let mut pending = Vec::new();
    while let Some(m) = session.poll_message().expect("in memory") {
        down.push(enc(&m));
        pending.push(m);
    }
    let mut ex = awaiting.handle_accept(accept).expect("an honest accept");
    for m in pending {
        ex.handle(m).expect("honest");
    }
    loop {
        let mut progressed = false;
        if let Some(m) = ex.poll_message() {
            up.push(enc(&m));
            session.handle(m).expect("honest");
            progressed = true;
        }
        while let Some(m) = session.poll_message().expect("in memory") {
            down.push(enc(&m));
            ex.handle(m).expect("honest");
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    assert!(ex.is_complete());
    (up, down)
}

fn enc<T: serde::Serialize>(m: &T) -> Vec<u8> {
    codec::encode(m).expect("an honest message encodes")
}
