//! The protocol crate's integration tests, one binary: RFC 9497 vectors, golden sessions,
//! PSI sessions against plain set computations, codec round trips, the voprf cross-check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod codec_roundtrip;
mod golden_session;
mod psi_sessions;
mod rfc9497_vectors;
mod tag_set;
mod voprf_crosscheck;
