//! Property-based fuzzing of every decoder a peer or a file reaches, in the normal test suite:
//! arbitrary bytes, and structured mutations of valid inputs (the seeds the coverage-guided
//! targets in `fuzz/` start from). The harness functions panic on any broken invariant.

use std::sync::OnceLock;

use proptest::prelude::*;
use suyuan_tests::fuzz::{self, join_frames, split_frames};

fn seeds(target: &str) -> Vec<Vec<u8>> {
    static ALL: OnceLock<Vec<(&'static str, String, Vec<u8>)>> = OnceLock::new();
    ALL.get_or_init(fuzz::seeds)
        .iter()
        .filter(|(t, _, _)| *t == target)
        .map(|(_, _, b)| b.clone())
        .collect()
}

/// One mutation of a byte string, as a fuzzer would make it.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Interesting { at: usize, which: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 0usize..6).prop_map(|(at, which)| Mutation::Interesting { at, which }),
    ]
}

/// Values that break length and count fields: 0, 1, and the edges of each integer width.
const INTERESTING: [&[u8]; 6] = [
    &[0],
    &[1],
    &[0xff],
    &[0xfb, 0xff, 0xff],
    &[0xfc, 0xff, 0xff, 0xff, 0xff],
    &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let at = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
    match m {
        Mutation::Flip { at: i, bit } if !data.is_empty() => {
            let i = at(*i, data.len());
            data[i] ^= 1 << bit;
        }
        Mutation::Set { at: i, byte } if !data.is_empty() => {
            let i = at(*i, data.len());
            data[i] = *byte;
        }
        Mutation::Insert { at: i, bytes } => {
            let i = at(*i, data.len() + 1);
            data.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete { at: i, len } if !data.is_empty() => {
            let i = at(*i, data.len());
            let end = (i + len).min(data.len());
            data.drain(i..end);
        }
        Mutation::Truncate { at: i } => {
            let i = at(*i, data.len() + 1);
            data.truncate(i);
        }
        Mutation::Interesting { at: i, which } if !data.is_empty() => {
            let i = at(*i, data.len());
            let v = INTERESTING[*which];
            let end = (i + v.len()).min(data.len());
            data.splice(i..end, v.iter().copied());
        }
        _ => {}
    }
}

fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    (0..seeds.len(), prop::collection::vec(mutation(), 1..4)).prop_map(move |(i, ms)| {
        let mut d = seeds[i].clone();
        for m in &ms {
            apply(&mut d, m);
        }
        d
    })
}

/// A session transcript with frames dropped, repeated, swapped or mutated one by one: a peer
/// that breaks the protocol's order, not only its encoding.
fn reordered(target: &'static str, skip: usize) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    (
        0..seeds.len(),
        prop::collection::vec((0u8..4, any::<usize>(), any::<usize>(), mutation()), 1..3),
    )
        .prop_map(move |(i, ops)| {
            let (head, body) = seeds[i].split_at(skip);
            let mut frames: Vec<Vec<u8>> =
                split_frames(body).into_iter().map(<[u8]>::to_vec).collect();
            for (op, a, b, m) in &ops {
                if frames.is_empty() {
                    break;
                }
                let a = a % frames.len();
                let b = b % frames.len();
                match op {
                    0 => {
                        frames.remove(a);
                    }
                    1 => {
                        let f = frames[a].clone();
                        frames.insert(b, f);
                    }
                    2 => frames.swap(a, b),
                    _ => apply(&mut frames[a], m),
                }
            }
            [head.to_vec(), join_frames(&frames)].concat()
        })
}

#[test]
fn the_seeds_reach_the_end_of_every_format() {
    for s in seeds("holder_session") {
        assert_eq!(fuzz::holder_session(&s), split_frames(&s).len());
    }
    for s in seeds("querier_session") {
        assert!(
            fuzz::querier_session(&s),
            "an honest transcript gives a result"
        );
    }
    for s in seeds("records") {
        assert_eq!(fuzz::records(&s).unwrap(), 2);
    }
    assert!(seeds("frames").len() >= 6);
    // The files in fuzz/seeds/frames are these seeds, written by `fuzz/src/bin/seeds.rs`.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/frames");
    for name in ["hello", "abort"] {
        let (_, _, bytes) = fuzz::seeds()
            .into_iter()
            .find(|(t, n, _)| *t == "frames" && n == name)
            .unwrap();
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    assert!(!seeds("identifiers").is_empty() && !seeds("certificate").is_empty());
    for s in seeds("kept_tags") {
        assert!(suyuan_node::node_dir::tag_cache::decode(&s).is_some());
    }
    for s in seeds("audit_chain") {
        assert!(fuzz::audit_chain(&s), "an intact log verifies");
    }
    for s in seeds("evidence") {
        let path = std::path::Path::new("seed.evidence");
        let ev = suyuan_node::evidence::Evidence::decode(path, &s).unwrap();
        assert_eq!(ev.peers.len(), 1);
    }
}

/// Every input a coverage-guided run found crashing, replayed: `tests/fuzz-regressions/TARGET/`.
#[test]
fn inputs_that_once_crashed_a_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions");
    let mut replayed = 0;
    for target in std::fs::read_dir(&root).unwrap() {
        let target = target.unwrap().path();
        for input in std::fs::read_dir(&target).unwrap() {
            let data = std::fs::read(input.unwrap().path()).unwrap();
            match target.file_name().unwrap().to_str().unwrap() {
                "records" => drop(fuzz::records(&data)),
                "frames" => fuzz::frames(&data),
                "holder_session" => drop(fuzz::holder_session(&data)),
                "querier_session" => drop(fuzz::querier_session(&data)),
                "identifiers" => fuzz::identifiers(&data),
                "node_toml" => fuzz::node_toml(&data),
                "certificate" => fuzz::certificate(&data),
                "kept_tags" => fuzz::kept_tags(&data),
                "evidence" => fuzz::evidence(&data),
                "audit_chain" => drop(fuzz::audit_chain(&data)),
                other => panic!("unknown target {other}"),
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0);
}

#[test]
fn a_quote_never_closed_is_refused_not_buffered() {
    let mut data = b"\x00mobile,name\n13800138000,\"open".to_vec();
    data.extend(std::iter::repeat_n(b'x', 3 << 20));
    let err = fuzz::records(&data).unwrap_err().to_string();
    assert_eq!(
        err,
        "dump.csv: the record starting after line 1 is longer than 1048576 bytes (a quote that is never closed?)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_from_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz::frames(&data);
    }

    #[test]
    fn frames_from_mutated_frames(data in mutated("frames")) {
        fuzz::frames(&data);
    }

    #[test]
    fn identifiers_from_arbitrary_text(s in "\\PC{0,40}") {
        fuzz::identifiers(s.as_bytes());
    }

    #[test]
    fn identifiers_from_mutated_identifiers(data in mutated("identifiers")) {
        fuzz::identifiers(&data);
    }

    #[test]
    fn node_toml_from_mutated_configurations(data in mutated("node_toml")) {
        fuzz::node_toml(&data);
    }

    #[test]
    fn node_toml_from_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz::node_toml(&data);
    }

    #[test]
    fn certificates_from_mutated_certificates(data in mutated("certificate")) {
        fuzz::certificate(&data);
    }

    #[test]
    fn kept_tag_files_from_mutated_files(data in mutated("kept_tags")) {
        fuzz::kept_tags(&data);
    }

    #[test]
    fn kept_tag_files_from_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz::kept_tags(&data);
    }

    #[test]
    fn evidence_files_from_mutated_files(data in mutated("evidence")) {
        fuzz::evidence(&data);
    }

    #[test]
    fn evidence_files_from_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz::evidence(&data);
    }

    #[test]
    fn audit_chains_from_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz::audit_chain(&data);
    }

    #[test]
    fn audit_chains_from_mutated_logs(data in mutated("audit_chain")) {
        fuzz::audit_chain(&data);
    }

    #[test]
    fn an_intact_audit_log_always_verifies(n in 0u64..12) {
        prop_assert!(fuzz::audit_chain(&fuzz::intact_audit_log(n)));
    }

    /// Any one byte of a committed entry changed, to any other value: the chain breaks.
    #[test]
    fn a_single_byte_edit_of_a_committed_entry_is_detected(
        n in 1u64..6,
        at in any::<usize>(),
        to in any::<u8>(),
    ) {
        let data = fuzz::intact_audit_log(n);
        let (head, log) = fuzz::split_audit(&data);
        let at = at % log.len();
        prop_assume!(log[at] != to);
        let mut edited = log.to_vec();
        edited[at] = to;
        prop_assert!(!fuzz::audit_chain(&[head, b"\n", &edited].concat()));
    }

    #[test]
    fn records_from_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = fuzz::records(&data);
    }

    #[test]
    fn records_from_mutated_files(data in mutated("records")) {
        let _ = fuzz::records(&data);
    }
}

proptest! {
    // Sessions do curve arithmetic per element: fewer cases, each a whole session.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_holder_survives_mutated_sessions(data in mutated("holder_session")) {
        fuzz::holder_session(&data);
    }

    #[test]
    fn a_holder_survives_reordered_sessions(data in reordered("holder_session", 0)) {
        fuzz::holder_session(&data);
    }

    #[test]
    fn a_querier_survives_mutated_sessions(data in mutated("querier_session")) {
        fuzz::querier_session(&data);
    }

    #[test]
    fn a_querier_survives_reordered_sessions(data in reordered("querier_session", 1)) {
        fuzz::querier_session(&data);
    }

    #[test]
    fn sessions_from_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzz::holder_session(&data);
        fuzz::querier_session(&data);
    }
}
