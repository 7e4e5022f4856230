//! Forward stage: an incremental Server-Sent Events parser. It hands back
//! each complete event together with its exact bytes, so events the gateway
//! does not change are forwarded byte for byte as soon as they are complete.

use bytes::{Bytes, BytesMut};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("an SSE event grew past {0} bytes without ending")]
    TooLarge(usize),
}

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event exactly as received, blank line included.
    pub raw: Bytes,
    pub event: Option<String>,
    pub id: Option<String>,
    /// The `data` lines joined with `\n`; `None` when the event had none.
    pub data: Option<String>,
}

impl Event {
    /// Serializes an event with new data (keeping its name and id).
    pub fn with_data(&self, data: &str) -> Bytes {
        let mut out = String::with_capacity(data.len() + 32);
        if let Some(event) = &self.event {
            out.push_str("event: ");
            out.push_str(event);
            out.push('\n');
        }
        if let Some(id) = &self.id {
            out.push_str("id: ");
            out.push_str(id);
            out.push('\n');
        }
        for line in data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }

    /// A fresh `message` event carrying `data`.
    pub fn message(data: &str) -> Bytes {
        let mut out = String::with_capacity(data.len() + 24);
        out.push_str("event: message\n");
        for line in data.split('\n') {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
        Bytes::from(out)
    }
}

/// Feed it chunks; it returns the events they complete.
#[derive(Debug)]
pub struct Parser {
    buf: BytesMut,
    /// How far `buf` has been scanned for line ends.
    scanned: usize,
    max_event: usize,
}

impl Parser {
    pub fn new(max_event: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            scanned: 0,
            max_event,
        }
    }

    /// Adds bytes and returns every event they complete, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, Error> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.find_event_end() {
            if end > self.max_event {
                return Err(Error::TooLarge(self.max_event));
            }
            let raw = self.buf.split_to(end).freeze();
            self.scanned = 0;
            events.push(parse_event(raw));
        }
        if self.buf.len() > self.max_event {
            return Err(Error::TooLarge(self.max_event));
        }
        Ok(events)
    }

    /// Bytes of an event that never ended (stream closed mid-event).
    pub fn remainder(&self) -> &[u8] {
        &self.buf
    }

    /// Finds the end of the first event: the byte after a blank line.
    fn find_event_end(&mut self) -> Option<usize> {
        let buf = &self.buf[..];
        let mut line_start = line_start_before(buf, self.scanned);
        let mut i = self.scanned;
        while i < buf.len() {
            let eol_len = match buf[i] {
                b'\n' => 1,
                b'\r' if i + 1 < buf.len() => {
                    if buf[i + 1] == b'\n' {
                        2
                    } else {
                        1
                    }
                }
                // A trailing CR may be the first half of CRLF: wait for more.
                b'\r' => {
                    self.scanned = i;
                    return None;
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            if i == line_start {
                return Some(i + eol_len);
            }
            i += eol_len;
            line_start = i;
        }
        self.scanned = buf.len();
        None
    }
}

/// Where the line containing `pos` starts (`pos` is always at a line start or
/// inside the last, unterminated line).
fn line_start_before(buf: &[u8], pos: usize) -> usize {
    buf[..pos]
        .iter()
        .rposition(|&b| b == b'\n' || b == b'\r')
        .map_or(0, |p| p + 1)
}

fn parse_event(raw: Bytes) -> Event {
    let mut event = None;
    let mut id = None;
    let mut data: Option<String> = None;
    let text = String::from_utf8_lossy(&raw);
    for line in text.split(['\n', '\r']) {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match data.as_mut() {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            "event" => event = Some(value.to_owned()),
            "id" if !value.contains('\0') => id = Some(value.to_owned()),
            // `retry` and unknown fields do not change what the gateway sees.
            _ => {}
        }
    }
    Event {
        raw,
        event,
        id,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let stream = b"event: message\r\nid: 1\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\ndata: two\r\rdata:three\n\n";
        // Feed one byte at a time: the hardest split.
        let mut p = Parser::new(1024);
        let mut got = Vec::new();
        for b in stream.iter() {
            got.extend(p.push(&[*b]).unwrap());
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].event.as_deref(), Some("message"));
        assert_eq!(got[0].id.as_deref(), Some("1"));
        assert_eq!(got[0].data.as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(got[1].data, None);
        assert_eq!(got[2].data.as_deref(), Some("two"));
        assert_eq!(got[3].data.as_deref(), Some("three"));
        let rebuilt: Vec<u8> = got.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(rebuilt, stream.to_vec());
        assert!(p.remainder().is_empty());
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = Parser::new(8);
        assert!(p.push(b"data: 0123456789").is_err());
        let mut p = Parser::new(8);
        assert!(
            p.push(b"data: 0123456789\n\n").is_err(),
            "complete in one read too"
        );
    }

    #[test]
    fn with_data_keeps_name_and_id() {
        let mut p = Parser::new(1024);
        let ev = p
            .push(b"event: message\nid: 9\ndata: x\n\n")
            .unwrap()
            .remove(0);
        assert_eq!(
            &ev.with_data("a\nb")[..],
            b"event: message\nid: 9\ndata: a\ndata: b\n\n"
        );
    }
}
