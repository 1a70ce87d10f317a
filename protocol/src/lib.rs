//! # suyuan-protocol
//!
//! The sans-IO core of suyuan (溯源): private set intersection for tracing leaked personal
//! records. A police unit holding a seized dump learns how much it overlaps an institution's
//! customer list without either side handing over its list.
//!
//! - [`ident`]: typed identifier keys (mobile, resident ID, bank card, email, name composites),
//!   canonicalised so formatting variants match, with typed rejection reasons.
//! - [`oprf`]: RFC 9497 OPRF and VOPRF on ristretto255 with SHA-512.
//! - [`psi`]: the holder's epoch and the two sessions (holder and querier).
//! - [`codec`]: the bounded wire encoding of the messages.
//! - `lanes8` (x86-64): eight ristretto255 points per instruction with AVX-512 IFMA, taken by
//!   the batch paths of [`oprf`] where the CPU has it; the only module with `unsafe`.
//!
//! This crate owns no I/O: no sockets, files, threads of its own (batch work runs on rayon's
//! global pool), clocks or global randomness. Bytes and an RNG go in; messages and results come
//! out. The `suyuan` binary (crate `suyuan-node`) is one driver; a test harness is another.
//!
//! ## A whole two-party run
//!
//! ```
//! use std::sync::Arc;
//! use suyuan_protocol::codec;
//! use suyuan_protocol::ident::{Key, KeyType};
//! use suyuan_protocol::psi::{EpochBuilder, Holder, QuerierMessage, Query,
//!     QueryKeys, QueryMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = rand::rng();
//! let mobile = |s: &str| Key::parse(KeyType::Mobile, s);
//!
//! // The holder (a bank) tags its customers once per epoch.
//! let mut epoch = EpochBuilder::new(&mut rng);
//! epoch.add(&[mobile("13800138000")?, mobile("13912345678")?]);
//! let holder = Holder::new(Arc::new(epoch.finish()));
//!
//! // The querier (police) blinds its dump once; a row may carry several keys.
//! let mut dump = QueryKeys::new();
//! dump.add_row(&[mobile("+86 138-0013-8000")?]); // row 0: the same number, written differently
//! dump.add_row(&[mobile("15000000000")?]);       // row 1: not a customer
//! let query = Arc::new(Query::blind(&mut rng, dump)?);
//!
//! // Every message crosses as bytes, as it would over the network.
//! let (start, awaiting) = query.start(QueryMode::Matches);
//! let (accept, mut session) = holder.handle_start(codec::decode(&codec::encode(&start)?)?, &mut rng)?;
//! let mut querier = awaiting.handle_accept(codec::decode(&codec::encode(&accept)?)?)?;
//! while let Some(m) = querier.poll_message() {
//!     session.handle(codec::decode::<QuerierMessage>(&codec::encode(&m)?)?)?;
//! }
//! while let Some(m) = session.poll_message()? {
//!     querier.handle(codec::decode(&codec::encode(&m)?)?)?;
//! }
//! let result = querier.finish()?;
//! assert_eq!(result.matched_keys[&KeyType::Mobile], 1);
//! assert_eq!(result.matched_rows, Some(vec![0]));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
// `unsafe_code` is denied workspace-wide; `lanes8` alone allows it (std::arch intrinsics).

pub mod codec;
pub mod ident;
#[cfg(target_arch = "x86_64")]
pub mod lanes8;
pub mod oprf;
pub mod psi;
