//! The audit log: one JSON line per event, each linked to the previous one by SHA-256, in
//! `audit.log`; `audit.head` records the count and the last hash so that a truncated or edited
//! tail is detected too. Writers take an exclusive lock on the log.
//!
//! This module does the file I/O (appending, locking, setting aside a torn tail); the chain
//! check itself is [`verify_chain`], on bytes, in [`chain`].

pub mod chain;

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use suyuan_protocol::psi::QueryMode;
use thiserror::Error;

use crate::clock;
use crate::node_dir::NodeDir;
use crate::node_dir::identity::Role;
pub use chain::{ChainError, build_chain, verify_chain};
use chain::{GENESIS, hash_line};

/// The log file in a node directory.
pub const AUDIT_LOG: &str = "audit.log";
/// The head record: the count and last hash committed.
pub const AUDIT_HEAD: &str = "audit.head";
/// Where the bytes of an append that never finished are set aside.
pub const AUDIT_TORN: &str = "audit.torn";
/// Longest `detail` kept in an entry, in characters.
pub const MAX_DETAIL_CHARS: usize = 512;

/// Which side of a query wrote the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// This node answered.
    Holder,
    /// This node asked.
    Querier,
}

/// How a query ended (or, for `admitted`, that it began and was charged to the budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Admitted by policy; its keys are charged to the peer's daily budget.
    Admitted,
    /// Refused by policy.
    Refused,
    /// Ran to the end.
    Completed,
    /// Stopped midway (peer vanished, stalled, misbehaved, or shutdown).
    Aborted,
    /// Never got going (connection or certificate failure).
    Failed,
}

/// What a caller records; [`AuditLog::append`] adds sequence, time and chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Which side wrote it.
    pub side: Side,
    /// The other node's name (from its certificate, or as dialled if none was seen).
    pub peer: String,
    /// The other node's role, from its certificate.
    pub peer_role: Option<Role>,
    /// SHA-256 of the other node's certificate.
    pub fingerprint: Option<String>,
    /// Case number.
    pub case: Option<String>,
    /// Mode (unknown when the peer never said, e.g. a failed TLS handshake).
    pub mode: Option<QueryMode>,
    /// Distinct keys in the query.
    pub query_keys: Option<u64>,
    /// Keys charged to the peer's budget (holder, `admitted` entries).
    pub charged: Option<u64>,
    /// The holder's epoch.
    pub epoch: Option<String>,
    /// Matched keys (querier, completed).
    pub matched_keys: Option<u64>,
    /// Matched rows (querier, completed, matches mode).
    pub matched_rows: Option<u64>,
    /// CPU time the holder spent evaluating (holder, completed), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_ms: Option<u64>,
    /// The outcome.
    pub outcome: Outcome,
    /// Why, for refusals, aborts and failures.
    pub detail: Option<String>,
    /// SHA-256 of the warrant sent with the query (hex), accepted or refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warrant: Option<String>,
    /// The query asked a dump this node published (`suyuan publish`), not its own list.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub published: bool,
}

impl Record {
    /// An event with only side, peer and outcome known; the caller fills in the rest.
    pub fn new(side: Side, peer: impl Into<String>, outcome: Outcome) -> Self {
        Record {
            side,
            peer: peer.into(),
            peer_role: None,
            fingerprint: None,
            case: None,
            mode: None,
            query_keys: None,
            charged: None,
            epoch: None,
            matched_keys: None,
            matched_rows: None,
            evaluate_ms: None,
            outcome,
            detail: None,
            warrant: None,
            published: false,
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 1, 2, 3, ...
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    /// Unix seconds (for budgets).
    pub unix: u64,
    /// SHA-256 (hex) of the previous line's bytes; zeros for the first.
    pub prev: String,
    /// The event.
    #[serde(flatten)]
    pub record: Record,
}

/// `audit.head`: how many entries were committed, and the hash of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Entries committed.
    pub count: u64,
    /// SHA-256 (hex) of the last committed line.
    pub hash: String,
}

impl Head {
    /// Reads the text of `audit.head`.
    pub fn parse(text: &[u8]) -> Result<Head, serde_json::Error> {
        serde_json::from_slice(text)
    }
}

/// What can go wrong reading or extending an audit log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A file of the log could not be opened, read, locked or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: "open", "read", "lock", "write", "create".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `audit.head` is not a head record.
    #[error("{} is unreadable", path.display())]
    HeadUnreadable {
        /// The head file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// An append found a tail that does not match the head: nothing was written.
    #[error(
        "the audit log {} is damaged; run `suyuan audit verify` (nothing was appended)",
        log.display()
    )]
    Damaged {
        /// The log.
        log: PathBuf,
    },
    /// The chain does not verify.
    #[error("{}", chain_text(.error, .log, .head))]
    Chain {
        /// The log.
        log: PathBuf,
        /// Its head record.
        head: PathBuf,
        /// The first break.
        error: ChainError,
    },
}

/// A chain error as the user reads it: the files are named where the break is a whole file.
fn chain_text(error: &ChainError, log: &Path, head: &Path) -> String {
    match error {
        ChainError::NotUtf8 { .. } => format!("{}: {error}", log.display()),
        ChainError::HeadMissing => format!("{} is missing", head.display()),
        ChainError::LogMissing => format!("{} is missing: every entry was deleted", log.display()),
        _ => error.to_string(),
    }
}

impl AuditError {
    /// The break in the chain, if that is what this is.
    pub fn chain(&self) -> Option<&ChainError> {
        match self {
            AuditError::Chain { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AuditError {
    let path = path.to_path_buf();
    move |source| AuditError::Io {
        action,
        path,
        source,
    }
}

/// A node's audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    log: PathBuf,
    head: PathBuf,
    torn: PathBuf,
}

impl AuditLog {
    /// The log of a node directory.
    pub fn of(node: &NodeDir) -> Self {
        AuditLog {
            log: node.audit_log(),
            head: node.audit_head(),
            torn: node.audit_torn(),
        }
    }

    fn read_head(&self) -> Result<Option<Head>, AuditError> {
        match fs::read(&self.head) {
            Ok(t) => Head::parse(&t)
                .map(Some)
                .map_err(|source| AuditError::HeadUnreadable {
                    path: self.head.clone(),
                    source,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &self.head)(e)),
        }
    }

    fn damaged(&self) -> AuditError {
        AuditError::Damaged {
            log: self.log.clone(),
        }
    }

    fn broken(&self, error: ChainError) -> AuditError {
        AuditError::Chain {
            log: self.log.clone(),
            head: self.head.clone(),
            error,
        }
    }

    /// Appends one entry. Refuses if the log's tail no longer matches its head record: a
    /// damaged log is not extended (and so not silently "repaired").
    pub fn append(&self, mut record: Record) -> Result<Entry, AuditError> {
        // Details can quote a peer; a peer must not be able to make entries large.
        if let Some(d) = &mut record.detail
            && d.chars().count() > MAX_DETAIL_CHARS
        {
            *d = d.chars().take(MAX_DETAIL_CHARS).chain(['…']).collect();
        }
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.log)
            .map_err(io("open", &self.log))?;
        f.lock().map_err(io("lock", &self.log))?;
        self.set_aside_torn_tail(&mut f)?;
        let (count, prev) = self.checked_tail(&mut f)?;
        let (entry, line) = chain::next_entry(count, prev, record, clock::now_unix())
            .map_err(|e| io("write", &self.log)(e.into()))?;
        f.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(io("write", &self.log))?;
        self.write_head(&Head {
            count: entry.seq,
            hash: hash_line(&line),
        })?;
        Ok(entry)
    }

    /// The last entry's number and hash, if they agree with the head record (which may lag
    /// the log by entries whose head update a crash cut off, but not lead or disagree).
    fn checked_tail(&self, f: &mut File) -> Result<(u64, String), AuditError> {
        let end = f.seek(SeekFrom::End(0)).map_err(io("read", &self.log))?;
        let (count, prev) = match last_line(f, end).map_err(io("read", &self.log))? {
            None => (0, GENESIS.to_string()),
            Some(line) => {
                let e: Entry = serde_json::from_str(&line).map_err(|_| self.damaged())?;
                (e.seq, hash_line(&line))
            }
        };
        match self.read_head()? {
            Some(h) if h.count > count || (h.count == count && h.hash != prev) => {
                Err(self.damaged())
            }
            None if count > 0 => Err(self.damaged()),
            _ => Ok((count, prev)),
        }
    }

    /// Replaces `audit.head` atomically.
    fn write_head(&self, head: &Head) -> Result<(), AuditError> {
        let tmp = self.head.with_extension("head.tmp");
        let text = serde_json::to_string(head).map_err(|e| io("write", &tmp)(e.into()))?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut h| {
                h.write_all(text.as_bytes())?;
                h.sync_all()
            })
            .map_err(io("write", &tmp))?;
        fs::rename(&tmp, &self.head).map_err(io("write", &self.head))
    }

    /// A crash inside an append leaves a partial last line that the head never counted: it was
    /// never committed. It is moved to `audit.torn` (kept for inspection) so the chain can go
    /// on. A partial line that the head does count is damage, and is left alone.
    fn set_aside_torn_tail(&self, f: &mut File) -> Result<(), AuditError> {
        let Some((start, tail)) = torn_tail(f).map_err(io("read", &self.log))? else {
            return Ok(());
        };
        let complete = match last_line(f, start).map_err(io("read", &self.log))? {
            None => (0, GENESIS.to_string()),
            Some(line) => match serde_json::from_str::<Entry>(&line) {
                Ok(e) => (e.seq, hash_line(&line)),
                // The last complete line is damaged: not a torn write of ours to repair.
                Err(_) => return Err(self.damaged()),
            },
        };
        let committed = match self.read_head()? {
            None => (0, GENESIS.to_string()),
            Some(h) => (h.count, h.hash),
        };
        // The same rule as `append`: the head may lag the log, but not lead or disagree.
        if !(committed.0 < complete.0 || complete == committed) {
            return Err(self.damaged());
        }
        self.keep_torn(&tail)?;
        f.set_len(start)
            .and_then(|()| f.sync_data())
            .map_err(io("write", &self.log))?;
        tracing::warn!(
            bytes = tail.len(),
            after_entry = complete.0,
            "set aside an audit entry that was never committed (torn write) in {}",
            self.torn.display()
        );
        Ok(())
    }

    fn keep_torn(&self, tail: &[u8]) -> Result<(), AuditError> {
        let mut torn = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.torn)
            .map_err(io("create", &self.torn))?;
        torn.write_all(tail)
            .and_then(|()| torn.write_all(b"\n"))
            .and_then(|()| torn.sync_all())
            .map_err(io("write", &self.torn))
    }

    /// Checks the chain from the first entry to the head record ([`verify_chain`]). The error
    /// names the first entry that was edited, deleted or moved.
    pub fn verify(&self) -> Result<Vec<Entry>, AuditError> {
        let f = match File::open(&self.log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.read_head()?.is_some_and(|h| h.count > 0) {
                    return Err(self.broken(ChainError::LogMissing));
                }
                return Ok(Vec::new());
            }
            Err(e) => return Err(io("read", &self.log)(e)),
        };
        // A shared lock, held until the head is read too: a writer in another process never
        // shows us half an append, nor a head newer than the log we read.
        f.lock_shared().map_err(io("lock", &self.log))?;
        let mut bytes = Vec::new();
        BufReader::new(&f)
            .read_to_end(&mut bytes)
            .map_err(io("read", &self.log))?;
        let head = self.read_head()?;
        drop(f);
        verify_chain(&bytes, head.as_ref()).map_err(|e| self.broken(e))
    }
}

/// Where the file's partial last line starts, and its bytes; `None` if it ends in a newline.
fn torn_tail(f: &mut File) -> std::io::Result<Option<(u64, Vec<u8>)>> {
    let len = f.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut back = 4096u64;
    loop {
        let start = len.saturating_sub(back);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        if buf.last() == Some(&b'\n') {
            return Ok(None);
        }
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(p) => return Ok(Some((start + p as u64 + 1, buf[p + 1..].to_vec()))),
            None if start == 0 => return Ok(Some((0, buf))),
            None => back *= 4,
        }
    }
}

/// The last non-empty line of the file's first `len` bytes, reading only their tail.
fn last_line(f: &mut File, len: u64) -> std::io::Result<Option<String>> {
    if len == 0 {
        return Ok(None);
    }
    let mut back = 4096u64;
    loop {
        let start = len.saturating_sub(back);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        Read::by_ref(f).take(len - start).read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let trimmed = text.trim_end_matches('\n');
        if let Some(pos) = trimmed.rfind('\n') {
            return Ok(Some(trimmed[pos + 1..].to_string()));
        }
        if start == 0 {
            return Ok(Some(trimmed.to_string()));
        }
        back *= 4;
    }
}

#[cfg(test)]
mod tests;
