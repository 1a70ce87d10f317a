//! The cases a node has published (`crate::node_dir::published`), as `serve` answers them:
//! each loaded on first use and kept while its store is unchanged; refused once closed or
//! expired, and destroyed by the sweep `serve` runs every second.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use suyuan_protocol::psi::Epoch;
use tokio::sync::Mutex;

use crate::evidence::Signed;
use crate::net::frame::Refusal;
use crate::node_dir::NodeDir;
use crate::node_dir::published;
use crate::node_dir::store::Stamp;

struct LoadedCase {
    stamp: Option<Stamp>,
    epoch: Arc<Epoch>,
    statement: Option<Signed>,
}

/// A published case's epoch for one querier, or why it is not served.
pub enum CaseLookup {
    /// Served: its epoch and signed statement.
    Served(Arc<Epoch>, Option<Signed>),
    /// Not for this querier.
    Refused(Refusal),
}

/// The published cases of a serving node.
pub struct PublishedCases {
    node: NodeDir,
    loaded: Mutex<HashMap<String, LoadedCase>>,
}

impl PublishedCases {
    /// The cases of `node`.
    pub fn new(node: NodeDir) -> Self {
        PublishedCases {
            node,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The epoch of `case` for the member `peer` at `now`: refused if nothing is published
    /// under it (or it expired), or the case names its members and not this one.
    pub async fn epoch(&self, case: &str, peer: &str, now: u64) -> Result<CaseLookup> {
        let Some((store, meta)) = published::open(&self.node, case, now)? else {
            self.loaded.lock().await.remove(case);
            return Ok(CaseLookup::Refused(Refusal::NoSuchCase(case.to_string())));
        };
        if !meta.allows(peer) {
            return Ok(CaseLookup::Refused(Refusal::NotNamedInCase(
                case.to_string(),
            )));
        }
        let mut loaded = self.loaded.lock().await;
        let stamp = store.stamp();
        if let Some(l) = loaded.get(case)
            && l.stamp == stamp
        {
            return Ok(CaseLookup::Served(
                Arc::clone(&l.epoch),
                l.statement.clone(),
            ));
        }
        let read = tokio::task::spawn_blocking(move || store.read()).await??;
        let Some((epoch, meta)) = read else {
            return Ok(CaseLookup::Refused(Refusal::NoSuchCase(case.to_string())));
        };
        let l = LoadedCase {
            stamp,
            epoch: Arc::new(epoch),
            statement: meta.statement,
        };
        let served = CaseLookup::Served(Arc::clone(&l.epoch), l.statement.clone());
        loaded.insert(case.to_string(), l);
        Ok(served)
    }

    /// Destroys the cases past their expiry and forgets them (queries running on one keep
    /// their own copy of its epoch to the end).
    pub async fn sweep(&self, now: u64) -> Vec<String> {
        let node = self.node.clone();
        let closed = tokio::task::spawn_blocking(move || published::sweep(&node, now))
            .await
            .unwrap_or_default();
        if !closed.is_empty() {
            let mut loaded = self.loaded.lock().await;
            for c in &closed {
                loaded.remove(c);
                tracing::info!(case = %c, "published case expired: destroyed");
            }
        }
        closed
    }
}
