//! `node.toml`: where a node listens, its timeouts, and the policy it applies to queries.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use suyuan_protocol::psi::{MAX_SET_SIZE, QuerierLimits, QueryMode};

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
# min_query_rows = 1000         # smaller queries are refused: they would probe individuals
# max_query_rows = 50000000
# rows_per_peer_per_day = 100000000
# require_case = true
# max_concurrent_queries = 4
# Sizes count the distinct keys a query declares: the only size a holder can verify.

# [policy.allow]                # which modes each role may use against this node
# police = ["count"]
# institution = []
# researcher = []

[query]
# tag_cache_mib = 1024          # holders' tag sets kept for repeated queries (0: keep none)
# max_holder_keys = 536870912   # a holder announcing more is refused (we keep 8-16 bytes per key)
"#;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// `[network]`.
    pub network: NetworkConfig,
    /// `[policy]`.
    pub policy: Policy,
    /// `[query]`.
    pub query: QueryConfig,
}

/// `[query]`: how this node asks others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Most MiB of holders' tag sets kept in `tag-cache/` for repeated queries.
    pub tag_cache_mib: u64,
    /// Most keys a holder may announce: its tags are held in memory during the query, ℓ bytes
    /// (8 to 16) each, so this bounds what a hostile or huge holder can make us allocate.
    pub max_holder_keys: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            tag_cache_mib: 1024,
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
}

/// `[network]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Listen address of `serve`.
    pub listen: String,
    /// Longest wait for a peer, in seconds.
    pub timeout_secs: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: "0.0.0.0:7788".to_string(),
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Queries with fewer distinct keys are refused.
    pub min_query_rows: u64,
    /// Queries with more distinct keys are refused.
    pub max_query_rows: u64,
    /// Keys one peer may query per UTC day.
    pub rows_per_peer_per_day: u64,
    /// Whether a case number is required.
    pub require_case: bool,
    /// Queries answered at once; more are refused as busy.
    pub max_concurrent_queries: usize,
    /// Modes each role may use.
    pub allow: BTreeMap<Role, Vec<QueryMode>>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_query_rows: 1000,
            max_query_rows: 50_000_000,
            rows_per_peer_per_day: 100_000_000,
            require_case: true,
            max_concurrent_queries: 4,
            allow: BTreeMap::from([
                (Role::Police, vec![QueryMode::Count]),
                (Role::Institution, vec![]),
                (Role::Researcher, vec![]),
            ]),
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
    pub fn check_size(&self, keys: u64) -> Result<(), Refusal> {
        if keys < self.min_query_rows {
            return Err(Refusal::TooSmall {
                keys,
                min: self.min_query_rows,
            });
        }
        if keys > self.max_query_rows {
            return Err(Refusal::TooLarge {
                keys,
                max: self.max_query_rows,
            });
        }
        Ok(())
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
            self.min_query_rows,
            self.max_query_rows,
            self.rows_per_peer_per_day,
            if self.require_case {
                "required"
            } else {
                "optional"
            },
            self.max_concurrent_queries,
            allow.join("; ")
        )
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

/// Reads `node.toml` from a node directory (defaults when absent).
pub fn load(dir: &Path) -> Result<NodeConfig> {
    let path = dir.join(NODE_TOML);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NodeConfig::default()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse(&text, &path)
}

/// Parses and checks the text of a `node.toml`; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<NodeConfig> {
    let cfg: NodeConfig = toml::from_str(text)
        .with_context(|| format!("{}: invalid configuration", path.display()))?;
    if cfg.policy.min_query_rows > cfg.policy.max_query_rows {
        bail!(
            "{}: policy.min_query_rows is above policy.max_query_rows",
            path.display()
        );
    }
    if !(1..=MAX_CONCURRENT_QUERIES).contains(&cfg.policy.max_concurrent_queries) {
        bail!(
            "{}: policy.max_concurrent_queries must be between 1 and {MAX_CONCURRENT_QUERIES}",
            path.display()
        );
    }
    if !(1..=MAX_SET_SIZE).contains(&cfg.query.max_holder_keys) {
        bail!(
            "{}: query.max_holder_keys must be between 1 and {MAX_SET_SIZE}",
            path.display()
        );
    }
    if cfg.network.timeout_secs == 0 || cfg.network.timeout_secs > 3600 {
        bail!(
            "{}: network.timeout_secs must be between 1 and 3600",
            path.display()
        );
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_file_is_the_defaults() {
        let parsed: NodeConfig = toml::from_str(DEFAULT_NODE_TOML).unwrap();
        assert_eq!(parsed, NodeConfig::default());
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
        let parsed: NodeConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(parsed, NodeConfig::default());
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
        assert_eq!(
            p.check_size(999),
            Err(Refusal::TooSmall {
                keys: 999,
                min: 1000
            })
        );
        assert!(p.check_size(1000).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<NodeConfig>("[policy]\nmin_rows = 3\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
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
            let err = parse(text, path).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("node.toml: {what} must be between")),
                "{err}"
            );
        }
        let cfg = parse("[query]\nmax_holder_keys = 1000\n", path).unwrap();
        assert_eq!(cfg.query.limits().max_holder_keys, 1000);
    }
}
