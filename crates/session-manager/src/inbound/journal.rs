//! The inbound journal on disk: `<data_dir>/inbound.jsonl` (0600), one `InboundEvent` JSON per line,
//! appended and synced, rewritten atomically when compacted.
//!
//! A compacted file starts with a mark `{"next_seq":N}`, so the sequence goes on from where it was
//! even when compaction dropped every event. A line torn by a crash mid-write (or any unreadable
//! line) is skipped with a warning and dropped by the compaction done at the next start.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared_contracts::{InboundEvent, InboundKind};

use super::watermark::{self, Watermark};

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "inbound.jsonl";

/// How often, at most, an append looks for events past the retention (a size overrun compacts at once).
const AGE_SWEEP_MS: i64 = 60_000;

/// How much the journal may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Events older than this are dropped (INBOUND_RETENTION_DAYS).
    pub retention: Duration,
    /// Past this size the oldest events are dropped until it is down to three quarters
    /// (INBOUND_JOURNAL_MAX_BYTES).
    pub max_bytes: u64,
}

/// The first line of a compacted file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Mark {
    next_seq: u64,
}

/// One line as read back.
enum Line {
    Event(InboundEvent),
    Mark(u64),
}

fn parse(line: &str) -> Option<Line> {
    if let Ok(event) = serde_json::from_str::<InboundEvent>(line) {
        return Some(Line::Event(event));
    }
    serde_json::from_str::<Mark>(line).ok().map(|mark| Line::Mark(mark.next_seq))
}

/// What is known of a kept event without holding it in memory.
#[derive(Debug, Clone, Copy)]
struct Kept {
    seq: u64,
    received_at: i64,
    bytes: u64,
    key: u64,
}

/// The dedupe key: (message id, message or ack, ack level), hashed.
fn key_of(kind: &InboundKind) -> u64 {
    let mut hasher = DefaultHasher::new();
    match kind {
        InboundKind::Message(m) => ("message", &m.message_id).hash(&mut hasher),
        InboundKind::Ack(a) => ("ack", &a.message_id, a.ack).hash(&mut hasher),
    }
    hasher.finish()
}

/// An event the page reported, and whether it came as history loaded at login (journaled only
/// past the watermark, `watermark.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub kind: InboundKind,
    pub history: bool,
}

impl From<InboundKind> for Offered {
    fn from(kind: InboundKind) -> Self {
        Offered { kind, history: false }
    }
}

/// The open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    limits: Limits,
    next_seq: u64,
    kept: VecDeque<Kept>,
    keys: HashSet<u64>,
    /// The file's size.
    bytes: u64,
    last_age_sweep_ms: i64,
    /// The newest incoming message journaled (from the watermark file and the kept events).
    watermark: Option<Watermark>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`; compacts it when it holds unreadable lines or more
    /// than `limits` allow.
    pub fn open(dir: &Path, limits: Limits, now_ms: i64) -> std::io::Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let file = private_file().read(true).append(true).create(true).open(&path)?;
        let mut journal = Journal {
            path,
            file,
            limits,
            next_seq: 1,
            kept: VecDeque::new(),
            keys: HashSet::new(),
            bytes: 0,
            last_age_sweep_ms: now_ms,
            watermark: watermark::load(&watermark::path_in(dir)),
        };
        let (mut bad, mut torn_tail) = (0usize, false);
        let mut reader = BufReader::new(File::open(&journal.path)?);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let read = reader.read_until(b'\n', &mut raw)?;
            if read == 0 {
                break;
            }
            journal.bytes += read as u64;
            torn_tail = raw.last() != Some(&b'\n');
            match std::str::from_utf8(&raw).ok().and_then(|text| parse(text.trim_end())) {
                Some(Line::Event(event)) => journal.keep(&event, read as u64),
                Some(Line::Mark(next)) => journal.next_seq = journal.next_seq.max(next),
                None => bad += 1,
            }
        }
        if bad > 0 {
            tracing::warn!(
                path = %journal.path.display(),
                lines = bad,
                "inbound journal: unreadable lines skipped (a write torn by a crash); they are dropped now"
            );
        }
        if bad > 0 || torn_tail || journal.over_size() || journal.oldest_expired(now_ms) {
            journal.compact(now_ms)?;
        }
        Ok(journal)
    }

    fn keep(&mut self, event: &InboundEvent, bytes: u64) {
        self.next_seq = self.next_seq.max(event.seq + 1);
        let key = key_of(&event.kind);
        self.keys.insert(key);
        if let InboundKind::Message(m) = &event.kind {
            watermark::advance(&mut self.watermark, m.timestamp, &m.message_id);
        }
        self.kept.push_back(Kept { seq: event.seq, received_at: event.received_at, bytes, key });
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sequence the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The sequence of the oldest event kept, if any.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.kept.front().map(|k| k.seq)
    }

    /// The file's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Events kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The newest incoming message journaled, if any.
    pub fn watermark(&self) -> Option<&Watermark> {
        self.watermark.as_ref()
    }

    fn over_size(&self) -> bool {
        self.bytes > self.limits.max_bytes
    }

    fn oldest_expired(&self, now_ms: i64) -> bool {
        self.kept.front().is_some_and(|k| k.received_at < self.cutoff(now_ms))
    }

    fn cutoff(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(i64::try_from(self.limits.retention.as_millis()).unwrap_or(i64::MAX))
    }

    /// Journals the events not seen before (same message id, kind and ack level) and the history
    /// messages past the watermark, with the next sequences, in one write and one sync, then moves
    /// the watermark file up; returns the events journaled. On a failed write the file is put back
    /// as it was and nothing is counted.
    pub fn append<O: Into<Offered>>(
        &mut self,
        session: &str,
        offered: impl IntoIterator<Item = O>,
        now_ms: i64,
    ) -> std::io::Result<Vec<InboundEvent>> {
        let mut events = Vec::new();
        let mut lines = Vec::new();
        let mut batch_keys = HashSet::new();
        for Offered { kind, history } in offered.into_iter().map(Into::into) {
            if history && !self.history_admitted(&kind) {
                continue;
            }
            let key = key_of(&kind);
            if self.keys.contains(&key) || !batch_keys.insert(key) {
                continue;
            }
            let seq = self.next_seq + events.len() as u64;
            let event = InboundEvent { seq, session: session.to_owned(), received_at: now_ms, kind };
            let mut line = serde_json::to_vec(&event).map_err(std::io::Error::other)?;
            line.push(b'\n');
            lines.push(line);
            events.push(event);
        }
        if events.is_empty() {
            return Ok(events);
        }
        let before = self.bytes;
        let written = self.file.write_all(&lines.concat()).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Whatever part of the batch reached the file would reuse its sequences: cut it off.
            let _ = self.file.set_len(before);
            return Err(e);
        }
        let mark_before = self.watermark.clone();
        for (event, line) in events.iter().zip(&lines) {
            self.bytes += line.len() as u64;
            self.keep(event, line.len() as u64);
        }
        if self.watermark != mark_before
            && let Some(mark) = &self.watermark
        {
            // The events are journaled already: a failure here only lets a history message be
            // offered again after a compaction, so it is reported and the batch stands.
            if let Err(e) = watermark::store(&watermark::path_in(self.dir()), mark) {
                tracing::error!(error = %e, "could not write the inbound watermark (check the data directory's disk)");
            }
        }
        let age_sweep_due = now_ms - self.last_age_sweep_ms >= AGE_SWEEP_MS && self.oldest_expired(now_ms);
        if self.over_size() || age_sweep_due {
            self.compact(now_ms)?;
        }
        Ok(events)
    }

    /// Whether a history message is past the watermark (acks are never history).
    fn history_admitted(&self, kind: &InboundKind) -> bool {
        match kind {
            InboundKind::Message(m) => watermark::admits(self.watermark.as_ref(), m.timestamp, &m.message_id),
            InboundKind::Ack(_) => true,
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Drops the events past the retention, then the oldest until the file is at most three
    /// quarters of the size limit, and rewrites the file (mark first) atomically.
    pub fn compact(&mut self, now_ms: i64) -> std::io::Result<()> {
        self.last_age_sweep_ms = now_ms;
        let cutoff = self.cutoff(now_ms);
        let target = self.limits.max_bytes / 4 * 3;
        let mut size: u64 = self.kept.iter().map(|k| k.bytes).sum();
        while let Some(oldest) = self.kept.front().copied() {
            if oldest.received_at >= cutoff && size <= target {
                break;
            }
            size -= oldest.bytes;
            self.keys.remove(&oldest.key);
            self.kept.pop_front();
        }
        let first = self.oldest_seq().unwrap_or(self.next_seq);
        let tmp = self.path.with_extension("jsonl.tmp");
        let mut out =
            std::io::BufWriter::new(private_file().write(true).create(true).truncate(true).open(&tmp)?);
        writeln!(
            out,
            "{}",
            serde_json::to_string(&Mark { next_seq: self.next_seq }).map_err(std::io::Error::other)?
        )?;
        read_after(&self.path, first.saturating_sub(1), |event| {
            serde_json::to_writer(&mut out, &event).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
            Ok(true)
        })?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = private_file().read(true).append(true).open(&self.path)?;
        self.bytes = self.file.seek(SeekFrom::End(0))?;
        tracing::info!(path = %self.path.display(), events = self.kept.len(), bytes = self.bytes, "inbound journal compacted");
        Ok(())
    }
}

/// Calls `each` with every readable event of the journal at `path` whose sequence is above
/// `after`, in order, until it answers `false`. Unreadable lines (a torn last line) are skipped.
pub fn read_after(
    path: &Path,
    after: u64,
    mut each: impl FnMut(InboundEvent) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    read_events(file, after, &mut each)
}

fn read_events(
    file: impl Read,
    after: u64,
    each: &mut impl FnMut(InboundEvent) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        let Some(Line::Event(event)) = std::str::from_utf8(&line).ok().and_then(parse) else { continue };
        if event.seq > after && !each(event)? {
            break;
        }
    }
    Ok(())
}

/// Options for a file only the manager's user may read (whatever the umask).
pub(super) fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}
