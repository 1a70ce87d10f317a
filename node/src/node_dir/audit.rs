//! The audit log: one JSON line per event, each linked to the previous one by SHA-256, in
//! `audit.log`; `audit.head` records the count and the last hash so that a truncated or edited
//! tail is detected too. Writers take an exclusive lock on the log.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use suyuan_protocol::psi::QueryMode;

use crate::clock;
use crate::node_dir::identity::Role;

/// The log file in a node directory.
pub const AUDIT_LOG: &str = "audit.log";
const AUDIT_HEAD: &str = "audit.head";
/// Longest `detail` kept in an entry, in characters.
pub const MAX_DETAIL_CHARS: usize = 512;
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    count: u64,
    hash: String,
}

/// A node's audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    log: PathBuf,
    head: PathBuf,
}

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

impl AuditLog {
    /// The log of a node directory.
    pub fn new(dir: &Path) -> Self {
        AuditLog {
            log: dir.join(AUDIT_LOG),
            head: dir.join(AUDIT_HEAD),
        }
    }

    fn read_head(&self) -> Result<Option<Head>> {
        match fs::read_to_string(&self.head) {
            Ok(t) => Ok(Some(serde_json::from_str(&t).with_context(|| {
                format!("{} is unreadable", self.head.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", self.head.display())),
        }
    }

    /// Appends one entry. Refuses if the log's tail no longer matches its head record: a
    /// damaged log is not extended (and so not silently "repaired").
    pub fn append(&self, mut record: Record) -> Result<Entry> {
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
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        f.lock()
            .with_context(|| format!("cannot lock {}", self.log.display()))?;
        self.set_aside_torn_tail(&mut f)?;
        let end = f.seek(SeekFrom::End(0))?;
        let (count, prev) = match last_line(&mut f, end)? {
            None => (0, GENESIS.to_string()),
            Some(line) => {
                let e: Entry = serde_json::from_str(&line).map_err(|_| damaged(&self.log))?;
                (e.seq, hash_line(&line))
            }
        };
        match self.read_head()? {
            Some(h) if h.count > count || (h.count == count && h.hash != prev) => {
                return Err(damaged(&self.log));
            }
            None if count > 0 => return Err(damaged(&self.log)),
            _ => {}
        }
        let unix = clock::now_unix();
        let entry = Entry {
            seq: count + 1,
            time: clock::rfc3339(unix),
            unix,
            prev,
            record,
        };
        let line = serde_json::to_string(&entry)?;
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_data()?;
        let head = Head {
            count: entry.seq,
            hash: hash_line(&line),
        };
        let tmp = self.head.with_extension("head.tmp");
        let mut h = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        h.write_all(serde_json::to_string(&head)?.as_bytes())?;
        h.sync_all()?;
        drop(h);
        fs::rename(&tmp, &self.head)?;
        Ok(entry)
    }

    /// A crash inside an append leaves a partial last line that the head never counted: it was
    /// never committed. It is moved to `audit.torn` (kept for inspection) so the chain can go
    /// on. A partial line that the head does count is damage, and is left alone.
    fn set_aside_torn_tail(&self, f: &mut File) -> Result<()> {
        let len = f.seek(SeekFrom::End(0))?;
        if len == 0 {
            return Ok(());
        }
        let mut back = 4096u64;
        let (start, tail) = loop {
            let start = len.saturating_sub(back);
            f.seek(SeekFrom::Start(start))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            if buf.last() == Some(&b'\n') {
                return Ok(());
            }
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(p) => break (start + p as u64 + 1, buf[p + 1..].to_vec()),
                None if start == 0 => break (0, buf),
                None => back *= 4,
            }
        };
        let complete = match last_line(f, start)? {
            None => (0, GENESIS.to_string()),
            Some(line) => match serde_json::from_str::<Entry>(&line) {
                Ok(e) => (e.seq, hash_line(&line)),
                Err(_) => (u64::MAX, String::new()),
            },
        };
        let committed = match self.read_head()? {
            None => (0, GENESIS.to_string()),
            Some(h) => (h.count, h.hash),
        };
        // The same rule as `append`: the head may lag the log by the entries whose head update
        // a crash cut off, but may not be ahead of it or disagree with it.
        let lags = committed.0 < complete.0;
        if !(lags || complete == committed) {
            // Not an uncommitted write: this is not ours to repair.
            return Err(damaged(&self.log));
        }
        let torn_path = self.log.with_extension("torn");
        let mut torn = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&torn_path)
            .with_context(|| format!("cannot create {}", torn_path.display()))?;
        torn.write_all(&tail)?;
        torn.write_all(b"\n")?;
        torn.sync_all()?;
        f.set_len(start)?;
        f.sync_data()?;
        tracing::warn!(
            bytes = tail.len(),
            after_entry = complete.0,
            "set aside an audit entry that was never committed (torn write) in {}",
            torn_path.display()
        );
        Ok(())
    }

    /// Checks the chain from the first entry to the head record. The error names the first
    /// entry that was edited, deleted or moved.
    pub fn verify(&self) -> Result<Vec<Entry>> {
        let f = match File::open(&self.log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.read_head()?.is_some_and(|h| h.count > 0) {
                    bail!("{} is missing: every entry was deleted", self.log.display());
                }
                return Ok(Vec::new());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", self.log.display())),
        };
        // A shared lock: a writer in another process never shows us half an append.
        f.lock_shared()
            .with_context(|| format!("cannot lock {}", self.log.display()))?;
        let mut bytes = Vec::new();
        BufReader::new(f)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", self.log.display()))?;
        // Bytes after the last newline are an append that never finished: a torn write.
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let torn = bytes.len() - complete;
        let mut lines = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        let newlines = bytes[..complete].iter().filter(|&&b| b == b'\n').count();
        for (i, line) in bytes[..complete]
            .split(|&b| b == b'\n')
            .take(newlines)
            .enumerate()
        {
            let line = std::str::from_utf8(line)
                .map_err(|_| {
                    anyhow::anyhow!("{}: line {} is not UTF-8", self.log.display(), i + 1)
                })?
                .to_string();
            let entry: Entry = serde_json::from_str(&line).map_err(|_| {
                anyhow::anyhow!("entry {} (line {}) is corrupt or was edited", i + 1, i + 1)
            })?;
            entries.push(entry);
            lines.push(line);
        }
        let mut prev = GENESIS.to_string();
        for (i, (entry, line)) in entries.iter().zip(&lines).enumerate() {
            let expected = i as u64 + 1;
            if entry.seq != expected {
                let later = entries[i..].iter().position(|e| e.seq == expected);
                if let Some(j) = later {
                    bail!(
                        "entry {expected} was moved: it appears at line {} instead of line {}",
                        i + j + 1,
                        i + 1
                    );
                }
                if entry.seq > expected {
                    bail!(
                        "entry {expected} was deleted (the next line is entry {})",
                        entry.seq
                    );
                }
                bail!(
                    "entry {} appears again at line {} (duplicated)",
                    entry.seq,
                    i + 1
                );
            }
            if entry.prev != prev {
                bail!(
                    "entry {} was edited (entry {expected} no longer links to it)",
                    expected - 1
                );
            }
            prev = hash_line(line);
        }
        let count = entries.len() as u64;
        let head = self.read_head()?;
        let committed = head.as_ref().map_or(0, |h| h.count);
        if torn > 0 && committed > count {
            bail!(
                "entry {} was cut off mid-entry (the log ends inside it; the head records {committed} entries)",
                count + 1
            );
        }
        match head {
            None if count > 0 => bail!("{} is missing", self.head.display()),
            Some(h) if h.count > count => {
                bail!(
                    "entries {}..={} were deleted (the log ends at entry {count})",
                    count + 1,
                    h.count
                )
            }
            Some(h) if h.count > 0 && h.count <= count => {
                let at = entries
                    .get(h.count as usize)
                    .map(|e| e.prev.clone())
                    .unwrap_or_else(|| prev.clone());
                if at != h.hash {
                    bail!(
                        "entry {} was edited (it no longer matches the recorded head)",
                        h.count
                    );
                }
            }
            _ => {}
        }
        Ok(entries)
    }

    /// Keys charged to `peer` on UTC day `day`, from `admitted` entries.
    pub fn charged_on(entries: &[Entry], peer: &str, day: u64) -> u64 {
        entries
            .iter()
            .filter(|e| {
                e.record.outcome == Outcome::Admitted
                    && e.record.side == Side::Holder
                    && e.record.peer == peer
                    && clock::day_of(e.unix) == day
            })
            .filter_map(|e| e.record.charged)
            .sum()
    }
}

fn damaged(log: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "the audit log {} is damaged; run `suyuan audit verify` (nothing was appended)",
        log.display()
    )
}

/// The last non-empty line of the file's first `len` bytes, reading only their tail.
fn last_line(f: &mut File, len: u64) -> Result<Option<String>> {
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
mod tests {
    use super::*;

    fn record(peer: &str, outcome: Outcome) -> Record {
        Record {
            peer_role: Some(Role::Police),
            fingerprint: Some("ab".repeat(32)),
            case: Some("2026-001".to_string()),
            mode: Some(QueryMode::Count),
            query_keys: Some(1000),
            charged: Some(1000),
            ..Record::new(Side::Holder, peer, outcome)
        }
    }

    fn log_with(n: usize) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        for i in 0..n {
            log.append(record(&format!("p{i}"), Outcome::Admitted))
                .unwrap();
        }
        (dir, log)
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        fs::read_to_string(&log.log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn rewrite(log: &AuditLog, lines: &[String]) {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        fs::write(&log.log, text).unwrap();
    }

    #[test]
    fn an_intact_log_verifies() {
        let (_d, log) = log_with(5);
        let entries = log.verify().unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[4].seq, 5);
        assert_eq!(
            AuditLog::charged_on(&entries, "p1", clock::day_of(entries[1].unix)),
            1000
        );
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        // An edit in the middle: the next entry's link breaks.
        let (_d, log) = log_with(5);
        let mut l = lines(&log);
        l[1] = l[1].replace("\"p1\"", "\"px\"");
        rewrite(&log, &l);
        assert_eq!(
            log.verify().unwrap_err().to_string(),
            "entry 2 was edited (entry 3 no longer links to it)"
        );
        // A deletion in the middle.
        let (_d, log) = log_with(5);
        let mut l = lines(&log);
        l.remove(2);
        rewrite(&log, &l);
        assert_eq!(
            log.verify().unwrap_err().to_string(),
            "entry 3 was deleted (the next line is entry 4)"
        );
        // Two entries swapped.
        let (_d, log) = log_with(5);
        let mut l = lines(&log);
        l.swap(1, 2);
        rewrite(&log, &l);
        assert_eq!(
            log.verify().unwrap_err().to_string(),
            "entry 2 was moved: it appears at line 3 instead of line 2"
        );
        // The last entry edited.
        let (_d, log) = log_with(3);
        let mut l = lines(&log);
        l[2] = l[2].replace("\"p2\"", "\"px\"");
        rewrite(&log, &l);
        assert_eq!(
            log.verify().unwrap_err().to_string(),
            "entry 3 was edited (it no longer matches the recorded head)"
        );
        // The tail deleted.
        let (_d, log) = log_with(4);
        let l = lines(&log);
        rewrite(&log, &l[..2]);
        assert_eq!(
            log.verify().unwrap_err().to_string(),
            "entries 3..=4 were deleted (the log ends at entry 2)"
        );
        // Truncated mid-entry: a committed entry cut off.
        let (_d, log) = log_with(3);
        let text = fs::read_to_string(&log.log).unwrap();
        fs::write(&log.log, &text[..text.len() - 20]).unwrap();
        assert_eq!(
            log.verify().unwrap_err().to_string(),
            "entry 3 was cut off mid-entry (the log ends inside it; the head records 3 entries)"
        );
        // And a damaged log is not extended.
        assert!(
            log.append(record("q", Outcome::Refused))
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
    }

    #[test]
    fn a_torn_append_is_set_aside_and_the_chain_goes_on() {
        let (_d, log) = log_with(3);
        let before = fs::read(&log.log).unwrap();
        // A crash mid-append: part of entry 4 reached the file, the head still says 3.
        let torn = br#"{"seq":4,"time":"2026-11-28T00:00:00Z","unix":1"#;
        let mut f = OpenOptions::new().append(true).open(&log.log).unwrap();
        f.write_all(torn).unwrap();
        drop(f);
        assert_eq!(log.verify().unwrap().len(), 3, "committed entries verify");
        let e = log.append(record("next", Outcome::Refused)).unwrap();
        assert_eq!(e.seq, 4);
        let entries = log.verify().unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[3].record.peer, "next");
        let after = fs::read(&log.log).unwrap();
        assert_eq!(
            &after[..before.len()],
            &before[..],
            "committed bytes untouched"
        );
        let kept = fs::read(log.log.with_extension("torn")).unwrap();
        assert_eq!(kept, [&torn[..], b"\n"].concat());
    }

    #[test]
    fn a_cut_off_committed_entry_is_not_repaired() {
        let (_d, log) = log_with(3);
        let text = fs::read(&log.log).unwrap();
        fs::write(&log.log, &text[..text.len() - 20]).unwrap();
        let err = log.append(record("q", Outcome::Refused)).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(
            fs::read(&log.log).unwrap(),
            &text[..text.len() - 20],
            "left as it was"
        );
        assert!(!log.log.with_extension("torn").exists());
    }

    #[test]
    fn a_torn_append_after_a_lagging_head_is_set_aside_too() {
        // A crash between a log fsync and the head update leaves the head one entry behind;
        // a later crash mid-append then tears the tail. Both were never committed past entry 3.
        let (_d, log) = log_with(3);
        let l = lines(&log);
        let head = Head {
            count: 2,
            hash: hash_line(&l[1]),
        };
        fs::write(&log.head, serde_json::to_string(&head).unwrap()).unwrap();
        let mut f = OpenOptions::new().append(true).open(&log.log).unwrap();
        f.write_all(br#"{"seq":4,"ti"#).unwrap();
        drop(f);
        assert_eq!(log.verify().unwrap().len(), 3);
        assert_eq!(log.append(record("q", Outcome::Refused)).unwrap().seq, 4);
        assert_eq!(log.verify().unwrap().len(), 4);
    }
}
