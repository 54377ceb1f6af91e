//! An incremental Server-Sent Events parser: what the status feed reads the session-manager's
//! `GET /events` with, and what tests read the hub's own `/api/admin/whatsapp/events` with.

#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub name: String,
    pub data: String,
}

/// An incremental Server-Sent Events parser (the subset servers send: `event`, `data`, comments).
///
/// Works on bytes: a chunk may end inside a multi-byte UTF-8 character or between the `\r` and
/// `\n` of a line end, so lines are split on their end bytes first and decoded whole.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last byte seen was a `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    name: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_ended(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ => self.line.push(byte),
            }
        }
        events
    }

    /// Applies one whole line; an empty line dispatches the event gathered so far.
    fn line_ended(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let name = std::mem::take(&mut self.name);
            let data = std::mem::take(&mut self.data);
            return (!data.is_empty()).then(|| SseEvent { name, data: data.join("\n") });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_comments_are_handled() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nevent: status\nda").is_empty());
        let events = p.push(b"ta: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent { name: "status".into(), data: "{\"a\":1}".into() },
                SseEvent { name: String::new(), data: "x\ny".into() },
            ]
        );
    }

    #[test]
    fn a_character_or_a_crlf_split_at_any_point_arrives_intact() {
        let stream =
            "event: status\r\ndata: {\"a\":\"ñandú 😀 €\"}\r\n\r\n: ka\r\rdata: x\r\n\r\n".as_bytes();
        let want = vec![
            SseEvent { name: "status".into(), data: "{\"a\":\"ñandú 😀 €\"}".into() },
            SseEvent { name: String::new(), data: "x".into() },
        ];
        for split in 0..=stream.len() {
            let mut p = SseParser::default();
            let mut events = p.push(&stream[..split]);
            events.extend(p.push(&stream[split..]));
            assert_eq!(events, want, "split at byte {split}");
        }
        // Every byte in its own chunk.
        let mut p = SseParser::default();
        let events: Vec<_> = stream.iter().flat_map(|b| p.push(std::slice::from_ref(b))).collect();
        assert_eq!(events, want);
    }
}
