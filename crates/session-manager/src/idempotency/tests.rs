//! The idempotency store and its journal: keys per caller, restarts, expiry, compaction, and the
//! on-disk format of the current version (a checked-in fixture).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn scope(cliente_id: Option<u64>, key: &str) -> Scope {
    Scope { cliente_id, key: key.to_owned() }
}

fn cell(store: &Idempotency, scope: &Scope, fingerprint: &str) -> Arc<OnceCell<Settled>> {
    match store.claim(scope, fingerprint) {
        Claim::Cell(cell) => cell,
        Claim::Reused => panic!("{scope:?} refused as reused"),
    }
}

fn settled(id: &str) -> Settled {
    Settled {
        answer: (StatusCode::OK, json!({"success": true, "data": {"message_id": id}})),
        at: unix_secs(SystemTime::now()),
    }
}

#[test]
fn keys_belong_to_their_caller_and_a_key_is_bound_to_its_message() {
    let store = Idempotency::in_memory(DAY);
    let (a, b, none) = (scope(Some(1), "k"), scope(Some(2), "k"), scope(None, "k"));
    let fa = fingerprint(Some(1), "5491100000001", "hola");
    let fb = fingerprint(Some(2), "5491100000001", "hola");
    assert_ne!(fa, fb, "the caller is part of the fingerprint");
    let first = cell(&store, &a, &fa);
    assert!(Arc::ptr_eq(&first, &cell(&store, &a, &fa)));
    assert!(!Arc::ptr_eq(&first, &cell(&store, &b, &fb)));
    assert!(!Arc::ptr_eq(&first, &cell(&store, &none, &fingerprint(None, "5491100000001", "hola"))));
    let other = fingerprint(Some(1), "5491100000001", "chau");
    assert!(matches!(store.claim(&a, &other), Claim::Reused));
}

#[test]
fn a_refused_send_leaves_no_entry_unless_someone_waits_on_it() {
    let store = Idempotency::in_memory(DAY);
    let s = scope(None, "k");
    let first = cell(&store, &s, "f");
    store.forget_unanswered(&s, first);
    assert!(store.is_empty());
    let first = cell(&store, &s, "f");
    let waiter = cell(&store, &s, "f");
    store.forget_unanswered(&s, first);
    assert_eq!(store.len(), 1, "kept while a waiter holds it");
    store.forget_unanswered(&s, waiter);
    assert!(store.is_empty());
}

#[tokio::test]
async fn answers_survive_a_restart_and_an_interrupted_send_is_never_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(Idempotency::open(dir.path(), DAY).unwrap());
    let (sent, interrupted, refused) =
        (scope(Some(7), "sent"), scope(None, "interrupted"), scope(None, "refused"));
    let answer = settled("m1");
    let c = cell(&first, &sent, "f1");
    first.pending(&sent).await;
    first.answered(&sent, &answer).await;
    c.set(answer.clone()).unwrap();
    let _c = cell(&first, &interrupted, "f2");
    first.pending(&interrupted).await;
    let _c = cell(&first, &refused, "f3");
    first.pending(&refused).await;
    first.released(&refused).await;
    drop(first);
    // A crash can tear the last line.
    let mut file = OpenOptions::new().append(true).open(dir.path().join(JOURNAL_FILE)).unwrap();
    write!(file, "{{\"event\":\"answ").unwrap();

    let second = Idempotency::open(dir.path(), DAY).unwrap();
    assert_eq!(cell(&second, &sent, "f1").get(), Some(&answer), "the first answer is replayed");
    assert!(matches!(second.claim(&sent, "another body"), Claim::Reused), "the fingerprint is kept");
    assert!(cell(&second, &scope(None, "sent"), "f1").get().is_none(), "another caller's key is not");
    let Settled { answer: (status, body), .. } =
        cell(&second, &interrupted, "f2").get().cloned().expect("an interrupted send has an answer");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "SEND_FAILED");
    assert_eq!(body["detail"]["outcome"], "unknown");
    assert!(cell(&second, &refused, "f3").get().is_none(), "a released key may be used again");
}

#[test]
fn answers_older_than_the_ttl_are_dropped_on_load_and_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    let now = SystemTime::now();
    let old = unix_secs(now) - DAY.as_secs() - 60;
    let young = unix_secs(now) - DAY.as_secs() + 3600;
    let mut lines = String::new();
    for (key, at) in [("old", old), ("young", young)] {
        lines += &format!(
            "{{\"event\":\"pending\",\"cliente_id\":3,\"key\":\"{key}\",\"fingerprint\":\"f\",\"at\":{at}}}\n"
        );
        lines += &format!(
            "{{\"event\":\"answered\",\"cliente_id\":3,\"key\":\"{key}\",\"fingerprint\":\"f\",\"at\":{at},\"status\":200,\"body\":{{}}}}\n"
        );
    }
    // A journal from before expiry by age (no cliente_id, fingerprint nor time) still loads.
    lines += "{\"event\":\"answered\",\"key\":\"legacy\",\"status\":200,\"body\":{}}\n";
    lines += "{\"event\":\"pending\",\"key\":\"gone\"}\n{\"event\":\"released\",\"key\":\"gone\"}\n";
    std::fs::write(&path, lines).unwrap();

    let store = Idempotency::open_at(dir.path(), DAY, now).unwrap();
    assert!(cell(&store, &scope(Some(3), "old"), "f").get().is_none(), "expired");
    assert!(cell(&store, &scope(Some(3), "young"), "f").get().is_some());
    assert!(cell(&store, &scope(None, "legacy"), "any").get().is_some(), "kept, counted from now");
    let compacted = std::fs::read_to_string(&path).unwrap();
    assert_eq!(compacted.lines().count(), 2, "{compacted}");
    assert!(!compacted.contains("\"old\"") && !compacted.contains("\"gone\""), "{compacted}");
    assert!(compacted.lines().all(|line| line.contains("\"answered\"")), "{compacted}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the journal holds phone numbers: {mode:o}");
}

#[tokio::test]
async fn the_file_stays_bounded_by_the_entries_alive() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Idempotency::open(dir.path(), DAY).unwrap());
    // Sends refused after `pending` (the session left READY) write two lines each, keep nothing.
    for i in 0..600 {
        let s = scope(None, &format!("refused-{i}"));
        let c = cell(&store, &s, "f");
        store.pending(&s).await;
        store.released(&s).await;
        store.forget_unanswered(&s, c);
    }
    assert!(store.is_empty());
    let lines = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap().lines().count();
    assert!(lines <= MIN_COMPACTION_LINES, "{lines} lines for no entry");
}

/// A journal as this version writes it: two answers (one per caller), a pending key released, and an
/// interrupted send. Bodies are written with their keys sorted, as `serde_json` writes them.
const FIXTURE_AT: u64 = 1_764_000_000;
const FIXTURE: &str = r#"{"event":"pending","cliente_id":3,"key":"order-1","fingerprint":"f1","at":1764000000}
{"event":"answered","cliente_id":3,"key":"order-1","fingerprint":"f1","at":1764000001,"status":200,"body":{"data":{"message_id":"3EB0A1","timestamp":1764000001,"to":"5491100000001"},"message":"Message sent","success":true}}
{"event":"pending","cliente_id":null,"key":"retry-me","fingerprint":"f2","at":1764000002}
{"event":"released","cliente_id":null,"key":"retry-me"}
{"event":"answered","cliente_id":null,"key":"order-1","fingerprint":"f3","at":1764000003,"status":404,"body":{"code":"NUMBER_NOT_ON_WHATSAPP","success":false}}
{"event":"pending","cliente_id":4,"key":"cut","fingerprint":"f4","at":1764000004}
"#;

#[test]
fn a_journal_in_the_current_format_loads_and_is_written_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    std::fs::write(&path, FIXTURE).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(FIXTURE_AT + 3600);
    let store = Idempotency::open_at(dir.path(), DAY, now).unwrap();

    let Settled { answer: (status, body), at } =
        cell(&store, &scope(Some(3), "order-1"), "f1").get().cloned().expect("answered");
    assert_eq!((status, at), (StatusCode::OK, FIXTURE_AT + 1));
    assert_eq!(body["data"]["message_id"], "3EB0A1");
    assert!(matches!(store.claim(&scope(Some(3), "order-1"), "f9"), Claim::Reused));
    let Settled { answer: (status, body), .. } =
        cell(&store, &scope(None, "order-1"), "f3").get().cloned().expect("answered");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NUMBER_NOT_ON_WHATSAPP");
    assert!(cell(&store, &scope(None, "retry-me"), "f2").get().is_none(), "released");
    let Settled { answer: (status, body), .. } =
        cell(&store, &scope(Some(4), "cut"), "f4").get().cloned().expect("interrupted");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["detail"]["outcome"], "unknown");

    // The answers are written back byte for byte; the interrupted send is now its stable answer.
    let written = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    let fixture: Vec<&str> = FIXTURE.lines().collect();
    assert_eq!(lines.len(), 3, "{written}");
    assert_eq!(&lines[..2], &[fixture[1], fixture[4]], "{written}");
    assert!(lines[2].starts_with(r#"{"event":"answered","cliente_id":4,"key":"cut","fingerprint":"f4","at":1764000004,"status":503,"#), "{}", lines[2]);
}
