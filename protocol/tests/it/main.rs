//! The protocol crate's integration tests, one binary: golden sessions, PSI sessions against
//! plain set computations, codec round trips, kept tag sets. (The RFC 9497 vectors and the
//! voprf cross-check are unit tests in `src/oprf/tests/`: they use test-only code.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod codec_roundtrip;
mod golden_session;
mod label_privacy;
mod labels;
mod linkage;
mod lying_holder;
mod psi_sessions;
mod spec;
mod tag_set;
