//! `node.toml`: where a node listens, its timeouts, and the policy it applies to queries.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use suyuan_protocol::psi::{MAX_SET_SIZE, QuerierLimits, QueryMode, Section};

use crate::net::frame::{MAX_CASE_LEN, Refusal};
use crate::node_dir::identity::Role;

/// The file name inside a node directory.
pub const NODE_TOML: &str = "node.toml";

/// The generated `node.toml`: every default written out, commented.
pub const DEFAULT_NODE_TOML: &str = r#"# suyuan node configuration. Every value below is the default; uncomment to change it.

[network]
# listen = "0.0.0.0:7788"       # where `suyuan serve` listens (overridden by --listen)
# timeout_secs = 30             # longest wait for a peer at any step; a stalled peer is dropped

[policy]
# min_query_keys = 1000         # smaller queries are refused: they would probe individuals
# max_query_keys = 50000000
# keys_per_peer_per_day = 100000000
# require_case = true
# max_concurrent_queries = 4
# Sizes count the distinct keys a query declares: the only size a holder can verify.

# [policy.allow]                # which modes each role may use against this node
# police = ["count"]
# institution = []
# researcher = []

# [policy.warrant]              # which modes need a court's warrant (`suyuan warrant issue`)
# matches = false
# count = false
# receipt = false               # the warrant must carry this node's signed count it was granted on
# min_count = 3000              # ... of at least this many records (with receipt = true)

[serve]
# count_pool_mib = 256          # count sessions prepared while idle (16 bytes per customer key each; 0: none)
# count_pool_disk_mib = 4096    # when not one fits that: sessions prepared to count-sessions/ on disk (0: none)

[metrics]
# listen: an address such as "127.0.0.1:9788" turns on Prometheus metrics (GET /metrics, plain HTTP); off by default

[query]
# tag_cache_mib = 1024          # holders' tag sets kept for repeated queries (0: keep none)
# tags_in_memory_mib = 128      # a holder's tags held in memory during a query; more are written to tag-cache/ and merged
# max_holder_keys = 536870912   # a holder announcing more is refused (we keep 8-16 bytes per key)
"#;

/// The whole file, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeConfig {
    /// `[network]`.
    pub network: NetworkConfig,
    /// `[policy]`.
    pub policy: Policy,
    /// `[serve]`.
    pub serve: ServeConfig,
    /// `[query]`.
    pub query: QueryConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
}

/// `[metrics]`: where `serve` offers Prometheus metrics (off unless `listen` is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `listen = "127.0.0.1:9788"`: plain HTTP, `GET /metrics`; keep it on loopback or a
    /// management network (it names the federation's members and their use of this node).
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMetrics {
    listen: Option<String>,
}

/// `[serve]`: how this node answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Most MiB of count sessions prepared ahead while the node is idle (each holds 16 bytes
    /// per key of the customer list; at most [`crate::net::count_pool::MAX_PREPARED`]).
    pub count_pool_mib: u64,
    /// For a list whose session does not fit [`ServeConfig::count_pool_mib`] (and has no
    /// labels): most MiB of sessions prepared to `count-sessions/` on disk instead.
    pub count_pool_disk_mib: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            count_pool_mib: 256,
            count_pool_disk_mib: 4096,
        }
    }
}

impl ServeConfig {
    /// The pool's bound in bytes.
    pub fn count_pool_bytes(&self) -> u64 {
        self.count_pool_mib.saturating_mul(1 << 20)
    }

    /// The bound of sessions on disk in bytes.
    pub fn count_pool_disk_bytes(&self) -> u64 {
        self.count_pool_disk_mib.saturating_mul(1 << 20)
    }
}

/// `[query]`: how this node asks others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Most MiB of holders' tag sets kept in `tag-cache/` for repeated queries.
    pub tag_cache_mib: u64,
    /// Most MiB of one holder's tags held in memory during a query: a larger stream is written
    /// to `tag-cache/` as it arrives and merged with this side's tags at the end, so memory
    /// grows with the dump, not with the holder's list.
    pub tags_in_memory_mib: u64,
    /// Most keys a holder may announce: its tags (ℓ bytes each, 8 to 16) are held in memory
    /// or on disk during the query, so this bounds what a hostile or huge holder can make us
    /// allocate or write.
    pub max_holder_keys: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            tag_cache_mib: 1024,
            tags_in_memory_mib: 128,
            max_holder_keys: QuerierLimits::default().max_holder_keys,
        }
    }
}

impl QueryConfig {
    /// What the protocol session accepts from holders.
    pub fn limits(&self) -> QuerierLimits {
        QuerierLimits {
            max_holder_keys: self.max_holder_keys,
        }
    }

    /// The cache limit in bytes.
    pub fn tag_cache_bytes(&self) -> u64 {
        self.tag_cache_mib.saturating_mul(1 << 20)
    }

    /// [`QueryConfig::tags_in_memory_mib`] in bytes.
    pub fn tags_in_memory_bytes(&self) -> u64 {
        self.tags_in_memory_mib.saturating_mul(1 << 20)
    }
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Listen address of `serve`.
    pub listen: SocketAddr,
    /// Longest wait for a peer, in seconds.
    pub timeout_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7788)),
            timeout_secs: 30,
        }
    }
}

impl NetworkConfig {
    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// `[policy]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Queries with fewer distinct keys are refused.
    pub min_query_keys: u64,
    /// Queries with more distinct keys are refused.
    pub max_query_keys: u64,
    /// Keys one peer may query per UTC day.
    pub keys_per_peer_per_day: u64,
    /// Whether a case number is required.
    pub require_case: bool,
    /// Queries answered at once; more are refused as busy.
    pub max_concurrent_queries: usize,
    /// Modes each role may use.
    pub allow: BTreeMap<Role, Vec<QueryMode>>,
    /// `[policy.labels]`: the labels each role may see (none by default).
    pub labels: BTreeMap<Role, Vec<String>>,
    /// A label cell (one value, one key type) with fewer matched keys is not reported, and a
    /// value fewer keys of the whole list carry is never shown by name.
    pub min_label_cell: u64,
    /// Send each shown value's number of keys in the whole list, so a querier can tell a
    /// segment over-represented among its matches from a large one (off by default: it tells
    /// the size of each branch).
    pub share_label_totals: bool,
    /// `[policy.warrant]`: the modes that need a court's warrant, and what it must rest on.
    pub warrant: WarrantPolicy,
}

/// `[policy.warrant]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarrantPolicy {
    /// `matches` queries need a warrant.
    pub matches: bool,
    /// `count` queries need a warrant.
    pub count: bool,
    /// The warrant must carry this node's signed answer to the querier's count in the case.
    pub receipt: bool,
    /// ... with a count of at least this many (`receipt = true`).
    pub min_count: u64,
}

impl Default for WarrantPolicy {
    fn default() -> Self {
        WarrantPolicy {
            matches: false,
            count: false,
            receipt: false,
            min_count: crate::evidence::warrant::DEFAULT_MIN_COUNT,
        }
    }
}

impl WarrantPolicy {
    /// Whether `mode` needs a warrant.
    pub fn required(&self, mode: QueryMode) -> bool {
        match mode {
            QueryMode::Matches => self.matches,
            QueryMode::Count => self.count,
        }
    }

    /// The minimum count a warrant's receipt must show, if a receipt is asked for.
    pub fn min_receipt(&self) -> Option<u64> {
        self.receipt.then_some(self.min_count)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_query_keys: 1000,
            max_query_keys: 50_000_000,
            keys_per_peer_per_day: 100_000_000,
            require_case: true,
            max_concurrent_queries: 4,
            allow: BTreeMap::from([
                (Role::Police, vec![QueryMode::Count]),
                (Role::Institution, vec![]),
                (Role::Researcher, vec![]),
            ]),
            labels: BTreeMap::new(),
            min_label_cell: 10,
            share_label_totals: false,
            warrant: WarrantPolicy::default(),
        }
    }
}

impl Policy {
    /// Admission before any key is seen: mode for role, case number.
    pub fn admit(&self, role: Role, mode: QueryMode, case: Option<&str>) -> Result<(), Refusal> {
        match self.allow.get(&role) {
            None => return Err(Refusal::RoleNotAllowed(role)),
            Some(m) if m.is_empty() => return Err(Refusal::RoleNotAllowed(role)),
            Some(m) if !m.contains(&mode) => return Err(Refusal::ModeNotAllowed { mode, role }),
            Some(_) => {}
        }
        match case {
            None if self.require_case => Err(Refusal::CaseRequired),
            Some(c) if !valid_case(c) => Err(Refusal::InvalidCase),
            _ => Ok(()),
        }
    }

    /// The size check once the query's key count is known.
    pub fn check_size(&self, sections: &[Section]) -> Result<(), Refusal> {
        let keys = sections.iter().fold(0u64, |a, s| a.saturating_add(s.count));
        if keys < self.min_query_keys {
            return Err(Refusal::TooSmall {
                keys,
                min: self.min_query_keys,
            });
        }
        if keys > self.max_query_keys {
            return Err(Refusal::TooLarge {
                keys,
                max: self.max_query_keys,
            });
        }
        let small: Vec<Section> = sections
            .iter()
            .filter(|s| s.count < self.min_query_keys)
            .copied()
            .collect();
        if !small.is_empty() {
            return Err(Refusal::SectionsTooSmall {
                sections: small,
                min: self.min_query_keys,
            });
        }
        Ok(())
    }

    /// What a querier of `role` may see of the labels.
    pub fn label_policy(&self, role: Role) -> suyuan_protocol::psi::labels::LabelPolicy {
        suyuan_protocol::psi::labels::LabelPolicy {
            visible: self.labels.get(&role).cloned().unwrap_or_default(),
            min_cell: self.min_label_cell,
            share_totals: self.share_label_totals,
        }
    }

    /// One line for `status`.
    pub fn summary(&self) -> String {
        let allow: Vec<String> = self
            .allow
            .iter()
            .map(|(r, m)| {
                let modes: Vec<&str> = m.iter().map(|m| m.as_str()).collect();
                format!("{r}: [{}]", modes.join(", "))
            })
            .collect();
        format!(
            "queries of {}..={} keys, {} keys per peer per day, case {}, {} at once; allow {}",
            self.min_query_keys,
            self.max_query_keys,
            self.keys_per_peer_per_day,
            if self.require_case {
                "required"
            } else {
                "optional"
            },
            self.max_concurrent_queries,
            allow.join("; ")
        ) + &self.warrant.summary()
    }
}

impl WarrantPolicy {
    /// `; warrant for matches (on this node's signed count of at least 3000)`, or nothing.
    fn summary(&self) -> String {
        let modes: Vec<&str> = [QueryMode::Count, QueryMode::Matches]
            .into_iter()
            .filter(|m| self.required(*m))
            .map(|m| m.as_str())
            .collect();
        if modes.is_empty() {
            return String::new();
        }
        let on = match self.min_receipt() {
            Some(n) => format!(" (on this node's signed count of at least {n})"),
            None => String::new(),
        };
        format!("; warrant for {}{on}", modes.join(", "))
    }
}

/// Highest `policy.max_concurrent_queries`: each query may buffer up to 32 bytes per key, and
/// each one is a stream the QUIC layer admits.
pub const MAX_CONCURRENT_QUERIES: usize = 1024;

/// A case number: 1 to 128 printable characters, no control characters.
pub fn valid_case(c: &str) -> bool {
    !c.trim().is_empty()
        && c.chars().count() <= MAX_CASE_LEN
        && !c
            .chars()
            .any(|c| c.is_control() || crate::text::is_bidi_control(c))
}

/// An old name of a `[policy]` key, still read: the sizes always counted distinct keys, and
/// now their names say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deprecated {
    /// The name found, e.g. `min_query_rows`.
    pub old: &'static str,
    /// The name to use, e.g. `min_query_keys`.
    pub new: &'static str,
}

impl fmt::Display for Deprecated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policy.{} is deprecated: call it policy.{} (it counts distinct keys)",
            self.old, self.new
        )
    }
}

/// Why a `node.toml` was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{}: invalid configuration", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's words.
        #[source]
        source: toml::de::Error,
    },
    /// A value out of its range, or settings that contradict each other.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        problem: Problem,
    },
}

/// A well-formed `node.toml` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// `network.listen` is not an `IP:PORT`.
    #[error("network.listen: invalid listen address {value:?} ({reason}); use IP:PORT")]
    Listen {
        /// As written.
        value: String,
        /// The parser's words.
        reason: String,
    },
    /// A number outside its range.
    #[error("{key} must be between {min} and {max}")]
    OutOfRange {
        /// `section.key`.
        key: &'static str,
        /// Lowest allowed.
        min: u64,
        /// Highest allowed.
        max: u64,
    },
    /// `policy.min_query_keys` above `policy.max_query_keys`.
    #[error("policy.min_query_keys is above policy.max_query_keys")]
    MinAboveMax,
    /// A renamed key given under both names.
    #[error(
        "policy.{} and policy.{} are the same setting; keep only policy.{}",
        .0.new, .0.old, .0.new
    )]
    BothNames(Deprecated),
    /// `policy.allow.court` gives a court modes: a court signs warrants and queries no one.
    #[error("policy.allow.court: a court signs warrants and queries no one; leave it out or []")]
    CourtQueries,
}

/// The file as written: every key optional, the old policy names beside the new.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFile {
    network: RawNetwork,
    policy: RawPolicy,
    serve: ServeConfig,
    query: QueryConfig,
    metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNetwork {
    listen: Option<String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPolicy {
    min_query_keys: Option<u64>,
    max_query_keys: Option<u64>,
    keys_per_peer_per_day: Option<u64>,
    min_query_rows: Option<u64>,
    max_query_rows: Option<u64>,
    rows_per_peer_per_day: Option<u64>,
    require_case: Option<bool>,
    max_concurrent_queries: Option<usize>,
    allow: Option<BTreeMap<Role, Vec<QueryMode>>>,
    labels: Option<BTreeMap<Role, Vec<String>>>,
    min_label_cell: Option<u64>,
    share_label_totals: Option<bool>,
    warrant: WarrantPolicy,
}

/// Reads `node.toml` at `path` (the defaults when absent), logging any deprecated name it
/// uses ([`crate::node_dir::NodeDir::config`]).
pub(crate) fn load_file(path: &Path) -> Result<NodeConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NodeConfig::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let (cfg, deprecated) = parse(&text, path)?;
    for d in deprecated {
        tracing::warn!("{}: {d}", path.display());
    }
    Ok(cfg)
}

/// Parses and checks the text of a `node.toml`; `path` names it in errors. Returns the
/// configuration and the deprecated names it used.
pub fn parse(text: &str, path: &Path) -> Result<(NodeConfig, Vec<Deprecated>), ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|source| ConfigError::Syntax {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |problem| ConfigError::Invalid {
        path: path.to_path_buf(),
        problem,
    };
    let mut deprecated = Vec::new();
    let network = network(raw.network).map_err(invalid)?;
    let policy = policy(raw.policy, &mut deprecated).map_err(invalid)?;
    in_range(
        "query.max_holder_keys",
        raw.query.max_holder_keys,
        1,
        MAX_SET_SIZE,
    )
    .map_err(invalid)?;
    let metrics = MetricsConfig {
        listen: match raw.metrics.listen {
            None => None,
            Some(value) => Some(value.parse().map_err(|e: std::net::AddrParseError| {
                invalid(Problem::Listen {
                    reason: e.to_string(),
                    value,
                })
            })?),
        },
    };
    let cfg = NodeConfig {
        network,
        policy,
        serve: raw.serve,
        query: raw.query,
        metrics,
    };
    Ok((cfg, deprecated))
}

fn in_range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), Problem> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Problem::OutOfRange { key, min, max })
    }
}

fn network(raw: RawNetwork) -> Result<NetworkConfig, Problem> {
    let d = NetworkConfig::default();
    let listen = match raw.listen {
        None => d.listen,
        Some(value) => value
            .parse()
            .map_err(|e: std::net::AddrParseError| Problem::Listen {
                reason: e.to_string(),
                value,
            })?,
    };
    let timeout_secs = raw.timeout_secs.unwrap_or(d.timeout_secs);
    in_range("network.timeout_secs", timeout_secs, 1, 3600)?;
    Ok(NetworkConfig {
        listen,
        timeout_secs,
    })
}

/// The policy keys renamed from rows to keys.
const MIN: Deprecated = Deprecated {
    old: "min_query_rows",
    new: "min_query_keys",
};
const MAX: Deprecated = Deprecated {
    old: "max_query_rows",
    new: "max_query_keys",
};
const PER_DAY: Deprecated = Deprecated {
    old: "rows_per_peer_per_day",
    new: "keys_per_peer_per_day",
};

/// A renamed key: the new name, else the old one (noted), never both.
fn renamed(
    (new, old): (Option<u64>, Option<u64>),
    names: Deprecated,
    default: u64,
    deprecated: &mut Vec<Deprecated>,
) -> Result<u64, Problem> {
    match (new, old) {
        (Some(_), Some(_)) => Err(Problem::BothNames(names)),
        (Some(v), None) => Ok(v),
        (None, Some(v)) => {
            deprecated.push(names);
            Ok(v)
        }
        (None, None) => Ok(default),
    }
}

fn policy(raw: RawPolicy, deprecated: &mut Vec<Deprecated>) -> Result<Policy, Problem> {
    let d = Policy::default();
    let p = Policy {
        min_query_keys: renamed(
            (raw.min_query_keys, raw.min_query_rows),
            MIN,
            d.min_query_keys,
            deprecated,
        )?,
        max_query_keys: renamed(
            (raw.max_query_keys, raw.max_query_rows),
            MAX,
            d.max_query_keys,
            deprecated,
        )?,
        keys_per_peer_per_day: renamed(
            (raw.keys_per_peer_per_day, raw.rows_per_peer_per_day),
            PER_DAY,
            d.keys_per_peer_per_day,
            deprecated,
        )?,
        require_case: raw.require_case.unwrap_or(d.require_case),
        max_concurrent_queries: raw
            .max_concurrent_queries
            .unwrap_or(d.max_concurrent_queries),
        allow: raw.allow.unwrap_or(d.allow),
        labels: raw.labels.unwrap_or(d.labels),
        min_label_cell: raw.min_label_cell.unwrap_or(d.min_label_cell),
        share_label_totals: raw.share_label_totals.unwrap_or(d.share_label_totals),
        warrant: raw.warrant,
    };
    in_range("policy.min_label_cell", p.min_label_cell, 1, 1_000_000)?;
    if p.allow.get(&Role::Court).is_some_and(|m| !m.is_empty()) {
        return Err(Problem::CourtQueries);
    }
    if p.min_query_keys > p.max_query_keys {
        return Err(Problem::MinAboveMax);
    }
    in_range(
        "policy.max_concurrent_queries",
        p.max_concurrent_queries as u64,
        1,
        MAX_CONCURRENT_QUERIES as u64,
    )?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use suyuan_protocol::ident::KeyType;

    #[test]
    fn the_warrant_policy_is_read_and_summarised() {
        let path = Path::new("node.toml");
        let (cfg, _) = parse("[policy.warrant]\nmatches = true\nreceipt = true\n", path).unwrap();
        let w = &cfg.policy.warrant;
        assert!(w.required(QueryMode::Matches) && !w.required(QueryMode::Count));
        assert_eq!(w.min_receipt(), Some(3000));
        assert!(
            cfg.policy
                .summary()
                .ends_with("; warrant for matches (on this node's signed count of at least 3000)")
        );
        let (cfg, _) = parse("[policy.warrant]\ncount = true\nmin_count = 10\n", path).unwrap();
        assert_eq!(cfg.policy.warrant.min_receipt(), None);
        assert!(cfg.policy.summary().ends_with("; warrant for count"));
        assert!(!NodeConfig::default().policy.summary().contains("warrant"));
        let e = parse("[policy.allow]\ncourt = [\"count\"]\n", path).unwrap_err();
        assert!(
            e.to_string()
                .contains("a court signs warrants and queries no one")
                || format!("{:#}", anyhow::Error::from(e)).contains("a court signs warrants")
        );
        let e = parse("[policy.warrant]\nmatch = true\n", path).unwrap_err();
        let e = format!("{:#}", anyhow::Error::from(e));
        assert!(e.contains("unknown field `match`"), "{e}");
    }

    #[test]
    fn generated_file_is_the_defaults() {
        let path = Path::new("node.toml");
        let parsed = parse(DEFAULT_NODE_TOML, path).unwrap();
        assert_eq!(parsed, (NodeConfig::default(), vec![]));
        // Uncommenting every line gives the same values.
        let uncommented: String = DEFAULT_NODE_TOML
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = ") || r.starts_with('['))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = parse(&uncommented, path).unwrap();
        assert_eq!(parsed, (NodeConfig::default(), vec![]));
    }

    #[test]
    fn policy_refusals() {
        let p = Policy::default();
        assert_eq!(
            p.admit(Role::Police, QueryMode::Matches, Some("A-1"))
                .unwrap_err()
                .to_string(),
            "mode matches is not allowed for role police"
        );
        assert_eq!(
            p.admit(Role::Police, QueryMode::Count, None),
            Err(Refusal::CaseRequired)
        );
        assert_eq!(
            p.admit(Role::Police, QueryMode::Count, Some("a\nb")),
            Err(Refusal::InvalidCase)
        );
        // A right-to-left override would make the case read differently in the audit log.
        assert_eq!(
            p.admit(Role::Police, QueryMode::Count, Some("2026-\u{202E}100")),
            Err(Refusal::InvalidCase)
        );
        assert!(
            p.admit(Role::Police, QueryMode::Count, Some("2026-刑-001"))
                .is_ok()
        );
        assert!(
            p.admit(Role::Institution, QueryMode::Count, Some("x"))
                .is_err()
        );
        let section = |key_type, count| Section { key_type, count };
        assert_eq!(
            p.check_size(&[section(KeyType::Mobile, 999)]),
            Err(Refusal::TooSmall {
                keys: 999,
                min: 1000
            })
        );
        assert!(p.check_size(&[section(KeyType::Mobile, 1000)]).is_ok());
        // The probe of one person padded with random numbers of another type.
        let padded = [
            section(KeyType::Mobile, 1000),
            section(KeyType::ResidentId, 1),
        ];
        let refusal = p.check_size(&padded).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::SectionsTooSmall {
                sections: vec![section(KeyType::ResidentId, 1)],
                min: 1000
            }
        );
        assert_eq!(
            refusal.to_string(),
            "resident_id: 1 key below the minimum of 1000 keys per key type"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        match parse("[policy]\nmin_rows = 3\n", Path::new("node.toml")) {
            Err(ConfigError::Syntax { source, .. }) => {
                assert!(source.to_string().contains("unknown field"), "{source}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn range_errors_read_as_before() {
        let err = parse(
            "[policy]\nmax_concurrent_queries = 0\n",
            Path::new("node.toml"),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "node.toml: policy.max_concurrent_queries must be between 1 and 1024"
        );
        let err = parse(
            "[policy]\nmin_query_keys = 9\nmax_query_keys = 8\n",
            Path::new("n"),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "n: policy.min_query_keys is above policy.max_query_keys"
        );
    }

    #[test]
    fn limits_out_of_range_are_refused_with_the_key_named() {
        let path = Path::new("node.toml");
        for (text, what) in [
            ("[query]\nmax_holder_keys = 0\n", "query.max_holder_keys"),
            (
                "[policy]\nmax_concurrent_queries = 0\n",
                "policy.max_concurrent_queries",
            ),
            ("[network]\ntimeout_secs = 0\n", "network.timeout_secs"),
        ] {
            match parse(text, path) {
                Err(ConfigError::Invalid {
                    problem: Problem::OutOfRange { key, .. },
                    ..
                }) => assert_eq!(key, what),
                other => panic!("{other:?}"),
            }
        }
        let (cfg, _) = parse("[query]\nmax_holder_keys = 1000\n", path).unwrap();
        assert_eq!(cfg.query.limits().max_holder_keys, 1000);
    }

    #[test]
    fn the_listen_address_is_checked_at_load() {
        let path = Path::new("bank/node.toml");
        let (cfg, _) = parse("[network]\nlisten = \"127.0.0.1:7443\"\n", path).unwrap();
        assert_eq!(cfg.network.listen, SocketAddr::from(([127, 0, 0, 1], 7443)));
        let err = parse("[network]\nlisten = \"bank:7788\"\n", path).unwrap_err();
        assert!(matches!(
            &err,
            ConfigError::Invalid {
                problem: Problem::Listen { value, .. },
                ..
            } if value == "bank:7788"
        ));
        assert_eq!(
            err.to_string(),
            "bank/node.toml: network.listen: invalid listen address \"bank:7788\" (invalid socket address syntax); use IP:PORT"
        );
    }

    #[test]
    fn the_old_row_names_are_read_with_a_warning_but_not_beside_the_new() {
        let path = Path::new("node.toml");
        let old = "[policy]\nmin_query_rows = 2\nmax_query_rows = 9\nrows_per_peer_per_day = 7\n";
        let (cfg, deprecated) = parse(old, path).unwrap();
        assert_eq!(
            (
                cfg.policy.min_query_keys,
                cfg.policy.max_query_keys,
                cfg.policy.keys_per_peer_per_day
            ),
            (2, 9, 7)
        );
        let old_names: Vec<&str> = deprecated.iter().map(|d| d.old).collect();
        assert_eq!(
            old_names,
            ["min_query_rows", "max_query_rows", "rows_per_peer_per_day"]
        );
        assert_eq!(
            deprecated[0].to_string(),
            "policy.min_query_rows is deprecated: call it policy.min_query_keys (it counts distinct keys)"
        );
        let new = "[policy]\nmin_query_keys = 2\nkeys_per_peer_per_day = 7\n";
        assert_eq!(parse(new, path).unwrap().1, vec![]);
        let both = "[policy]\nkeys_per_peer_per_day = 7\nrows_per_peer_per_day = 7\n";
        assert!(matches!(
            parse(both, path),
            Err(ConfigError::Invalid {
                problem: Problem::BothNames(PER_DAY),
                ..
            })
        ));
        assert_eq!(
            parse(both, path).unwrap_err().to_string(),
            "node.toml: policy.keys_per_peer_per_day and policy.rows_per_peer_per_day are the same setting; keep only policy.keys_per_peer_per_day"
        );
    }
}
