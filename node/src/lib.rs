//! suyuan-node: the driver around `suyuan-protocol`. It owns what the protocol crate must not:
//! files, sockets, threads, clocks. The `suyuan` binary is a thin CLI over it.

pub mod audit;
pub mod bench;
pub mod bench_load;
pub mod clock;
pub mod config;
pub mod demo;
pub mod identity;
pub mod import;
pub mod input;
pub mod progress;
pub mod psi_local;
pub mod query;
pub mod report;
pub mod serve;
pub mod store;
pub mod synth;
pub mod table;
pub mod tag_cache;
pub mod tls;
pub mod udp;
pub mod wire;
