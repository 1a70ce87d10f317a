//! A serving node's Prometheus metrics, scraped over HTTP after real queries, checked by
//! Prometheus' own `promtool check metrics` (required when SUYUAN_REQUIRE_PROMTOOL is set, as
//! `.ci/run` sets it; skipped with a note where promtool is not installed) and for the figures
//! the queries must have produced.

use std::io::{Read, Write};

use suyuan_node::node_dir::identity::Role;
use suyuan_protocol::psi::QueryMode;
use suyuan_tests::fed::{Federation, ask_one, import, start};
use suyuan_tests::write_text;

fn get(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_queries_and_pass_promtool() {
    let fed = Federation::new();
    let bank = fed.node(
        "bank",
        Role::Institution,
        "[policy]\nmin_query_keys = 2\n[policy.allow]\npolice = [\"count\"]\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
    );
    let police = fed.node("police", Role::Police, "[network]\ntimeout_secs = 5\n");
    write_text(
        &fed.path("list.csv"),
        "mobile\n13900000001\n13900000002\n13900000003\n",
        false,
    );
    write_text(
        &fed.path("dump.csv"),
        "mobile\n13900000002\n13900000009\n",
        false,
    );
    write_text(&fed.path("one.csv"), "mobile\n13900000002\n", false);
    import(&bank, &fed.path("list.csv"));
    let server = start(&bank);
    let addr = server.metrics().expect("metrics are on");
    let peer = server.peer("bank");
    let ok = ask_one(
        &police,
        &fed.path("dump.csv"),
        &peer,
        QueryMode::Count,
        Some("m-1"),
    )
    .await;
    assert_eq!(ok.error, None);
    let small = ask_one(
        &police,
        &fed.path("one.csv"),
        &peer,
        QueryMode::Count,
        Some("m-2"),
    )
    .await;
    assert!(small.error.is_some(), "one key is below the minimum");
    let mode = ask_one(
        &police,
        &fed.path("dump.csv"),
        &peer,
        QueryMode::Matches,
        Some("m-3"),
    )
    .await;
    assert!(mode.error.is_some(), "matches is not allowed");

    let response = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    for line in [
        "suyuan_queries_admitted_total{role=\"police\"} 1",
        "suyuan_queries_refused_total{reason=\"too_small\"} 1",
        "suyuan_queries_refused_total{reason=\"mode_not_allowed\"} 1",
        "suyuan_queries_finished_total{outcome=\"completed\"} 1",
        "suyuan_keys_evaluated_total 2",
        "suyuan_active_queries 0",
        "suyuan_epoch_keys{key_type=\"mobile\"} 3",
        "suyuan_budget_used_keys{peer=\"police\"} 2",
        "suyuan_active_queries 0",
    ] {
        assert!(body.lines().any(|l| l == line), "{line} missing:\n{body}");
    }
    // Each refusal and the admitted query's two entries are in the audit log.
    let entries = suyuan_node::node_dir::NodeDir::open(&bank)
        .unwrap()
        .audit()
        .verify()
        .unwrap()
        .len();
    assert!(
        body.lines()
            .any(|l| l == format!("suyuan_audit_log_entries {entries}")),
        "{body}"
    );
    assert!(get(addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(get(addr, "\x16\x03\x01 hello\r\n\r\n").starts_with("HTTP/1.1 400"));

    let file = fed.path("metrics.txt");
    std::fs::write(&file, body).unwrap();
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if std::env::var_os("SUYUAN_REQUIRE_PROMTOOL").is_none() => {
            eprintln!("promtool not run ({e}); install Debian's prometheus package to run it");
        }
        Err(e) => panic!("SUYUAN_REQUIRE_PROMTOOL is set but promtool cannot run: {e}"),
    }
    server.stop().await;
}
