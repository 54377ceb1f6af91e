//! The history watermark: WhatsApp's timestamp of the newest incoming message journaled, and the
//! ids journaled at that timestamp, kept in `<data_dir>/inbound.watermark` (0600, written to a
//! temporary file, synced, then renamed over the old one).
//!
//! At login the page loads the messages it already holds as history. A history message is journaled
//! only when it is newer than the watermark, or at the watermark's timestamp with an id not seen
//! there: a message the page took while the manager had not journaled it yet (a crash, a kill) is
//! reported after the restart, and the history older than what was journaled never is. Without a
//! watermark (nothing ever journaled) no history is reported.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The watermark's file name in the data directory.
pub const WATERMARK_FILE: &str = "inbound.watermark";

/// The newest incoming message journaled: its timestamp (Unix ms) and the ids at that timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    pub timestamp: i64,
    pub ids: Vec<String>,
}

/// Whether a history message (`timestamp`, `id`) is to be journaled under `watermark`.
pub fn admits(watermark: Option<&Watermark>, timestamp: i64, id: &str) -> bool {
    match watermark {
        None => false,
        Some(mark) if timestamp == mark.timestamp => !mark.ids.iter().any(|known| known == id),
        Some(mark) => timestamp > mark.timestamp,
    }
}

/// Moves `watermark` up to a journaled message; true when it changed.
pub fn advance(watermark: &mut Option<Watermark>, timestamp: i64, id: &str) -> bool {
    match watermark {
        Some(mark) if timestamp < mark.timestamp => false,
        Some(mark) if timestamp == mark.timestamp => {
            if mark.ids.iter().any(|known| known == id) {
                return false;
            }
            mark.ids.push(id.to_owned());
            true
        }
        _ => {
            *watermark = Some(Watermark { timestamp, ids: vec![id.to_owned()] });
            true
        }
    }
}

/// Where the watermark of the data directory `dir` is kept.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(WATERMARK_FILE)
}

/// Reads the watermark at `path`; none when the file is missing. An unreadable file is reported
/// and ignored (the journal's own messages still give a watermark).
pub fn load(path: &Path) -> Option<Watermark> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not read the inbound watermark: ignored");
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(mark) => Some(mark),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable inbound watermark: ignored");
            None
        }
    }
}

/// Writes `watermark` to `path` atomically and durably.
pub fn store(path: &Path, watermark: &Watermark) -> std::io::Result<()> {
    let tmp = path.with_extension("watermark.tmp");
    let mut file = super::journal::private_file().write(true).create(true).truncate(true).open(&tmp)?;
    file.write_all(&serde_json::to_vec(watermark).map_err(std::io::Error::other)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark() -> Option<Watermark> {
        Some(Watermark { timestamp: 2_000, ids: vec!["false_a".into()] })
    }

    #[test]
    fn the_rule_admits_only_what_is_past_the_watermark() {
        let mark = mark();
        assert!(!admits(None, 9_999, "false_x"), "no watermark: no history");
        assert!(!admits(mark.as_ref(), 1_000, "false_x"), "older");
        assert!(!admits(mark.as_ref(), 2_000, "false_a"), "equal, id journaled");
        assert!(admits(mark.as_ref(), 2_000, "false_b"), "equal, id not journaled");
        assert!(admits(mark.as_ref(), 3_000, "false_a"), "newer");
    }

    #[test]
    fn advancing_keeps_the_ids_at_the_newest_timestamp() {
        let mut mark = None;
        assert!(advance(&mut mark, 2_000, "false_a"));
        assert!(advance(&mut mark, 2_000, "false_b"));
        assert!(!advance(&mut mark, 2_000, "false_a"));
        assert!(!advance(&mut mark, 1_000, "false_c"));
        assert_eq!(mark, Some(Watermark { timestamp: 2_000, ids: vec!["false_a".into(), "false_b".into()] }));
        assert!(advance(&mut mark, 3_000, "false_d"));
        assert_eq!(mark, Some(Watermark { timestamp: 3_000, ids: vec!["false_d".into()] }));
    }

    #[test]
    fn stored_watermarks_read_back_and_a_missing_or_damaged_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert_eq!(load(&path), None);
        store(&path, mark().as_ref().unwrap()).unwrap();
        assert_eq!(load(&path), mark());
        std::fs::write(&path, b"{torn").unwrap();
        assert_eq!(load(&path), None);
    }
}
