//! What is not the node itself but ships with it: the one-command demo, psi-local (both roles
//! in one process), synthetic data with ground truth, and the whole-path benchmarks.

pub mod bench;
pub mod canary;
pub mod demo;
mod disclosure;
pub mod psi_local;
pub mod synth;
