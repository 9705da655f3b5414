//! One input through the engine: the rule the CLI and the Lambda share.
//!
//! An input's role assumptions are applied in chunks as they are read, so
//! memory stays flat whatever the input holds, and the input is recorded as
//! processed only once it was read to its end: a cut or broken input is read
//! again in full later (a repaired copy, Lambda's retry), never half-skipped.
//! Detector state carries across chunks as across inputs: a burst split by a
//! chunk end raises the same alert, but one already raised when a chunk ends
//! lists only the events up to there (later ones fall in its cooldown).

use std::io::{self, Read};

use crate::alert::Alert;
use crate::cloudtrail::{
    read_input_chunked, AssumeRoleEvent, EpochSeconds, InputEvents, InputLimits, ReadError, ScanBuffer,
};
use crate::engine::Engine;

/// Role assumptions applied at a time from one input: bounds what an
/// input's events take in memory (each event owns its strings).
pub const CHUNK_EVENTS: usize = 4_096;

/// How one input went, with the alerts its applied events raised.
#[derive(Debug)]
pub struct Ingested {
    pub alerts: Vec<Alert>,
    pub outcome: IngestOutcome,
}

#[derive(Debug)]
pub enum IngestOutcome {
    /// Read to its end: every event applied and the input recorded.
    Read(InputEvents),
    /// The content cannot be read (corrupt, cut short, too large, not
    /// CloudTrail): what was read before the failure was applied, and the
    /// input is not recorded. Permanent: reading it again fails again.
    Unreadable { error: ReadError, partial: InputEvents },
    /// The byte source itself failed (a broken connection, a disk error):
    /// the content may be fine. The events of the last, incomplete chunk
    /// were not applied; `chunks_applied` whole chunks before them were.
    SourceFailed { error: io::Error, chunks_applied: usize, partial: InputEvents },
}

impl IngestOutcome {
    /// What was read: all of the input, or up to the failure.
    pub fn events(&self) -> &InputEvents {
        match self {
            IngestOutcome::Read(read) => read,
            IngestOutcome::Unreadable { partial, .. } | IngestOutcome::SourceFailed { partial, .. } => partial,
        }
    }
}

/// Reads `source` (gzip or plain CloudTrail JSON) through `engine` in
/// chunks of `chunk_events` role assumptions, and records `input_id` as
/// processed once all of it was applied. `buffer` is the read buffer, kept
/// by the caller for its next input.
pub fn ingest<R: Read + Send>(
    engine: &mut Engine,
    input_id: &str,
    source: R,
    limits: &InputLimits,
    chunk_events: usize,
    buffer: &mut ScanBuffer,
) -> Ingested {
    let mut source = SourceTracker { inner: source, error: None };
    let mut chunks = Chunks { engine, alerts: Vec::new(), newest: None, applied: 0 };
    let result = read_input_chunked(&mut source, limits, chunk_events, &mut |chunk| chunks.apply(chunk), buffer);
    let outcome = match (result, source.error) {
        (Err(mut failure), Some(error)) => {
            // The last chunk's events are dropped: the input is read again from its start.
            failure.partial.events.clear();
            IngestOutcome::SourceFailed { error, chunks_applied: chunks.applied, partial: failure.partial }
        }
        (Err(mut failure), None) => {
            chunks.apply(std::mem::take(&mut failure.partial.events));
            IngestOutcome::Unreadable { error: failure.error, partial: failure.partial }
        }
        (Ok(mut read), _) => {
            chunks.apply(std::mem::take(&mut read.events));
            chunks.engine.record_input(input_id, chunks.newest);
            IngestOutcome::Read(read)
        }
    };
    Ingested { alerts: chunks.alerts, outcome }
}

/// An input's role assumptions applied chunk by chunk.
struct Chunks<'e> {
    engine: &'e mut Engine,
    alerts: Vec<Alert>,
    newest: Option<EpochSeconds>,
    applied: usize,
}

impl Chunks<'_> {
    fn apply(&mut self, chunk: Vec<AssumeRoleEvent>) {
        if chunk.is_empty() {
            return;
        }
        self.applied += 1;
        self.newest = self.newest.max(chunk.iter().map(|e| e.event_time).max());
        self.alerts.extend(self.engine.apply_unrecorded(&chunk));
    }
}

/// Keeps the first error of the byte source itself, to tell a broken
/// connection or disk (the content may be fine) from broken content: the
/// gzip decoder and the scanner report both alike.
struct SourceTracker<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Read for SourceTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|error| {
            if error.kind() == io::ErrorKind::Interrupted {
                return error;
            }
            // The reader above gets a copy; the original, with its source, is kept.
            let copy = io::Error::new(error.kind(), error.to_string());
            self.error.get_or_insert(error);
            copy
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::config::Config;
    use crate::state::State;

    fn record(id: &str, minute: u32, user: &str) -> String {
        format!(
            r#"{{"eventVersion":"1.08","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2026-10-05T10:{minute:02}:00Z","eventID":"{id}","awsRegion":"us-east-1","sourceIPAddress":"192.0.2.10","recipientAccountId":"111122223333","errorCode":"AccessDenied","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/{user}","accountId":"111122223333"}},"requestParameters":{{"roleArn":"arn:aws:iam::111122223333:role/app","roleSessionName":"s"}}}}"#
        )
    }

    /// Five failures by one user (a `repeated_failures` burst), in one file.
    fn burst() -> String {
        let records: Vec<String> = (0..5).map(|i| record(&format!("e{i}"), i, "mallory")).collect();
        format!(r#"{{"Records":[{}]}}"#, records.join(","))
    }

    fn engine() -> Engine {
        Engine::new(&Config::default(), State::default())
    }

    #[test]
    fn a_whole_input_is_applied_in_chunks_and_recorded() {
        let mut engine = engine();
        let ingested =
            ingest(&mut engine, "f", burst().as_bytes(), &InputLimits::default(), 2, &mut ScanBuffer::default());
        assert!(matches!(ingested.outcome, IngestOutcome::Read(ref read) if read.role_assumptions == 5));
        assert_eq!(ingested.alerts.len(), 1, "the burst crosses two chunk ends and still raises once");
        assert!(engine.is_processed("f"));
    }

    #[test]
    fn cut_content_is_applied_up_to_the_cut_and_not_recorded() {
        let mut engine = engine();
        let text = burst();
        let cut = &text.as_bytes()[..text.len() - 40];
        let ingested = ingest(&mut engine, "f", cut, &InputLimits::default(), 2, &mut ScanBuffer::default());
        match ingested.outcome {
            IngestOutcome::Unreadable { error: ReadError::Truncated { .. }, partial } => {
                assert_eq!(partial.role_assumptions, 4)
            }
            other => panic!("{other:?}"),
        }
        assert!(!engine.is_processed("f"), "a repaired copy is read in full");
        assert!(ingested.alerts.is_empty(), "four failures are not a burst");
    }

    /// Gives `good` bytes, then fails as a dropped connection does.
    struct Breaks<'a> {
        good: &'a [u8],
    }

    impl Read for Breaks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.good.is_empty() {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset by peer"));
            }
            let n = buf.len().min(self.good.len()).min(64);
            buf[..n].copy_from_slice(&self.good[..n]);
            self.good = &self.good[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_broken_source_is_told_from_broken_content_and_its_last_chunk_is_not_applied() {
        let mut engine = engine();
        let text = burst();
        let source = Breaks { good: &text.as_bytes()[..text.len() - 40] };
        let ingested = ingest(&mut engine, "f", source, &InputLimits::default(), 3, &mut ScanBuffer::default());
        match ingested.outcome {
            IngestOutcome::SourceFailed { error, chunks_applied, partial } => {
                assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "the source's own error is kept");
                assert_eq!(chunks_applied, 1);
                assert!(partial.events.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert!(!engine.is_processed("f"));
        assert!(engine.state().repeated_failures.by_principal.len() == 1, "the first chunk was applied");
    }
}
