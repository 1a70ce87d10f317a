//! A holder's server in this process on an ephemeral loopback port: what the demo and the
//! end-to-end tests run, stopped as SIGTERM would stop `suyuan serve`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use suyuan_protocol::psi::EpochId;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::server::Server;

/// A running in-process server; dropping it aborts the server task.
#[derive(Debug)]
pub struct LocalServer {
    /// Where it listens (127.0.0.1, a port the system chose).
    pub addr: SocketAddr,
    /// The epoch it serves, as it changes.
    pub serving: watch::Receiver<Option<EpochId>>,
    /// Where it offers metrics (`[metrics] listen`), if it does.
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl LocalServer {
    /// Binds `node`'s server on 127.0.0.1:0 and spawns it on the current tokio runtime.
    pub fn start(node: &Path) -> Result<Self> {
        let server = Server::bind(node, Some(SocketAddr::from(([127, 0, 0, 1], 0))))?;
        let addr = server.local_addr()?;
        let serving = server.serving();
        let metrics = server.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Ok(LocalServer {
            addr,
            serving,
            metrics,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// Stops accepting, lets open exchanges finish, and returns how the server ended.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => t.await.context("a server task failed")?,
            None => Ok(()),
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
