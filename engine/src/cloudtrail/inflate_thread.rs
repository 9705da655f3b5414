//! Decompression on a thread of its own, so that inflating the next bytes
//! and scanning the last ones overlap on two cores.
//!
//! The inflate thread fills fixed-size chunks and hands them over a bounded
//! channel; the scanner reads them through [`Inflated`] and hands each empty
//! chunk back. At most `QUEUED_CHUNKS + 2` chunks exist at once (queued, one
//! being filled, one being read), so memory stays flat whatever the input.
//! The bytes, their order and every error reach the scanner exactly as a
//! direct read would hand them over.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::ScopedJoinHandle;

/// Decompressed bytes per chunk: small enough to still be in the shared
/// cache when the scanner reads them.
const CHUNK_BYTES: usize = 128 * 1024;
/// Full chunks waiting for the scanner before the inflate thread waits too.
const QUEUED_CHUNKS: usize = 4;
/// Every chunk that can exist at once: queued, being filled, being read.
const MAX_CHUNKS: usize = QUEUED_CHUNKS + 2;

/// What the thread hands back when joined: its spare chunks and the channel
/// the scanner returned its empty ones on.
type Leftovers = (Vec<Vec<u8>>, Receiver<Vec<u8>>);

enum Message {
    Data { chunk: Vec<u8>, len: usize },
    Failed(io::Error),
    End,
}

/// The scanner's side: a reader over the chunks the inflate thread sends.
pub(super) struct Inflated {
    full: Receiver<Message>,
    empty: Sender<Vec<u8>>,
    /// The chunk being read, its length and the next unread index.
    current: Option<(Vec<u8>, usize, usize)>,
    ended: bool,
}

/// Spawns the inflate thread on `scope`, reading `source` into chunks taken
/// from `spare` first. The thread ends at the end of `source`, at its first
/// error, or when the scanner stops reading ([`finish`]).
pub(super) fn spawn<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    source: R,
    spare: Vec<Vec<u8>>,
) -> (Inflated, ScopedJoinHandle<'scope, Leftovers>) {
    let (full_tx, full_rx) = mpsc::sync_channel(QUEUED_CHUNKS);
    let (empty_tx, empty_rx) = mpsc::channel();
    let handle = scope.spawn(move || inflate(source, full_tx, empty_rx, spare));
    (Inflated { full: full_rx, empty: empty_tx, current: None, ended: false }, handle)
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
        chunk.resize(CHUNK_BYTES, 0);
        let mut len = 0;
        let mut failed = None;
        let mut at_end = false;
        while len < CHUNK_BYTES {
            match source.read(&mut chunk[len..]) {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut messages = Vec::with_capacity(2);
        if len > 0 {
            messages.push(Message::Data { chunk, len });
        } else {
            spare.push(chunk);
        }
        match failed {
            Some(e) => messages.push(Message::Failed(e)),
            None if at_end => messages.push(Message::End),
            None => {}
        }
        let last = messages.iter().any(|m| !matches!(m, Message::Data { .. }));
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
/// next input.
pub(super) fn finish(mut inflated: Inflated, thread: ScopedJoinHandle<'_, Leftovers>) -> Vec<Vec<u8>> {
    let mut chunks: Vec<Vec<u8>> = inflated.current.take().map(|(chunk, _, _)| chunk).into_iter().collect();
    let Inflated { full, .. } = inflated;
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
    chunks
}

impl Read for Inflated {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((chunk, len, at)) = &mut self.current {
                if *at < *len {
                    let n = (*len - *at).min(out.len());
                    out[..n].copy_from_slice(&chunk[*at..*at + n]);
                    *at += n;
                    return Ok(n);
                }
                if let Some((chunk, _, _)) = self.current.take() {
                    // The thread may have ended already; the chunk is then simply dropped.
                    let _ = self.empty.send(chunk);
                }
            }
            if self.ended {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(Message::Data { chunk, len }) => self.current = Some((chunk, len, 0)),
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
    }
}
