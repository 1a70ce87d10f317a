//! What a node signs so that others can hold it to its word: the epoch statement of each import
//! (which key, which sizes, which tags), checked by every querier against what it receives; the
//! answer a holder signs at the end of each session; and the querier's signature on its report.
//! Signatures use the node's certificate key (ECDSA P-256), so anyone holding the federation CA
//! certificate can check them, long after the query.

pub mod answer;
pub mod bundle;
pub mod directory;
pub mod signature;
pub mod statement;
pub mod warrant;

pub use answer::{ANSWER_CONTEXT, Answer, Transcript};
pub use bundle::{Evidence, EvidenceError};
pub use signature::{SignatureError, Signed};
pub use statement::{EpochStatement, StatementMismatch};
