//! Detector state kept between runs and invocations, and where it is kept.
//!
//! State is bounded: every detector prunes by event time and caps its
//! per-key history, and processed inputs are remembered for a few days of
//! event time (redelivery happens within hours; cooldowns and event-id
//! dedup cover what is older).
//!
//! Saved state (format 2) is lines of text:
//!
//! ```text
//! {"format":2,"watermark":…,"inputs":{…},…}       everything small, one JSON document
//! "arn:aws:sts::…:assumed-role/…"\t{"first_seen":…}   one line per known principal, sorted
//! {"principals":N,"xxh3":"…"}                      count and checksum of all that precedes
//! ```
//!
//! Principals are most of an account's state and an invocation touches few of
//! them, so their lines are decoded only when used and copied as they are on
//! save (see [`lazy_map`]). Format 1, one JSON document, is still read.
//!
//! Saved in two parts ([`State::to_parts`], for the Lambda), most principals
//! live in a [`StateBase`] of the same shape, rewritten rarely and shared by
//! many saves; the state itself then carries `"base":"<its checksum>"` in
//! its first line and, on its lines, only what changed since that base (a
//! `null` marks a principal forgotten since). An invocation then reads and
//! writes the changes, not every principal the account knows.

mod lazy_map;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use lazy_map::LazyMap;
use lazy_map::Lines;

use serde::{Deserialize, Serialize};

use crate::cloudtrail::EpochSeconds;
use crate::detect::long_session::LongSessionState;
use crate::detect::repeated_failures::FailureState;
use crate::detect::source_ip::SourceIpState;

/// Bumped when the layout changes incompatibly.
pub const STATE_FORMAT: u32 = 2;
/// The single-document format before principals got lines of their own.
const FORMAT_ONE_DOCUMENT: u32 = 1;
/// Changes on top of a base are saved as changes up to [`changes_limit`];
/// past it the base is written again.
const MIN_CHANGES_LIMIT_BYTES: usize = 256 * 1024;

/// Every save copies the changes and every new base copies the base: the
/// geometric mean of the base and 64 KiB (what one invocation typically
/// changes) keeps the sum of the two small. 1.6 MB for a 37 MB base.
fn changes_limit(base_bytes: usize) -> usize {
    let mean = ((base_bytes as f64) * 65_536.0).sqrt() as usize;
    mean.max(MIN_CHANGES_LIMIT_BYTES)
}
/// The first line of a [`StateBase`].
const BASE_HEADER: &[u8] = br#"{"rolewatch_state_base":2}"#;

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
    /// Checksum of the base a saved state's principals build on; read, then
    /// held by the principals themselves.
    #[serde(default, skip_serializing)]
    base: Option<String>,
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
            base: None,
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
    #[error("state {origin} has format {found}, this rolewatch reads formats 1 and {STATE_FORMAT}")]
    Format { origin: String, found: u32 },
}

/// The last line of saved state.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    principals: usize,
    /// xxh3-64 of every byte before this line, in hex: a damaged or
    /// hand-edited state is refused at load, not half-read later.
    xxh3: String,
}

/// Most of an account's principals, saved apart from the state that
/// builds on them (see the module notes). Immutable: it is named by its
/// checksum, so a copy kept in memory never goes stale.
#[derive(Clone)]
pub struct StateBase {
    bytes: Arc<Vec<u8>>,
    lines: Lines,
    principals: usize,
    digest: String,
}

impl std::fmt::Debug for StateBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateBase").field("digest", &self.digest).field("principals", &self.principals).finish()
    }
}

impl StateBase {
    /// Reads and checks a saved base.
    pub fn from_bytes(bytes: impl Into<Arc<Vec<u8>>>) -> Result<StateBase, StateError> {
        let bytes = bytes.into();
        let corrupt = |reason: String| StateError::Corrupt { origin: "base".to_owned(), reason };
        let header_end = memchr::memchr(b'\n', &bytes).unwrap_or(bytes.len());
        if &bytes[..header_end] != BASE_HEADER {
            return Err(corrupt("not a rolewatch state base".to_owned()));
        }
        let (lines, trailer) = checked_lines(&bytes, header_end).map_err(corrupt)?;
        Ok(StateBase {
            lines: Lines::new(Arc::clone(&bytes), lines),
            bytes,
            principals: trailer.principals,
            digest: trailer.xxh3,
        })
    }

    /// Its checksum, which names it.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The saved bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The saved bytes, shared rather than copied (to hand to a request).
    pub fn shared_bytes(&self) -> Arc<Vec<u8>> {
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

/// Checks the closing line of saved lines: the count and the checksum of
/// everything before it. Returns where the lines are.
fn checked_lines(bytes: &[u8], header_end: usize) -> Result<(std::ops::Range<usize>, Trailer), String> {
    let body = bytes.get(..bytes.len().saturating_sub(1)).unwrap_or_default();
    let trailer_start = match memchr::memrchr(b'\n', body) {
        Some(i) if i >= header_end && bytes.ends_with(b"\n") => i + 1,
        _ => return Err("the closing checksum line is missing (a truncated write?)".to_owned()),
    };
    let trailer: Trailer = serde_json::from_slice(&bytes[trailer_start..]).map_err(|e| format!("closing line: {e}"))?;
    let digest = digest(&bytes[..trailer_start], trailer.principals);
    if trailer.xxh3 != digest {
        return Err(format!("checksum is {digest}, the closing line says {} (damaged or edited?)", trailer.xxh3));
    }
    Ok(((header_end + 1).min(trailer_start)..trailer_start, trailer))
}

/// The checksum of saved bytes and the count that closes them: the count
/// is trusted once read, so it is covered too (as the seed).
fn digest(bytes: &[u8], principals: usize) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64_with_seed(bytes, principals as u64))
}

/// Appends the closing line over everything in `out`; returns the checksum.
fn close(out: &mut Vec<u8>, principals: usize) -> String {
    let trailer = Trailer { principals, xxh3: digest(out, principals) };
    // Plain data always serialises.
    let _ = serde_json::to_writer(&mut *out, &trailer);
    out.push(b'\n');
    trailer.xxh3
}

/// The first line of saved state: the state's small parts and, when saved
/// in two parts, the base it builds on.
#[derive(Serialize)]
struct Header<'a> {
    /// First, so [`State::base_of`] finds it without parsing the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a str>,
    #[serde(flatten)]
    state: &'a State,
}

impl State {
    /// Reads saved state. The bytes are kept: principals are decoded from
    /// them only when used.
    pub fn from_bytes(bytes: impl Into<Arc<Vec<u8>>>) -> Result<State, StateError> {
        State::parse(bytes.into(), None, "object")
    }

    /// Reads state saved in two parts, with the base it names (see
    /// [`State::base_of`]).
    pub fn from_parts(bytes: impl Into<Arc<Vec<u8>>>, base: &StateBase) -> Result<State, StateError> {
        State::parse(bytes.into(), Some(base), "object")
    }

    /// The checksum of the base saved state builds on, if it needs one.
    /// Only the start of the first line is read: the state is parsed once,
    /// by [`State::from_parts`]. A state that names its base anywhere else
    /// was not written by rolewatch and is refused there.
    pub fn base_of(bytes: &[u8]) -> Option<String> {
        let rest = bytes.strip_prefix(br#"{"base":""#)?;
        let digest = &rest[..memchr::memchr(b'"', rest)?];
        (digest.len() == 16 && digest.iter().all(u8::is_ascii_hexdigit))
            .then(|| String::from_utf8_lossy(digest).into_owned())
    }

    fn parse(bytes: Arc<Vec<u8>>, base: Option<&StateBase>, origin: &str) -> Result<State, StateError> {
        let corrupt = |reason: String| StateError::Corrupt { origin: origin.to_owned(), reason };
        let header_end = memchr::memchr(b'\n', &bytes).unwrap_or(bytes.len());
        let mut state: State = match serde_json::from_slice(&bytes[..header_end]) {
            Ok(state) => state,
            // Format 1 is one JSON document, perhaps pretty-printed by hand.
            Err(e) => serde_json::from_slice(&bytes)
                .ok()
                .filter(|s: &State| s.format == FORMAT_ONE_DOCUMENT)
                .ok_or_else(|| corrupt(e.to_string()))?,
        };
        match state.format {
            STATE_FORMAT => {}
            FORMAT_ONE_DOCUMENT => {
                if header_end < bytes.len() && serde_json::from_slice::<State>(&bytes).is_err() {
                    return Err(corrupt("format 1 state continues after its JSON document".to_owned()));
                }
                state.format = STATE_FORMAT;
                return Ok(state);
            }
            found => return Err(StateError::Format { origin: origin.to_owned(), found }),
        }
        if !state.unexpected_source_ip.principals.is_empty() {
            return Err(corrupt("principals belong on lines of their own, not in the first line".to_owned()));
        }
        let (lines, trailer) = checked_lines(&bytes, header_end).map_err(corrupt)?;
        let base = match (state.base.take(), base) {
            (None, _) => None,
            (Some(named), Some(base)) if named == base.digest => Some((base.lines.clone(), named)),
            (Some(named), _) => {
                return Err(corrupt(format!("it builds on state base {named}, which was not found")));
            }
        };
        state.unexpected_source_ip.principals =
            LazyMap::from_layers(base, Lines::new(bytes, lines), trailer.principals);
        Ok(state)
    }

    /// Saves everything in one piece.
    pub fn to_bytes(&self) -> Vec<u8> {
        let principals = &self.unexpected_source_ip.principals;
        let mut out = Vec::with_capacity(principals.encoded_len_estimate() + 64 * 1024);
        self.write_header(&mut out, None);
        principals.write_all_lines(&mut out, &self.unexpected_source_ip.due());
        close(&mut out, principals.len());
        out
    }

    /// Saves the changes since the base the principals were loaded with, or
    /// everything into a new base once the changes outgrow their limit.
    pub fn to_parts(&self) -> SavedState {
        self.to_parts_within(changes_limit(self.unexpected_source_ip.principals.base_len_bytes()))
    }

    /// [`State::to_parts`] with the changes limited to `limit` bytes.
    pub(crate) fn to_parts_within(&self, limit: usize) -> SavedState {
        let principals = &self.unexpected_source_ip.principals;
        let due = self.unexpected_source_ip.due();
        // Far past the limit a new base is due anyway: skip writing the changes.
        if principals.changes_len_estimate() <= limit.saturating_mul(4) {
            let mut out = Vec::with_capacity(principals.changes_len_estimate() + 64 * 1024);
            self.write_header(&mut out, principals.base_digest());
            let lines_start = out.len();
            principals.write_delta_lines(&mut out, &due);
            if out.len() - lines_start <= limit {
                close(&mut out, principals.len());
                let base = principals.base_digest().map(str::to_owned);
                return SavedState { state: out, base, new_base: None };
            }
            // Freed before the base is built: the two would double the peak.
            drop(out);
        }
        let mut bytes = Vec::with_capacity(principals.encoded_len_estimate() + 1024);
        bytes.extend_from_slice(BASE_HEADER);
        bytes.push(b'\n');
        let start = bytes.len();
        principals.write_all_lines(&mut bytes, &due);
        let end = bytes.len();
        let digest = close(&mut bytes, principals.len());
        let bytes = Arc::new(bytes);
        let lines = Lines::new(Arc::clone(&bytes), start..end);
        let base = StateBase { bytes, lines, principals: principals.len(), digest: digest.clone() };
        let mut out = Vec::with_capacity(64 * 1024);
        self.write_header(&mut out, Some(&digest));
        close(&mut out, principals.len());
        SavedState { state: out, base: Some(digest), new_base: Some(base) }
    }

    fn write_header(&self, out: &mut Vec<u8>, base: Option<&str>) {
        // Maps with string keys and plain numbers always serialise.
        let _ = serde_json::to_writer(&mut *out, &Header { state: self, base });
        out.push(b'\n');
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

    fn state_with_principals(n: usize) -> State {
        let mut engine = crate::Engine::new(&crate::Config::default(), State::default());
        let events: Vec<_> = (0..n)
            .map(|i| {
                crate::detect::tests::success(&format!("arn:aws:iam::111122223333:user/u{i}"), &format!("e{i}"), 1_000)
            })
            .collect();
        engine.apply("f", &events);
        engine.into_state()
    }

    #[test]
    fn saved_state_is_read_back_whole() {
        let state = state_with_principals(50);
        let saved = state.to_bytes();
        let loaded = State::from_bytes(saved.clone()).unwrap();
        assert_eq!(loaded.unexpected_source_ip.principals.len(), 50);
        assert_eq!(loaded, state);
        assert_eq!(loaded.to_bytes(), saved, "saving unchanged state changes nothing");
    }

    #[test]
    fn damaged_or_truncated_state_is_refused_with_the_reason() {
        let saved = state_with_principals(20).to_bytes();
        let mut damaged = saved.clone();
        let at = damaged.len() / 2;
        damaged[at] ^= 0x01;
        let err = State::from_bytes(damaged).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        let err = State::from_bytes(saved[..saved.len() - 10].to_vec()).unwrap_err().to_string();
        assert!(err.contains("closing"), "{err}");
        let err = State::from_bytes(saved[..saved.len() / 3].to_vec()).unwrap_err().to_string();
        assert!(err.contains("checksum") || err.contains("closing"), "{err}");
    }

    #[test]
    fn a_changed_count_on_the_closing_line_is_refused() {
        let saved = String::from_utf8(state_with_principals(20).to_bytes()).unwrap();
        let edited = saved.replace("\"principals\":20,", "\"principals\":1,");
        assert_ne!(edited, saved);
        let err = State::from_bytes(edited.into_bytes()).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn format_one_state_is_read_and_saved_as_format_two() {
        let v1 = br#"{"format":1,"watermark":1000,"inputs":{"f":1000},"raised":{},"repeated_failures":{"by_principal":{}},
            "unexpected_source_ip":{"principals":{"alice":{"first_seen":900,"last_seen":1000,"networks":[{"net":"192.0.2.0/24","first":900,"last":1000}]}}},
            "long_session":{"by_role":{}}}"#;
        let state = State::from_bytes(v1.to_vec()).unwrap();
        assert_eq!(state.unexpected_source_ip.principals.len(), 1);
        let again = State::from_bytes(state.to_bytes()).unwrap();
        assert_eq!(again.format, STATE_FORMAT);
        assert_eq!(again, state);
        let err = State::from_bytes(br#"{"format":3}"#.to_vec()).unwrap_err().to_string();
        assert!(err.contains("format 3"), "{err}");
    }

    #[test]
    fn saved_in_two_parts_state_reads_back_whole_and_later_saves_carry_only_changes() {
        let state = state_with_principals(3_000);
        let first = state.to_parts();
        let base = first.new_base.expect("3,000 principals outgrow the changes limit: a base is written");
        assert!(first.state.len() < 1_000, "the state part names the base and holds no principal");
        let loaded = State::from_parts(first.state.clone(), &base).unwrap();
        assert_eq!(loaded, state);

        let mut engine = crate::Engine::new(&crate::Config::default(), loaded);
        let newcomer = crate::detect::tests::success("arn:aws:iam::111122223333:user/newcomer", "n1", 2_000);
        let known = crate::detect::tests::success("arn:aws:iam::111122223333:user/u7", "n2", 2_000);
        engine.apply("g", &[newcomer, known]);
        let changed = engine.into_state();
        let second = changed.to_parts();
        assert!(second.new_base.is_none(), "two changed principals do not rewrite the base");
        assert!(second.state.len() < 4_000, "{} bytes saved for two principals", second.state.len());
        assert_eq!(State::base_of(&second.state).as_deref(), Some(base.digest()));
        let again = State::from_parts(second.state.clone(), &base).unwrap();
        assert_eq!(again.unexpected_source_ip.principals.len(), 3_001);
        assert_eq!(again, changed);
        assert_eq!(State::from_bytes(again.to_bytes()).unwrap(), changed, "and in one piece for a file");
    }

    #[test]
    fn two_part_state_without_its_base_is_refused_naming_the_base() {
        let saved = state_with_principals(3_000).to_parts();
        let base = saved.new_base.unwrap();
        let err = State::from_bytes(saved.state.clone()).unwrap_err().to_string();
        assert!(err.contains(base.digest()), "{err}");
        let other = state_with_principals(2_500).to_parts().new_base.unwrap();
        assert!(State::from_parts(saved.state, &other).is_err());
        let mut damaged = base.as_bytes().to_vec();
        damaged[100] ^= 0x20;
        assert!(StateBase::from_bytes(damaged).unwrap_err().to_string().contains("checksum"));
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
