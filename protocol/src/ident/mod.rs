//! Typed, canonical identifier keys derived from leaked personal records.
//!
//! Every raw value goes through Unicode NFKC folding and a per-type
//! canonicalisation, so that formatting variants of the same identifier
//! (full-width digits, `+86`, separators, lower-case `x`) produce the same
//! [`Key`] and therefore the same OPRF input.

mod bank_card;
mod columns;
mod date;
mod email;
mod field;
mod key_type;
mod mobile;
mod name;
mod normalize;
mod quality;
mod record;
mod rejection;
mod resident_id;
mod selection;

#[cfg(test)]
mod testutil;

pub use bank_card::canonical_bank_card;
pub use columns::{ColumnError, ColumnMap};
pub use date::{canonical_birthdate, canonical_month};
pub use email::{MAX_EMAIL_BYTES, canonical_email};
pub use field::{Field, UnknownField};
pub use key_type::{Key, KeyType, UnknownKeyType};
pub use mobile::canonical_mobile;
pub use name::{MAX_NAME_BYTES, canonical_name};
pub use quality::Quality;
pub use record::{MAX_VALUES_PER_CELL, RecordKeys, extract};
pub use rejection::Rejection;
pub use resident_id::canonical_resident_id;
pub use selection::KeySelection;
