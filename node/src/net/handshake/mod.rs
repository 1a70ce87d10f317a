//! A query's opening as sans-IO state machines: frames and facts in, decisions out. The async
//! drivers (`net/server.rs`, `net/querier.rs`) only move frames, read the clock, take slots
//! and write audit entries.

pub mod holder;
pub mod querier;

#[cfg(test)]
mod tests;
