//! Prometheus metrics of a serving node (`[metrics] listen` in `node.toml`): queries admitted,
//! refused by reason, finished by outcome, keys evaluated, query durations, queries running,
//! the epoch's age and size, audit-log entries, the certificate's days left and each member's
//! budget used today. Plain HTTP, `GET /metrics`, in the OpenMetrics text format of the
//! Prometheus project's own client.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use suyuan_protocol::ident::KeyType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Role {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Type {
    key_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: String,
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    admitted: Family<Role, Counter>,
    refused: Family<Reason, Counter>,
    finished: Family<Outcome, Counter>,
    keys_evaluated: Counter,
    duration: Histogram,
    active: Gauge,
    epoch_age: Gauge,
    epoch_keys: Family<Type, Gauge>,
    audit_entries: Gauge,
    certificate_seconds: Gauge,
    budget_used: Family<Peer, Gauge>,
}

/// What is read fresh at each scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// When the epoch served was imported (Unix seconds) and its keys per type.
    pub epoch: Option<(u64, Vec<(KeyType, u64)>)>,
    /// When the node's certificate expires (Unix seconds).
    pub certificate_expires: Option<u64>,
    /// Each member's keys charged today.
    pub budget: Vec<(String, u64)>,
    /// Now (Unix seconds).
    pub now: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("suyuan");
        let m = Metrics {
            registry: Registry::default(),
            admitted: Family::default(),
            refused: Family::default(),
            finished: Family::default(),
            keys_evaluated: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            active: Gauge::default(),
            epoch_age: Gauge::default(),
            epoch_keys: Family::default(),
            audit_entries: Gauge::default(),
            certificate_seconds: Gauge::default(),
            budget_used: Family::default(),
        };
        registry.register(
            "queries_admitted",
            "Queries admitted by policy, by the querier's role",
            m.admitted.clone(),
        );
        registry.register(
            "queries_refused",
            "Queries and connections refused, by reason",
            m.refused.clone(),
        );
        registry.register(
            "queries_finished",
            "Admitted queries that ended, by outcome (completed or aborted)",
            m.finished.clone(),
        );
        registry.register(
            "keys_evaluated",
            "Blinded keys evaluated for completed queries",
            m.keys_evaluated.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Wall time of admitted queries, admission to end",
            m.duration.clone(),
        );
        registry.register("active_queries", "Queries running now", m.active.clone());
        registry.register(
            "epoch_age_seconds",
            "Seconds since the epoch served was imported",
            m.epoch_age.clone(),
        );
        registry.register(
            "epoch_keys",
            "Distinct keys of the epoch served, by key type",
            m.epoch_keys.clone(),
        );
        registry.register(
            "audit_log_entries",
            "Entries in the audit log",
            m.audit_entries.clone(),
        );
        registry.register(
            "certificate_remaining_seconds",
            "Seconds until this node's certificate expires",
            m.certificate_seconds.clone(),
        );
        registry.register(
            "budget_used_keys",
            "Keys charged to each member today (UTC)",
            m.budget_used.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A query admitted from a member of `role`.
    pub fn admitted(&self, role: &str) {
        self.admitted
            .get_or_create(&Role { role: role.into() })
            .inc();
        self.active.inc();
    }

    /// A query or connection refused (`reason`: a fixed word, not the message).
    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&Reason {
                reason: reason.into(),
            })
            .inc();
    }

    /// An admitted query ended after `took`; `keys` evaluated if it completed.
    pub fn finished(&self, completed: bool, keys: u64, took: Duration) {
        let outcome = if completed { "completed" } else { "aborted" };
        self.finished
            .get_or_create(&Outcome {
                outcome: outcome.into(),
            })
            .inc();
        if completed {
            self.keys_evaluated.inc_by(keys);
        }
        self.duration.observe(took.as_secs_f64());
        self.active.dec();
    }

    /// [`Metrics::new`] with the audit log's length at start.
    pub fn with_audit_entries(n: u64) -> Self {
        let m = Self::new();
        m.audit_entries(n);
        m
    }

    /// One more audit entry.
    pub fn audit_appended(&self) {
        self.audit_entries.inc();
    }

    /// The audit log's length, as counted at start.
    pub fn audit_entries(&self, n: u64) {
        self.audit_entries.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The exposition text, with the scrape-time figures of `s`.
    pub fn render(&self, s: &Snapshot) -> String {
        let signed = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
        match &s.epoch {
            Some((created, keys)) => {
                self.epoch_age.set(signed(s.now.saturating_sub(*created)));
                for (kt, n) in keys {
                    self.epoch_keys
                        .get_or_create(&Type {
                            key_type: kt.as_str().into(),
                        })
                        .set(signed(*n));
                }
            }
            None => {
                self.epoch_age.set(0);
            }
        }
        if let Some(until) = s.certificate_expires {
            self.certificate_seconds
                .set(signed(until).saturating_sub(signed(s.now)));
        }
        self.budget_used.clear();
        for (peer, used) in &s.budget {
            self.budget_used
                .get_or_create(&Peer { peer: peer.clone() })
                .set(signed(*used));
        }
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        prometheus_text(&out)
    }
}

/// The Prometheus text format (0.0.4), which every Prometheus and `promtool check metrics`
/// read, from the client's OpenMetrics text: a counter's HELP and TYPE name its `_total`
/// samples, and there is no `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Answers one scraper: `GET /metrics` with `body()`, 404 for other paths, 405 for other
/// methods, 400 for what is not HTTP; one request per connection.
pub async fn answer(
    mut stream: tokio::net::TcpStream,
    body: impl std::future::Future<Output = String>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (status, kind, text) = match (method, path) {
        (b"GET", b"/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            body.await,
        ),
        (b"GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        (m, _) if !m.is_empty() && m.iter().all(u8::is_ascii_uppercase) => {
            ("405 Method Not Allowed", "text/plain", "only GET\n".into())
        }
        _ => (
            "400 Bad Request",
            "text/plain",
            "not an HTTP request\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_what_happened() {
        let m = Metrics::new();
        m.admitted("police");
        m.refused("budget_exhausted");
        m.finished(true, 1500, Duration::from_millis(300));
        m.audit_entries(7);
        let text = m.render(&Snapshot {
            epoch: Some((1000, vec![(KeyType::Mobile, 42)])),
            certificate_expires: Some(1000 + 40 * 86_400),
            budget: vec![("police".into(), 1500)],
            now: 1000 + 3600,
        });
        for line in [
            "suyuan_queries_admitted_total{role=\"police\"} 1",
            "suyuan_queries_refused_total{reason=\"budget_exhausted\"} 1",
            "suyuan_queries_finished_total{outcome=\"completed\"} 1",
            "suyuan_keys_evaluated_total 1500",
            "suyuan_query_duration_seconds_count 1",
            "suyuan_active_queries 0",
            "suyuan_epoch_age_seconds 3600",
            "suyuan_epoch_keys{key_type=\"mobile\"} 42",
            "suyuan_audit_log_entries 7",
            "suyuan_certificate_remaining_seconds 3452400",
            "suyuan_budget_used_keys{peer=\"police\"} 1500",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(
            text.contains("# TYPE suyuan_keys_evaluated_total counter\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }
}
