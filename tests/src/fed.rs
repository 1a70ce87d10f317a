//! A federation on loopback for tests: a CA, nodes in a temporary directory, servers running in
//! this process on ephemeral ports, stopped when the test ends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use suyuan_node::net::local::LocalServer;
use suyuan_node::node_dir::NodeDir;
use suyuan_node::node_dir::config::NODE_TOML;
use suyuan_node::node_dir::identity::{self, Role};

/// A CA and its nodes under one temporary directory.
pub struct Federation {
    /// Everything lives under here and is removed at drop.
    pub dir: tempfile::TempDir,
    /// The CA directory.
    pub ca: PathBuf,
}

impl Federation {
    /// A fresh CA.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ca = dir.path().join("ca");
        identity::ca_init(&ca, "test CA").expect("ca init");
        Federation { dir, ca }
    }

    /// A node of this federation with the given `node.toml`.
    pub fn node(&self, name: &str, role: Role, toml: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        identity::ca_issue(&self.ca, name, role, &out).expect("ca issue");
        std::fs::write(out.join(NODE_TOML), toml).expect("node.toml");
        out
    }

    /// A path inside the federation's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for Federation {
    fn default() -> Self {
        Self::new()
    }
}

/// Imports `list` as `node`'s new epoch, quietly.
pub fn import(node: &Path, list: &Path) {
    suyuan_node::lists::import::run(
        node,
        list,
        &suyuan_node::lists::InputOptions::default(),
        &mut suyuan_node::Silent,
    )
    .expect("import");
}

/// Runs a query from `police` against one peer (`NAME=HOST:PORT`); that peer's report.
pub async fn ask_one(
    police: &Path,
    input: &Path,
    peer: &str,
    mode: suyuan_protocol::psi::QueryMode,
    case: Option<&str>,
) -> suyuan_node::query::PeerReport {
    let report = suyuan_node::query::run(
        &suyuan_node::query::QueryOptions {
            case: case.map(str::to_string),
            ..suyuan_node::query::QueryOptions::new(
                police,
                input,
                vec![suyuan_node::query::parse_peer(peer).expect("a peer")],
                mode,
            )
        },
        suyuan_node::Silent,
    )
    .await
    .expect("the query runs");
    report.peers.into_iter().next().expect("one peer")
}

/// A QUIC client with `node`'s identity, for speaking the wire by hand.
pub fn client(node: &Path, idle: std::time::Duration) -> quinn::Endpoint {
    let id = NodeDir::open(node)
        .expect("a node directory")
        .identity()
        .expect("a node identity");
    let mut ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a socket");
    ep.set_default_client_config(
        suyuan_node::net::tls::client_config(&id, idle).expect("a client configuration"),
    );
    ep
}

/// A server running in this process.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    server: LocalServer,
}

impl Running {
    /// `NAME=127.0.0.1:PORT` for a query.
    pub fn peer(&self, name: &str) -> String {
        format!("{name}={}", self.addr)
    }

    /// Where it offers metrics, if its node.toml says `[metrics] listen`.
    pub fn metrics(&self) -> Option<SocketAddr> {
        self.server.metrics
    }

    /// The epoch it serves, as it changes.
    pub fn serving(&self) -> tokio::sync::watch::Receiver<Option<suyuan_protocol::psi::EpochId>> {
        self.server.serving.clone()
    }

    /// Stops it as SIGTERM would, and waits.
    pub async fn stop(self) {
        self.server.stop().await.expect("server stopped cleanly");
    }
}

/// Starts `node` on an ephemeral loopback port.
pub fn start(node: &Path) -> Running {
    let server = LocalServer::start(node).expect("a server on loopback");
    Running {
        addr: server.addr,
        server,
    }
}
