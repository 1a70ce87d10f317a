//! The `suyuan` binary as a user meets it: output, exit status, one-line errors.

use crate::common::*;

/// Every case under `tests/cmd/`: a command, what it prints on stdout and stderr, its exit
/// status. `TRYCMD=overwrite cargo test -p suyuan-node --test it cli::snapshots` rewrites them
/// after a deliberate change; review the diff.
#[test]
fn snapshots() {
    trycmd::TestCases::new()
        .register_bin("suyuan", std::path::Path::new(env!("CARGO_BIN_EXE_suyuan")))
        .case("tests/cmd/*.toml")
        .case("tests/cmd/*.trycmd");
}

// ---- the node's commands, end to end through the binary ----

/// What `tests/cmd/node.trycmd` cannot see: file modes, and the refusal of a key others can
/// read (git keeps no modes, so no checked-in node could show it).
#[test]
fn keys_are_private_and_a_readable_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    federation(d);
    let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("ca/ca.key"), 0o600);
    assert_eq!(mode("bank/node.key"), 0o600);
    assert_eq!(
        std::fs::read_to_string(d.join("police/node.toml")).unwrap(),
        suyuan_node::node_dir::config::DEFAULT_NODE_TOML
    );
    std::fs::set_permissions(
        d.join("bank/node.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = fails(d, &["status", "--node", "bank"]);
    assert!(
        err.contains("bank/node.key is readable by others (mode 644)"),
        "{err}"
    );
}

/// `suyuan status | head -1`: the reader goes away before the output is written; the command
/// ends quietly with success instead of panicking on the closed pipe.
#[test]
fn a_closed_standard_output_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    federation(d);
    let mut child = suyuan()
        .current_dir(d)
        .args(["status", "--node", "bank"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The read end closed at once: the status (read from disk first) finds no reader.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_query_audit_status_through_the_binary() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    federation(d);
    std::fs::write(
        d.join("customers.csv"),
        "姓名,手机号,身份证号\n张慧,13800138000,11010519491231002X\n李四,13912345678,\n王五,15000000001,\n",
    )
    .unwrap();
    let out = ok(d, &["import", "--node", "bank", "--input", "customers.csv"]);
    assert!(
        out.contains("3 rows, 0 without a usable key; keys: mobile 3, resident_id 1"),
        "{out}"
    );
    assert!(out.contains("new epoch "), "{out}");
    std::fs::write(
        d.join("dump.csv"),
        "name,phone,id_number\nA,+86 138-0013-8000,\nB,12345,\nC,,110105491231002\nD,15000000009,\nE,,110105198001011238\n",
    )
    .unwrap();

    let mut server = Reaped(
        suyuan()
            .current_dir(d)
            .args(["serve", "--node", "bank", "--listen", "127.0.0.1:0"])
            .args(["--addr-file", "bank.addr"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(server.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("listening on 127.0.0.1:"), "{first}");
    assert!(first.contains("(node bank serving epoch "), "{first}");
    let addr = first.split_whitespace().nth(2).unwrap().to_string();
    // The address file is written before the line is printed, and says the same.
    assert_eq!(
        std::fs::read_to_string(d.join("bank.addr")).unwrap(),
        format!("{addr}\n")
    );
    let peer = format!("bank={addr}");

    let out = ok(
        d,
        &[
            "query",
            "--node",
            "police",
            "--input",
            "dump.csv",
            "--peer",
            &peer,
            "--mode",
            "matches",
            "--case",
            "2026-001",
            "--json",
            "r.json",
            "--evidence",
            "r.evidence",
        ],
    );
    assert!(
        out.contains(
            "dump: 5 rows, 1 without a usable key; distinct keys: mobile 2, resident_id 2"
        ),
        "{out}"
    );
    assert!(out.contains("rejected mobile: wrong length (1)"), "{out}");
    assert!(
        out.contains(
            "peer  holder keys              matched keys             matched rows  dump rows matched   lift       p  likely source"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "bank  mobile 3, resident_id 1  mobile 1, resident_id 1             2              40.0%  7.0e8  2.8e-9  yes"
        ),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(json["peers"][0]["rows"], serde_json::json!([1, 3]));

    // The report is evidence: checked with the CA certificate alone, and an edited one is not.
    let verified = ok(d, &["verify", "r.json", "--ca", "ca/ca.crt"]);
    assert!(
        verified.starts_with("r.json: verified. Signed by police (police); 1 signed answer(s)"),
        "{verified}"
    );
    assert!(verified.contains("  bank: epoch "), "{verified}");
    let edited = std::fs::read_to_string(d.join("r.json")).unwrap().replacen(
        "\"matched_rows\": 2",
        "\"matched_rows\": 1",
        1,
    );
    std::fs::write(d.join("edited.json"), edited).unwrap();
    assert_eq!(
        fails(d, &["verify", "edited.json", "--ca", "ca/ca.crt"]),
        "suyuan: edited.json: NOT VERIFIED: the report differs from what police signed (bank: matched rows)\n"
    );
    // Another federation's CA does not vouch for these signatures.
    ok(d, &["ca", "init", "--dir", "other-ca"]);
    let err = fails(d, &["verify", "r.json", "--ca", "other-ca/ca.crt"]);
    assert!(
        err.starts_with(
            "suyuan: r.json: NOT VERIFIED: the report: not a certificate of this federation"
        ),
        "{err}"
    );
    // With the evidence and the dump, every figure is recomputed from bank's signed messages.
    let recomputed = ok(
        d,
        &[
            "verify",
            "r.json",
            "--ca",
            "ca/ca.crt",
            "--evidence",
            "r.evidence",
            "--input",
            "dump.csv",
        ],
    );
    assert!(
        recomputed.ends_with(
            "r.json: every answer recomputed from r.evidence and dump.csv: each holder's signed messages give the report's figures:\n  bank: 2 matched keys\n"
        ),
        "{recomputed}"
    );
    std::fs::write(d.join("other.csv"), "mobile\n13900000001\n").unwrap();
    let err = fails(
        d,
        &[
            "verify",
            "r.json",
            "--ca",
            "ca/ca.crt",
            "--evidence",
            "r.evidence",
            "--input",
            "other.csv",
        ],
    );
    assert!(err.contains("NOT VERIFIED: the dump given has"), "{err}");
    assert_eq!(json["dump"]["rejected"]["mobile"]["wrong_length"], 1);

    let err = fails(
        d,
        &[
            "query", "--node", "police", "--input", "dump.csv", "--peer", &peer, "--mode", "count",
        ],
    );
    assert_eq!(err, "suyuan: no peer answered\n");

    kill(&server.0, "-TERM");
    let status = server.0.wait().unwrap();
    assert!(status.success());
    assert_eq!(lines.next().unwrap().unwrap(), "stopped");

    let out = ok(d, &["audit", "verify", "--node", "bank"]);
    assert_eq!(out, "audit log intact: 3 entries\n");
    let shown = ok(d, &["audit", "show", "--node", "bank", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(entries[2]["outcome"], "refused");
    assert_eq!(entries[2]["detail"], "a case number is required");
    let status = ok(d, &["status", "--node", "bank"]);
    assert!(status.contains("node bank (institution)"), "{status}");
    assert!(
        status.contains("from customers.csv (3 rows); keys: mobile 3, resident_id 1"),
        "{status}"
    );
    assert!(
        status.contains("audit log: 3 entries, chain intact"),
        "{status}"
    );
    assert!(
        status.contains("tag cache: 0 kept set(s), 0.0 of 1024 MiB"),
        "{status}"
    );
    // The police node kept the bank's tags from the one query that completed.
    let status = ok(d, &["status", "--node", "police"]);
    assert!(status.contains("tag cache: 1 kept set(s)"), "{status}");
    let out = ok(d, &["cache", "clear", "--node", "police"]);
    assert!(out.starts_with("removed 1 kept tag set(s), "), "{out}");
    let status = ok(d, &["status", "--node", "police"]);
    assert!(status.contains("tag cache: 0 kept set(s)"), "{status}");

    // Editing an entry is detected, and the node refuses to serve on a broken log.
    let log = std::fs::read_to_string(d.join("bank/audit.log")).unwrap();
    std::fs::write(
        d.join("bank/audit.log"),
        log.replacen("\"police\"", "\"polize\"", 1),
    )
    .unwrap();
    let err = fails(d, &["audit", "verify", "--node", "bank"]);
    assert_eq!(
        err,
        "suyuan: audit log verification failed: entry 1 was edited (entry 2 no longer links to it)\n"
    );
    let err = fails(d, &["serve", "--node", "bank", "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains("the audit log does not verify; refusing to serve"),
        "{err}"
    );
}

#[test]
fn bench_runs_the_whole_path_and_reports_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(
        d,
        &[
            "bench",
            "--holder-rows",
            "3000",
            "--dump-rows",
            "2000",
            "--overlap",
            "0.25",
            "--mode",
            "matches",
            "--threads",
            "1",
            "--dir",
            "w",
            "--json",
            "b.json",
            "--repeat",
        ],
    );
    assert!(out.starts_with("suyuan bench: holder 3000 rows, dump 2000 rows, overlap 0.25, mode matches (additive blinding), 1 thread(s) per process"), "{out}");
    for line in [
        "import ",
        "query (wall)",
        "read+canonicalise",
        "blind",
        "exchange (wall)",
        "wire ",
        "peak RSS",
        "floor (1 thread)",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("b.json")).unwrap()).unwrap();
    // The answer is checked, not only timed: a quarter of the dump is the holder's.
    assert_eq!(r["matched"], 500);
    assert!(r["bytes_up"].as_u64().unwrap() >= 32 * 2000);
    assert!(r["bytes_down"].as_u64().unwrap() >= 32 * 2000);
    assert!(r["holder_peak_rss"].as_u64().unwrap() > 0);
    assert!(r["querier_peak_rss"].as_u64().unwrap() > 0);
    assert!(r["evaluate_ms"].as_u64().is_some());
    // The repeated query used the kept tags: same answer, fewer bytes down.
    assert!(out.contains("repeat query"), "{out}");
    assert_eq!(r["repeat"]["tags_kept"], true);
    assert_eq!(r["repeat"]["matched"], 500);
    assert!(r["repeat"]["bytes_down"].as_u64().unwrap() < r["bytes_down"].as_u64().unwrap());
}

#[test]
fn bench_under_load_runs_concurrent_queries_and_checks_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(
        d,
        &[
            "bench",
            "--holder-rows",
            "800",
            "--dump-rows",
            "400",
            "--concurrent",
            "6",
            "--queriers",
            "3",
            "--threads",
            "1",
            "--dir",
            "w",
            "--json",
            "l.json",
        ],
    );
    assert!(
        out.starts_with("suyuan bench (load): 6 queries at once from 3 queriers, each 400 keys (count), against a holder of 800 rows"),
        "{out}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("l.json")).unwrap()).unwrap();
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["wrong"], 0, "{r}");
    assert_eq!(r["refused"], 0, "{r}");
    assert!(r["query_ms_max"].as_u64().unwrap() >= r["query_ms_min"].as_u64().unwrap());
    assert!(r["holder_peak_rss"].as_u64().unwrap() > 0);
}

#[test]
fn bench_queries_several_holders_at_once_and_checks_each_answer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(
        d,
        &[
            "bench",
            "--holder-rows",
            "1500",
            "--dump-rows",
            "1000",
            "--holders",
            "3",
            "--threads",
            "1",
            "--dir",
            "w",
            "--json",
            "h.json",
        ],
    );
    assert!(
        out.contains("\nholders           3 at once, exchanges "),
        "{out}"
    );
    assert!(out.contains("\nquerier CPU "), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("h.json")).unwrap()).unwrap();
    assert_eq!(r["holders"], 3);
    assert_eq!(r["exchange_ms_per_holder"].as_array().unwrap().len(), 3);
    // The bench fails unless every holder's answer is the overlap; the first one's is here.
    assert_eq!(r["matched"], 500);
    // Three separate holders, each with its own key, answered over QUIC.
    for h in ["holder", "holder2", "holder3"] {
        assert!(d.join("w").join(h).join("epoch.redb").exists(), "{h}");
    }
}
