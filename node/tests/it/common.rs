//! Helpers shared by the binary's integration tests.
#![allow(dead_code)] // shared by the test modules; each uses its own subset

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

pub(crate) fn suyuan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_suyuan"))
}

pub(crate) struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn run_in(dir: &std::path::Path, args: &[&str]) -> Out {
    let out = suyuan().current_dir(dir).args(args).output().unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub(crate) fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert!(o.ok, "{args:?} failed: {}", o.stderr);
    o.stdout
}

pub(crate) fn fails(dir: &std::path::Path, args: &[&str]) -> String {
    let o = run_in(dir, args);
    assert!(!o.ok, "{args:?} succeeded: {}", o.stdout);
    assert_eq!(o.stderr.lines().count(), 1, "not one line: {}", o.stderr);
    o.stderr
}

pub(crate) const BANK_TOML: &str = "[network]\ntimeout_secs = 5\n[policy]\nmin_query_keys = 2\n[policy.allow]\npolice = [\"count\", \"matches\"]\n";

pub(crate) fn federation(d: &std::path::Path) {
    ok(d, &["ca", "init", "--dir", "ca"]);
    ok(
        d,
        &[
            "ca",
            "issue",
            "--ca",
            "ca",
            "--name",
            "bank",
            "--role",
            "institution",
            "--out",
            "bank",
        ],
    );
    ok(
        d,
        &[
            "ca", "issue", "--ca", "ca", "--name", "police", "--role", "police", "--out", "police",
        ],
    );
    std::fs::write(d.join("bank/node.toml"), BANK_TOML).unwrap();
}

/// A child process killed when the test ends, passed or not: nothing is left running.
pub(crate) struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn kill(child: &std::process::Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `suyuan serve` on an ephemeral loopback port: the child, its address, and the rest of its
/// standard output.
pub(crate) fn serve(
    d: &Path,
    node: &str,
) -> (
    Reaped,
    String,
    std::io::Lines<std::io::BufReader<ChildStdout>>,
) {
    let mut server = Reaped(
        suyuan()
            .current_dir(d)
            .args(["serve", "--node", node, "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(server.0.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("listening on 127.0.0.1:"), "{first}");
    let addr = first.split_whitespace().nth(2).unwrap().to_string();
    (server, addr, lines)
}

/// Waits for a child to exit, killing it if it outlives `limit`.
pub(crate) fn wait_for(child: &mut Child, limit: std::time::Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
