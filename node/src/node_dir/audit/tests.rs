use super::*;

fn record(peer: &str, outcome: Outcome) -> Record {
    Record {
        peer_role: Some(Role::Police),
        fingerprint: Some("ab".repeat(32)),
        case: Some("2026-001".to_string()),
        mode: Some(QueryMode::Count),
        query_keys: Some(1000),
        charged: Some(1000),
        ..Record::new(Side::Holder, peer, outcome)
    }
}

fn log_with(n: usize) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::of(&NodeDir::at(dir.path()));
    for i in 0..n {
        log.append(record(&format!("p{i}"), Outcome::Admitted))
            .unwrap();
    }
    (dir, log)
}

fn lines(log: &AuditLog) -> Vec<String> {
    fs::read_to_string(&log.log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn rewrite(log: &AuditLog, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(&log.log, text).unwrap();
}

/// The break `verify` finds in a log of `n` entries after `edit` rewrote its lines.
fn tampered(n: usize, edit: impl FnOnce(&mut Vec<String>)) -> ChainError {
    let (_d, log) = log_with(n);
    let mut l = lines(&log);
    edit(&mut l);
    rewrite(&log, &l);
    match log.verify() {
        Err(AuditError::Chain { error, .. }) => error,
        other => panic!("not a chain error: {other:?}"),
    }
}

#[test]
fn an_intact_log_verifies() {
    let (_d, log) = log_with(5);
    let entries = log.verify().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[4].seq, 5);
    assert_eq!(entries[1].record.peer, "p1");
}

#[test]
fn an_edit_in_the_middle_breaks_the_next_link() {
    let e = tampered(5, |l| l[1] = l[1].replace("\"p1\"", "\"px\""));
    assert_eq!(e, ChainError::Edited { entry: 2 });
}

#[test]
fn a_deletion_in_the_middle() {
    let e = tampered(5, |l| drop(l.remove(2)));
    assert_eq!(e, ChainError::Deleted { entry: 3, next: 4 });
}

#[test]
fn two_entries_swapped() {
    let e = tampered(5, |l| l.swap(1, 2));
    assert_eq!(e, ChainError::Moved { entry: 2, found: 3 });
}

#[test]
fn an_entry_repeated() {
    let e = tampered(3, |l| l.push(l[2].clone()));
    assert_eq!(e, ChainError::Duplicated { entry: 3, line: 4 });
}

#[test]
fn the_last_entry_edited() {
    let e = tampered(3, |l| l[2] = l[2].replace("\"p2\"", "\"px\""));
    assert_eq!(e, ChainError::HeadMismatch { entry: 3 });
}

#[test]
fn the_tail_deleted() {
    let e = tampered(4, |l| l.truncate(2));
    assert_eq!(e, ChainError::TailDeleted { first: 3, last: 4 });
}

#[test]
fn a_line_that_is_not_an_entry() {
    let e = tampered(3, |l| l[1] = "{}".to_string());
    assert_eq!(e, ChainError::Corrupt { line: 2 });
}

#[test]
fn a_committed_entry_cut_off_is_named_and_not_extended() {
    let (_d, log) = log_with(3);
    let text = fs::read(&log.log).unwrap();
    fs::write(&log.log, &text[..text.len() - 20]).unwrap();
    assert_eq!(
        log.verify().unwrap_err().chain(),
        Some(&ChainError::CutOff {
            entry: 3,
            committed: 3
        })
    );
    assert!(matches!(
        log.append(record("q", Outcome::Refused)),
        Err(AuditError::Damaged { .. })
    ));
    assert_eq!(
        fs::read(&log.log).unwrap(),
        &text[..text.len() - 20],
        "left as it was"
    );
    assert!(!log.torn.exists());
}

#[test]
fn a_missing_log_or_head_is_named_with_its_file() {
    let (d, log) = log_with(2);
    fs::remove_file(&log.head).unwrap();
    let err = log.verify().unwrap_err();
    assert_eq!(err.chain(), Some(&ChainError::HeadMissing));
    assert_eq!(
        err.to_string(),
        format!("{} is missing", d.path().join(AUDIT_HEAD).display())
    );
    let (d, log) = log_with(2);
    fs::remove_file(&log.log).unwrap();
    let err = log.verify().unwrap_err();
    assert_eq!(err.chain(), Some(&ChainError::LogMissing));
    assert_eq!(
        err.to_string(),
        format!(
            "{} is missing: every entry was deleted",
            d.path().join(AUDIT_LOG).display()
        )
    );
}

/// What `suyuan audit verify` and `status` print: the words are the interface.
#[test]
fn chain_errors_read_as_they_always_have() {
    for (e, text) in [
        (
            ChainError::Edited { entry: 2 },
            "entry 2 was edited (entry 3 no longer links to it)",
        ),
        (
            ChainError::Deleted { entry: 3, next: 4 },
            "entry 3 was deleted (the next line is entry 4)",
        ),
        (
            ChainError::Moved { entry: 2, found: 3 },
            "entry 2 was moved: it appears at line 3 instead of line 2",
        ),
        (
            ChainError::Duplicated { entry: 2, line: 3 },
            "entry 2 appears again at line 3 (duplicated)",
        ),
        (
            ChainError::HeadMismatch { entry: 3 },
            "entry 3 was edited (it no longer matches the recorded head)",
        ),
        (
            ChainError::TailDeleted { first: 3, last: 4 },
            "entries 3..=4 were deleted (the log ends at entry 2)",
        ),
        (
            ChainError::CutOff {
                entry: 3,
                committed: 3,
            },
            "entry 3 was cut off mid-entry (the log ends inside it; the head records 3 entries)",
        ),
        (
            ChainError::Corrupt { line: 2 },
            "entry 2 (line 2) is corrupt or was edited",
        ),
    ] {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn audit_errors_name_their_files_where_the_chain_cannot() {
    let err = AuditError::Chain {
        log: PathBuf::from("n/audit.log"),
        head: PathBuf::from("n/audit.head"),
        error: ChainError::NotUtf8 { line: 4 },
    };
    assert_eq!(err.to_string(), "n/audit.log: line 4 is not UTF-8");
    let err = AuditError::Damaged {
        log: PathBuf::from("n/audit.log"),
    };
    assert_eq!(
        err.to_string(),
        "the audit log n/audit.log is damaged; run `suyuan audit verify` (nothing was appended)"
    );
}

#[test]
fn the_chain_check_needs_no_files() {
    let (_d, log) = log_with(3);
    let bytes = fs::read(&log.log).unwrap();
    let head = log.read_head().unwrap();
    assert_eq!(verify_chain(&bytes, head.as_ref()).unwrap().len(), 3);
    assert_eq!(verify_chain(b"", None), Ok(Vec::new()));
    assert_eq!(
        verify_chain(&bytes, None),
        Err(ChainError::HeadMissing),
        "entries without a head"
    );
}

#[test]
fn a_torn_append_is_set_aside_and_the_chain_goes_on() {
    let (_d, log) = log_with(3);
    let before = fs::read(&log.log).unwrap();
    // A crash mid-append: part of entry 4 reached the file, the head still says 3.
    let torn = br#"{"seq":4,"time":"2026-11-28T00:00:00Z","unix":1"#;
    let mut f = OpenOptions::new().append(true).open(&log.log).unwrap();
    f.write_all(torn).unwrap();
    drop(f);
    assert_eq!(log.verify().unwrap().len(), 3, "committed entries verify");
    let e = log.append(record("next", Outcome::Refused)).unwrap();
    assert_eq!(e.seq, 4);
    let entries = log.verify().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3].record.peer, "next");
    let after = fs::read(&log.log).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "committed bytes untouched"
    );
    let kept = fs::read(&log.torn).unwrap();
    assert_eq!(kept, [&torn[..], b"\n"].concat());
}

#[test]
fn a_torn_append_after_a_lagging_head_is_set_aside_too() {
    // A crash between a log fsync and the head update leaves the head one entry behind;
    // a later crash mid-append then tears the tail. Both were never committed past entry 3.
    let (_d, log) = log_with(3);
    let l = lines(&log);
    let head = Head {
        count: 2,
        hash: hash_line(&l[1]),
    };
    fs::write(&log.head, serde_json::to_string(&head).unwrap()).unwrap();
    let mut f = OpenOptions::new().append(true).open(&log.log).unwrap();
    f.write_all(br#"{"seq":4,"ti"#).unwrap();
    drop(f);
    assert_eq!(log.verify().unwrap().len(), 3);
    assert_eq!(log.append(record("q", Outcome::Refused)).unwrap().seq, 4);
    assert_eq!(log.verify().unwrap().len(), 4);
}
