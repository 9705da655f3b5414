//! The memory of the last state base dropped, kept for the next base.
//!
//! A new base is tens of MB written at once. Fresh from the allocator,
//! every page of it faults on first touch, which was most of the time a
//! base write took in `engine/benches/state.rs` (figures in
//! docs/performance.md), and a warm function writes one every couple of
//! hundred invocations of a large account. The base it replaces is dropped soon after, so its buffer is
//! kept here and the next base is written into it.
//!
//! The peak stays where it was: a base is always written while the one it
//! replaces is still in use, so two bases fit in memory anyway. One spare
//! is kept per [`BaseSpare`], never more, and its owner is plain to see:
//! the Lambda's state repository holds one for the life of the process.

use std::sync::{Arc, Mutex};

/// Saved bytes shared by a base or state and every map reading from them.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Where a dropped base's memory waits for the next base. A handle: clones
/// share one spare.
#[derive(Clone, Default)]
pub struct BaseSpare(Arc<Mutex<Option<Vec<u8>>>>);

impl std::fmt::Debug for BaseSpare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.0.lock().ok().and_then(|spare| spare.as_ref().map(Vec::capacity));
        f.debug_struct("BaseSpare").field("kept_bytes", &kept).finish()
    }
}

/// A base's bytes, whose memory goes back to its spare when the last
/// reader lets go of them.
struct BaseBuffer {
    bytes: Vec<u8>,
    home: BaseSpare,
}

impl AsRef<[u8]> for BaseBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for BaseBuffer {
    fn drop(&mut self) {
        self.home.offer(std::mem::take(&mut self.bytes));
    }
}

impl BaseSpare {
    /// `bytes` as a base's shared bytes, returned here once unused.
    pub fn share(&self, bytes: Vec<u8>) -> SharedBytes {
        Arc::new(BaseBuffer { bytes, home: self.clone() })
    }

    fn offer(&self, bytes: Vec<u8>) {
        if let Ok(mut spare) = self.0.lock() {
            // The larger one is the more likely to fit the next base.
            if spare.as_ref().is_none_or(|kept| kept.capacity() < bytes.capacity()) {
                *spare = Some(bytes);
            }
        }
    }

    /// The spare when it fits or once grown, else a fresh buffer. A base read
    /// from S3 is exactly its size and the next base a little larger, so a
    /// spare too small is grown: a buffer this size is usually mapped on its
    /// own, and glibc then moves its pages, already touched, with `mremap`
    /// rather than copying them, so only the growth faults. (Had the
    /// allocator placed it on its heap, growing copies it, briefly holding
    /// both.) One more than twice as large is left for a larger account's
    /// base rather than tied up.
    ///
    /// New room is a quarter more than asked: an account's next base is a
    /// little larger than its last. Room never written is never paged in.
    pub fn take(&self, estimate_bytes: usize) -> Vec<u8> {
        let room = estimate_bytes.saturating_add(estimate_bytes / 4);
        if let Ok(mut spare) = self.0.lock() {
            match spare.take() {
                Some(mut kept) if kept.capacity() / 2 <= estimate_bytes => {
                    kept.clear();
                    if kept.capacity() < estimate_bytes {
                        kept.reserve_exact(room);
                    }
                    return kept;
                }
                Some(kept) => *spare = Some(kept),
                None => {}
            }
        }
        Vec::with_capacity(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_dropped_base_buffer_is_written_into_again() {
        let spare = BaseSpare::default();
        let size = 64 * MIB;
        let mut bytes = spare.take(size);
        bytes.extend_from_slice(b"old base");
        let address = bytes.as_ptr();
        let shared = spare.share(bytes);
        let reader = Arc::clone(&shared);
        drop(shared);
        // Still read by a state: not reused yet.
        let fresh = spare.take(size);
        assert_ne!(fresh.as_ptr(), address);
        drop(fresh);
        drop(reader);
        let again = spare.take(size);
        assert_eq!(again.as_ptr(), address, "the next base is written into the last one's memory");
        assert!(again.is_empty(), "and starts empty");
    }

    #[test]
    fn a_spare_is_used_only_by_a_base_it_fits() {
        let spare = BaseSpare::default();
        spare.offer(Vec::with_capacity(MIB));
        assert_eq!(spare.take(MIB).capacity(), MIB, "a spare just large enough is used");

        let mut small = Vec::with_capacity(MIB);
        small.extend_from_slice(b"old base");
        spare.offer(small);
        let grown = spare.take(2 * MIB);
        assert_eq!(grown.capacity(), 2 * MIB + MIB / 2, "too small: grown, with room to grow more");
        assert!(grown.is_empty(), "and empty");
        assert!(spare.0.lock().unwrap().is_none(), "the small spare was grown, not kept beside it");

        spare.offer(Vec::with_capacity(8 * MIB));
        spare.offer(Vec::with_capacity(MIB));
        assert_eq!(spare.take(MIB).capacity(), MIB + MIB / 4, "far too large for a small base: not tied up");
        assert_eq!(spare.take(5 * MIB).capacity(), 8 * MIB, "the larger spare was kept for a base it fits");
    }
}
