//! The spec's formulas (docs/protocol.md §3), written again from the text for tests that play
//! a party by hand.

use curve25519_dalek::ristretto::RistrettoPoint;
use sha2::{Digest, Sha512};
use suyuan_protocol::ident::Key;
use suyuan_protocol::oprf::{Mode, hash_to_group};

/// The mode whose `HashToGroup` maps keys.
pub(crate) const HASH_MODE: Mode = Mode::Voprf;

/// `type || 0x00 || value`, in two parts.
pub(crate) fn input(k: &Key) -> [Vec<u8>; 2] {
    let mut prefix = k.key_type().as_str().as_bytes().to_vec();
    prefix.push(0);
    [prefix, k.value().as_bytes().to_vec()]
}

/// The tag of an unblinded element in a count session.
pub(crate) fn count_tag(u: &[u8; 32]) -> [u8; 16] {
    let d = Sha512::new()
        .chain_update(b"suyuan-count-tag-v2")
        .chain_update(u)
        .finalize();
    d[..16].try_into().unwrap()
}

/// `HashToGroup(input)`.
pub(crate) fn hash(k: &Key) -> RistrettoPoint {
    let [prefix, value] = input(k);
    hash_to_group(HASH_MODE, &[&prefix, &value])
}
