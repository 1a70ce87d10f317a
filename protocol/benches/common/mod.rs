//! Synthetic keys shared by the benches.

use suyuan_protocol::ident::{Key, KeyType};

/// `n` distinct valid mobiles starting at `13000000000 + offset`.
pub(crate) fn mobiles(n: usize, offset: u64) -> Vec<Key> {
    (0..n as u64)
        .map(|i| {
            Key::parse(
                KeyType::Mobile,
                &format!("1{:010}", 3_000_000_000 + offset + i),
            )
            .expect("a valid mobile")
        })
        .collect()
}
