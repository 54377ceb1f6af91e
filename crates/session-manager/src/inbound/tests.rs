//! The journal on disk: sequences across reopen and compaction, retention by age and size, dedupe,
//! torn lines; the live publication after the write.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use shared_contracts::{AckLevel, InboundEvent, InboundKind, IncomingMessage, MessageAck};

use super::Inbound;
use super::journal::{self, JOURNAL_FILE, Journal, Limits, Offered};
use crate::metrics::Metrics;

const DAY_MS: i64 = 86_400_000;
const NOW: i64 = 1_800_000_000_000;

fn limits() -> Limits {
    Limits { retention: Duration::from_secs(7 * 86_400), max_bytes: 1 << 20 }
}

fn message(id: &str) -> InboundKind {
    InboundKind::Message(IncomingMessage {
        message_id: id.into(),
        from: "34600111222".into(),
        chat: "34600111222@c.us".into(),
        message_type: "chat".into(),
        text: Some("hola".into()),
        timestamp: NOW,
    })
}

fn ack(id: &str, level: AckLevel) -> InboundKind {
    InboundKind::Ack(MessageAck {
        message_id: id.into(),
        to: Some("34600111222".into()),
        ack: level,
        timestamp: NOW,
    })
}

fn seqs(dir: &std::path::Path, after: u64) -> Vec<u64> {
    let mut seen = Vec::new();
    journal::read_after(&dir.join(JOURNAL_FILE), after, |event| {
        seen.push(event.seq);
        Ok(true)
    })
    .expect("the journal reads");
    seen
}

#[test]
fn sequences_go_on_after_a_reopen_and_repeats_are_not_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), limits(), NOW).unwrap();
    let written = journal
        .append("admin", vec![message("false_a"), ack("true_b", AckLevel::Sent), message("false_a")], NOW)
        .unwrap();
    assert_eq!(
        written.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2],
        "the repeat in the batch is skipped"
    );
    drop(journal);

    let mut journal = Journal::open(dir.path(), limits(), NOW).unwrap();
    assert_eq!(journal.next_seq(), 3);
    let written = journal
        .append("admin", vec![ack("true_b", AckLevel::Sent), ack("true_b", AckLevel::Delivered)], NOW + 1)
        .unwrap();
    assert_eq!(written.len(), 1, "the same ack level is journaled once, also across a reopen");
    assert_eq!((written[0].seq, written[0].session.as_str()), (3, "admin"));
    assert_eq!(seqs(dir.path(), 0), [1, 2, 3]);
    assert_eq!(seqs(dir.path(), 2), [3]);
}

#[test]
fn retention_by_age_drops_the_old_events_and_keeps_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), limits(), NOW).unwrap();
    journal.append("admin", vec![message("false_old1"), message("false_old2")], NOW - 8 * DAY_MS).unwrap();
    journal.append("admin", vec![message("false_new")], NOW - DAY_MS).unwrap();
    drop(journal);

    let journal = Journal::open(dir.path(), limits(), NOW).unwrap();
    assert_eq!(journal.oldest_seq(), Some(3), "the events older than 7 days are gone");
    assert_eq!(seqs(dir.path(), 0), [3]);
    drop(journal);

    // Everything expired: the file keeps no event, and the next one still gets a new sequence.
    let journal = Journal::open(dir.path(), limits(), NOW + 30 * DAY_MS).unwrap();
    assert!(journal.is_empty());
    assert_eq!(journal.next_seq(), 4);
    drop(journal);
    let mut journal = Journal::open(dir.path(), limits(), NOW + 30 * DAY_MS).unwrap();
    let written = journal.append("admin", vec![message("false_later")], NOW + 30 * DAY_MS).unwrap();
    assert_eq!(written[0].seq, 4, "the sequence survives a compaction that dropped everything");
}

#[test]
fn retention_by_size_drops_the_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let small = Limits { retention: limits().retention, max_bytes: 4096 };
    let mut journal = Journal::open(dir.path(), small, NOW).unwrap();
    for n in 0..100 {
        journal.append("admin", vec![message(&format!("false_{n}"))], NOW).unwrap();
        assert!(journal.bytes() <= 4096, "the file stays under the limit: {} bytes", journal.bytes());
    }
    let kept = seqs(dir.path(), 0);
    assert!(kept.len() > 5 && kept.len() < 100, "{kept:?}");
    assert_eq!(*kept.last().unwrap(), 100, "the newest is kept");
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "a contiguous tail: {kept:?}");
    assert_eq!(journal.oldest_seq(), kept.first().copied());
    drop(journal);
    assert_eq!(Journal::open(dir.path(), small, NOW).unwrap().next_seq(), 101);
}

#[test]
fn a_line_torn_by_a_crash_is_skipped_and_never_breaks_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), limits(), NOW).unwrap();
    journal.append("admin", vec![message("false_1"), message("false_2")], NOW).unwrap();
    drop(journal);
    let path = dir.path().join(JOURNAL_FILE);
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(br#"{"seq":3,"session":"admin","received_at":1,"type":"mess"#).unwrap();
    drop(file);

    let mut journal = Journal::open(dir.path(), limits(), NOW).expect("a torn line does not stop the start");
    assert_eq!(journal.next_seq(), 3);
    let written = journal.append("admin", vec![message("false_3")], NOW).unwrap();
    assert_eq!(written[0].seq, 3);
    assert_eq!(seqs(dir.path(), 0), [1, 2, 3], "the new line is whole, not glued to the torn one");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{text}");

    // Garbage in the middle too.
    std::fs::write(&path, format!("not json\n{text}")).unwrap();
    let journal = Journal::open(dir.path(), limits(), NOW).unwrap();
    assert_eq!((journal.len(), journal.next_seq()), (3, 4));
}

#[tokio::test]
async fn events_are_published_after_they_are_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let inbound = Inbound::open(dir.path(), limits(), "admin", metrics.clone()).unwrap();
    let mut live = inbound.subscribe();
    let sender = inbound.start();
    sender.send(message("false_x").into()).await.unwrap();
    sender.send(message("false_x").into()).await.unwrap();
    sender.send(ack("true_y", AckLevel::Read).into()).await.unwrap();
    let first: Arc<InboundEvent> =
        tokio::time::timeout(Duration::from_secs(5), live.recv()).await.unwrap().unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(seqs(dir.path(), 0).first(), Some(&1), "on disk when published");
    let second = tokio::time::timeout(Duration::from_secs(5), live.recv()).await.unwrap().unwrap();
    assert!(matches!(&second.kind, InboundKind::Ack(a) if a.ack == AckLevel::Read), "{second:?}");
    assert_eq!(second.seq, 2, "the repeated message took no sequence");
    let text = metrics.render(shared_contracts::SessionState::Init, 0, 0);
    assert!(text.contains("session_manager_inbound_events_total 2"), "{text}");
    assert!(text.contains("session_manager_inbound_duplicates_total 1"), "{text}");
}

fn at(id: &str, timestamp: i64, history: bool) -> Offered {
    let InboundKind::Message(mut m) = message(id) else { unreachable!("message() makes a message") };
    m.timestamp = timestamp;
    Offered { kind: InboundKind::Message(m), history }
}

fn ids(events: &[InboundEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            InboundKind::Message(m) => m.message_id.clone(),
            InboundKind::Ack(a) => a.message_id.clone(),
        })
        .collect()
}

#[test]
fn history_is_journaled_only_past_the_watermark_which_outlives_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut journal = Journal::open(dir.path(), limits(), NOW).unwrap();
    let first = journal.append("admin", vec![at("false_old", NOW - 5_000, true)], NOW).unwrap();
    assert!(first.is_empty(), "no watermark yet: history is not reported");
    journal.append("admin", vec![at("false_a", NOW, false)], NOW).unwrap();
    assert_eq!(journal.watermark().map(|m| m.timestamp), Some(NOW));
    // Every event dropped by age: only the watermark file remembers what was journaled.
    journal.compact(NOW + 8 * DAY_MS).unwrap();
    assert!(journal.is_empty());
    drop(journal);
    let mut journal = Journal::open(dir.path(), limits(), NOW + 8 * DAY_MS).unwrap();
    let offered = vec![
        at("false_old", NOW - 5_000, true),
        at("false_a", NOW, true),
        at("false_b", NOW, true),
        at("false_c", NOW + 1_000, true),
    ];
    let written = journal.append("admin", offered, NOW + 8 * DAY_MS).unwrap();
    assert_eq!(ids(&written), ["false_b", "false_c"]);
}
