//! One object streamed through the engine: its body is decompressed and
//! walked on a blocking thread as it arrives, and its role assumptions are
//! applied in chunks (`rolewatch::ingest`), so memory stays flat however
//! many it holds.

use std::sync::Arc;

use rolewatch::alert::Alert;
use rolewatch::cloudtrail::{InputEvents, InputLimits, ScanBuffer};
use rolewatch::engine::Engine;
use rolewatch::ingest::{ingest, IngestOutcome};
use tokio_util::io::SyncIoBridge;

use crate::ports::{ObjectSource, SourceError};
use crate::report::{FetchError, ObjectProblem};
use crate::triggers::ObjectRef;

/// How streaming one object through the engine went.
pub(crate) enum Streamed {
    /// The engine comes back, with the alerts the object's events raised.
    Applied { engine: Box<Engine>, outcome: Outcome, alerts: Vec<Alert> },
    /// The attempt is void: chunks of the object were applied when its byte
    /// stream broke (the content may be fine), or the reader task died with
    /// the engine. Nothing of this attempt may be saved or published.
    Void(Arc<FetchError>),
}

pub(crate) enum Outcome {
    /// Read to its end: every event applied and the object recorded.
    Read(InputEvents),
    /// Permanent: the content cannot be read. What was read before the
    /// failure (`partial`) was applied, and the object not recorded.
    Unreadable { problem: Arc<ObjectProblem>, partial: InputEvents },
    /// Possibly transient: nothing of the object reached the engine.
    Fetch(Arc<FetchError>),
}

/// Streams `object` through `engine`; the object is recorded as processed
/// only once all of it was applied. The read buffer comes back for the next
/// object.
pub(crate) async fn stream_object<S: ObjectSource>(
    source: &S,
    object: &ObjectRef,
    input_id: &str,
    engine: Engine,
    limits: InputLimits,
    chunk_events: usize,
    buffer: ScanBuffer,
) -> (Streamed, ScanBuffer) {
    let applied =
        |engine: Engine, outcome: Outcome| Streamed::Applied { engine: Box::new(engine), outcome, alerts: vec![] };
    let reader = match source.open(object).await {
        Ok(reader) => reader,
        Err(SourceError::NotFound) => {
            let outcome =
                Outcome::Unreadable { problem: Arc::new(ObjectProblem::Missing), partial: InputEvents::default() };
            return (applied(engine, outcome), buffer);
        }
        Err(error) => return (applied(engine, Outcome::Fetch(Arc::new(FetchError::Open(error)))), buffer),
    };
    let input_id = input_id.to_owned();
    let bridge = SyncIoBridge::new(reader);
    let joined = tokio::task::spawn_blocking(move || {
        let (mut engine, mut buffer) = (engine, buffer);
        let ingested = ingest(&mut engine, &input_id, bridge, &limits, chunk_events, &mut buffer);
        let outcome = match ingested.outcome {
            IngestOutcome::Read(read) => Outcome::Read(read),
            IngestOutcome::Unreadable { error, partial } => {
                Outcome::Unreadable { problem: Arc::new(ObjectProblem::Content(error)), partial }
            }
            // Chunks of an object whose content may be fine are in the engine:
            // only a fresh attempt without them can go on.
            IngestOutcome::SourceFailed { error, chunks_applied, .. } if chunks_applied > 0 => {
                return (Streamed::Void(Arc::new(FetchError::Stream(error))), buffer);
            }
            IngestOutcome::SourceFailed { error, .. } => Outcome::Fetch(Arc::new(FetchError::Stream(error))),
        };
        (Streamed::Applied { engine: Box::new(engine), outcome, alerts: ingested.alerts }, buffer)
    })
    .await;
    // The engine went down with the task: only a fresh attempt can go on.
    joined.unwrap_or_else(|e| (Streamed::Void(Arc::new(FetchError::Task(e))), ScanBuffer::default()))
}
