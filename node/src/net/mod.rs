//! The network: the only module that uses quinn, rustls and sockets. Frames on a query stream,
//! TLS identities against the federation CA, UDP sockets, the holder's server and the
//! querier's connection.

pub mod budget;
pub mod cases;
pub mod count_disk;
pub mod count_pool;
pub mod failure;
pub mod frame;
pub mod handshake;
pub mod local;
pub mod metrics;
pub(crate) mod querier;
pub mod server;
mod tag_spill;
pub mod tls;
mod tls_watch;
pub mod udp;
