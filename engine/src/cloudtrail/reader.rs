//! Bytes to records: gzip (detected by magic bytes, multi-member) or plain
//! JSON, walked one record at a time without building a tree.
//!
//! A byte-level scanner finds each element of the `Records` array; only
//! records that mention STS are handed to serde. Nothing but the current
//! record is held in memory, so memory stays flat whatever the file size.

use std::io::{self, BufReader, Read};

use flate2::bufread::MultiGzDecoder;
use memchr::memmem;

use super::event::{classify_record, AssumeRoleEvent, Classified, EventError};
use super::inflate_thread;

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
    /// of a replay's CPU time, so the two overlap. About 0.75 MiB more
    /// memory (six chunks of 128 KiB); the same records, events and errors.
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
    let source: Box<dyn Read + '_> = if gzip { Box::new(MultiGzDecoder::new(buffered)) } else { Box::new(buffered) };
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
    let mut scanner = Scanner::new(source, gzip, sink, buffer.take());
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
    let capped = CappedReader::new(MultiGzDecoder::new(buffered), limits);
    std::thread::scope(|scope| {
        let (inflated, thread) = inflate_thread::spawn(scope, capped, std::mem::take(&mut buffer.chunks));
        let mut scanner = Scanner::new(inflated, gzip, sink, buffer.take());
        let walked = scanner.walk(limits, out);
        buffer.keep(scanner.buf);
        buffer.chunks = inflate_thread::finish(scanner.src, thread);
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

#[derive(Debug)]
struct CapExceeded(u64);
impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "decompressed size limit of {} bytes passed", self.0)
    }
}
impl std::error::Error for CapExceeded {}

/// Resumable state of a scan over one JSON value.
#[derive(Default)]
struct ValueScan {
    depth: u32,
    in_string: bool,
    pending_escape: bool,
}

enum Step {
    /// The value ends at this index (exclusive).
    Done(usize),
    /// More bytes are needed; everything before the end was consumed.
    More,
    Invalid(&'static str),
}

/// Bytes examined at once by the bit-mask path.
const BLOCK_BYTES: usize = 64;

impl ValueScan {
    /// Scans `bytes[from..]`, the value having started at `bytes[0]`.
    fn advance(&mut self, bytes: &[u8], mut i: usize) -> Step {
        let len = bytes.len();
        if self.pending_escape {
            if i >= len {
                return Step::More;
            }
            self.pending_escape = false;
            i += 1;
        }
        while i < len {
            // Inside a record, most bytes are string content: whole blocks go
            // through bit masks, the byte loop takes escapes and the tail.
            // Outside any container, one byte at a time, so that the first
            // bracket hands over to the block path.
            let mut stop = if self.depth == 0 { i + 1 } else { len };
            if self.depth > 0 && i + BLOCK_BYTES <= len {
                let block: &[u8; BLOCK_BYTES] = bytes[i..i + BLOCK_BYTES].try_into().expect("a block is 64 bytes");
                match self.advance_block(block) {
                    BlockStep::Consumed => {
                        i += BLOCK_BYTES;
                        continue;
                    }
                    BlockStep::Done(k) => return Step::Done(i + k),
                    BlockStep::HasBackslash => stop = i + BLOCK_BYTES,
                }
            }
            match self.advance_bytes(bytes, i, stop) {
                Ok(next) => i = next,
                Err(step) => return step,
            }
        }
        Step::More
    }

    /// Byte by byte from `i` to `stop`: the next index to scan from, or how the scan ended.
    fn advance_bytes(&mut self, bytes: &[u8], mut i: usize, stop: usize) -> Result<usize, Step> {
        let len = bytes.len();
        while i < stop {
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &bytes[i..stop]) {
                    None => return Ok(stop),
                    Some(k) => {
                        let j = i + k;
                        if bytes[j] == b'\\' {
                            if j + 1 >= len {
                                self.pending_escape = true;
                                return Err(Step::More);
                            }
                            i = j + 2;
                        } else {
                            self.in_string = false;
                            i = j + 1;
                            if self.depth == 0 {
                                return Err(Step::Done(i));
                            }
                        }
                    }
                }
                continue;
            }
            match bytes[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    if self.depth == 0 {
                        // A scalar ends where its container closes.
                        return Err(if i == 0 { Step::Invalid("unexpected closing bracket") } else { Step::Done(i) });
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Err(Step::Done(i + 1));
                    }
                }
                b',' | b' ' | b'\n' | b'\r' | b'\t' if self.depth == 0 => {
                    return Err(if i == 0 { Step::Invalid("expected a value") } else { Step::Done(i) });
                }
                _ => {}
            }
            i += 1;
        }
        Ok(i)
    }

    /// One block inside a container (depth > 0), without per-byte branches:
    /// quotes toggle "inside a string" by prefix XOR, and only brackets
    /// outside strings are visited one by one. Escapes are left to the byte loop.
    fn advance_block(&mut self, block: &[u8; BLOCK_BYTES]) -> BlockStep {
        let masks = BlockMasks::of(block);
        if masks.backslash != 0 {
            return BlockStep::HasBackslash;
        }
        let carried = if self.in_string { u64::MAX } else { 0 };
        // Bit k set: byte k is inside a string (an opening quote counts as inside).
        let inside = prefix_xor(masks.quote) ^ carried;
        let open = masks.open & !inside;
        let close = masks.close & !inside;
        if close == 0 {
            self.depth += open.count_ones();
        } else {
            let mut brackets = open | close;
            while brackets != 0 {
                let k = brackets.trailing_zeros();
                if open & (1 << k) != 0 {
                    self.depth += 1;
                } else {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return BlockStep::Done(k as usize + 1);
                    }
                }
                brackets &= brackets - 1;
            }
        }
        self.in_string = inside >> 63 != 0;
        BlockStep::Consumed
    }
}

enum BlockStep {
    Consumed,
    /// The value ends at this index of the block (exclusive).
    Done(usize),
    HasBackslash,
}

/// Bit k of each mask is set when byte k of the block is that character.
#[derive(Debug, PartialEq, Eq)]
struct BlockMasks {
    quote: u64,
    backslash: u64,
    /// `{` or `[`.
    open: u64,
    /// `}` or `]`.
    close: u64,
}

impl BlockMasks {
    #[cfg(target_arch = "x86_64")]
    fn of(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        let mut masks = BlockMasks { quote: 0, backslash: 0, open: 0, close: 0 };
        for lane in 0..BLOCK_BYTES / 16 {
            // SAFETY: SSE2 is part of the x86_64 baseline, and the unaligned
            // 16-byte load stays inside the 64-byte block.
            unsafe {
                let mask = |v: __m128i, byte: u8| {
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8))) as u16 as u64
                };
                let v = _mm_loadu_si128(block.as_ptr().add(lane * 16).cast::<__m128i>());
                // Setting bit 5 folds '[' onto '{' and ']' onto '}'; no other byte lands on either.
                let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
                let shift = lane * 16;
                masks.quote |= mask(v, b'"') << shift;
                masks.backslash |= mask(v, b'\\') << shift;
                masks.open |= mask(folded, b'{') << shift;
                masks.close |= mask(folded, b'}') << shift;
            }
        }
        masks
    }

    /// NEON has no byte movemask: each compare result keeps one bit of its
    /// lane's position (1, 2, .., 128 per 8 bytes), and three rounds of
    /// pairwise adds fold 64 lanes into the 64 bits of one word.
    #[cfg(target_arch = "aarch64")]
    fn of(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        use std::arch::aarch64::{
            uint8x16_t, vandq_u8, vceqq_u8, vdupq_n_u8, vgetq_lane_u64, vld1q_u8, vorrq_u8, vpaddq_u8,
            vreinterpretq_u64_u8,
        };
        const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
        // SAFETY: NEON is part of the aarch64 baseline, and the four 16-byte
        // loads stay inside the 64-byte block.
        unsafe {
            let weights = vld1q_u8(WEIGHTS.as_ptr());
            let v = [0, 16, 32, 48].map(|at| vld1q_u8(block.as_ptr().add(at)));
            let mask = |lanes: [uint8x16_t; 4], byte: u8| {
                let [a, b, c, d] = lanes.map(|l| vandq_u8(vceqq_u8(l, vdupq_n_u8(byte)), weights));
                let folded = vpaddq_u8(vpaddq_u8(a, b), vpaddq_u8(c, d));
                vgetq_lane_u64::<0>(vreinterpretq_u64_u8(vpaddq_u8(folded, folded)))
            };
            // Setting bit 5 folds '[' onto '{' and ']' onto '}'; no other byte lands on either.
            let folded = v.map(|l| vorrq_u8(l, vdupq_n_u8(0x20)));
            BlockMasks {
                quote: mask(v, b'"'),
                backslash: mask(v, b'\\'),
                open: mask(folded, b'{'),
                close: mask(folded, b'}'),
            }
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn of(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        BlockMasks::of_bytes(block)
    }

    /// The portable definition; the SIMD versions are tested against it.
    #[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    fn of_bytes(block: &[u8; BLOCK_BYTES]) -> BlockMasks {
        let mut masks = BlockMasks { quote: 0, backslash: 0, open: 0, close: 0 };
        for (k, &byte) in block.iter().enumerate() {
            let bit = 1u64 << k;
            match byte {
                b'"' => masks.quote |= bit,
                b'\\' => masks.backslash |= bit,
                b'{' | b'[' => masks.open |= bit,
                b'}' | b']' => masks.close |= bit,
                _ => {}
            }
        }
        masks
    }
}

/// Bit k of the result is the XOR of bits 0..=k of `x`.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

struct Scanner<'s, R> {
    src: R,
    sink: ChunkSink<'s>,
    gzip: bool,
    buf: Vec<u8>,
    /// Next unread index in `buf`.
    pos: usize,
    /// End of valid data in `buf`.
    end: usize,
    /// Stream offset of `buf[0]`, for error messages.
    base: u64,
    eof: bool,
}

impl<'s, R: Read> Scanner<'s, R> {
    fn new(src: R, gzip: bool, sink: ChunkSink<'s>, mut buf: Vec<u8>) -> Self {
        // Its old bytes are never read: only `buf[pos..end]` is, and reads fill it.
        buf.resize(READ_CHUNK_BYTES, 0);
        Scanner { src, sink, gzip, buf, pos: 0, end: 0, base: 0, eof: false }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Reads more input, keeping `buf[keep_from..end]`. Returns how far the
    /// kept bytes moved left, or `None` at end of input.
    fn refill(&mut self, keep_from: usize, max_keep: usize) -> Result<Option<usize>, ReadError> {
        if self.eof {
            return Ok(None);
        }
        let shift = keep_from;
        if shift > 0 {
            self.buf.copy_within(shift..self.end, 0);
            self.end -= shift;
            self.pos -= shift;
            self.base += shift as u64;
        }
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2)
                .min(max_keep.saturating_add(READ_CHUNK_BYTES))
                .max(self.buf.len() + READ_CHUNK_BYTES);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(None);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(Some(shift));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.map_io(e)),
            }
        }
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
                    0xEF if self.offset() == 0 && self.buf[..self.end].starts_with(&UTF8_BOM) => self.pos += 3,
                    b => return Ok(Some(b)),
                }
            }
            if self.refill(self.pos, 0)?.is_none() {
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
        let mut scan = ValueScan::default();
        loop {
            match scan.advance(&self.buf[start..self.end], scanned) {
                Step::Done(n) => {
                    self.pos = start + n;
                    return Ok(Some((start..start + n, dropped)));
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
                    match self.refill(start, max_bytes)? {
                        Some(shift) => start -= shift,
                        None => {
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
    }

    fn walk(&mut self, limits: &InputLimits, out: &mut InputEvents) -> Result<(), ReadError> {
        // Short reads may hand over a byte order mark piecemeal; have it whole before peeking.
        while self.end - self.pos < UTF8_BOM.len() && self.refill(self.pos, 0)?.is_some() {}
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
                // Most records are not STS; a substring test skips them unparsed.
                if sts.find(record).is_some() && assume.find(record).is_some() {
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
