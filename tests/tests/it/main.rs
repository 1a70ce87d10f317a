//! Whole federations over real QUIC on 127.0.0.1, one binary: ground truth, refusals, hostile
//! and vanishing peers, faults, load, probing, the demo, the generator and fuzzed inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod answers;
mod demo;
mod directory;
mod disconnects;
mod evidence;
mod federation;
mod fuzz_inputs;
mod generator;
mod labels;
mod load;
mod metrics;
mod probing;
mod psi_local;
mod published;
mod refusals;
mod revocation;
mod robustness;
mod tag_cache;
mod warrants;
