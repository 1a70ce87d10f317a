//! The `suyuan` binary as a user meets it: output, exit status, one-line errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::process::Command;

fn suyuan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_suyuan"))
}

#[test]
fn version() {
    let out = suyuan().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("suyuan {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn psi_local_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bank.csv"),
        "姓名,手机号,身份证号\n张慧,13800138000,11010519491231002X\n李四,13912345678,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("dump.csv"),
        "name,phone,id_number\nA,+86 138-0013-8000,\nB,12345,\nC,,110105491231002\n",
    )
    .unwrap();
    let out = suyuan()
        .current_dir(dir.path())
        .args([
            "psi-local",
            "--holder",
            "bank.csv",
            "--querier",
            "dump.csv",
            "--mode",
            "matches",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("3 rows, 1 without a usable key, 1 values rejected"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rejected mobile: wrong length (1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("key type     query keys  holder keys  matched\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mobile                1            2        1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("resident_id           1            1        1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mode matches: 2 of 3 dump rows matched (containment 66.7%)"),
        "{stdout}"
    );
    assert!(stdout.contains("matched data rows: 1, 3\n"), "{stdout}");
}

#[test]
fn errors_are_one_line_with_nonzero_status() {
    let out = suyuan()
        .args([
            "psi-local",
            "--holder",
            "/nonexistent/a.csv",
            "--querier",
            "b.csv",
            "--mode",
            "count",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "suyuan: cannot open /nonexistent/a.csv: No such file or directory (os error 2)\n"
    );

    let out = suyuan()
        .args([
            "psi-local",
            "--holder",
            "a",
            "--querier",
            "b",
            "--mode",
            "count",
            "--keys",
            "phone",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("suyuan: unknown key type"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
