//! Bytes to records: gzip (detected by magic bytes, multi-member) or plain
//! JSON, walked one record at a time without building a tree.
//!
//! A byte-level scanner finds each element of the `Records` array; only
//! records that mention STS are handed to serde. Nothing but the current
//! record is held in memory, so memory stays flat whatever the file size.

use std::io::{self, BufReader, Read};

use memchr::memmem;

use super::event::{classify_record, AssumeRoleEvent, Classified, EventError};
use super::gzip::GzipReader;
use super::inflate_thread;
use super::value_scan::{Kernel, Step, ValueScan};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Written before plain JSON by some export tools.
const UTF8_BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Size limits that keep hostile input from costing unbounded time or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Decompressed bytes one input may hold; past it the input fails (gzip bombs).
    pub max_decompressed_bytes: u64,
    /// One record larger than this is reported and skipped, not buffered.
    pub max_record_bytes: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits { max_decompressed_bytes: 4 << 30, max_record_bytes: 4 << 20 }
    }
}

/// A record that could not be understood; the rest of the input goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {index}: {error}")]
pub struct RecordError {
    /// Position in the `Records` array, counting from 0.
    pub index: u64,
    pub error: RecordProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("is not a JSON object")]
    NotAnObject,
    #[error("is larger than {limit_bytes} bytes; skipped")]
    TooLarge { limit_bytes: usize },
    #[error(transparent)]
    Event(#[from] EventError),
}

/// Why an input as a whole could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read failed: {0}")]
    Io(#[source] io::Error),
    #[error("invalid gzip data: {0} (truncated or corrupt .gz file?)")]
    Gzip(#[source] io::Error),
    #[error("decompressed size passed the limit of {limit_bytes} bytes (input.max_decompressed_bytes); a gzip bomb or an unusually large log")]
    TooLarge { limit_bytes: u64 },
    #[error("not a CloudTrail log: {0}")]
    NotCloudTrail(&'static str),
    #[error("invalid JSON at byte {offset}: {what}")]
    Syntax { offset: u64, what: &'static str },
    #[error("input ends inside record {index} (truncated file?)")]
    Truncated { index: u64 },
}

/// What one input held.
#[derive(Debug, Default)]
pub struct InputEvents {
    pub events: Vec<AssumeRoleEvent>,
    /// Records seen: every element of the `Records` array.
    pub records: u64,
    /// The first `MAX_BAD_RECORDS_KEPT` records skipped, and why.
    pub bad_records: Vec<RecordError>,
    /// Every record skipped: a file of nothing but bad records must not
    /// hold them all in memory.
    pub bad_record_count: u64,
    /// Role assumptions read, including any already handed to a chunk sink.
    pub role_assumptions: u64,
}

/// Skipped records kept with their reasons, per input; the rest are counted.
pub const MAX_BAD_RECORDS_KEPT: usize = 100;

impl InputEvents {
    fn skip(&mut self, bad: RecordError) {
        self.bad_record_count += 1;
        if self.bad_records.len() < MAX_BAD_RECORDS_KEPT {
            self.bad_records.push(bad);
        }
    }
}

/// An input that failed part-way; what was read before the failure is kept
/// so the caller can still act on it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ReadFailure {
    pub error: ReadError,
    pub partial: InputEvents,
}

/// The scanner's read buffer, handed from one input to the next by whoever
/// reads many: a replay of many small files otherwise zeroes and pages in a
/// fresh 256 KiB for every one. A buffer grown for one huge record is not
/// kept.
#[derive(Default)]
pub struct ScanBuffer {
    buf: Vec<u8>,
    /// Inflate gzip on a second thread ([`ScanBuffer::with_inflate_thread`]).
    inflate_thread: bool,
    /// That thread's chunks, kept for the next input.
    chunks: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ScanBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanBuffer")
            .field("capacity", &self.buf.capacity())
            .field("inflate_thread", &self.inflate_thread)
            .finish()
    }
}

impl ScanBuffer {
    /// Gzip inputs are inflated on a thread of their own while this one
    /// scans, when the machine has a second core: decompression is over half
    /// of a replay's CPU time, so the two overlap. Up to about 10 MiB more
    /// memory, whatever the input's size, when the scanner falls behind (see
    /// `inflate_thread.rs`); the same records, events and errors.
    pub fn with_inflate_thread() -> ScanBuffer {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ScanBuffer { inflate_thread: cores > 1, ..ScanBuffer::default() }
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn keep(&mut self, buf: Vec<u8>) {
        if buf.capacity() == READ_CHUNK_BYTES {
            self.buf = buf;
        }
    }
}

/// Reads one CloudTrail input: `{"Records":[...]}` or a bare array of records.
pub fn read_input<R: Read>(raw: R, limits: &InputLimits) -> Result<InputEvents, ReadFailure> {
    let mut out = InputEvents::default();
    match scan_input(raw, limits, &mut out, None, &mut ScanBuffer::default()) {
        Ok(()) => Ok(out),
        Err(error) => Err(ReadFailure { error, partial: out }),
    }
}

/// Like [`read_input`], but hands role assumptions to `on_chunk` whenever
/// `chunk_events` have gathered, so memory stays flat however many a file
/// holds. The events left in the result (or the failure's `partial`) are the
/// last, incomplete chunk. Reads into `buffer`, and leaves it there for the
/// next input; a buffer made [`ScanBuffer::with_inflate_thread`] inflates
/// gzip on a second thread.
pub fn read_input_chunked<R: Read + Send>(
    raw: R,
    limits: &InputLimits,
    chunk_events: usize,
    on_chunk: &mut dyn FnMut(Vec<AssumeRoleEvent>),
    buffer: &mut ScanBuffer,
) -> Result<InputEvents, ReadFailure> {
    let mut out = InputEvents::default();
    let sink = Some((chunk_events.max(1), on_chunk));
    let result = if buffer.inflate_thread {
        scan_input_inflating_aside(raw, limits, &mut out, sink, buffer)
    } else {
        scan_input(raw, limits, &mut out, sink, buffer)
    };
    match result {
        Ok(()) => Ok(out),
        Err(error) => Err(ReadFailure { error, partial: out }),
    }
}

type ChunkSink<'s> = Option<(usize, &'s mut dyn FnMut(Vec<AssumeRoleEvent>))>;

fn scan_input<R: Read>(
    raw: R,
    limits: &InputLimits,
    out: &mut InputEvents,
    sink: ChunkSink<'_>,
    buffer: &mut ScanBuffer,
) -> Result<(), ReadError> {
    let (gzip, buffered) = open(raw)?;
    let source: Box<dyn Read + '_> = if gzip { Box::new(GzipReader::new(buffered)) } else { Box::new(buffered) };
    walk(CappedReader::new(source, limits), gzip, limits, out, sink, buffer)
}

/// Scans `source` to its end in the buffer's memory, and keeps the memory.
fn walk<S: Read>(
    source: S,
    gzip: bool,
    limits: &InputLimits,
    out: &mut InputEvents,
    sink: ChunkSink<'_>,
    buffer: &mut ScanBuffer,
) -> Result<(), ReadError> {
    let mut scanner = Scanner::new(ReadInto(source), gzip, sink, buffer.take());
    let walked = scanner.walk(limits, out);
    buffer.keep(scanner.buf);
    walked
}

/// [`scan_input`] with gzip inflated on a thread of its own (see
/// `inflate_thread.rs`); plain JSON has nothing to overlap and is scanned here.
fn scan_input_inflating_aside<R: Read + Send>(
    raw: R,
    limits: &InputLimits,
    out: &mut InputEvents,
    sink: ChunkSink<'_>,
    buffer: &mut ScanBuffer,
) -> Result<(), ReadError> {
    let (gzip, buffered) = open(raw)?;
    if !gzip {
        return walk(CappedReader::new(buffered, limits), gzip, limits, out, sink, buffer);
    }
    // Inflated, CRC-checked and capped on the thread as in line; the
    // scanner here gets the same bytes and errors.
    let capped = CappedReader::new(GzipReader::new(buffered), limits);
    std::thread::scope(|scope| {
        let (inflated, thread) = inflate_thread::spawn(scope, capped, std::mem::take(&mut buffer.chunks));
        let mut scanner = Scanner::new(inflated, gzip, sink, buffer.take());
        let walked = scanner.walk(limits, out);
        let (chunks, own) = inflate_thread::finish(scanner.src, thread, scanner.buf);
        buffer.chunks = chunks;
        buffer.keep(own);
        walked
    })
}

/// An input whose first bytes were read, with them put back in front.
type Reopened<R> = BufReader<io::Chain<io::Take<io::Cursor<[u8; 2]>>, R>>;

/// Reads the first bytes to tell gzip from plain JSON; returns which, and
/// the whole input again, buffered.
fn open<R: Read>(mut raw: R) -> Result<(bool, Reopened<R>), ReadError> {
    // A reader may return fewer bytes than asked (one, even): read until both
    // magic bytes are in, or gzip would go unnoticed.
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match raw.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let gzip = magic[..got] == GZIP_MAGIC;
    let again = io::Cursor::new(magic).take(got as u64).chain(raw);
    Ok((gzip, BufReader::with_capacity(READ_CHUNK_BYTES, again)))
}

struct CappedReader<R> {
    inner: R,
    remaining: u64,
    limit: u64,
}

impl<R> CappedReader<R> {
    fn new(inner: R, limits: &InputLimits) -> Self {
        CappedReader { inner, remaining: limits.max_decompressed_bytes, limit: limits.max_decompressed_bytes }
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // One probe byte tells "exactly at the limit" from "past it".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(CapExceeded(self.limit))),
            };
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Decompressing passed this many bytes, the `input.max_decompressed_bytes` limit.
#[derive(Debug)]
struct CapExceeded(u64);
impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed size limit of {} bytes passed", self.0)
    }
}
impl std::error::Error for CapExceeded {}

/// Where the scanner's bytes come from, and how they are laid out in its buffer.
pub(super) trait Refill {
    /// More input into `buf`, keeping `buf[keep_from..end]` just before it
    /// (`buf` may be swapped for another buffer). Returns where the kept
    /// bytes start now and where the data ends; nothing after the kept
    /// bytes means the input ended. `max_keep` bounds what one kept value
    /// may grow the buffer to.
    fn refill(
        &mut self,
        buf: &mut Vec<u8>,
        keep_from: usize,
        end: usize,
        max_keep: usize,
    ) -> io::Result<(usize, usize)>;
}

/// A plain reader: the kept bytes move to the front of the one buffer, and
/// new ones are read after them.
struct ReadInto<R>(R);

impl<R: Read> Refill for ReadInto<R> {
    fn refill(
        &mut self,
        buf: &mut Vec<u8>,
        keep_from: usize,
        end: usize,
        max_keep: usize,
    ) -> io::Result<(usize, usize)> {
        buf.copy_within(keep_from..end, 0);
        let kept = end - keep_from;
        if kept == buf.len() {
            let grown =
                (buf.len() * 2).min(max_keep.saturating_add(READ_CHUNK_BYTES)).max(buf.len() + READ_CHUNK_BYTES);
            buf.resize(grown, 0);
        }
        loop {
            match self.0.read(&mut buf[kept..]) {
                Ok(n) => return Ok((0, kept + n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

struct Scanner<'s, S> {
    src: S,
    sink: ChunkSink<'s>,
    gzip: bool,
    buf: Vec<u8>,
    /// Next unread index in `buf`.
    pos: usize,
    /// End of valid data in `buf`.
    end: usize,
    /// Stream offset of `buf[0]`, for error messages. Kept modulo 2^64: with
    /// the inflate thread's chunks, `buf[0]` may lie before the stream's start.
    base: u64,
    eof: bool,
    kernel: Kernel,
}

impl<'s, S: Refill> Scanner<'s, S> {
    fn new(src: S, gzip: bool, sink: ChunkSink<'s>, mut buf: Vec<u8>) -> Self {
        // Its old bytes are never read: only `buf[pos..end]` is, and reads fill it.
        buf.resize(READ_CHUNK_BYTES, 0);
        Scanner { src, sink, gzip, buf, pos: 0, end: 0, base: 0, eof: false, kernel: Kernel::detect() }
    }

    fn offset(&self) -> u64 {
        self.base.wrapping_add(self.pos as u64)
    }

    /// Reads more input, keeping `buf[keep_from..end]`. Returns where the
    /// kept bytes start now, and whether more bytes came (false at the end of input).
    fn refill(&mut self, keep_from: usize, max_keep: usize) -> Result<(usize, bool), ReadError> {
        if self.eof {
            return Ok((keep_from, false));
        }
        let (kept_at, end) =
            self.src.refill(&mut self.buf, keep_from, self.end, max_keep).map_err(|e| self.map_io(e))?;
        self.base = self.base.wrapping_add(keep_from as u64).wrapping_sub(kept_at as u64);
        self.pos = self.pos - keep_from + kept_at;
        let more = end > kept_at + (self.end - keep_from);
        self.end = end;
        self.eof = !more;
        Ok((kept_at, more))
    }

    fn map_io(&self, e: io::Error) -> ReadError {
        if let Some(cap) = e.get_ref().and_then(|inner| inner.downcast_ref::<CapExceeded>()) {
            return ReadError::TooLarge { limit_bytes: cap.0 };
        }
        if self.gzip
            && matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            )
        {
            return ReadError::Gzip(e);
        }
        ReadError::Io(e)
    }

    /// The next byte that is not JSON white space (or a BOM), without consuming it.
    fn peek_token(&mut self) -> Result<Option<u8>, ReadError> {
        loop {
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                    // A UTF-8 byte order mark, written by some export tools.
                    0xEF if self.offset() == 0 && self.buf[self.pos..self.end].starts_with(&UTF8_BOM) => self.pos += 3,
                    b => return Ok(Some(b)),
                }
            }
            if !self.refill(self.pos, 0)?.1 {
                return Ok(None);
            }
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), ReadError> {
        match self.peek_token()? {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(ReadError::Syntax { offset: self.offset(), what }),
            None => Err(ReadError::Syntax { offset: self.offset(), what: "unexpected end of input" }),
        }
    }

    /// Scans one value starting at `pos`; returns its range in `buf` and
    /// whether it was cut short because it exceeded `max_bytes`.
    fn scan_value(&mut self, max_bytes: usize) -> Result<Option<(std::ops::Range<usize>, bool)>, ReadError> {
        let mut start = self.pos;
        let mut scanned = 0usize;
        let mut dropped = false;
        let mut scan = ValueScan::new(self.kernel);
        loop {
            match scan.advance(&self.buf[start..self.end], scanned) {
                Step::Done(n) => {
                    self.pos = start + n;
                    // Too large is decided by the value's length, not by
                    // whether it happened to fit in the buffer.
                    return Ok(Some((start..start + n, dropped || n > max_bytes)));
                }
                Step::Invalid(what) => return Err(ReadError::Syntax { offset: self.base + start as u64, what }),
                Step::More => {
                    scanned = self.end - start;
                    if scanned > max_bytes {
                        // Keep scanning for the end but stop buffering the value.
                        dropped = true;
                        self.pos = self.end;
                        start = self.end;
                        scanned = 0;
                    } else {
                        self.pos = self.end;
                    }
                    let (moved_to, more) = self.refill(start, max_bytes)?;
                    start = moved_to;
                    if !more {
                        // A bare number at the very end is complete at end of input.
                        return Ok(if scan.depth == 0 && !scan.in_string && scanned > 0 && !dropped {
                            self.pos = self.end;
                            Some((start..self.end, false))
                        } else {
                            None
                        });
                    }
                }
            }
        }
    }

    fn walk(&mut self, limits: &InputLimits, out: &mut InputEvents) -> Result<(), ReadError> {
        // Short reads may hand over a byte order mark piecemeal; have it whole before peeking.
        while self.end - self.pos < UTF8_BOM.len() && self.refill(self.pos, 0)?.1 {}
        match self.peek_token()? {
            None => return Err(ReadError::NotCloudTrail("the input is empty")),
            Some(b'[') => {
                self.pos += 1;
                self.walk_records(limits, out)?;
            }
            Some(b'{') => {
                self.pos += 1;
                self.walk_top_object(limits, out)?;
            }
            Some(_) => return Err(ReadError::NotCloudTrail("expected {\"Records\": [...]} or an array of records")),
        }
        match self.peek_token()? {
            None => Ok(()),
            Some(_) => {
                Err(ReadError::Syntax { offset: self.offset(), what: "unexpected data after the end of the log" })
            }
        }
    }

    fn walk_top_object(&mut self, limits: &InputLimits, out: &mut InputEvents) -> Result<(), ReadError> {
        let mut saw_records = false;
        if self.peek_token()? == Some(b'}') {
            self.pos += 1;
            return Err(ReadError::NotCloudTrail("the object has no \"Records\" array"));
        }
        loop {
            if self.peek_token()? != Some(b'"') {
                return Err(ReadError::Syntax { offset: self.offset(), what: "expected an object key" });
            }
            let Some((range, _)) = self.scan_value(limits.max_record_bytes)? else {
                return Err(ReadError::Syntax {
                    offset: self.offset(),
                    what: "unexpected end of input in an object key",
                });
            };
            let is_records = &self.buf[range] == b"\"Records\"";
            self.expect(b':', "expected ':' after an object key")?;
            if is_records {
                if self.peek_token()? != Some(b'[') {
                    return Err(ReadError::NotCloudTrail("\"Records\" is not an array"));
                }
                self.pos += 1;
                saw_records = true;
                self.walk_records(limits, out)?;
            } else {
                self.peek_token()?;
                if self.scan_value(limits.max_record_bytes)?.is_none() {
                    return Err(ReadError::Syntax {
                        offset: self.offset(),
                        what: "unexpected end of input in a value",
                    });
                }
            }
            match self.peek_token()? {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => return Err(ReadError::Syntax { offset: self.offset(), what: "expected ',' or '}'" }),
                None => {
                    return Err(ReadError::Syntax {
                        offset: self.offset(),
                        what: "unexpected end of input in the top-level object",
                    })
                }
            }
        }
        if saw_records {
            Ok(())
        } else {
            Err(ReadError::NotCloudTrail("the object has no \"Records\" array"))
        }
    }

    fn walk_records(&mut self, limits: &InputLimits, out: &mut InputEvents) -> Result<(), ReadError> {
        let sts = memmem::Finder::new(b"sts.amazonaws.com");
        let assume = memmem::Finder::new(b"AssumeRole");
        if self.peek_token()? == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let index = out.records;
            let Some(first) = self.peek_token()? else {
                return Err(ReadError::Truncated { index });
            };
            let Some((range, dropped)) = self.scan_value(limits.max_record_bytes)? else {
                return Err(ReadError::Truncated { index });
            };
            out.records += 1;
            if dropped {
                out.skip(RecordError {
                    index,
                    error: RecordProblem::TooLarge { limit_bytes: limits.max_record_bytes },
                });
            } else if first != b'{' {
                out.skip(RecordError { index, error: RecordProblem::NotAnObject });
            } else {
                let record = &self.buf[range];
                // Most records are not STS; a substring test skips them
                // unparsed. "AssumeRole" first: it is rare, while every
                // record names some "amazonaws.com".
                if assume.find(record).is_some() && sts.find(record).is_some() {
                    match classify_record(record) {
                        Ok(Classified::AssumeRole(event)) => {
                            out.events.push(*event);
                            out.role_assumptions += 1;
                            if let Some((chunk_events, on_chunk)) = self.sink.as_mut() {
                                if out.events.len() >= *chunk_events {
                                    on_chunk(std::mem::take(&mut out.events));
                                }
                            }
                        }
                        Ok(Classified::Other) => {}
                        Err(error) => out.skip(RecordError { index, error: error.into() }),
                    }
                }
            }
            match self.peek_token()? {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => {
                    return Err(ReadError::Syntax {
                        offset: self.offset(),
                        what: "expected ',' or ']' between records",
                    })
                }
                None => return Err(ReadError::Truncated { index: out.records }),
            }
        }
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
