//! suyuan-node: the driver around `suyuan-protocol`. It owns what the protocol crate must not:
//! files, terminals, threads and (later) sockets. The `suyuan` binary is a thin CLI over it.

pub mod input;
pub mod psi_local;
