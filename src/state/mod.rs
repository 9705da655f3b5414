//! Detector state kept between runs and invocations, and where it is kept.
//!
//! State is bounded: every detector prunes by event time and caps its
//! per-key history, and processed inputs are remembered for a few days of
//! event time (redelivery happens within hours; cooldowns and event-id
//! dedup cover what is older).
//!
//! Saved state (format 3) is lines of text:
//!
//! ```text
//! {"format":3,"watermark":…,"entries":{…},…}          everything small, one JSON document
//! "arn:aws:sts::…:assumed-role/…"\t<due>\t[…]         one line per known principal, sorted
//! #repeated_failures                                 then, each after a line naming it,
//! "arn:aws:iam::…:user/…"\t<due>\t[{"t":…,"id":…}]    failures per principal, sorted,
//! #long_session
//! "arn:aws:iam::…:role/…"\t<due>\t[[…],…]             long grants per role, sorted,
//! #inputs
//! "s3://…"\t<due>\t<time>                             and processed inputs, sorted
//! {"principals":N,"xxh3":"…"}                         count and checksum of all that precedes
//! ```
//!
//! Principals are most of an account's state and an invocation touches few of
//! them, so their lines are decoded only when used and copied as they are on
//! save (see `lazy_map`). Failure and grant histories and processed
//! inputs are kept the same way: an invocation decodes the few it touches.
//! Formats 1 (one JSON document) and 2 (histories and inputs in the first
//! line) are still read.
//!
//! Saved in two parts ([`State::to_parts`], for the Lambda), the principals
//! and sections live in a [`StateBase`] of the same shape, rewritten rarely
//! and shared by many saves; the state itself then carries `"base":"<its
//! checksum>"` and each section's entry count in its first line and, on its
//! lines, only what changed since that base (a `null` marks an entry
//! forgotten since). An invocation then reads and writes the changes, not
//! everything the account's state holds.

mod base_buffer;
mod lazy_map;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base_buffer::BaseBuffer;
pub use base_buffer::SharedBytes;
pub use lazy_map::LazyMap;
use lazy_map::Lines;

use serde::{Deserialize, Serialize};

use crate::cloudtrail::EpochSeconds;
use crate::detect::long_session::LongSessionState;
use crate::detect::repeated_failures::FailureState;
use crate::detect::source_ip::SourceIpState;
use crate::detect::{Expiring, HorizonPruning};

/// Bumped when the layout changes incompatibly.
pub const STATE_FORMAT: u32 = 3;
/// The single-document format before principals got lines of their own.
const FORMAT_ONE_DOCUMENT: u32 = 1;
/// Principals on lines, histories still in the first line.
const FORMAT_TWO_HISTORIES_IN_HEADER: u32 = 2;
/// The names of the sections after the principals' lines, in saved order.
const FAILURES_SECTION: &str = "repeated_failures";
const GRANTS_SECTION: &str = "long_session";
const INPUTS_SECTION: &str = "inputs";
/// Changes on top of a base are saved as changes up to [`changes_limit`];
/// past it the base is written again.
const MIN_CHANGES_LIMIT_BYTES: usize = 256 * 1024;

/// Every save copies and checksums the changes, and every new base copies
/// the whole base `B`: with changes of up to `L` bytes growing by `g` bytes
/// an invocation, the two cost `L/2 + B*g/L` per invocation (in CPU, and in
/// bytes sent to and from S3), least at `L = sqrt(2*B*g)`. The benchmark's
/// changes grow by about 9 kB an invocation: the geometric mean of the base
/// and 16 KiB, which of 4 to 64 KiB also took the least CPU there. 0.7 MB
/// for its 31.5 MB base.
fn changes_limit(base_bytes: usize) -> usize {
    let mean = ((base_bytes as f64) * 16_384.0).sqrt() as usize;
    mean.max(MIN_CHANGES_LIMIT_BYTES)
}
/// The first line of a [`StateBase`]: with the histories and inputs too.
const BASE_HEADER: &[u8] = br#"{"rolewatch_state_base":3}"#;
/// The first line of a base of principals only, as format 2 wrote them.
const BASE_HEADER_PRINCIPALS_ONLY: &[u8] = br#"{"rolewatch_state_base":2}"#;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// Newest event time seen; pruning is measured from it, never the clock.
    #[serde(default)]
    pub watermark: Option<EpochSeconds>,
    /// Processed inputs (file digests, `s3://bucket/key`) and the newest
    /// event time each held. Saved on lines of their own; read from here
    /// only in state of formats 1 and 2.
    #[serde(default, skip_serializing)]
    pub inputs: LazyMap<EpochSeconds>,
    #[serde(default)]
    pub inputs_pruning: HorizonPruning,
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
    /// How many entries each section holds, base and changes together;
    /// read, then held by the maps themselves.
    #[serde(default, skip_serializing)]
    entries: Option<SectionEntries>,
}

/// The entry counts of the sections, in the first line: with a base below
/// them, a section's lines alone do not say how many entries it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionEntries {
    repeated_failures: usize,
    long_session: usize,
    inputs: usize,
}

impl Default for State {
    fn default() -> Self {
        State {
            format: STATE_FORMAT,
            watermark: None,
            inputs: LazyMap::default(),
            inputs_pruning: HorizonPruning::default(),
            raised: BTreeMap::new(),
            repeated_failures: FailureState::default(),
            unexpected_source_ip: SourceIpState::default(),
            long_session: LongSessionState::default(),
            base: None,
            entries: None,
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
    #[error("state {origin} has format {found}, this rolewatch reads formats 1 to {STATE_FORMAT}")]
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

/// Most of an account's principals, histories and inputs, saved apart from
/// the state that builds on them (see the module notes). Immutable: it is named by its
/// checksum, so a copy kept in memory never goes stale.
#[derive(Clone)]
pub struct StateBase {
    bytes: SharedBytes,
    lines: Lines,
    /// Each section's lines, by name.
    sections: Vec<(String, Lines)>,
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
    pub fn from_bytes(bytes: Vec<u8>) -> Result<StateBase, StateError> {
        let bytes = BaseBuffer::shared(bytes);
        let corrupt = |reason: String| StateError::Corrupt { origin: "base".to_owned(), reason };
        let raw = (*bytes).as_ref();
        let header_end = memchr::memchr(b'\n', raw).unwrap_or(raw.len());
        if raw[..header_end] != *BASE_HEADER && raw[..header_end] != *BASE_HEADER_PRINCIPALS_ONLY {
            return Err(corrupt("not a rolewatch state base".to_owned()));
        }
        let (lines, trailer) = checked_lines(raw, header_end).map_err(corrupt)?;
        StateBase::over(bytes, lines, trailer.principals, trailer.xxh3).map_err(corrupt)
    }

    /// A base over `lines` of checked `bytes`.
    fn over(
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
    fn section(&self, name: &str) -> (Lines, usize) {
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
    format!("{:016x}", twox_hash::XxHash3_64::oneshot_with_seed(principals as u64, bytes))
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
    entries: SectionEntries,
    #[serde(flatten)]
    state: &'a State,
}

/// Which of a map's lines a save writes.
#[derive(Clone, Copy)]
enum Layers {
    /// Every entry: one piece, or a new base.
    All,
    /// What changed since the base.
    Changes,
}

/// A map saved as a section, whatever its entries hold.
trait Section {
    fn write_all(&self, out: &mut Vec<u8>);
    fn write_changes(&self, out: &mut Vec<u8>);
    fn changes_len_estimate(&self) -> usize;
    fn encoded_len_estimate(&self) -> usize;
    fn base_len_bytes(&self) -> usize;
}

impl<V: Expiring> Section for LazyMap<V> {
    fn write_all(&self, out: &mut Vec<u8>) {
        self.write_all_lines(out, &Expiring::due, None);
    }

    fn write_changes(&self, out: &mut Vec<u8>) {
        self.write_delta_lines(out, &Expiring::due);
    }

    fn changes_len_estimate(&self) -> usize {
        LazyMap::changes_len_estimate(self)
    }

    fn encoded_len_estimate(&self) -> usize {
        LazyMap::encoded_len_estimate(self)
    }

    fn base_len_bytes(&self) -> usize {
        LazyMap::base_len_bytes(self)
    }
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
            STATE_FORMAT | FORMAT_TWO_HISTORIES_IN_HEADER => {}
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
        let histories_in_header = !state.repeated_failures.by_principal.is_empty()
            || !state.long_session.by_role.is_empty()
            || !state.inputs.is_empty();
        if state.format == STATE_FORMAT && histories_in_header {
            return Err(corrupt("histories belong on lines of their own, not in the first line".to_owned()));
        }
        let (lines, trailer) = checked_lines(&bytes, header_end).map_err(corrupt)?;
        let sections = Sections::find(&bytes, lines).map_err(corrupt)?;
        let shared: SharedBytes = Arc::clone(&bytes) as SharedBytes;
        if state.format == FORMAT_TWO_HISTORIES_IN_HEADER && !sections.named.is_empty() {
            return Err(corrupt("format 2 state has no sections".to_owned()));
        }
        let base = match (state.base.take(), base) {
            (None, _) => None,
            (Some(named), Some(base)) if named == base.digest => Some(base),
            (Some(named), _) => {
                return Err(corrupt(format!("it builds on state base {named}, which was not found")));
            }
        };
        state.unexpected_source_ip.principals = LazyMap::from_layers(
            base.map(|b| (b.lines.clone(), b.digest.clone())),
            sections.principals.into_lines(&shared),
            trailer.principals,
        );
        let mut changes: BTreeMap<String, Lines> = BTreeMap::new();
        for (name, lines) in sections.named {
            if ![FAILURES_SECTION, GRANTS_SECTION, INPUTS_SECTION].contains(&name.as_str()) {
                return Err(corrupt(format!("unknown section #{name}")));
            }
            changes.insert(name, lines.into_lines(&shared));
        }
        let entries = state.entries.take();
        // Format 2 has no sections: its histories and inputs came in the first line.
        if state.format == STATE_FORMAT {
            state.repeated_failures.by_principal =
                section_map(&mut changes, base, FAILURES_SECTION, entries.map(|e| e.repeated_failures));
            state.long_session.by_role =
                section_map(&mut changes, base, GRANTS_SECTION, entries.map(|e| e.long_session));
            state.inputs = section_map(&mut changes, base, INPUTS_SECTION, entries.map(|e| e.inputs));
        }
        state.format = STATE_FORMAT;
        Ok(state)
    }

    /// The inputs remembered as processed, in order.
    pub fn processed_inputs(&self) -> Vec<String> {
        let remembered = |(key, newest): (String, EpochSeconds)| self.inputs_pruning.keeps(&newest).then_some(key);
        self.inputs.entries().into_iter().filter_map(remembered).collect()
    }

    /// Saves everything in one piece.
    pub fn to_bytes(&self) -> Vec<u8> {
        let principals = &self.unexpected_source_ip.principals;
        let estimate = self.sections_bytes(|s| s.encoded_len_estimate());
        let mut out = Vec::with_capacity(principals.encoded_len_estimate() + estimate + 64 * 1024);
        self.write_header(&mut out, None);
        principals.write_all_lines(&mut out, &self.unexpected_source_ip.due(), None);
        self.write_sections(&mut out, Layers::All);
        close(&mut out, principals.len());
        out
    }

    /// Saves the changes since the base the state was loaded with, or
    /// everything into a new base once the changes outgrow their limit.
    pub fn to_parts(&self) -> SavedState {
        let base_bytes =
            self.unexpected_source_ip.principals.base_len_bytes() + self.sections_bytes(|s| s.base_len_bytes());
        self.to_parts_within(changes_limit(base_bytes))
    }

    /// [`State::to_parts`] with the changes limited to `limit` bytes.
    pub(crate) fn to_parts_within(&self, limit: usize) -> SavedState {
        let principals = &self.unexpected_source_ip.principals;
        let due = self.unexpected_source_ip.due();
        let changes = principals.changes_len_estimate() + self.sections_bytes(|s| s.changes_len_estimate());
        // Far past the limit a new base is due anyway: skip writing the changes.
        if changes <= limit.saturating_mul(4) {
            let mut out = Vec::with_capacity(changes + 64 * 1024);
            self.write_header(&mut out, principals.base_digest());
            let lines_start = out.len();
            principals.write_delta_lines(&mut out, &due);
            self.write_sections(&mut out, Layers::Changes);
            if out.len() - lines_start <= limit {
                close(&mut out, principals.len());
                let base = principals.base_digest().map(str::to_owned);
                return SavedState { state: out, base, new_base: None };
            }
            // Freed before the base is built: the two would double the peak.
            drop(out);
        }
        let estimate = self.sections_bytes(|s| s.encoded_len_estimate());
        let mut bytes = base_buffer::take(principals.encoded_len_estimate() + estimate + 1024);
        bytes.extend_from_slice(BASE_HEADER);
        bytes.push(b'\n');
        let start = bytes.len();
        let mut starts = Vec::with_capacity(principals.len());
        principals.write_all_lines(&mut bytes, &due, Some(&mut starts));
        let end = bytes.len();
        let sections = self.write_sections(&mut bytes, Layers::All);
        let digest = close(&mut bytes, principals.len());
        let bytes = BaseBuffer::shared(bytes);
        let base = StateBase {
            lines: Lines::with_starts(Arc::clone(&bytes), start..end, starts),
            sections: sections.into_iter().map(|(name, range)| base_section(&bytes, name.to_owned(), range)).collect(),
            bytes,
            principals: principals.len(),
            digest: digest.clone(),
        };
        let mut out = Vec::with_capacity(64 * 1024);
        self.write_header(&mut out, Some(&digest));
        close(&mut out, principals.len());
        SavedState { state: out, base: Some(digest), new_base: Some(base) }
    }

    /// The maps saved as sections after the principals, with their names.
    fn sections(&self) -> [(&'static str, &dyn Section); 3] {
        [
            (FAILURES_SECTION, &self.repeated_failures.by_principal),
            (GRANTS_SECTION, &self.long_session.by_role),
            (INPUTS_SECTION, &self.inputs),
        ]
    }

    /// `measure` summed over the sections.
    fn sections_bytes(&self, measure: impl Fn(&dyn Section) -> usize) -> usize {
        self.sections().into_iter().map(|(_, section)| measure(section)).sum()
    }

    /// Each section with lines to write, after a line naming it; returns
    /// where each one's lines are.
    fn write_sections(&self, out: &mut Vec<u8>, layers: Layers) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut written = Vec::new();
        for (name, section) in self.sections() {
            let named_at = out.len();
            write_section_name(out, name);
            let lines_at = out.len();
            match layers {
                Layers::All => section.write_all(out),
                Layers::Changes => section.write_changes(out),
            }
            if out.len() == lines_at {
                out.truncate(named_at);
            } else {
                written.push((name, lines_at..out.len()));
            }
        }
        written
    }

    fn write_header(&self, out: &mut Vec<u8>, base: Option<&str>) {
        // Maps with string keys and plain numbers always serialise.
        let entries = SectionEntries {
            repeated_failures: self.repeated_failures.by_principal.len(),
            long_session: self.long_session.by_role.len(),
            inputs: self.inputs.len(),
        };
        let _ = serde_json::to_writer(&mut *out, &Header { state: self, base, entries });
        out.push(b'\n');
    }
}

/// Section `name` of a state: its lines in `changes` over the base's,
/// holding `named` entries. A section holds one entry per line of its own, and each line of
/// its changes adds or removes at most one of the base's: a count that
/// cannot be right (hand-edited, then resealed) is counted again from the
/// lines, never trusted and never a reason to refuse the state.
fn section_map<V: Serialize + serde::de::DeserializeOwned + Clone>(
    changes: &mut BTreeMap<String, Lines>,
    base: Option<&StateBase>,
    name: &str,
    named: Option<usize>,
) -> LazyMap<V> {
    let lines = changes.remove(name).unwrap_or_default();
    let (below, under) = base.map(|b| b.section(name)).unwrap_or_default();
    let own = lines.count();
    let fits = named.filter(|&n| if under == 0 { n == own } else { n <= under + own && n + own >= under });
    LazyMap::from_layers_counted(base.map(|b| (below, b.digest.clone())), lines, fits)
}

/// A base's section: its name and lines.
fn base_section(bytes: &SharedBytes, name: String, range: std::ops::Range<usize>) -> (String, Lines) {
    (name, Lines::new(Arc::clone(bytes), range))
}

fn write_section_name(out: &mut Vec<u8>, name: &str) {
    out.push(SECTION_MARK);
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

/// Starts the line naming a section: no entry line starts with it (they
/// start with a JSON string).
const SECTION_MARK: u8 = b'#';

/// Where the principals' lines and each named section are in saved lines,
/// and where each of their lines starts.
struct Sections {
    principals: SectionLines,
    named: Vec<(String, SectionLines)>,
}

/// One section's lines, and where each starts from the start of `range`.
#[derive(Default)]
struct SectionLines {
    range: std::ops::Range<usize>,
    starts: Vec<usize>,
}

impl SectionLines {
    fn into_lines(self, bytes: &SharedBytes) -> Lines {
        Lines::with_starts(Arc::clone(bytes), self.range, self.starts)
    }
}

impl Sections {
    /// One pass finds the section marks and where every line starts: every
    /// invocation loads a state part of up to several hundred kB, and a
    /// second pass for the starts took as long as the first.
    fn find(bytes: &[u8], lines: std::ops::Range<usize>) -> Result<Sections, String> {
        let body = bytes.get(lines.clone()).unwrap_or_default();
        // The principals' lines first, then each named section.
        let mut sections = vec![(None, SectionLines { range: lines.clone(), starts: Vec::new() })];
        let mut line_start = 0;
        while line_start < body.len() {
            let newline = memchr::memchr(b'\n', &body[line_start..]).map(|i| line_start + i);
            let line_end = newline.map_or(body.len(), |i| i + 1);
            if body[line_start] == SECTION_MARK {
                let name_end = newline.ok_or("a section name line is cut short")?;
                let name = String::from_utf8_lossy(&body[line_start + 1..name_end]).into_owned();
                if sections.iter().any(|(seen, _)| seen.as_ref() == Some(&name)) {
                    return Err(format!("section #{name} appears twice"));
                }
                if let Some((_, current)) = sections.last_mut() {
                    current.range.end = lines.start + line_start;
                }
                let lines_after = lines.start + line_end..lines.end;
                sections.push((Some(name), SectionLines { range: lines_after, starts: Vec::new() }));
            } else if let Some((_, current)) = sections.last_mut() {
                current.starts.push(lines.start + line_start - current.range.start);
            }
            line_start = line_end;
        }
        let mut sections = sections.into_iter();
        let principals = sections.next().map(|(_, lines)| lines).unwrap_or_default();
        let named = sections.filter_map(|(name, lines)| Some((name?, lines))).collect();
        Ok(Sections { principals, named })
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
    fn checksums_are_the_xxh3_values_saved_state_already_holds() {
        // Computed with the xxhash-rust crate that wrote earlier releases'
        // checksums: a different value would set every account's state aside.
        let bytes = b"{\"rolewatch_state_base\":3}\n\"alice\"\t1\t[1,2,[]]\n";
        assert_eq!(digest(bytes, 1), "c2d6b4b7147f9f55");
    }

    #[test]
    fn file_store_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStateStore::new(dir.path().join("state.json"));
        assert_eq!(store.load().unwrap(), State::default());
        let mut state = State::default();
        state.inputs.insert("x", 5);
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
    fn format_one_state_is_read_and_saved_as_the_current_format() {
        let v1 = br#"{"format":1,"watermark":1000,"inputs":{"f":1000},"raised":{},"repeated_failures":{"by_principal":{}},
            "unexpected_source_ip":{"principals":{"alice":{"first_seen":900,"last_seen":1000,"networks":[{"net":"192.0.2.0/24","first":900,"last":1000}]}}},
            "long_session":{"by_role":{}}}"#;
        let state = State::from_bytes(v1.to_vec()).unwrap();
        assert_eq!(state.unexpected_source_ip.principals.len(), 1);
        let again = State::from_bytes(state.to_bytes()).unwrap();
        assert_eq!(again.format, STATE_FORMAT);
        assert_eq!(again, state);
        let err = State::from_bytes(br#"{"format":4}"#.to_vec()).unwrap_err().to_string();
        assert!(err.contains("format 4"), "{err}");
    }

    #[test]
    fn format_two_state_with_histories_in_its_first_line_is_read_and_saved_with_sections() {
        let mut v2 = br#"{"format":2,"watermark":5,"repeated_failures":{"by_principal":{"alice":[{"t":5,"id":"e1"}]}},"long_session":{"by_role":{"arn:aws:iam::1:role/etl":[[5,43200,7]]}}}"#.to_vec();
        v2.push(b'\n');
        close(&mut v2, 0);
        let state = State::from_bytes(v2).unwrap();
        assert_eq!(state.repeated_failures.by_principal.get("alice").map(|f| f.len()), Some(1));
        assert!(state.long_session.by_role.contains_key("arn:aws:iam::1:role/etl"));
        let saved = String::from_utf8(state.to_bytes()).unwrap();
        let first_line = saved.lines().next().unwrap();
        assert!(first_line.contains(r#""format":3"#) && !first_line.contains("alice"), "{first_line}");
        assert!(saved.contains("\n#repeated_failures\n\"alice\"\t6\t"), "{saved}");
        assert!(saved.contains("\n#long_session\n\"arn:aws:iam::1:role/etl\"\t6\t"), "{saved}");
        assert_eq!(State::from_bytes(saved.into_bytes()).unwrap(), state);
    }

    #[test]
    fn histories_and_inputs_untouched_by_an_input_are_saved_as_they_were_read() {
        let mut engine = crate::Engine::new(&crate::Config::default(), State::default());
        let failures: Vec<_> = (0..40)
            .map(|i| {
                crate::detect::tests::failure(&format!("arn:aws:iam::111122223333:user/u{i}"), &format!("f{i}"), 1_000)
            })
            .collect();
        engine.apply("f", &failures);
        let saved = engine.into_state().to_bytes();
        let loaded = State::from_bytes(saved.clone()).unwrap();
        let mut engine = crate::Engine::new(&crate::Config::default(), loaded);
        engine.apply("g", &[crate::detect::tests::failure("arn:aws:iam::111122223333:user/u7", "g1", 1_001)]);
        let state = engine.into_state();
        assert_eq!(state.repeated_failures.by_principal.len(), 40);
        let again = state.to_bytes();
        let lines = |bytes: &[u8]| String::from_utf8_lossy(bytes).lines().map(str::to_owned).collect::<Vec<_>>();
        let (before, after) = (lines(&saved), lines(&again));
        let changed: Vec<_> = after.iter().filter(|line| !before.contains(line)).collect();
        // The first line (watermark), u7's failures, the new input, and the closing checksum.
        assert_eq!(changed.len(), 4, "{changed:#?}");
        assert!(changed[1].starts_with("\"arn:aws:iam::111122223333:user/u7\"\t"), "{changed:#?}");
        assert!(changed[2].starts_with("\"g\"\t"), "{changed:#?}");
        assert_eq!(State::from_bytes(again).unwrap(), state);
    }

    #[test]
    fn unknown_or_repeated_sections_and_histories_in_the_first_line_are_refused() {
        let seal = |text: &str| {
            let mut bytes = text.as_bytes().to_vec();
            close(&mut bytes, 0);
            State::from_bytes(bytes).map(|_| ()).unwrap_err().to_string()
        };
        let err = seal("{\"format\":3}\n#surprise\n\"k\"\t1\t[]\n");
        assert!(err.contains("unknown section #surprise"), "{err}");
        let err = seal("{\"format\":3}\n#long_session\n#long_session\n");
        assert!(err.contains("appears twice"), "{err}");
        let err = seal("{\"format\":3,\"repeated_failures\":{\"by_principal\":{\"a\":[{\"t\":1,\"id\":\"x\"}]}}}\n");
        assert!(err.contains("histories belong on lines of their own"), "{err}");
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
    fn in_two_parts_histories_and_inputs_live_in_the_base_and_the_state_carries_their_changes() {
        let mut engine = crate::Engine::new(&crate::Config::default(), state_with_principals(3_000));
        let failures: Vec<_> = (0..300)
            .map(|i| {
                crate::detect::tests::failure(&format!("arn:aws:iam::111122223333:user/u{i}"), &format!("x{i}"), 1_500)
            })
            .collect();
        engine.apply("failures", &failures);
        let state = engine.into_state();
        let first = state.to_parts();
        let base = first.new_base.expect("a base is written");
        let base_text = String::from_utf8_lossy(base.as_bytes()).into_owned();
        assert!(base_text.contains("\n#repeated_failures\n") && base_text.contains("\n#inputs\n"));
        assert!(!String::from_utf8_lossy(&first.state).contains('#'), "the state part holds no section");
        let loaded = State::from_parts(first.state, &base).unwrap();
        assert_eq!(loaded, state);

        let mut engine = crate::Engine::new(&crate::Config::default(), loaded);
        engine.apply("next", &[crate::detect::tests::failure("arn:aws:iam::111122223333:user/u9", "y", 1_600)]);
        let changed = engine.into_state();
        let second = changed.to_parts();
        assert!(second.new_base.is_none());
        let text = String::from_utf8_lossy(&second.state).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..lines.len() - 1],
            ["#repeated_failures", lines[2], "#inputs", "\"next\"\t1601\t1600"],
            "{text}"
        );
        assert!(lines[2].starts_with("\"arn:aws:iam::111122223333:user/u9\"\t"), "{text}");
        let again = State::from_parts(second.state, &base).unwrap();
        assert_eq!(again.repeated_failures.by_principal.len(), 300);
        assert_eq!(again, changed);
    }

    #[test]
    fn a_base_of_principals_only_from_format_two_is_still_read() {
        let mut state = state_with_principals(3_000);
        state.inputs = LazyMap::default();
        let saved = state.to_parts();
        let base = saved.new_base.unwrap();
        let mut old = BASE_HEADER_PRINCIPALS_ONLY.to_vec();
        let body = &base.as_bytes()[BASE_HEADER.len()..];
        old.extend_from_slice(
            &body[..body.len() - memchr::memrchr(b'\n', &body[..body.len() - 1]).map_or(0, |i| body.len() - 1 - i)],
        );
        let digest = close(&mut old, 3_000);
        let old = StateBase::from_bytes(old).unwrap();
        let part = String::from_utf8(saved.state).unwrap().replace(base.digest(), &digest);
        let mut part = part.lines().next().unwrap().as_bytes().to_vec();
        part.push(b'\n');
        close(&mut part, 3_000);
        assert_eq!(State::from_parts(part, &old).unwrap(), state);
    }

    #[test]
    fn a_section_count_that_cannot_be_right_is_counted_again_from_the_lines() {
        let mut bytes = br#"{"format":3,"entries":{"repeated_failures":0,"long_session":0,"inputs":0}}"#.to_vec();
        bytes.extend_from_slice(b"\n#inputs\n\"a\"\t6\t5\n\"b\"\t6\t5\n");
        close(&mut bytes, 0);
        assert_eq!(State::from_bytes(bytes).unwrap().inputs.len(), 2);

        // A renamed key in the changes over a base keeps a count that fits;
        // it is counted again once it no longer does, and saves read back.
        use crate::detect::tests::failure;
        let config = crate::Config::default();
        let mut engine = crate::Engine::new(&config, State::default());
        engine.apply("first", &[failure("m1", "f1", 2_000), failure("m2", "f2", 2_000)]);
        let saved = engine.into_state().to_parts_within(0);
        let base = saved.new_base.unwrap();
        let mut engine = crate::Engine::new(&config, State::from_parts(saved.state, &base).unwrap());
        engine.apply("second", &[failure("m1", "g1", 2_001)]);
        let part = String::from_utf8(engine.into_state().to_parts_within(usize::MAX).state).unwrap();
        let edited = resealed(part.replace("\n\"m1\"\t", "\n\"x1\"\t").into_bytes());
        let mut engine = crate::Engine::new(&config, State::from_parts(edited, &base).unwrap());
        engine.apply("third", &[failure("m2", "h1", 2_002)]);
        let state = engine.into_state();
        let whole = State::from_bytes(state.to_bytes()).unwrap();
        assert_eq!(whole.repeated_failures.by_principal.len(), 3);
        let parts = state.to_parts_within(0);
        let again = State::from_parts(parts.state, &parts.new_base.unwrap()).unwrap();
        assert_eq!(again.repeated_failures.by_principal.len(), 3);
    }

    /// State holding some of everything: principals, failures, a long
    /// grant, inputs, alert times.
    fn state_with_everything() -> State {
        use crate::detect::tests::{failure, long, success};
        let mut engine = crate::Engine::new(&crate::Config::default(), State::default());
        let mut events: Vec<_> = (0..40).map(|i| success(&format!("u{i}"), &format!("s{i}"), 1_000 + i)).collect();
        events.extend((0..6).map(|i| failure("mallory", &format!("f{i}"), 2_000 + i)));
        events.push(long("etl", "l1", 3_000, 43_200));
        engine.apply("first", &events);
        engine.apply("second", &[success("u1", "s-again", 4_000)]);
        engine.into_state()
    }

    /// Replaces the closing line so that edited bytes pass the checksum.
    fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
        let body = bytes.len().saturating_sub(1);
        let cut = memchr::memrchr(b'\n', &bytes[..body]).map_or(0, |i| i + 1);
        let principals = serde_json::from_slice::<Trailer>(&bytes[cut..]).map_or(0, |t| t.principals);
        bytes.truncate(cut);
        close(&mut bytes, principals);
        bytes
    }

    proptest::proptest! {
        /// Saved state is our own output, but it comes back from a file or
        /// an S3 object: edited in any byte, checksum and all, it is refused
        /// or read, never a panic, and what is read is used and saved again.
        #[test]
        fn edited_state_with_a_good_checksum_is_refused_or_read_never_a_panic(
            at in 0.0f64..1.0,
            byte in proptest::prelude::any::<u8>(),
            edit in 0..3,
        ) {
            let state = state_with_everything();
            // 0: one piece; 1: a base; 2: the changes saved over a base.
            let (part, base) = match edit {
                0 => (state.to_bytes(), None),
                _ => {
                    let saved = state.to_parts_within(0);
                    let base = saved.new_base.expect("a base was asked for");
                    let mut engine = crate::Engine::new(
                        &crate::Config::default(),
                        State::from_parts(saved.state, &base).expect("state reads back"),
                    );
                    let failure = crate::detect::tests::failure("mallory", "later", 4_500);
                    engine.apply("later", &[failure, crate::detect::tests::success("u3", "s3-again", 4_500)]);
                    (engine.into_state().to_parts_within(usize::MAX).state, Some(base))
                }
            };
            let mut edited = match (&base, edit) {
                (Some(base), 1) => base.as_bytes().to_vec(),
                _ => part.clone(),
            };
            let i = ((edited.len() - 1) as f64 * at) as usize;
            edited[i] = byte;
            let edited = resealed(edited);
            let loaded = match (&base, edit) {
                (None, _) => State::from_bytes(edited),
                (Some(_), 1) => StateBase::from_bytes(edited).and_then(|base| State::from_parts(part.clone(), &base)),
                (Some(base), _) => State::from_parts(edited, base),
            };
            if let Ok(state) = loaded {
                let mut engine = crate::Engine::new(&crate::Config::default(), state);
                let failure = crate::detect::tests::failure("mallory", "again", 5_000);
                engine.apply("third", &[failure, crate::detect::tests::success("u2", "s2-again", 5_000)]);
                let state = engine.into_state();
                let again = State::from_bytes(state.to_bytes());
                proptest::prop_assert!(again.is_ok(), "saved state does not read back: {:?}", again.err());
                let parts = state.to_parts_within(0);
                let base = parts.new_base.expect("a base was asked for");
                let again = State::from_parts(parts.state, &base);
                proptest::prop_assert!(again.is_ok(), "saved parts do not read back: {:?}", again.err());
            }
        }
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
