//! Faults injected into real processes: killed mid-query on either side, killed mid-import, a
//! full disk during an import, a corrupted store, an audit log cut mid-entry. After each, the node serves the right
//! epoch, its audit chain verifies, and its budgets still hold.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use suyuan_node::clock;
use suyuan_node::net::frame::{ClientFrame, Hello, ServerFrame, read_frame, write_frame};
use suyuan_node::net::tls;
use suyuan_node::node_dir::audit::{AuditLog, ChainError, Entry, Outcome};

fn audit_log(node: &Path) -> AuditLog {
    NodeDir::open(node).unwrap().audit()
}
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::store::{self, StoreError};
use suyuan_node::query::{self, QueryOptions, parse_peer};
use suyuan_protocol::ident::{Key, KeyType};
use suyuan_protocol::psi::{Query, QueryKeys, QueryMode};

fn mobiles(from: u64, n: u64) -> String {
    let mut s = String::from("手机号\n");
    for i in from..from + n {
        s.push_str(&format!("138{i:08}\n"));
    }
    s
}

fn epoch_of_import(out: &str) -> String {
    out.split("new epoch ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or_else(|| panic!("no epoch in {out:?}"))
        .to_string()
}

/// A federation with `bank` (policy `bank_toml`) holding 3 customers, and `police`.
fn setup(d: &Path, bank_toml: &str) -> String {
    federation(d);
    std::fs::write(d.join("bank/node.toml"), bank_toml).unwrap();
    std::fs::write(d.join("police/node.toml"), "[network]\ntimeout_secs = 3\n").unwrap();
    std::fs::write(d.join("customers.csv"), mobiles(0, 3)).unwrap();
    epoch_of_import(&ok(
        d,
        &["import", "--node", "bank", "--input", "customers.csv"],
    ))
}

async fn ask(d: &Path, addr: &str, dump: &str) -> Result<query::PeerReport, String> {
    let report = query::run(
        &QueryOptions {
            case: Some("2026-001".into()),
            ..QueryOptions::new(
                &d.join("police"),
                &d.join(dump),
                vec![parse_peer(&format!("bank={addr}")).unwrap()],
                QueryMode::Count,
            )
        },
        suyuan_node::Silent,
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    let peer = report.peers.into_iter().next().unwrap();
    match &peer.error {
        None => Ok(peer),
        Some(e) => Err(e.clone()),
    }
}

/// Opens a count query of `n` keys by hand and returns once the holder has admitted it.
async fn admitted_query(
    police: &Path,
    addr: &str,
    n: u64,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
) {
    let id = NodeDir::open(police).unwrap().identity().unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(tls::client_config(&id, Duration::from_secs(30)).unwrap());
    let conn = ep
        .connect(addr.parse().unwrap(), "bank")
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let mut keys = QueryKeys::new();
    for i in 0..n {
        keys.add_row(&[Key::parse(KeyType::Mobile, &format!("139{i:08}")).unwrap()]);
    }
    let q = Arc::new(Query::blind(&mut rand::rng(), keys).unwrap());
    let (start, _) = q.start(QueryMode::Count);
    let t = Duration::from_secs(10);
    let hello = Hello::new(QueryMode::Count, Some("2026-001".into()));
    write_frame(&mut send, &ClientFrame::Hello(hello), t)
        .await
        .unwrap();
    write_frame(&mut send, &ClientFrame::Psi(start.into()), t)
        .await
        .unwrap();
    let first: ServerFrame = read_frame(&mut recv, t).await.unwrap().unwrap();
    assert!(matches!(first, ServerFrame::Welcome(_)), "{first:?}");
    (ep, conn, send, recv)
}

fn outcomes(node: &Path) -> Vec<Outcome> {
    audit_log(node)
        .verify()
        .unwrap()
        .into_iter()
        .map(|e| e.record.outcome)
        .collect()
}

/// Keys charged on UTC `day` by the `admitted` entries of a holder's audit log.
fn charged_on(entries: &[Entry], day: u64) -> u64 {
    entries
        .iter()
        .filter(|e| e.record.outcome == Outcome::Admitted && clock::day_of(e.unix) == day)
        .filter_map(|e| e.record.charged)
        .sum()
}

#[test]
fn a_holder_killed_mid_query_restarts_on_its_epoch_with_budgets_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let epoch = setup(
        d,
        "[network]\ntimeout_secs = 30\n[policy]\nmin_query_keys = 2\nkeys_per_peer_per_day = 10\n[policy.allow]\npolice = [\"count\"]\n",
    );
    std::fs::write(d.join("dump.csv"), mobiles(1, 4)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let (mut server, addr, _out) = serve(d, "bank");
    let held = rt.block_on(admitted_query(&d.join("police"), &addr, 4));
    kill(&server.0, "-KILL");
    server.0.wait().unwrap();
    drop(held);

    // The restarted node serves the same epoch from a log that verifies, and remembers the 4
    // keys charged to the query that died with it.
    let (mut server, addr, _out) = serve(d, "bank");
    assert_eq!(outcomes(&d.join("bank")), [Outcome::Admitted]);
    assert!(ok(d, &["status", "--node", "bank"]).contains(&format!("epoch {epoch} imported")));
    let r = rt.block_on(ask(d, &addr, "dump.csv")).unwrap();
    assert_eq!(r.matched_keys.values().sum::<u64>(), 2);
    // Both admissions are logged before the second answer arrives. Whether a third query of 4
    // keys fits depends on what was charged on the UTC day it is asked: 8 when all three share
    // one, less if midnight came between them.
    let charged = audit_log(&d.join("bank")).verify().unwrap();
    let before = clock::day_of(clock::now_unix());
    let third = rt.block_on(ask(d, &addr, "dump.csv"));
    let after = clock::day_of(clock::now_unix());
    let expected = |day: u64| match charged_on(&charged, day) {
        used if used + 4 > 10 => Err(format!(
            "bank refused: daily budget exhausted: {used} of 10 keys used today, this query needs 4"
        )),
        _ => Ok(()),
    };
    let got = third.map(drop);
    assert!(
        got == expected(before) || got == expected(after),
        "{got:?} on day {before}..={after} after {charged:?}"
    );
    kill(&server.0, "-TERM");
    assert!(wait_for(&mut server.0, Duration::from_secs(30)).success());
    let mut want = vec![Outcome::Admitted, Outcome::Admitted, Outcome::Completed];
    match got {
        Err(_) => want.push(Outcome::Refused),
        Ok(()) => want.extend([Outcome::Admitted, Outcome::Completed]),
    }
    assert_eq!(outcomes(&d.join("bank")), want);
}

#[test]
fn a_querier_killed_mid_query_is_aborted_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(
        d,
        "[network]\ntimeout_secs = 3\n[policy]\nmin_query_keys = 2\nmax_concurrent_queries = 1\n[policy.allow]\npolice = [\"count\"]\n",
    );
    std::fs::write(d.join("big.csv"), mobiles(0, 200_000)).unwrap();
    std::fs::write(d.join("dump.csv"), mobiles(1, 4)).unwrap();
    let (mut server, addr, _out) = serve(d, "bank");
    let peer = format!("bank={addr}");
    let mut querier = Reaped(
        suyuan()
            .current_dir(d)
            .args([
                "query", "--node", "police", "--input", "big.csv", "--peer", &peer, "--mode",
                "count", "--case", "c-1", "--quiet",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bank_log = d.join("bank/audit.log");
    let admitted = |s: &str| s.contains("\"outcome\":\"admitted\"");
    let start = Instant::now();
    while !std::fs::read_to_string(&bank_log).is_ok_and(|s| admitted(&s)) {
        assert!(start.elapsed() < Duration::from_secs(120), "never admitted");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(&querier.0, "-KILL");
    querier.0.wait().unwrap();

    // The holder notices within its timeout, audits the abort and frees its only slot.
    let start = Instant::now();
    while outcomes(&d.join("bank")).len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no abort audited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let entries = audit_log(&d.join("bank")).verify().unwrap();
    assert_eq!(entries[1].record.outcome, Outcome::Aborted, "{entries:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ask(d, &addr, "dump.csv")).unwrap();
    // The querier's own log, written by a process that was killed, still verifies.
    ok(d, &["audit", "verify", "--node", "police"]);
    kill(&server.0, "-TERM");
    assert!(wait_for(&mut server.0, Duration::from_secs(30)).success());
}

#[test]
fn a_full_disk_during_import_keeps_the_old_epoch_serving() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let epoch = setup(
        d,
        "[policy]\nmin_query_keys = 2\n[policy.allow]\npolice = [\"count\"]\n",
    );
    std::fs::write(d.join("big.csv"), mobiles(0, 300_000)).unwrap();
    // A file-size limit stands in for a full disk: writes past it fail (EFBIG) the way they
    // fail with ENOSPC, and nothing outside this process is affected.
    let out = std::process::Command::new("bash")
        .current_dir(d)
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 2048; exec \"$0\" import --node bank --input big.csv")
        .arg(env!("CARGO_BIN_EXE_suyuan"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("suyuan: sorting the list's keys: ")
            && err.contains("File too large (os error 27)"),
        "{err}"
    );
    let left: Vec<String> = std::fs::read_dir(d.join("bank"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".keys"))
        .collect();
    assert_eq!(
        left,
        vec![format!("epoch-{epoch}.keys")],
        "the space is given back"
    );
    let status = ok(d, &["status", "--node", "bank"]);
    assert!(
        status.contains(&format!("epoch {epoch} imported")),
        "{status}"
    );
    let (mut server, _addr, _out) = serve(d, "bank");
    kill(&server.0, "-TERM");
    assert!(wait_for(&mut server.0, Duration::from_secs(30)).success());
}

/// Opens the FIFO at `path` for writing once a reader has it open (polled, not waited on
/// blindly: a reader that never comes fails the test instead of hanging it).
fn writer_of(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let start = Instant::now();
    loop {
        // Non-blocking, a write-only open of a FIFO fails (ENXIO) until it has a reader.
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path);
        if opened.is_ok() {
            // Now that it has a reader, a blocking open returns at once.
            return std::fs::OpenOptions::new().write(true).open(path).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the import never opened its input"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn an_interrupted_import_leaves_the_previous_epoch() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    federation(d);
    std::fs::write(d.join("small.csv"), "手机\n13800138000\n13912345678\n").unwrap();
    let epoch = epoch_of_import(&ok(
        d,
        &["import", "--node", "bank", "--input", "small.csv"],
    ));

    // The next list comes through a FIFO that never ends: once more than the pipe holds has
    // been written, the import has read past its first 64 KiB sample and is among the records,
    // and it cannot finish. Then it is killed.
    let fifo = d.join("big.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut child = Reaped(
        suyuan()
            .current_dir(d)
            .args(["import", "--node", "bank", "--input", "big.csv"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut input = writer_of(&fifo);
    input.write_all("手机\n".as_bytes()).unwrap();
    for i in 0..40_000u64 {
        input
            .write_all(format!("13{:09}\n", i * 7).as_bytes())
            .unwrap();
    }
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the import ended early"
    );
    kill(&child.0, "-KILL");
    child.0.wait().unwrap();
    drop(input);

    let status = ok(d, &["status", "--node", "bank"]);
    assert!(
        status.contains(&format!("epoch {epoch} imported")),
        "{status}"
    );
    assert!(status.contains("keys: mobile 2"), "{status}");
    // The next import succeeds over whatever the killed one left.
    let out = ok(d, &["import", "--node", "bank", "--input", "small.csv"]);
    assert!(out.contains("new epoch "), "{out}");
    assert!(!out.contains(&epoch));
    assert!(!d.join("bank/epoch.redb.tmp").exists());
}

#[test]
fn a_corrupted_store_is_refused_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    federation(d);
    std::fs::write(d.join("list.csv"), mobiles(0, 5000)).unwrap();
    ok(d, &["import", "--node", "bank", "--input", "list.csv"]);
    let bank = NodeDir::open(&d.join("bank")).unwrap();
    let file = bank.epoch_file();
    let pristine = std::fs::read(&file).unwrap();
    let (epoch, _) = bank.store().read().unwrap().unwrap();
    let digest = store::digest(&epoch).unwrap();

    // One flipped byte anywhere: refused, or (in space the store does not use) the very same
    // epoch. Never a different one.
    let mut refused = 0;
    for at in (0..pristine.len()).step_by(pristine.len() / 300) {
        let mut bad = pristine.clone();
        bad[at] ^= 0x10;
        std::fs::write(&file, &bad).unwrap();
        match bank.store().read() {
            Err(StoreError::Corrupt { .. } | StoreError::Unreadable { .. }) => {
                refused += 1;
            }
            Err(e) => panic!("byte {at}: {e}"),
            Ok(Some((e, _))) => assert_eq!(store::digest(&e).unwrap(), digest, "byte {at}"),
            Ok(None) => panic!("byte {at}: the store vanished"),
        }
    }
    assert!(refused > 0);
    std::fs::write(&file, &pristine).unwrap();

    // The keys file beside it uses every byte: one flipped anywhere is refused.
    let keys = d.join("bank").join(format!("epoch-{}.keys", epoch.id()));
    let pristine_keys = std::fs::read(&keys).unwrap();
    for at in (0..pristine_keys.len()).step_by(pristine_keys.len() / 300) {
        let mut bad = pristine_keys.clone();
        bad[at] ^= 0x10;
        std::fs::write(&keys, &bad).unwrap();
        assert!(
            matches!(bank.store().read(), Err(StoreError::Corrupt { .. })),
            "byte {at} of the keys file"
        );
    }

    // A flipped bit inside a tag, through the binary: a one-line refusal to start.
    let tag = epoch.read_tags(KeyType::Mobile, 100..101).unwrap()[0];
    let at = pristine_keys
        .windows(tag.len())
        .position(|w| w == tag)
        .expect("the tag is stored verbatim");
    let mut bad = pristine_keys.clone();
    bad[at + 3] ^= 1;
    std::fs::write(&keys, &bad).unwrap();
    let err = fails(d, &["serve", "--node", "bank", "--listen", "127.0.0.1:0"]);
    assert!(err.contains("refusing to serve from it"), "{err}");
    let status = ok(d, &["status", "--node", "bank"]);
    assert!(
        status.contains("epoch: DAMAGED: the store ")
            && status.contains("refusing to serve from it"),
        "{status}"
    );
}

#[test]
fn an_audit_log_cut_mid_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(
        d,
        "[policy]\nmin_query_keys = 2\n[policy.allow]\npolice = [\"count\"]\n",
    );
    std::fs::write(d.join("dump.csv"), mobiles(1, 4)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut server, addr, _out) = serve(d, "bank");
    rt.block_on(ask(d, &addr, "dump.csv")).unwrap();
    kill(&server.0, "-TERM");
    assert!(wait_for(&mut server.0, Duration::from_secs(30)).success());
    let log = d.join("bank/audit.log");
    let committed = std::fs::read(&log).unwrap();

    // A crash inside an append: the partial entry was never committed. The log verifies, the
    // node serves, and the next entry follows the last committed one.
    let torn = br#"{"seq":3,"time":"2026-11-28T02:00:00Z","unix":17"#;
    std::fs::write(&log, [&committed[..], torn].concat()).unwrap();
    assert_eq!(
        ok(d, &["audit", "verify", "--node", "bank"]),
        "audit log intact: 2 entries\n"
    );
    let (mut server, addr, _out) = serve(d, "bank");
    rt.block_on(ask(d, &addr, "dump.csv")).unwrap();
    kill(&server.0, "-TERM");
    assert!(wait_for(&mut server.0, Duration::from_secs(30)).success());
    assert_eq!(
        ok(d, &["audit", "verify", "--node", "bank"]),
        "audit log intact: 4 entries\n"
    );
    let now = std::fs::read(&log).unwrap();
    assert_eq!(&now[..committed.len()], &committed[..]);
    assert_eq!(
        std::fs::read(d.join("bank/audit.torn")).unwrap(),
        [&torn[..], b"\n"].concat()
    );

    // A committed entry cut off is damage: named, and the node will not serve on it.
    std::fs::write(&log, &now[..now.len() - 30]).unwrap();
    let err = audit_log(&d.join("bank")).verify().unwrap_err();
    assert_eq!(
        err.chain(),
        Some(&ChainError::CutOff {
            entry: 4,
            committed: 4
        })
    );
    let err = fails(d, &["audit", "verify", "--node", "bank"]);
    assert_eq!(
        err,
        "suyuan: audit log verification failed: entry 4 was cut off mid-entry (the log ends inside it; the head records 4 entries)\n"
    );
    let err = fails(d, &["serve", "--node", "bank", "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains("the audit log does not verify; refusing to serve"),
        "{err}"
    );
}
