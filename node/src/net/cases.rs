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
    /// A sweep is running (they are not stacked when one takes longer than a second).
    sweeping: std::sync::atomic::AtomicBool,
}

impl PublishedCases {
    /// The cases of `node`.
    pub fn new(node: NodeDir) -> Self {
        PublishedCases {
            node,
            loaded: Mutex::new(HashMap::new()),
            sweeping: std::sync::atomic::AtomicBool::new(false),
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

    /// Destroys the cases past their expiry, and forgets every loaded case that is no longer
    /// published as loaded (expired, closed by `publish --close`, published anew), so that its
    /// key leaves memory (queries running on one keep their own copy of its epoch to the end).
    /// One sweep at a time; a call while one runs returns at once.
    pub async fn sweep(&self, now: u64) {
        use std::sync::atomic::Ordering;
        if self.sweeping.swap(true, Ordering::SeqCst) {
            return;
        }
        let node = self.node.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let closed = published::sweep(&node, now);
            let current: HashMap<String, String> = published::list(&node)
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.expires > now)
                .map(|m| (m.case, m.epoch))
                .collect();
            (closed, current)
        })
        .await;
        if let Ok((closed, current)) = swept {
            for c in &closed {
                tracing::info!(case = %c, "published case expired: destroyed");
            }
            self.loaded
                .lock()
                .await
                .retain(|case, l| current.get(case) == Some(&l.epoch.id().to_string()));
        }
        self.sweeping.store(false, Ordering::SeqCst);
    }
}
