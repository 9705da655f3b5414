//! Where state lives between runs: a file for the CLI. (The Lambda keeps it
//! in S3: `rolewatch-lambda`'s state repository. A replay without `--state`
//! keeps its engine's state for that run only, and saves it nowhere.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{State, StateError};

/// Where state lives between runs: a file for the CLI, an S3 object per
/// account for the Lambda.
pub trait StateStore {
    fn load(&mut self) -> Result<State, StateError>;
    fn save(&mut self, state: &State) -> Result<(), StateError>;
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
            Ok(bytes) => State::parse(Arc::new(bytes), None, &self.path.display().to_string()),
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
            file.write_all(&state.to_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(write_err)
    }
}
