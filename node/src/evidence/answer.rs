//! The signed answer: when a session ends, the holder signs what it did — for whom, under which
//! case and query, in which mode, under which epoch statement, the sizes on both sides, and a
//! digest of every PSI message each way — and sends it as the last frame. The querier checks it
//! against its own view of the same session and keeps it in the report, where a prosecutor or a
//! court can check it with the federation CA certificate alone (`suyuan verify`).
//!
//! The holder does not learn the counts (that is the point of the PSI), so it cannot sign them.
//! The counts are the querier's, signed by the querier in the report; the digests tie them to
//! the exact messages the holder sent, from which anyone given the querier's blind could
//! recompute them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use suyuan_protocol::codec;
use suyuan_protocol::ident::KeyType;
use suyuan_protocol::psi::{HolderMessage, QuerierMessage, QueryMode};

/// The context string every answer is signed under.
pub const ANSWER_CONTEXT: &str = "suyuan signed answer v1";

/// What a holder signs at the end of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The holder's node name.
    pub node: String,
    /// The querier's node name and certificate fingerprint, from TLS.
    pub querier: String,
    /// SHA-256 of the querier's certificate, hex.
    pub querier_fingerprint: String,
    /// The case, as the hello gave it.
    pub case: Option<String>,
    /// The querier's id for this query (one per `suyuan query` run), hex.
    pub query_id: String,
    /// The mode.
    pub mode: QueryMode,
    /// SHA-256 of the epoch statement's signed body, hex.
    pub statement: String,
    /// The epoch, hex.
    pub epoch: String,
    /// ℓ.
    pub tag_len: u8,
    /// The query's distinct keys per type.
    pub query_keys: BTreeMap<KeyType, u64>,
    /// The holder's keys per queried type.
    pub holder_keys: BTreeMap<KeyType, u64>,
    /// SHA-256 of every PSI message the querier sent (encoded, in order), hex.
    pub to_holder: String,
    /// SHA-256 of every PSI message the holder sent (encoded, in order), hex.
    pub to_querier: String,
    /// Unix time the session ended.
    pub time: u64,
    /// SHA-256 (hex) of the warrant the query was admitted on, if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warrant: Option<String>,
    /// The query asked a dump this node published, not its own list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub published: bool,
}

/// The digests of a session's two message streams, kept by each side as it goes.
#[derive(Clone, Default)]
pub struct Transcript {
    to_holder: Sha256,
    to_querier: Sha256,
    /// The holder's messages as digested, when kept for an evidence file.
    received: Option<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transcript(..)")
    }
}

fn feed<T: Serialize>(h: &mut Sha256, m: &T) -> Vec<u8> {
    // A message that was sent or received encodes; the length prefix keeps messages apart.
    let bytes = codec::encode(m).unwrap_or_default();
    feed_bytes(h, &bytes);
    bytes
}

fn feed_bytes(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

impl Transcript {
    /// A transcript that also keeps every holder message it digests ([`Transcript::received`]).
    pub fn recording() -> Self {
        Transcript {
            received: Some(Vec::new()),
            ..Transcript::default()
        }
    }

    /// A querier's message, as sent or received.
    pub fn to_holder(&mut self, m: &QuerierMessage) {
        feed(&mut self.to_holder, m);
    }

    /// A holder's message, as sent or received.
    pub fn to_querier(&mut self, m: &HolderMessage) {
        let bytes = feed(&mut self.to_querier, m);
        if let Some(kept) = &mut self.received {
            kept.push(bytes);
        }
    }

    /// A holder's message as its encoding (an evidence file's replay: the bytes kept, not a
    /// re-encoding of what they decode to).
    pub fn to_querier_bytes(&mut self, bytes: &[u8]) {
        feed_bytes(&mut self.to_querier, bytes);
    }

    /// The holder's messages digested so far, if this transcript keeps them.
    pub fn received(self) -> Option<Vec<Vec<u8>>> {
        self.received
    }

    /// The two digests, hex: (to holder, to querier).
    pub fn digests(&self) -> (String, String) {
        (
            hex::encode(self.to_holder.clone().finalize()),
            hex::encode(self.to_querier.clone().finalize()),
        )
    }
}

/// SHA-256 of a signed document's body, hex: how an answer names its statement.
pub fn body_digest(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}
