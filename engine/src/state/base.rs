//! A [`StateBase`]: most of an account's state, saved apart from the
//! changes that build on it and shared by many saves.

use std::sync::Arc;

use super::format::{checked_lines, Sections, BASE_HEADER, BASE_HEADER_PRINCIPALS_ONLY};
use super::{State, StateError};
use crate::storage::{BaseSpare, Lines, SharedBytes};

/// Most of an account's principals, histories and inputs, saved apart from
/// the state that builds on them (see the module notes). Immutable: it is named by its
/// checksum, so a copy kept in memory never goes stale.
#[derive(Clone)]
pub struct StateBase {
    pub(super) bytes: SharedBytes,
    pub(super) lines: Lines,
    /// Each section's lines, by name.
    pub(super) sections: Vec<(String, Lines)>,
    pub(super) principals: usize,
    pub(super) digest: String,
}

impl std::fmt::Debug for StateBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBase").field("digest", &self.digest).field("principals", &self.principals).finish()
    }
}

impl StateBase {
    /// Reads and checks a saved base; its memory goes to `spare` once no
    /// state reads from it any more.
    pub fn from_bytes(bytes: Vec<u8>, spare: &BaseSpare) -> Result<StateBase, StateError> {
        let bytes = spare.share(bytes);
        let corrupt = |reason: String| StateError::Corrupt { origin: "base".to_owned(), reason };
        let raw = (*bytes).as_ref();
        let header_end = memchr::memchr(b'\n', raw).unwrap_or(raw.len());
        if raw[..header_end] != *BASE_HEADER && raw[..header_end] != *BASE_HEADER_PRINCIPALS_ONLY {
            return Err(match newer_base_format(&raw[..header_end]) {
                Some(found) => StateError::Newer { origin: "base".to_owned(), found: format!("base format {found}") },
                None => corrupt("not a rolewatch state base".to_owned()),
            });
        }
        let (lines, trailer) = checked_lines(raw, header_end).map_err(corrupt)?;
        let base = StateBase::over(bytes, lines, trailer.principals, trailer.xxh3).map_err(corrupt)?;
        let known = State::default();
        let known = known.sections();
        if let Some((name, _)) = base.sections.iter().find(|(name, _)| !known.iter().any(|(k, _)| k == name)) {
            // A state over it would load without the section and drop it at its next new base.
            return Err(StateError::Newer {
                origin: "base".to_owned(),
                found: format!("section #{name}, unknown to this release"),
            });
        }
        Ok(base)
    }

    /// A base over `lines` of checked `bytes`.
    pub(super) fn over(
        bytes: SharedBytes,
        lines: std::ops::Range<usize>,
        principals: usize,
        digest: String,
    ) -> Result<StateBase, String> {
        let found = Sections::find((*bytes).as_ref(), lines)?;
        let sections = found.named.into_iter().map(|(name, lines)| (name, lines.into_lines(&bytes))).collect();
        Ok(StateBase { lines: found.principals.into_lines(&bytes), sections, bytes, principals, digest })
    }

    /// The lines of section `name` and their count; none when it has none.
    pub(super) fn section(&self, name: &str) -> (Lines, usize) {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, lines)| (lines.clone(), lines.count()))
            .unwrap_or_default()
    }

    /// Its checksum, which names it.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The saved bytes.
    pub fn as_bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }

    /// The saved bytes, shared rather than copied (to hand to a request).
    pub fn shared_bytes(&self) -> SharedBytes {
        Arc::clone(&self.bytes)
    }
}

/// State saved in two parts: the state, and a new base when one was due.
#[derive(Debug)]
pub struct SavedState {
    pub state: Vec<u8>,
    /// The checksum of the base `state` names, if it names one.
    pub base: Option<String>,
    /// To be stored before `state`, which names it.
    pub new_base: Option<StateBase>,
}

/// A base's section: its name and lines.
pub(super) fn base_section(bytes: &SharedBytes, name: String, range: std::ops::Range<usize>) -> (String, Lines) {
    (name, Lines::new(Arc::clone(bytes), range))
}

/// The format of a base header `{"rolewatch_state_base":N}` above this
/// release's.
fn newer_base_format(header: &[u8]) -> Option<u64> {
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let found = header.get("rolewatch_state_base")?.as_u64()?;
    (found > u64::from(super::STATE_FORMAT)).then_some(found)
}
