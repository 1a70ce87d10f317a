//! Both parties in one process: the simplest driver, for tools, tests and benchmarks.

use std::sync::Arc;

use rand_core::CryptoRng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Holder, PsiError, Query, QueryMode, QueryResult};
use crate::codec;

/// Runs `query` against `holder` to completion in this process. Every message is encoded and
/// decoded with [`crate::codec`] on the way, as over a network, and the two directions are
/// interleaved as a pipelined transport would interleave them: one blinded chunk out, then
/// whatever the holder has ready.
pub fn run_local(
    holder: &Holder,
    query: &Arc<Query>,
    mode: QueryMode,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<QueryResult, PsiError> {
    fn wire<T: Serialize + DeserializeOwned>(m: &T) -> Result<T, PsiError> {
        Ok(codec::decode(&codec::encode(m)?)?)
    }
    let (start, awaiting) = query.start(mode);
    let (accept, mut session) = holder.handle_start(wire(&start)?, rng)?;
    let mut querier = awaiting.handle_accept(wire(&accept)?)?;
    loop {
        let mut progressed = false;
        if let Some(m) = querier.poll_message() {
            session.handle(wire(&m)?)?;
            progressed = true;
        }
        while let Some(m) = session.poll_message()? {
            querier.handle(wire(&m)?)?;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    querier.finish()
}
