//! suyuan-node: the driver around `suyuan-protocol`. It owns what the protocol crate must not:
//! files, sockets, threads, clocks. The `suyuan` binary is a thin CLI over it; only the CLI
//! prints, everything here returns values or logs through `tracing`.
//!
//! The layers, from the bottom (`docs/architecture.md`):
//! - [`support`] ([`clock`], [`text`]): wall-clock and display helpers every layer may use;
//! - [`node_dir`]: a node's directory: identity, `node.toml`, the epoch store, the audit log,
//!   the tag cache;
//! - [`evidence`]: what a node signs (the epoch statement) and how others check it;
//! - [`lists`]: reading customer lists and dumps, and importing a list as a new epoch;
//! - [`net`]: the only users of quinn, rustls and sockets: frames, TLS, the handshakes, the
//!   server and the querier's connection;
//! - [`query`]: the querier's job and its report;
//! - [`tools`]: what is not the node itself: the demo, psi-local, synthetic data, benchmarks.
#![forbid(unsafe_code)] // the workspace denies it; only protocol/src/lanes8 may allow it

pub mod evidence;
pub mod lists;
pub mod net;
pub mod node_dir;
pub mod query;
pub mod support;
pub mod tools;

pub use support::{clock, text};

/// Where a long job reports how far it has got. The CLI draws it; library callers and tests
/// pass [`Silent`].
pub trait Progress: Send {
    /// Begins a step of `total` units, if known.
    fn start(&mut self, label: &str, total: Option<u64>);
    /// Names the unit counted from now on (default "rows").
    fn unit(&mut self, unit: &'static str);
    /// Sets the units done in this step.
    fn set(&mut self, done: u64);
    /// Ends the step.
    fn finish(&mut self);
    /// A line of narration between steps (the demo's "1/6 ..." lines).
    fn say(&mut self, line: &str);
}

/// Progress that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: Option<u64>) {}
    fn unit(&mut self, _: &'static str) {}
    fn set(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn say(&mut self, _: &str) {}
}
