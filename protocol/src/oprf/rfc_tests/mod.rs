//! The RFC 9497 client, server and proofs are used by these tests alone (the PSI runs on the
//! batch primitives): every vector of Appendix A.1 byte for byte, and a cross-check against the
//! `voprf` crate.

mod rfc9497_vectors;
mod voprf_crosscheck;
