//! The generator: deterministic for a seed, and its truth agrees with a plain computation over
//! its own files (read back through the same input path a node uses).

use std::collections::{BTreeMap, HashSet};

use suyuan_node::lists::{InputOptions, for_each_record};
use suyuan_node::tools::synth::{DUMP_FILE, GenConfig, TRUTH_FILE, Truth, generate};
use suyuan_protocol::ident::{Key, KeyType};

fn small(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        population: 6000,
        dump_rows: 3000,
    }
}

#[test]
fn same_seed_same_bytes() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    generate(a.path(), &small(5), &mut suyuan_node::Silent).unwrap();
    generate(b.path(), &small(5), &mut suyuan_node::Silent).unwrap();
    generate(c.path(), &small(6), &mut suyuan_node::Silent).unwrap();
    for f in [
        "bank.csv",
        "telecom.tsv",
        "courier.csv",
        "hospital.csv",
        DUMP_FILE,
        TRUTH_FILE,
    ] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        assert_eq!(x, std::fs::read(b.path().join(f)).unwrap(), "{f}");
        assert_ne!(x, std::fs::read(c.path().join(f)).unwrap(), "{f}");
    }
}

#[test]
fn truth_agrees_with_a_plain_computation_over_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate(dir.path(), &small(11), &mut suyuan_node::Silent).unwrap();
    let on_disk: Truth =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(TRUTH_FILE)).unwrap())
            .unwrap();
    assert_eq!(on_disk, truth);

    let mut dump_rows: Vec<Vec<Key>> = Vec::new();
    let summary = for_each_record(
        &dir.path().join(DUMP_FILE),
        &InputOptions::default(),
        |_, rk| {
            dump_rows.push(rk.keys);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(summary.quality.rows, truth.dump.rows);
    // Junk rows yield no key and are rejected, not dropped.
    assert!(summary.quality.rows_without_key >= truth.dump.junk_rows);
    assert!(summary.quality.total_rejected() >= truth.dump.junk_rows);
    let distinct: HashSet<&Key> = dump_rows.iter().flatten().collect();
    let mut dump_keys: BTreeMap<KeyType, u64> = BTreeMap::new();
    for k in &distinct {
        *dump_keys.entry(k.key_type()).or_insert(0) += 1;
    }
    assert_eq!(dump_keys, truth.dump.keys);
    assert_eq!(
        truth.dump.sources.values().sum::<u64>() + truth.dump.duplicate_rows,
        truth.dump.rows
    );
    assert!(truth.dump.sources["telecom"] > truth.dump.sources["bank"]);

    for inst in &truth.institutions {
        let mut held: HashSet<Key> = HashSet::new();
        let s = for_each_record(
            &dir.path().join(&inst.file),
            &InputOptions::default(),
            |_, rk| {
                held.extend(rk.keys);
                Ok(())
            },
        )
        .unwrap();
        // The bank also holds its canaries (`import --canaries`): keys, not rows.
        if inst.name == "bank" {
            let leak = truth.leak.as_ref().unwrap();
            let c = for_each_record(
                &dir.path().join(&leak.canary_file),
                &InputOptions::default(),
                |_, rk| {
                    held.extend(rk.keys);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(c.quality.rows, 60);
        }
        assert_eq!(s.quality.rows, inst.rows, "{}", inst.name);
        assert_eq!(
            s.quality.total_rejected(),
            0,
            "{}: its own list is clean",
            inst.name
        );
        let mut keys: BTreeMap<KeyType, u64> = BTreeMap::new();
        for k in &held {
            *keys.entry(k.key_type()).or_insert(0) += 1;
        }
        assert_eq!(keys, inst.keys, "{}", inst.name);
        let rows: Vec<u64> = dump_rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.iter().any(|k| held.contains(k)))
            .map(|(i, _)| i as u64 + 1)
            .collect();
        assert_eq!(rows, inst.matched_rows, "{}", inst.name);
        assert!(!rows.is_empty(), "{}", inst.name);
        let mut matched: BTreeMap<KeyType, u64> =
            [KeyType::Mobile, KeyType::ResidentId, KeyType::BankCard]
                .into_iter()
                .map(|t| (t, 0))
                .collect();
        for k in distinct.iter().filter(|k| held.contains(**k)) {
            *matched.get_mut(&k.key_type()).unwrap() += 1;
        }
        assert_eq!(matched, inst.matched_keys, "{}", inst.name);
    }
}
