//! The evidence of a query (`suyuan query --evidence FILE`): the query's blind and every
//! message each holder sent, as the querier digested them. With the dump, anyone holding the
//! federation CA certificate can replay each session (`suyuan verify --evidence`): the
//! querier's messages are rebuilt from the dump and the blind, both streams must hash to the
//! digests the holder signed, and the counts and rows that come out must be the report's. A
//! holder's signature cannot cover a count it never learns; this makes the count follow from
//! what it did sign.
//!
//! The file: [`MAGIC`], then records `kind (1) || length (u32 big-endian) || payload`: one
//! header (kind 1, JSON [`Header`]), then per answering holder its name (kind 2, UTF-8)
//! followed by its messages in the order received (kind 3, each the wire codec's encoding of a
//! `HolderMessage`, exactly as digested into the answer's `to_querier`).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use suyuan_protocol::codec::{self, MAX_FRAME_LEN};
use suyuan_protocol::psi::{
    Blinding, HolderMessage, QuerierLimits, QuerierMessage, Query, QueryMode, QueryResult,
};

use zeroize::Zeroizing;

use super::Transcript;

/// The first bytes of an evidence file.
pub const MAGIC: &[u8] = b"suyuan evidence v1\n";

const HEADER: u8 = 1;
const PEER: u8 = 2;
const MESSAGE: u8 = 3;
/// Longest header or name record.
const MAX_SMALL_RECORD: usize = 4096;

/// Why an evidence file cannot be written, read or replayed.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not an evidence file of this version, or damaged.
    #[error("{path}: {why} (at byte {offset})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where reading stopped.
        offset: u64,
        /// What was wrong.
        why: String,
    },
    /// The messages do not hash to what the holder signed: as `sent` (the evidence's holder
    /// messages) or as `received` (the querier's, rebuilt from the dump and the blind).
    #[error(
        "{peer}: the messages {} are not the ones {peer} signed as {stream}",
        what(stream)
    )]
    NotSigned {
        /// The holder.
        peer: String,
        /// `sent` or `received`.
        stream: &'static str,
    },
    /// A holder's messages do not make a complete session with this query.
    #[error("{peer}: message {index} of the evidence: {why}")]
    Replay {
        /// The holder.
        peer: String,
        /// 0-based, in the order received (0 is the accept).
        index: usize,
        /// What was wrong.
        why: String,
    },
}

fn what(stream: &str) -> &'static str {
    match stream {
        "sent" => "in the evidence",
        _ => "the dump and the evidence's blind give",
    }
}

/// The file's first record.
#[derive(Clone, Serialize, Deserialize)]
struct Header {
    /// Hex of the hello's query id, as every signed answer names it.
    query_id: String,
    mode: QueryMode,
    /// Hex of the query's secret ([`Query::blind_secret`]): the blind `a`, or the additive
    /// blinds' seed.
    blind: String,
    /// Written only for an additive query: a file without it is of a multiplicative one (as
    /// every file before additive blinding was).
    #[serde(default = "multiplicative", skip_serializing_if = "is_multiplicative")]
    blinding: Blinding,
}

fn multiplicative() -> Blinding {
    Blinding::Multiplicative
}

fn is_multiplicative(b: &Blinding) -> bool {
    *b == Blinding::Multiplicative
}

impl Drop for Header {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.blind);
    }
}

/// A query's evidence, in memory.
pub struct Evidence {
    /// The query id, hex.
    pub query_id: String,
    /// The query's mode.
    pub mode: QueryMode,
    /// How the query was blinded.
    pub blinding: Blinding,
    blind: Zeroizing<[u8; 32]>,
    /// Per answering holder, in the report's order: its name and its messages as received.
    pub peers: Vec<(String, Vec<Vec<u8>>)>,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("query_id", &self.query_id)
            .field("mode", &self.mode)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Evidence {
    /// The evidence of `query`, asked under `query_id` in `mode`.
    pub fn new(query: &Query, query_id: [u8; 16], mode: QueryMode) -> Self {
        Evidence {
            query_id: hex::encode(query_id),
            mode,
            blinding: query.blinding(),
            blind: query.blind_secret(),
            peers: Vec::new(),
        }
    }

    /// The secret to rebuild the query with ([`Query::reblind_as`], with [`Evidence::blinding`]).
    pub fn blind(&self) -> &[u8; 32] {
        &self.blind
    }

    /// The file's bytes (they hold the blind).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut *out);
        out
    }

    /// Writes the file, readable by its owner alone (it holds the blind), record by record:
    /// the messages are not copied again.
    pub fn write(&self, path: &Path) -> Result<(), EvidenceError> {
        let io = |source| EvidenceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut w = BufWriter::new(private_file(path).map_err(io)?);
        self.write_to(&mut w).map_err(io)?;
        w.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)
    }

    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        let header = Zeroizing::new(
            serde_json::to_vec(&Header {
                query_id: self.query_id.clone(),
                mode: self.mode,
                blind: hex::encode(*self.blind),
                blinding: self.blinding,
            })
            .unwrap_or_default(),
        );
        w.write_all(MAGIC)?;
        record(w, HEADER, &header)?;
        for (name, messages) in &self.peers {
            record(w, PEER, name.as_bytes())?;
            for m in messages {
                record(w, MESSAGE, m)?;
            }
        }
        w.flush()
    }

    /// Reads a file [`Evidence::write`] wrote; every record is checked for kind and length.
    pub fn read(path: &Path) -> Result<Self, EvidenceError> {
        let mut bytes = Zeroizing::new(Vec::new());
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|source| EvidenceError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Self::decode(path, &bytes)
    }

    /// [`Evidence::read`] of bytes already read (`path` names them in errors).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Self, EvidenceError> {
        let mut r = Reader { path, bytes, at: 0 };
        if !bytes.starts_with(MAGIC) {
            return Err(r.malformed("not a suyuan evidence file (version 1)"));
        }
        r.at = MAGIC.len();
        let Some((HEADER, header_bytes)) = r.next()? else {
            return Err(r.malformed("expected the header"));
        };
        if header_bytes.len() > MAX_SMALL_RECORD {
            return Err(r.malformed("the header is over 4096 bytes"));
        }
        let header: Header = serde_json::from_slice(header_bytes)
            .map_err(|e| r.malformed(&format!("the header: {e}")))?;
        // One encoding only, the one this version writes: a file cannot say one thing two ways.
        let again = Zeroizing::new(serde_json::to_vec(&header).unwrap_or_default());
        if again.as_slice() != header_bytes {
            return Err(r.malformed("the header is not as suyuan writes it"));
        }
        let lower = |h: &str| !h.bytes().any(|c| c.is_ascii_uppercase());
        let mut id = [0u8; 16];
        if hex::decode_to_slice(&header.query_id, &mut id).is_err() || !lower(&header.query_id) {
            return Err(r.malformed("the header's query id is not 16 bytes of lowercase hex"));
        }
        let mut blind = Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(&header.blind, &mut *blind).is_err() || !lower(&header.blind) {
            return Err(r.malformed("the header's blind is not 32 bytes of lowercase hex"));
        }
        let mut peers: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        while let Some((kind, payload)) = r.next()? {
            match kind {
                PEER if payload.len() <= MAX_SMALL_RECORD => {
                    let name = std::str::from_utf8(payload)
                        .map_err(|_| r.malformed("a holder's name is not UTF-8"))?;
                    peers.push((name.to_string(), Vec::new()));
                }
                MESSAGE if !peers.is_empty() => {
                    if let Some((_, messages)) = peers.last_mut() {
                        messages.push(payload.to_vec());
                    }
                }
                _ => return Err(r.malformed(&format!("unexpected record of kind {kind}"))),
            }
        }
        Ok(Evidence {
            query_id: header.query_id.clone(),
            mode: header.mode,
            blinding: header.blinding,
            blind,
            peers,
        })
    }
}

/// The digests a holder signed for a session (its answer's `to_holder` and `to_querier`).
#[derive(Debug, Clone, Copy)]
pub struct SignedDigests<'a> {
    /// Of the querier's messages, as the holder received them.
    pub to_holder: &'a str,
    /// Of the holder's messages, as it sent them.
    pub to_querier: &'a str,
}

/// Replays one holder's session: `messages` must hash to the `to_querier` digest the holder
/// signed; `query` (rebuilt from the dump and the blind) must send messages that hash to its
/// `to_holder`; then the querier's side runs on `messages` as received, and its result is
/// what the evidence proves.
pub fn replay(
    peer: &str,
    query: &Arc<Query>,
    mode: QueryMode,
    messages: &[Vec<u8>],
    signed: SignedDigests<'_>,
) -> Result<QueryResult, EvidenceError> {
    let fail = |index: usize, why: String| EvidenceError::Replay {
        peer: peer.to_string(),
        index,
        why,
    };
    let mut transcript = Transcript::default();
    for bytes in messages {
        transcript.to_querier_bytes(bytes);
    }
    if transcript.digests().1 != signed.to_querier {
        return Err(EvidenceError::NotSigned {
            peer: peer.to_string(),
            stream: "sent",
        });
    }
    let decode = |index: usize| -> Result<HolderMessage, EvidenceError> {
        let bytes = messages
            .get(index)
            .ok_or_else(|| fail(index, "missing: the evidence ends here".into()))?;
        codec::decode(bytes).map_err(|e| fail(index, e.to_string()))
    };
    let limits = QuerierLimits {
        max_holder_keys: u64::MAX,
    };
    let HolderMessage::Accept(accept) = decode(0)? else {
        return Err(fail(0, "the first message is not an accept".into()));
    };
    // Whether labels were asked is in the start the holder signed: an offer says they were;
    // without one, either start may be the signed one (a policy that shows none).
    let mut session = None;
    for labels in [accept.labels.is_some(), accept.labels.is_none()] {
        let mut t = transcript.clone();
        let (start, awaiting) = query.start_asking(mode, limits, labels);
        t.to_holder(&QuerierMessage::Start(start));
        let Ok(mut s) = awaiting.handle_accept(accept.clone()) else {
            continue;
        };
        for chunk in s.take_outgoing() {
            t.to_holder(&chunk);
        }
        if t.digests().0 == signed.to_holder {
            session = Some(s);
            break;
        }
    }
    let Some(mut session) = session else {
        // The accept itself may be what the session refuses: say so if it is.
        let (_, awaiting) = query.start_asking(mode, limits, accept.labels.is_some());
        awaiting
            .handle_accept(accept)
            .map_err(|e| fail(0, e.to_string()))?;
        return Err(EvidenceError::NotSigned {
            peer: peer.to_string(),
            stream: "received",
        });
    };
    for index in 1..messages.len() {
        session
            .handle(decode(index)?)
            .map_err(|e| fail(index, e.to_string()))?;
    }
    session
        .finish()
        .map_err(|e| fail(messages.len(), e.to_string()))
}

fn record(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&[kind])?;
    w.write_all(&(payload.len() as u32).to_be_bytes())?;
    w.write_all(payload)
}

pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing, wider file keeps its mode on open: narrow it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn malformed(&self, why: &str) -> EvidenceError {
        EvidenceError::Malformed {
            path: self.path.to_path_buf(),
            offset: self.at as u64,
            why: why.to_string(),
        }
    }

    /// The next record, `None` at the end of the file.
    fn next(&mut self) -> Result<Option<(u8, &'a [u8])>, EvidenceError> {
        let rest = &self.bytes[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        let Some((head, body)) = rest.split_at_checked(5) else {
            return Err(self.malformed("a record is cut short"));
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(self.malformed(&format!("a record of {len} bytes is over the limit")));
        }
        let Some(payload) = body.get(..len) else {
            return Err(self.malformed("a record is cut short"));
        };
        self.at += 5 + len;
        Ok(Some((head[0], payload)))
    }
}

#[cfg(test)]
mod tests {
    use suyuan_protocol::ident::{Key, KeyType};
    use suyuan_protocol::psi::{EpochBuilder, Holder, QueryKeys};

    use super::*;

    fn mobiles(from: u32, to: u32) -> Vec<Key> {
        (from..to)
            .map(|i| Key::parse(KeyType::Mobile, &format!("138{i:08}")).unwrap())
            .collect()
    }

    fn keys(from: u32, to: u32) -> QueryKeys {
        let mut q = QueryKeys::new();
        for k in mobiles(from, to) {
            q.add_row(&[k]);
        }
        q
    }

    /// A live session's holder messages, encoded, and its digests.
    fn session(holder: &Holder, query: &Arc<Query>, mode: QueryMode) -> (Vec<Vec<u8>>, Transcript) {
        let mut t = Transcript::recording();
        let (start, awaiting) = query.start(mode);
        t.to_holder(&QuerierMessage::Start(start.clone()));
        let (accept, mut hs) = holder.handle_start(start, &mut rand::rng()).unwrap();
        t.to_querier(&HolderMessage::Accept(accept.clone()));
        let mut qs = awaiting.handle_accept(accept).unwrap();
        for m in qs.take_outgoing() {
            t.to_holder(&m);
            hs.handle(m).unwrap();
        }
        while let Some(m) = hs.poll_message().unwrap() {
            t.to_querier(&m);
            qs.handle(m).unwrap();
        }
        (t.clone().received().unwrap(), t)
    }

    #[test]
    fn a_session_replays_to_its_digests_and_result_through_the_file() {
        let mut b = EpochBuilder::new(&mut rand::rng());
        b.add(&mobiles(0, 300));
        let holder = Holder::new(Arc::new(b.finish()));
        let dir = tempfile::tempdir().unwrap();
        for (mode, blinding) in [
            (QueryMode::Count, Blinding::Multiplicative),
            (QueryMode::Matches, Blinding::Multiplicative),
            (QueryMode::Matches, Blinding::Additive),
        ] {
            let query =
                Arc::new(Query::blind_as(&mut rand::rng(), keys(200, 500), blinding).unwrap());
            let (messages, live) = session(&holder, &query, mode);
            let mut ev = Evidence::new(&query, [7; 16], mode);
            ev.peers.push(("bank".into(), messages));
            let path = dir.path().join("e.bin");
            ev.write(&path).unwrap();
            // The header names an additive blinding, and only that one (older files have none).
            let bytes = std::fs::read(&path).unwrap();
            let named = bytes
                .windows(br#""blinding":"additive""#.len())
                .any(|w| w == br#""blinding":"additive""#);
            assert_eq!(named, blinding == Blinding::Additive);
            let read = Evidence::read(&path).unwrap();
            assert_eq!(read.blinding, blinding);
            let rebuilt =
                Arc::new(Query::reblind_as(read.blind(), keys(200, 500), read.blinding).unwrap());
            let (to_holder, to_querier) = live.digests();
            let signed = SignedDigests {
                to_holder: &to_holder,
                to_querier: &to_querier,
            };
            let r = replay("bank", &rebuilt, read.mode, &read.peers[0].1, signed).unwrap();
            assert_eq!(r.matched_keys[&KeyType::Mobile], 100);
            // Another dump under the same blind sends other messages.
            let other =
                Arc::new(Query::reblind_as(read.blind(), keys(201, 501), read.blinding).unwrap());
            let e = replay("bank", &other, read.mode, &read.peers[0].1, signed).unwrap_err();
            assert_eq!(
                e.to_string(),
                "bank: the messages the dump and the evidence's blind give are not the ones bank signed as received"
            );
            // Messages altered or left out.
            let mut fewer = read.peers[0].1.clone();
            fewer.pop();
            let e = replay("bank", &rebuilt, read.mode, &fewer, signed).unwrap_err();
            assert_eq!(
                e.to_string(),
                "bank: the messages in the evidence are not the ones bank signed as sent"
            );
        }
    }

    #[test]
    fn damaged_files_are_refused_with_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.bin");
        let query = Query::blind(&mut rand::rng(), keys(0, 10)).unwrap();
        let mut ev = Evidence::new(&query, [1; 16], QueryMode::Count);
        ev.peers.push(("bank".into(), vec![vec![1, 2, 3]]));
        ev.write(&path).unwrap();
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
        let e = Evidence::read(&path).unwrap_err().to_string();
        assert!(e.contains("a record is cut short"), "{e}");
        std::fs::write(&path, b"{}").unwrap();
        let e = Evidence::read(&path).unwrap_err().to_string();
        assert!(e.contains("not a suyuan evidence file"), "{e}");
        let mut t = Transcript::default();
        t.to_querier_bytes(&[1, 2, 3]);
        let (to_holder, to_querier) = t.digests();
        let signed = SignedDigests {
            to_holder: &to_holder,
            to_querier: &to_querier,
        };
        let e = replay(
            "bank",
            &Arc::new(query),
            QueryMode::Count,
            &ev.peers[0].1,
            signed,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("bank: message 0 of the evidence"), "{e}");
    }
}
