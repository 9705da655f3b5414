//! Gzip files (RFC 1952): any number of members, each a header, a raw
//! deflate stream and a trailer holding the CRC-32 and size of its data.
//!
//! [`Members`] inflates and hands each member's trailer over after its
//! data; [`GzipReader`], the `Read` the reader and its inflate thread use,
//! checks each member's CRC-32 and size against it. Read here rather than
//! by flate2's decoder so that the CRC-32 can be chosen: on x86-64 it is crc32fast's, in half
//! the time of zlib-rs's (the one flate2's decoder uses); elsewhere it is
//! zlib-rs's, which on aarch64 ran seven times faster than crc32fast's
//! under qemu (no arm64 hardware here to settle it).

use std::io::{self, BufRead, Read};

use flate2::{Decompress, FlushDecompress, Status};

/// Header flags (RFC 1952, 2.3.1).
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0xE0;

/// What a member's trailer says of its decompressed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Trailer {
    crc32: u32,
    /// The size modulo 2^32.
    size: u32,
}

/// The CRC-32 and size of decompressed data as read, to compare with its
/// member's [`Trailer`].
#[derive(Debug, Default)]
struct Checksum {
    crc32: Crc32,
    size: u32,
}

/// The CRC-32 of the bytes so far, by the faster implementation measured
/// for the architecture (see the module's comment).
#[derive(Debug, Default)]
struct Crc32(#[cfg(target_arch = "x86_64")] crc32fast::Hasher, #[cfg(not(target_arch = "x86_64"))] flate2::Crc);

impl Crc32 {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    #[cfg(target_arch = "x86_64")]
    fn value(&self) -> u32 {
        self.0.clone().finalize()
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn value(&self) -> u32 {
        self.0.sum()
    }
}

impl Checksum {
    fn update(&mut self, data: &[u8]) {
        self.crc32.update(data);
        self.size = self.size.wrapping_add(data.len() as u32);
    }

    fn crc32(&self) -> u32 {
        self.crc32.value()
    }

    /// Checks a member's data against its trailer, and starts over for the next member.
    fn finish_member(&mut self, trailer: Trailer) -> io::Result<()> {
        let read = std::mem::take(self);
        if read.crc32() != trailer.crc32 || read.size != trailer.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "corrupt gzip stream: the data does not match the checksum in its trailer",
            ));
        }
        Ok(())
    }
}

/// One step of decompression.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// This many bytes were written to the front of the output.
    Data(usize),
    /// A member ended; its data so far must match this.
    MemberEnd(Trailer),
    /// The input ended after a whole member.
    End,
}

enum State {
    Header,
    Body,
    Trailer,
    /// After a member: the end, or another member.
    Between,
    Done,
}

/// The members of a gzip file, inflated one piece at a time.
struct Members<R> {
    input: R,
    inflate: Decompress,
    state: State,
}

impl<R: BufRead> Members<R> {
    fn new(input: R) -> Self {
        Members { input, inflate: Decompress::new(false), state: State::Header }
    }

    /// Inflates into `out` (not empty), or reports a member's end or the input's.
    fn next_piece(&mut self, out: &mut [u8]) -> io::Result<Piece> {
        loop {
            match self.state {
                State::Header => {
                    skip_header(&mut self.input)?;
                    self.state = State::Body;
                }
                State::Body => match self.inflate_some(out)? {
                    0 => self.state = State::Trailer,
                    n => return Ok(Piece::Data(n)),
                },
                State::Trailer => {
                    let mut bytes = [0u8; 8];
                    read_exactly(&mut self.input, &mut bytes, "the gzip trailer")?;
                    let [c0, c1, c2, c3, s0, s1, s2, s3] = bytes;
                    self.inflate.reset(false);
                    self.state = State::Between;
                    return Ok(Piece::MemberEnd(Trailer {
                        crc32: u32::from_le_bytes([c0, c1, c2, c3]),
                        size: u32::from_le_bytes([s0, s1, s2, s3]),
                    }));
                }
                State::Between => {
                    // Anything after a member must be another member.
                    self.state = if self.input.fill_buf()?.is_empty() { State::Done } else { State::Header };
                }
                State::Done => return Ok(Piece::End),
            }
        }
    }

    /// Inflates into `out`: bytes written, or 0 at the end of the deflate stream.
    fn inflate_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let input = self.input.fill_buf()?;
            let at_eof = input.is_empty();
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, out, if at_eof { FlushDecompress::Finish } else { FlushDecompress::None })
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "corrupt deflate stream"))?;
            let consumed = (self.inflate.total_in() - in_before) as usize;
            let written = (self.inflate.total_out() - out_before) as usize;
            self.input.consume(consumed);
            match status {
                Status::StreamEnd if written == 0 => return Ok(0),
                _ if written > 0 => return Ok(written),
                _ if at_eof => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "incomplete deflate stream"));
                }
                // Input taken in, nothing out yet (block headers): more input.
                _ => {}
            }
        }
    }
}

/// Reads past a member's header, checking what can be checked.
fn skip_header(input: &mut impl BufRead) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid gzip header: {what}"));
    let mut fixed = [0u8; 10];
    read_exactly(input, &mut fixed, "a gzip header")?;
    let mut header = Checksum::default();
    header.update(&fixed);
    if fixed[..2] != [0x1f, 0x8b] {
        return Err(bad("no gzip magic bytes (data after the last member?)"));
    }
    if fixed[2] != 8 {
        return Err(bad("compression method is not deflate"));
    }
    let flags = fixed[3];
    if flags & FRESERVED != 0 {
        return Err(bad("reserved flags set"));
    }
    if flags & FEXTRA != 0 {
        let mut len = [0u8; 2];
        read_exactly(input, &mut len, "a gzip header")?;
        header.update(&len);
        let mut extra = vec![0u8; u16::from_le_bytes(len) as usize];
        read_exactly(input, &mut extra, "a gzip header")?;
        header.update(&extra);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            skip_zero_terminated(input, &mut header)?;
        }
    }
    if flags & FHCRC != 0 {
        let mut crc16 = [0u8; 2];
        read_exactly(input, &mut crc16, "a gzip header")?;
        if u16::from_le_bytes(crc16) != header.crc32() as u16 {
            return Err(bad("its checksum does not match"));
        }
    }
    Ok(())
}

/// Skips a file name or comment without holding it: a header may be of any length.
fn skip_zero_terminated(input: &mut impl BufRead, header: &mut Checksum) -> io::Result<()> {
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the input ends inside a gzip header"));
        }
        match memchr::memchr(0, available) {
            Some(k) => {
                header.update(&available[..=k]);
                input.consume(k + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                header.update(available);
                input.consume(n);
            }
        }
    }
}

fn read_exactly(input: &mut impl Read, bytes: &mut [u8], what: &str) -> io::Result<()> {
    input.read_exact(bytes).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            io::Error::new(io::ErrorKind::UnexpectedEof, format!("the input ends inside {what}"))
        }
        _ => e,
    })
}

/// A gzip file's data, every member's checksum checked as its end is read.
pub(super) struct GzipReader<R> {
    members: Members<R>,
    checksum: Checksum,
}

impl<R: BufRead> GzipReader<R> {
    pub(super) fn new(input: R) -> Self {
        GzipReader { members: Members::new(input), checksum: Checksum::default() }
    }
}

impl<R: BufRead> Read for GzipReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.members.next_piece(out)? {
                Piece::Data(n) => {
                    self.checksum.update(&out[..n]);
                    return Ok(n);
                }
                Piece::MemberEnd(trailer) => self.checksum.finish_member(trailer)?,
                Piece::End => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
#[path = "gzip_tests.rs"]
mod tests;
