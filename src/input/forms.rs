//! The forms a replay input's content may take, told apart by content
//! (never by name), each gzip-compressed or not:
//!
//! - a CloudTrail log file, `{"Records":[...]}`, or a bare array of records;
//! - what `aws cloudtrail lookup-events` prints, `{"Events":[{"CloudTrailEvent":"<record as a string>",...}]}`;
//! - JSON Lines, one record per line (Athena, Firehose and CloudTrail Lake
//!   exports); EventBridge events (`"detail-type":"AWS API Call via
//!   CloudTrail"`) give their `detail`, and objects written back to back
//!   without newlines (Firehose without a delimiter) are read too.
//!
//! The last two are turned into the first on the fly, so the engine's one
//! reader (limits, bad-record reports, chunks) reads them all.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;
use serde_json::value::RawValue;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Decompressed bytes looked at to tell the form.
const SNIFF_BYTES: u64 = 1 << 20;
/// What is looked at first: enough for every log whose first key or first
/// record decides. Inflating a whole MiB of every file was a sixth of a
/// replay of many 2,000-record files.
const FIRST_LOOK_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `{"Records":[...]}` or `[...]`: read by the engine as it is.
    CloudTrail,
    LookupEvents,
    JsonLines,
}

/// Content in none of the forms read.
#[derive(Debug, thiserror::Error)]
#[error(
    "not a CloudTrail log ({0}); rolewatch reads, gzip-compressed or not: CloudTrail log files \
     ({{\"Records\":[...]}} or an array of records), `aws cloudtrail lookup-events` output \
     ({{\"Events\":[...]}}), and JSON Lines of CloudTrail records or EventBridge events"
)]
pub struct UnknownForm(pub &'static str);

/// Decompresses gzip (by its magic bytes, multi-member) or passes through.
pub fn decompressed<'a>(raw: impl Read + Send + 'a) -> io::Result<Box<dyn BufRead + Send + 'a>> {
    let mut raw = BufReader::new(raw);
    let gzip = raw.fill_buf()?.starts_with(&GZIP_MAGIC);
    Ok(if gzip { Box::new(BufReader::new(MultiGzDecoder::new(raw))) } else { Box::new(raw) })
}

/// Tells the form of what `open` opens from the start of its content: its
/// first 64 KiB, and only when they do not decide its first MiB (opened
/// again). Content that cannot even be decompressed is left to the
/// engine's reader, which names the fault.
pub fn detect_opening<R: Read + Send>(open: impl Fn() -> io::Result<R>) -> io::Result<Result<Form, UnknownForm>> {
    match detect_within(open()?, FIRST_LOOK_BYTES) {
        Ok(form) => Ok(Ok(form)),
        Err(_) => Ok(detect_within(open()?, SNIFF_BYTES)),
    }
}

fn detect_within(raw: impl Read + Send, sniff_bytes: u64) -> Result<Form, UnknownForm> {
    let mut head = Vec::new();
    let sniffed = decompressed(raw).and_then(|r| r.take(sniff_bytes).read_to_end(&mut head));
    if sniffed.is_err() && head.is_empty() {
        return Ok(Form::CloudTrail);
    }
    let text = head.strip_prefix(UTF8_BOM).unwrap_or(&head);
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    let text = &text[start..];
    match text.first() {
        None => Err(UnknownForm("it is empty")),
        Some(b'[') => Ok(Form::CloudTrail),
        Some(b'{') => detect_object(text),
        Some(_) => Err(UnknownForm("it does not start with a JSON object or array")),
    }
}

/// Keys that only a CloudTrail record (or an EventBridge event) has.
const RECORD_KEYS: [&str; 6] = ["eventVersion", "eventTime", "eventSource", "eventName", "eventID", "detail-type"];

fn detect_object(text: &[u8]) -> Result<Form, UnknownForm> {
    match first_key(text).as_deref() {
        Some("Records") => return Ok(Form::CloudTrail),
        Some("Events") => return Ok(Form::LookupEvents),
        _ => {}
    }
    let mut values =
        serde_json::Deserializer::from_slice(text).into_iter::<serde_json::Map<String, serde_json::Value>>();
    match values.next() {
        Some(Ok(object)) if object.contains_key("Records") => Ok(Form::CloudTrail),
        Some(Ok(object)) if object.contains_key("Events") => Ok(Form::LookupEvents),
        Some(Ok(object)) if RECORD_KEYS.iter().any(|k| object.contains_key(*k)) => Ok(Form::JsonLines),
        Some(Ok(_)) => {
            Err(UnknownForm("the object has no \"Records\" array, no \"Events\" and no CloudTrail record fields"))
        }
        // A first record longer than what was looked at: its first key decides.
        Some(Err(e)) if e.is_eof() && first_key(text).is_some_and(|k| RECORD_KEYS.contains(&k.as_str())) => {
            Ok(Form::JsonLines)
        }
        Some(Err(_)) | None => Err(UnknownForm("it is not valid JSON")),
    }
}

/// The first key of the object `text` starts with, if it is a plain string.
fn first_key(text: &[u8]) -> Option<String> {
    let rest = text.strip_prefix(b"{")?;
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = rest[start..].strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

#[derive(Deserialize)]
struct LookupEvents {
    #[serde(rename = "Events")]
    events: Vec<LookupEvent>,
}

#[derive(Deserialize)]
struct LookupEvent {
    #[serde(rename = "CloudTrailEvent")]
    cloudtrail_event: Option<String>,
}

/// `lookup-events` output as a CloudTrail log: each event's
/// `CloudTrailEvent` string is a record (an event without one is a bad
/// record). The output is one JSON document, read whole; `max_bytes` caps it.
pub fn lookup_events_as_log(content: impl BufRead, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    content.take(max_bytes.saturating_add(1)).read_to_end(&mut text)?;
    if text.len() as u64 > max_bytes {
        return Err(io::Error::other(format!("larger than {max_bytes} bytes (input.max_decompressed_bytes)")));
    }
    let parsed: LookupEvents = serde_json::from_slice(&text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not lookup-events output: {e}")))?;
    let mut out = b"{\"Records\":[".to_vec();
    for (i, event) in parsed.events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(event.cloudtrail_event.as_deref().unwrap_or("null").as_bytes());
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// JSON Lines as a CloudTrail log, streamed: each value becomes one
/// element of `Records`, so memory holds one line at a time. A line that
/// is not JSON becomes `null`, which the reader reports as a bad record
/// (record N counts values from 0); a line longer than `max_line_bytes`
/// is passed over the same way without being held.
pub struct JsonLinesAsLog<R> {
    lines: R,
    max_line_bytes: usize,
    out: Vec<u8>,
    pos: usize,
    done: bool,
    values: u64,
    line: Vec<u8>,
}

impl<R: BufRead> JsonLinesAsLog<R> {
    pub fn new(lines: R, max_line_bytes: usize) -> Self {
        JsonLinesAsLog {
            lines,
            max_line_bytes,
            out: b"{\"Records\":[".to_vec(),
            pos: 0,
            done: false,
            values: 0,
            line: Vec::new(),
        }
    }

    /// Reads the next line into `self.line`; `false` at the end. A line
    /// past the limit is drained, not kept (`self.line` holds `"`, not JSON).
    fn next_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let buf = self.lines.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            any = true;
            let (chunk, newline) = match memchr_newline(buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            if !too_long && self.line.len() + chunk.len() > self.max_line_bytes {
                too_long = true;
                self.line.clear();
            }
            if !too_long {
                self.line.extend_from_slice(chunk);
            }
            let used = chunk.len() + usize::from(newline);
            self.lines.consume(used);
            if newline {
                break;
            }
        }
        if too_long {
            self.line.clear();
            self.line.push(b'"');
        }
        Ok(any)
    }

    fn push_value(&mut self, value: &[u8]) {
        if self.values > 0 {
            self.out.push(b',');
        }
        self.values += 1;
        self.out.extend_from_slice(value);
    }

    /// Turns the next non-blank line into `self.out`.
    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        loop {
            if !self.next_line()? {
                self.out.extend_from_slice(b"]}");
                self.done = true;
                return Ok(());
            }
            let line = std::mem::take(&mut self.line);
            let text = line.strip_prefix(UTF8_BOM).unwrap_or(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                self.line = line;
                continue;
            }
            let mut values = serde_json::Deserializer::from_slice(text).into_iter::<&RawValue>();
            loop {
                match values.next() {
                    None => break,
                    Some(Ok(value)) => {
                        let record = eventbridge_detail(value).unwrap_or(value);
                        self.push_value(record.get().as_bytes());
                    }
                    Some(Err(_)) => {
                        self.push_value(b"null");
                        break;
                    }
                }
            }
            self.line = line;
            return Ok(());
        }
    }
}

/// An EventBridge event of a CloudTrail API call carries the record as its `detail`.
fn eventbridge_detail(value: &RawValue) -> Option<&RawValue> {
    if !value.get().contains("\"detail-type\"") {
        return None;
    }
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "detail-type")]
        detail_type: Option<&'a str>,
        #[serde(borrow)]
        detail: Option<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_str(value.get()).ok()?;
    envelope.detail_type?;
    envelope.detail
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|b| *b == b'\n')
}

impl<R: BufRead> Read for JsonLinesAsLog<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_log(text: &str, max: usize) -> serde_json::Value {
        let mut out = String::new();
        JsonLinesAsLog::new(text.as_bytes(), max).read_to_string(&mut out).unwrap();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    #[test]
    fn forms_are_told_by_content() {
        assert_eq!(detect_within(&b"{\"Records\":[]}"[..], SNIFF_BYTES).unwrap(), Form::CloudTrail);
        assert_eq!(detect_within(&b" [ ]"[..], SNIFF_BYTES).unwrap(), Form::CloudTrail);
        assert_eq!(detect_within(&b"{\n  \"Events\": []\n}"[..], SNIFF_BYTES).unwrap(), Form::LookupEvents);
        assert_eq!(
            detect_within(&b"{\"eventVersion\":\"1.08\"}\n{\"eventVersion\":\"1.08\"}\n"[..], SNIFF_BYTES).unwrap(),
            Form::JsonLines
        );
        assert_eq!(
            detect_within(&b"{\"version\":\"0\",\"detail-type\":\"x\",\"detail\":{}}"[..], SNIFF_BYTES).unwrap(),
            Form::JsonLines
        );
        assert!(detect_within(&b"{\"hello\":1}"[..], SNIFF_BYTES).unwrap_err().to_string().contains("lookup-events"));
        assert!(detect_within(&b"eventTime,eventName\n"[..], SNIFF_BYTES).is_err());
        assert!(detect_within(&b""[..], SNIFF_BYTES).is_err());
    }

    /// A first look that cannot decide is not the answer: a record longer
    /// than it, whose deciding keys come late, is read as the record it is.
    #[test]
    fn a_first_record_longer_than_the_first_look_is_looked_at_further() {
        let long = format!("{{\"padding\":\"{}\",\"eventVersion\":\"1.08\"}}\n", "x".repeat(100_000));
        let opened = std::cell::Cell::new(0);
        let open = || {
            opened.set(opened.get() + 1);
            Ok(long.as_bytes())
        };
        assert_eq!(detect_opening(open).unwrap().unwrap(), Form::JsonLines);
        assert_eq!(opened.get(), 2);
        assert!(detect_within(long.as_bytes(), FIRST_LOOK_BYTES).is_err(), "the first look alone cannot tell");
        let log = b"{\"Records\":[]}";
        assert_eq!(detect_opening(|| Ok(&log[..])).unwrap().unwrap(), Form::CloudTrail);
    }

    #[test]
    fn json_lines_become_records_one_value_each() {
        let log = as_log("{\"a\":1}\n\n{\"b\":2}{\"c\":3}\nnot json\n{\"detail-type\":\"AWS API Call via CloudTrail\",\"detail\":{\"d\":4}}", 1000);
        assert_eq!(log, serde_json::json!({"Records":[{"a":1},{"b":2},{"c":3},null,{"d":4}]}));
        assert_eq!(as_log("", 10), serde_json::json!({"Records":[]}));
    }

    #[test]
    fn an_overlong_line_is_a_bad_record_and_the_next_is_read() {
        let long = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
        let log = as_log(&format!("{long}\n{{\"b\":1}}\n"), 50);
        assert_eq!(log, serde_json::json!({"Records":[null,{"b":1}]}));
    }

    #[test]
    fn lookup_events_give_their_cloudtrail_event_strings() {
        let text =
            r#"{"Events":[{"EventId":"1","CloudTrailEvent":"{\"eventID\":\"1\"}"},{"EventId":"2"}],"NextToken":"x"}"#;
        let log = lookup_events_as_log(text.as_bytes(), 1 << 20).unwrap();
        let log: serde_json::Value = serde_json::from_slice(&log).unwrap();
        assert_eq!(log, serde_json::json!({"Records":[{"eventID":"1"},null]}));
        assert!(lookup_events_as_log(text.as_bytes(), 10).is_err());
    }
}
