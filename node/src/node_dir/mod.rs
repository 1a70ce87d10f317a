//! A node's directory and everything kept in it: its identity (certificate and key), its
//! `node.toml`, the epoch store, the hash-chained audit log and the tag cache.

pub mod audit;
pub mod config;
pub mod identity;
pub mod store;
pub mod tag_cache;
