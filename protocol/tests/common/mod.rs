//! An in-memory two-party driver: every message is encoded and decoded, as over a network.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::sync::Arc;

use suyuan_protocol::codec;
use suyuan_protocol::psi::{
    Holder, HolderMessage, PsiError, QuerierMessage, Query, QueryMode, QueryResult,
};

fn cross<T: serde::Serialize + serde::de::DeserializeOwned>(m: &T) -> T {
    codec::decode(&codec::encode(m).unwrap()).unwrap()
}

/// Runs one query against one holder to completion.
pub(crate) fn run(
    holder: &Holder,
    query: &Arc<Query>,
    mode: QueryMode,
) -> Result<QueryResult, PsiError> {
    let (start, awaiting) = query.start(mode);
    let mut session = holder.handle_start(cross::<QuerierMessage>(&start))?;
    let accept = session.poll_message().unwrap();
    let mut querier = awaiting.handle_accept(cross::<HolderMessage>(&accept))?;
    // Interleave as a pipelined transport would: one chunk out, whatever is ready back.
    loop {
        let mut progressed = false;
        if let Some(m) = querier.poll_message() {
            session.handle(cross(&m))?;
            progressed = true;
        }
        while let Some(m) = session.poll_message() {
            querier.handle(cross(&m))?;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    assert!(session.is_finished());
    assert!(querier.is_complete());
    querier.finish()
}
