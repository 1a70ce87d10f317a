//! The systemd unit in `packaging/` is one systemd accepts without a word and rates as well
//! hardened, checked with systemd's own `systemd-analyze` (run where it is installed, as on
//! this project's CI machines; skipped with a note elsewhere).

use std::path::Path;
use std::process::Command;

/// The unit with its `ExecStart` pointed at the binary under test (systemd checks it exists).
fn unit_under_test(dir: &Path) -> std::path::PathBuf {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/suyuan.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/suyuan serve --node /var/lib/suyuan/node"));
    let path = dir.join("suyuan.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/suyuan", env!("CARGO_BIN_EXE_suyuan")),
    )
    .unwrap();
    path
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed here: the unit was not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    // systemd exits 0 on an unknown key but says so: silence is the pass.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for suyuan.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 2.0, "exposure {level}:\n{text}");
}
