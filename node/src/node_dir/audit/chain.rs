//! The chain check of the audit log, without I/O: the log's bytes and its head record in,
//! the entries or the first break in the chain out.

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{Entry, Head, Record};
use crate::clock;

/// The `prev` of the first entry.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 (hex) of one line of the log, without its newline.
pub(super) fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// The first break found in an audit chain, naming the entries (numbered from 1) and the
/// lines involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A line that is not UTF-8.
    #[error("line {line} is not UTF-8")]
    NotUtf8 {
        /// The line, from 1.
        line: u64,
    },
    /// A line that is not an entry.
    #[error("entry {line} (line {line}) is corrupt or was edited")]
    Corrupt {
        /// The line, from 1.
        line: u64,
    },
    /// An entry found at another line than its own.
    #[error("entry {entry} was moved: it appears at line {found} instead of line {entry}")]
    Moved {
        /// The entry.
        entry: u64,
        /// Where it is.
        found: u64,
    },
    /// An entry missing from the middle of the log.
    #[error("entry {entry} was deleted (the next line is entry {next})")]
    Deleted {
        /// The missing entry.
        entry: u64,
        /// The entry found in its place.
        next: u64,
    },
    /// An entry that appears a second time.
    #[error("entry {entry} appears again at line {line} (duplicated)")]
    Duplicated {
        /// The entry.
        entry: u64,
        /// Where it appears again.
        line: u64,
    },
    /// An entry the next one no longer links to.
    #[error("entry {entry} was edited (entry {} no longer links to it)", entry + 1)]
    Edited {
        /// The edited entry.
        entry: u64,
    },
    /// An entry the head counts that ends before its newline.
    #[error(
        "entry {entry} was cut off mid-entry (the log ends inside it; the head records {committed} entries)"
    )]
    CutOff {
        /// The cut entry.
        entry: u64,
        /// Entries the head records.
        committed: u64,
    },
    /// Entries the head counts that are not in the log.
    #[error("entries {first}..={last} were deleted (the log ends at entry {})", first - 1)]
    TailDeleted {
        /// The first missing entry.
        first: u64,
        /// The last one the head counts.
        last: u64,
    },
    /// The last entry the head counts no longer has the hash it records.
    #[error("entry {entry} was edited (it no longer matches the recorded head)")]
    HeadMismatch {
        /// The entry the head points at.
        entry: u64,
    },
    /// Entries without a head record.
    #[error("the head record is missing")]
    HeadMissing,
    /// A head record with entries, and no log.
    #[error("the log is missing: every entry was deleted")]
    LogMissing,
}

/// The entry that follows `count` entries, the last of which hashed to `prev`, and its line.
pub(super) fn next_entry(
    count: u64,
    prev: String,
    record: Record,
    unix: u64,
) -> Result<(Entry, String), serde_json::Error> {
    let entry = Entry {
        seq: count + 1,
        time: clock::rfc3339(unix),
        unix,
        prev,
        record,
    };
    let line = serde_json::to_string(&entry)?;
    Ok((entry, line))
}

/// An intact log of these records (each with its Unix time), and its head: the bytes that
/// appending them one by one writes.
pub fn build_chain(records: impl IntoIterator<Item = (Record, u64)>) -> (Vec<u8>, Head) {
    let mut log = Vec::new();
    let mut head = Head {
        count: 0,
        hash: GENESIS.to_string(),
    };
    for (record, unix) in records {
        // Plain strings and numbers: serialising does not fail.
        let Ok((entry, line)) = next_entry(head.count, head.hash.clone(), record, unix) else {
            continue;
        };
        log.extend_from_slice(line.as_bytes());
        log.push(b'\n');
        head = Head {
            count: entry.seq,
            hash: hash_line(&line),
        };
    }
    (log, head)
}

/// Checks the chain from the first entry to the head record, and returns the entries.
/// Bytes after the last newline are an append that never finished (a torn write): ignored
/// unless the head counts them. The first break found is the error.
pub fn verify_chain(log: &[u8], head: Option<&Head>) -> Result<Vec<Entry>, ChainError> {
    let complete = log.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let torn = complete < log.len();
    let lines = parse_lines(&log[..complete])?;
    let last = check_links(&lines)?;
    let entries: Vec<Entry> = lines.into_iter().map(|(e, _)| e).collect();
    check_head(&entries, &last, torn, head)?;
    Ok(entries)
}

/// Every complete line as an entry, with the line's hash.
fn parse_lines(complete: &[u8]) -> Result<Vec<(Entry, String)>, ChainError> {
    let Some(body) = complete.strip_suffix(b"\n") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let n = i as u64 + 1;
        let line = std::str::from_utf8(line).map_err(|_| ChainError::NotUtf8 { line: n })?;
        let entry: Entry =
            serde_json::from_str(line).map_err(|_| ChainError::Corrupt { line: n })?;
        out.push((entry, hash_line(line)));
    }
    Ok(out)
}

/// Each entry in its place and linked to the one before; returns the last line's hash.
fn check_links(lines: &[(Entry, String)]) -> Result<String, ChainError> {
    let mut prev = GENESIS;
    for (i, (entry, hash)) in lines.iter().enumerate() {
        let expected = i as u64 + 1;
        if entry.seq != expected {
            return Err(misplaced(lines, i));
        }
        if entry.prev != prev {
            return Err(ChainError::Edited { entry: i as u64 });
        }
        prev = hash;
    }
    Ok(prev.to_string())
}

/// What happened to entry `i + 1`, found at line `i + 1` with another number.
fn misplaced(lines: &[(Entry, String)], i: usize) -> ChainError {
    let expected = i as u64 + 1;
    let seq = lines[i].0.seq;
    if let Some(j) = lines[i..].iter().position(|(e, _)| e.seq == expected) {
        return ChainError::Moved {
            entry: expected,
            found: (i + j) as u64 + 1,
        };
    }
    if seq > expected {
        return ChainError::Deleted {
            entry: expected,
            next: seq,
        };
    }
    ChainError::Duplicated {
        entry: seq,
        line: expected,
    }
}

/// The log against its head record: as many entries, and the same hash at the head.
fn check_head(
    entries: &[Entry],
    last: &str,
    torn: bool,
    head: Option<&Head>,
) -> Result<(), ChainError> {
    let count = entries.len() as u64;
    let committed = head.map_or(0, |h| h.count);
    if torn && committed > count {
        return Err(ChainError::CutOff {
            entry: count + 1,
            committed,
        });
    }
    match head {
        None if count > 0 => Err(ChainError::HeadMissing),
        Some(h) if h.count > count => Err(ChainError::TailDeleted {
            first: count + 1,
            last: h.count,
        }),
        Some(h) if h.count > 0 => {
            // The head may lag the log (a crash before its update), never disagree with it.
            let at = entries
                .get(h.count as usize)
                .map_or(last, |e| e.prev.as_str());
            if at == h.hash {
                Ok(())
            } else {
                Err(ChainError::HeadMismatch { entry: h.count })
            }
        }
        _ => Ok(()),
    }
}
