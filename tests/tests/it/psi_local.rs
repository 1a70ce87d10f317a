//! psi-local end to end: files in messy formats and encodings, results against ground truth
//! known by construction.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use suyuan_node::lists::InputOptions;
use suyuan_node::tools::psi_local::{PsiLocalConfig, run};
use suyuan_protocol::ident::{Field, KeyType};
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::{messy_id, messy_mobile, people};

fn write(path: &Path, text: &str, gb18030: bool) {
    let mut f = std::fs::File::create(path).unwrap();
    if gb18030 {
        f.write_all(&encoding_rs::GB18030.encode(text).0).unwrap();
    } else {
        f.write_all(text.as_bytes()).unwrap();
    }
}

#[test]
fn psi_local_equals_ground_truth_on_messy_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(2019);
    let everyone = people(&mut rng, 3000);
    // The bank knows people 0..2000; the dump holds 1000..2600 plus 200 strangers.
    let bank = &everyone[..2000];
    let mut text = String::from("客户姓名,手机号码,证件号码\n");
    for (i, p) in bank.iter().enumerate() {
        // Some customers without a mobile on file.
        let m = if i % 10 == 0 { "" } else { &p.mobile };
        text.push_str(&format!("客户{i},{m},{}\n", p.resident_id));
    }
    write(&dir.path().join("bank.csv"), &text, false);

    let mut dump = String::from("姓名\t电话\t身份证\t备注\n");
    let mut truth = BTreeSet::new();
    let mut row = 0u64;
    for (idx, p) in everyone[1000..].iter().enumerate() {
        let person = 1000 + idx;
        // Each dump row carries the mobile, the ID, or both, written messily.
        let (m, id) = match rng.random_range(0..3) {
            0 => (messy_mobile(&mut rng, &p.mobile), String::new()),
            1 => (String::new(), messy_id(&mut rng, &p.resident_id)),
            _ => (
                messy_mobile(&mut rng, &p.mobile),
                messy_id(&mut rng, &p.resident_id),
            ),
        };
        dump.push_str(&format!("某人\t{m}\t{id}\t\n"));
        row += 1;
        // A bank customer matches unless only a missing mobile links them.
        let mobile_on_file = person % 10 != 0;
        if person < 2000 && (!id.is_empty() || mobile_on_file) {
            truth.insert(row);
        }
        if idx % 7 == 0 {
            // Duplicates and junk rows, as dumps have.
            dump.push_str(&format!("某人\t{m}\t{id}\t重复\n"));
            row += 1;
            if person < 2000 && (!id.is_empty() || mobile_on_file) {
                truth.insert(row);
            }
            dump.push_str("无名\t12345\t11010519491231002\t坏行\n");
            row += 1;
        }
    }
    write(&dir.path().join("dump.tsv"), &dump, true);

    let cfg = |mode| PsiLocalConfig {
        holder: dir.path().join("bank.csv"),
        holder_input: InputOptions::default(),
        querier: dir.path().join("dump.tsv"),
        querier_input: InputOptions::default(),
        mode,
    };
    let report = run(&cfg(QueryMode::Matches), &mut rand::rng()).unwrap();
    assert_eq!(report.querier.encoding, "gb18030");
    assert_eq!(report.querier.delimiter, b'\t');
    assert_eq!(report.querier.quality.rows, row);
    let got: BTreeSet<u64> = report.matched_rows.clone().unwrap().into_iter().collect();
    assert_eq!(got, truth);
    // Every junk row was rejected for a stated reason, none silently.
    let junk = report.querier.quality.rejected[&Field::Mobile]
        .values()
        .sum::<u64>();
    assert!(junk > 0);

    let count = run(&cfg(QueryMode::Count), &mut rand::rng()).unwrap();
    assert_eq!(count.matched_rows, None);
    assert_eq!(count.result.matched_keys, report.result.matched_keys);
    assert_eq!(
        count.result.holder_keys[&KeyType::ResidentId],
        2000,
        "the bank's distinct IDs"
    );
    assert_eq!(count.result.holder_keys[&KeyType::Mobile], 1800);
}

#[test]
fn column_overrides_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("h.csv"),
        "编号,号码\n1,13800138000\n2,13912345678\n",
        false,
    );
    write(
        &dir.path().join("q.csv"),
        "编号,号码\n1,138 0013 8000\n",
        false,
    );
    let opts = |cols: &[&str]| InputOptions {
        overrides: cols
            .iter()
            .map(|c| suyuan_node::lists::parse_override(c).unwrap())
            .collect(),
        ..InputOptions::default()
    };
    let mut cfg = PsiLocalConfig {
        holder: dir.path().join("h.csv"),
        holder_input: InputOptions::default(),
        querier: dir.path().join("q.csv"),
        querier_input: InputOptions::default(),
        mode: QueryMode::Matches,
    };
    let err = run(&cfg, &mut rand::rng()).unwrap_err();
    assert!(
        format!("{err:#}").contains("no identifier column found among headers [编号, 号码]"),
        "{err:#}"
    );
    cfg.holder_input = opts(&["mobile=号码"]);
    cfg.querier_input = opts(&["mobile=号码"]);
    let r = run(&cfg, &mut rand::rng()).unwrap();
    assert_eq!(r.matched_rows, Some(vec![1]));

    cfg.querier_input = opts(&["mobile=手机"]);
    let err = run(&cfg, &mut rand::rng()).unwrap_err();
    assert!(
        format!("{err:#}").contains("--column mobile=手机"),
        "{err:#}"
    );

    // Bytes that are neither UTF-8 nor GB18030, after a valid start.
    let mut bad = "手机\n13800138000\n".as_bytes().to_vec();
    bad.extend_from_slice(&[0xff, 0xff, b'\n']);
    std::fs::write(dir.path().join("bad.csv"), &bad).unwrap();
    cfg.querier = dir.path().join("bad.csv");
    cfg.querier_input = InputOptions::default();
    let err = run(&cfg, &mut rand::rng()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("bad.csv") && msg.contains("invalid gb18030 byte sequence"),
        "{msg}"
    );
}
