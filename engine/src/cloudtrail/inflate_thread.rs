//! Decompression on a thread of its own, so that inflating the next bytes
//! and scanning the last ones overlap on two cores.
//!
//! The inflate thread fills fixed-size chunks and hands them over a bounded
//! channel; the scanner scans each chunk where it lies ([`Inflated`] is its
//! [`Refill`]) and hands it back when done. A record cut by a chunk's end is
//! put back together in the next chunk's headroom, in front of its data, so
//! only that record's first part is copied. At most `QUEUED_CHUNKS + 2`
//! chunks exist at once (queued, one being filled, one being scanned), so
//! memory stays flat whatever the input. The bytes, their order and every
//! error reach the scanner exactly as a direct read
//! ([`super::gzip::GzipReader`] under the size cap) would hand them over.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::ScopedJoinHandle;

use super::reader::Refill;

/// Decompressed bytes per chunk: small enough to still be in the shared
/// cache when the scanner reads them.
const CHUNK_BYTES: usize = 128 * 1024;
/// Room in front of each chunk's data for the start of a record the last
/// chunk cut; a longer one is put together in the scanner's own buffer.
const HEADROOM_BYTES: usize = 32 * 1024;
/// Full chunks waiting for the scanner before the inflate thread waits too:
/// 8 MiB, about 10 ms of inflating. While the engine applies a chunk of
/// role assumptions (about 20 ms for 4,096 on this machine) the scanner
/// reads nothing; with only four chunks queued the inflate thread stopped
/// too, and a replay took 10% longer. 128 chunks were faster still on a
/// file five times the size, but peak memory then depended on how often
/// the queue filled (1.3x for that file, against the benchmark's flatness
/// target of 1.25x); 64 fill at each engine chunk, so memory stays flat.
/// A scanner that keeps up holds one or two chunks.
const QUEUED_CHUNKS: usize = 64;
/// Every chunk that can exist at once: queued, being filled, being read
/// (about 10.3 MiB with their headroom).
pub(super) const MAX_CHUNKS: usize = QUEUED_CHUNKS + 2;

/// What the thread hands back when joined: its spare chunks and the channel
/// the scanner returned its empty ones on.
type Leftovers = (Vec<Vec<u8>>, Receiver<Vec<u8>>);

enum Message {
    Data { chunk: Vec<u8>, len: usize },
    Failed(io::Error),
    End,
}

/// The scanner's side: the chunks the inflate thread sends, as the scanner's [`Refill`].
pub(super) struct Inflated {
    full: Receiver<Message>,
    empty: Sender<Vec<u8>>,
    /// Whether the scanner's buffer is a chunk (else it is its own).
    scanning_chunk: bool,
    /// The scanner's own buffer while it scans chunks.
    own: Vec<u8>,
    ended: bool,
}

/// Spawns the inflate thread on `scope`, reading `source` (the gzip
/// reader under the size cap, as the in-line path reads it) into chunks
/// taken from `spare` first. The thread ends at the end of `source`, at its
/// first error, or when the scanner stops reading ([`finish`]).
pub(super) fn spawn<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    source: R,
    spare: Vec<Vec<u8>>,
) -> (Inflated, ScopedJoinHandle<'scope, Leftovers>) {
    let (full_tx, full_rx) = mpsc::sync_channel(QUEUED_CHUNKS);
    let (empty_tx, empty_rx) = mpsc::channel();
    let handle = scope.spawn(move || inflate(source, full_tx, empty_rx, spare));
    let inflated = Inflated { full: full_rx, empty: empty_tx, scanning_chunk: false, own: Vec::new(), ended: false };
    (inflated, handle)
}

fn inflate<R: Read>(
    mut source: R,
    full: SyncSender<Message>,
    empty: Receiver<Vec<u8>>,
    mut spare: Vec<Vec<u8>>,
) -> Leftovers {
    loop {
        // A chunk handed back first; a new one only when all that exist are
        // queued or in use, which bounds them at QUEUED_CHUNKS + 2.
        let mut chunk = spare.pop().or_else(|| empty.try_recv().ok()).unwrap_or_default();
        chunk.resize(HEADROOM_BYTES + CHUNK_BYTES, 0);
        let mut len = 0;
        // What ends this chunk early: the input's end or an error.
        let mut after = None;
        while len < CHUNK_BYTES && after.is_none() {
            match source.read(&mut chunk[HEADROOM_BYTES + len..]) {
                Ok(0) => after = Some(Message::End),
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => after = Some(Message::Failed(e)),
            }
        }
        let mut messages = Vec::with_capacity(2);
        if len > 0 {
            messages.push(Message::Data { chunk, len });
        } else {
            spare.push(chunk);
        }
        let last = after.is_some();
        messages.extend(after);
        for message in messages {
            if let Err(mpsc::SendError(message)) = full.send(message) {
                // The scanner stopped reading (a syntax error, a limit): so do we.
                if let Message::Data { chunk, .. } = message {
                    spare.push(chunk);
                }
                return (spare, empty);
            }
        }
        if last {
            return (spare, empty);
        }
    }
}

/// Stops reading (a thread still inflating stops at its next send, after an
/// error or a limit), waits for the thread, and returns every chunk for the
/// next input, and the scanner's own buffer.
pub(super) fn finish(
    inflated: Inflated,
    thread: ScopedJoinHandle<'_, Leftovers>,
    scanner_buf: Vec<u8>,
) -> (Vec<Vec<u8>>, Vec<u8>) {
    let Inflated { full, scanning_chunk, own, .. } = inflated;
    let (mut chunks, own) = if scanning_chunk { (vec![scanner_buf], own) } else { (Vec::new(), scanner_buf) };
    chunks.extend(full.try_iter().filter_map(|m| match m {
        Message::Data { chunk, .. } => Some(chunk),
        _ => None,
    }));
    drop(full);
    // The thread only panics on a bug; its chunks are then lost, nothing else.
    if let Ok((spare, empty)) = thread.join() {
        chunks.extend(spare);
        chunks.extend(empty.try_iter());
    }
    chunks.truncate(MAX_CHUNKS);
    (chunks, own)
}

impl Inflated {
    /// The next chunk with data and the length of its data (after the
    /// headroom); `None` at the end of the input.
    fn next_chunk(&mut self) -> io::Result<Option<(Vec<u8>, usize)>> {
        while !self.ended {
            match self.full.recv() {
                Ok(Message::Data { chunk, len }) => return Ok(Some((chunk, len))),
                Ok(Message::End) => self.ended = true,
                Ok(Message::Failed(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                // Only a panic ends the thread without End or Failed: never
                // take what came before for the whole input.
                Err(mpsc::RecvError) => {
                    self.ended = true;
                    return Err(io::Error::other("the inflate thread stopped before the end of the input"));
                }
            }
        }
        Ok(None)
    }

    /// A buffer the scanner is done with: a chunk goes back to the thread
    /// (which may have ended already; it is then simply dropped).
    fn put_aside(&mut self, buf: Vec<u8>, was_chunk: bool) {
        if was_chunk {
            let _ = self.empty.send(buf);
        } else {
            self.own = buf;
        }
    }
}

impl Refill for Inflated {
    fn refill(
        &mut self,
        buf: &mut Vec<u8>,
        keep_from: usize,
        end: usize,
        _max_keep: usize,
    ) -> io::Result<(usize, usize)> {
        let Some((mut chunk, len)) = self.next_chunk()? else {
            return Ok((keep_from, end));
        };
        let kept = end - keep_from;
        if kept <= HEADROOM_BYTES {
            // The usual case: scan the chunk where it lies.
            let kept_at = HEADROOM_BYTES - kept;
            chunk[kept_at..HEADROOM_BYTES].copy_from_slice(&buf[keep_from..end]);
            let done = std::mem::replace(buf, chunk);
            self.put_aside(done, self.scanning_chunk);
            self.scanning_chunk = true;
            return Ok((kept_at, HEADROOM_BYTES + len));
        }
        // A record longer than the headroom: put together in the scanner's
        // own buffer (the caller stops keeping one past `max_keep`).
        if self.scanning_chunk {
            let mut own = std::mem::take(&mut self.own);
            own.clear();
            own.extend_from_slice(&buf[keep_from..end]);
            let done = std::mem::replace(buf, own);
            self.put_aside(done, true);
            self.scanning_chunk = false;
        } else {
            buf.copy_within(keep_from..end, 0);
            buf.truncate(kept);
        }
        buf.extend_from_slice(&chunk[HEADROOM_BYTES..HEADROOM_BYTES + len]);
        self.put_aside(chunk, true);
        Ok((0, buf.len()))
    }
}
