//! The node crate's integration tests, one binary: the `suyuan` binary as a user meets it,
//! and faults injected into running nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod cli;
mod common;
mod faults;
mod packaging;
