//! Detector state kept between runs and invocations, and where it is kept.
//!
//! State is bounded: every detector prunes by event time and caps its
//! per-key history, and processed inputs are remembered for a few days of
//! event time (redelivery happens within hours; cooldowns and event-id
//! dedup cover what is older).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cloudtrail::EpochSeconds;
use crate::detect::long_session::LongSessionState;
use crate::detect::repeated_failures::FailureState;
use crate::detect::source_ip::SourceIpState;

/// Bumped when the layout changes incompatibly.
pub const STATE_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// Newest event time seen; pruning is measured from it, never the clock.
    #[serde(default)]
    pub watermark: Option<EpochSeconds>,
    /// Processed inputs (file digests, `s3://bucket/key`) and the newest
    /// event time each held.
    #[serde(default)]
    pub inputs: BTreeMap<String, EpochSeconds>,
    /// Event times at which each dedup key raised an alert.
    #[serde(default)]
    pub raised: BTreeMap<String, Vec<EpochSeconds>>,
    #[serde(default)]
    pub repeated_failures: FailureState,
    #[serde(default)]
    pub unexpected_source_ip: SourceIpState,
    #[serde(default)]
    pub long_session: LongSessionState,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            watermark: None,
            inputs: BTreeMap::new(),
            raised: BTreeMap::new(),
            repeated_failures: FailureState::default(),
            unexpected_source_ip: SourceIpState::default(),
            long_session: LongSessionState::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write state file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("state {origin} is not valid rolewatch state: {reason}")]
    Corrupt { origin: String, reason: String },
    #[error("state {origin} has format {found}, this rolewatch reads format {STATE_FORMAT}")]
    Format { origin: String, found: u32 },
}

impl State {
    pub fn from_json_slice(bytes: &[u8]) -> Result<State, StateError> {
        State::parse(bytes, "object")
    }

    fn parse(bytes: &[u8], origin: &str) -> Result<State, StateError> {
        let state: State = serde_json::from_slice(bytes)
            .map_err(|e| StateError::Corrupt { origin: origin.to_owned(), reason: e.to_string() })?;
        if state.format != STATE_FORMAT {
            return Err(StateError::Format { origin: origin.to_owned(), found: state.format });
        }
        Ok(state)
    }

    pub fn to_json_vec(&self) -> Vec<u8> {
        // Maps with string keys and plain numbers always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Where state lives between runs: a file for the CLI, an S3 object per
/// account for the Lambda, memory for a single run.
pub trait StateStore {
    fn load(&mut self) -> Result<State, StateError>;
    fn save(&mut self, state: &State) -> Result<(), StateError>;
}

/// State for one run only.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    pub state: State,
}

impl StateStore for MemoryStateStore {
    fn load(&mut self) -> Result<State, StateError> {
        Ok(self.state.clone())
    }

    fn save(&mut self, state: &State) -> Result<(), StateError> {
        self.state = state.clone();
        Ok(())
    }
}

/// A JSON file, replaced atomically so a crash never leaves half a state.
#[derive(Debug)]
pub struct FileStateStore {
    path: PathBuf,
}

impl FileStateStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStateStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StateStore for FileStateStore {
    /// A missing file is a fresh start; an unreadable one is an error, never
    /// silently replaced (it holds the baselines people rely on).
    fn load(&mut self) -> Result<State, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => State::parse(&bytes, &self.path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StateError::Read { path: self.path.clone(), source }),
        }
    }

    fn save(&mut self, state: &State) -> Result<(), StateError> {
        let write_err = |source| StateError::Write { path: self.path.clone(), source };
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name =
            self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "state".to_owned());
        let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&state.to_json_vec())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStateStore::new(dir.path().join("state.json"));
        assert_eq!(store.load().unwrap(), State::default());
        let mut state = State::default();
        state.inputs.insert("x".into(), 5);
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap(), state);
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{not json").unwrap();
        let err = FileStateStore::new(&path).load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
