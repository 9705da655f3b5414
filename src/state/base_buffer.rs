//! The memory of the last state base dropped, kept for the next base.
//!
//! A new base is tens of MB written at once. Fresh from the allocator,
//! every 4 KiB page of it faults on first touch: on the benchmark machine
//! that was 20 of the 30 ms it takes to write a 38 MB base, and a warm
//! function writes one every couple of hundred invocations of a large
//! account. The base it replaces is dropped soon after, so its buffer is
//! kept here and the next base is written into it.
//!
//! The peak stays where it was: a base is always written while the one it
//! replaces is still in use, so two bases fit in memory anyway. One spare
//! is kept per process, never more.

use std::sync::{Arc, Mutex};

/// Saved bytes shared by a base or state and every map reading from them.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

static SPARE: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// A base's bytes, whose memory goes to the spare when the last reader
/// lets go of them.
pub(crate) struct BaseBuffer(Vec<u8>);

impl BaseBuffer {
    pub(crate) fn shared(bytes: Vec<u8>) -> SharedBytes {
        Arc::new(BaseBuffer(bytes))
    }
}

impl AsRef<[u8]> for BaseBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for BaseBuffer {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        if let Ok(mut spare) = SPARE.lock() {
            // The larger one is the more likely to fit the next base.
            if spare.as_ref().is_none_or(|kept| kept.capacity() < bytes.capacity()) {
                *spare = Some(bytes);
            }
        }
    }
}

/// An empty buffer for a new base of about `estimate_bytes`: the spare
/// when it fits, else a fresh one. A spare too small for it is freed
/// first, so the two are never held together; one more than twice as
/// large is left for a larger account's base rather than tied up here.
///
/// A fresh one has room for a quarter more: an account's next base is a
/// little larger than its last. Room never written is never paged in.
pub(crate) fn take(estimate_bytes: usize) -> Vec<u8> {
    if let Ok(mut spare) = SPARE.lock() {
        match spare.take() {
            Some(mut kept) if kept.capacity() >= estimate_bytes && kept.capacity() / 2 <= estimate_bytes => {
                kept.clear();
                return kept;
            }
            Some(kept) if kept.capacity() > estimate_bytes => *spare = Some(kept),
            _ => {}
        }
    }
    Vec::with_capacity(estimate_bytes.saturating_add(estimate_bytes / 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Far larger than any base other tests write while these run, so
    /// theirs never replace or take the spare these look at.
    const MIB_32: usize = 32 << 20;

    /// Serialises the tests that look at the one spare, and empties it.
    fn spare_to_myself() -> std::sync::MutexGuard<'static, ()> {
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *SPARE.lock().unwrap() = None;
        guard
    }

    #[test]
    fn a_dropped_base_buffer_is_written_into_again() {
        let _guard = spare_to_myself();
        let mut bytes = take(MIB_32);
        bytes.extend_from_slice(b"old base");
        let address = bytes.as_ptr();
        let shared = BaseBuffer::shared(bytes);
        let reader = Arc::clone(&shared);
        drop(shared);
        // Still read by a state: not reused yet.
        let fresh = take(MIB_32);
        assert_ne!(fresh.as_ptr(), address);
        drop(fresh);
        drop(reader);
        let again = take(MIB_32);
        assert_eq!(again.as_ptr(), address, "the next base is written into the last one's memory");
        assert!(again.is_empty(), "and starts empty");
    }

    #[test]
    fn a_spare_is_used_only_by_a_base_it_fits() {
        let _guard = spare_to_myself();
        drop(BaseBuffer::shared(Vec::with_capacity(MIB_32)));
        assert_eq!(take(MIB_32).capacity(), MIB_32, "a spare just large enough is used");
        drop(BaseBuffer::shared(Vec::with_capacity(MIB_32)));
        assert_eq!(
            take(2 * MIB_32).capacity(),
            2 * MIB_32 + MIB_32 / 2,
            "too small: a fresh buffer, with room to grow"
        );
        assert!(SPARE.lock().unwrap().is_none(), "and the small spare is freed");

        drop(BaseBuffer::shared(Vec::with_capacity(8 * MIB_32)));
        assert!(take(MIB_32).capacity() < 8 * MIB_32, "far too large for a small base: not tied up");
        assert_eq!(take(5 * MIB_32).capacity(), 8 * MIB_32, "kept for a base it fits");
    }
}
