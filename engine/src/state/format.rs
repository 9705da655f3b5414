//! The saved layout of [`State`]: a header line, the principals' lines,
//! named sections, and a closing line with a count and a checksum (see the
//! module notes of `crate::state`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::base::{base_section, SavedState, StateBase};
use super::{State, StateError};
use crate::storage::{BaseSpare, Expiring, LazyMap, Lines, SharedBytes};

/// Bumped when the layout changes incompatibly.
pub const STATE_FORMAT: u32 = 3;
/// The single-document format before principals got lines of their own.
pub(super) const FORMAT_ONE_DOCUMENT: u32 = 1;
/// Principals on lines, histories still in the first line.
pub(super) const FORMAT_TWO_HISTORIES_IN_HEADER: u32 = 2;
/// Changes on top of a base are saved as changes up to [`changes_limit`];
/// past it the base is written again.
pub(super) const MIN_CHANGES_LIMIT_BYTES: usize = 256 * 1024;

/// Every save copies and checksums the changes, and every new base copies
/// the whole base `B`: with changes of up to `L` bytes growing by `g` bytes
/// an invocation, the two cost `L/2 + B*g/L` per invocation (in CPU, and in
/// bytes sent to and from S3), least at `L = sqrt(2*B*g)`. With `g` of the
/// order of 10 kB an invocation (the state benchmark's), that is the
/// geometric mean of the base and 16 KiB, which of 4 to 64 KiB also took
/// the least CPU in `engine/benches/state.rs`.
pub(super) fn changes_limit(base_bytes: usize) -> usize {
    let mean = ((base_bytes as f64) * 16_384.0).sqrt() as usize;
    mean.max(MIN_CHANGES_LIMIT_BYTES)
}
/// The first line of a [`StateBase`]: with the histories and inputs too.
pub(super) const BASE_HEADER: &[u8] = br#"{"rolewatch_state_base":3}"#;
/// The first line of a base of principals only, as format 2 wrote them.
pub(super) const BASE_HEADER_PRINCIPALS_ONLY: &[u8] = br#"{"rolewatch_state_base":2}"#;
/// The entry counts of the sections by name, in the first line: with a
/// base below them, a section's lines alone do not say how many entries it
/// holds. Written in section order.
pub(super) type SectionEntries = BTreeMap<String, usize>;

/// The counts as written: in section order, as a JSON object.
struct EntryCounts<'a>(&'a State);

impl Serialize for EntryCounts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let sections = self.0.sections();
        let mut map = serializer.serialize_map(Some(sections.len()))?;
        for (name, section) in sections {
            map.serialize_entry(name, &section.len())?;
        }
        map.end()
    }
}

/// The last line of saved state.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Trailer {
    pub(super) principals: usize,
    /// xxh3-64 of every byte before this line, in hex: a damaged or
    /// hand-edited state is refused at load, not half-read later.
    pub(super) xxh3: String,
}

/// Checks the closing line of saved lines: the count and the checksum of
/// everything before it. Returns where the lines are.
pub(super) fn checked_lines(bytes: &[u8], header_end: usize) -> Result<(std::ops::Range<usize>, Trailer), String> {
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
pub(super) fn digest(bytes: &[u8], principals: usize) -> String {
    format!("{:016x}", twox_hash::XxHash3_64::oneshot_with_seed(principals as u64, bytes))
}

/// Appends the closing line over everything in `out`; returns the checksum.
pub(super) fn close(out: &mut Vec<u8>, principals: usize) -> String {
    let trailer = Trailer { principals, xxh3: digest(out, principals) };
    // Plain data always serialises.
    let _ = serde_json::to_writer(&mut *out, &trailer);
    out.push(b'\n');
    trailer.xxh3
}

/// The first line of saved state: the state's small parts and, when saved
/// in two parts, the base it builds on.
#[derive(Serialize)]
pub(super) struct Header<'a> {
    /// First, so [`State::base_of`] finds it without parsing the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a str>,
    entries: EntryCounts<'a>,
    #[serde(flatten)]
    state: &'a State,
}

/// Which of a map's lines a save writes.
#[derive(Clone, Copy)]
pub(super) enum Layers {
    /// Every entry: one piece, or a new base.
    All,
    /// What changed since the base.
    Changes,
}

/// A map saved as a section, whatever its entries hold.
pub(crate) trait Section {
    fn len(&self) -> usize;
    fn write_all(&self, out: &mut Vec<u8>);
    fn write_changes(&self, out: &mut Vec<u8>);
    fn changes_len_estimate(&self) -> usize;
    fn encoded_len_estimate(&self) -> usize;
    fn base_len_bytes(&self) -> usize;
    /// Takes its entries from saved lines: `lines` over `base`'s, with
    /// `entries` entries when that count can be trusted.
    fn load(&mut self, base: Option<(Lines, String)>, lines: Lines, entries: Option<usize>);
}

impl<V: Expiring> Section for LazyMap<V> {
    fn len(&self) -> usize {
        LazyMap::len(self)
    }

    fn load(&mut self, base: Option<(Lines, String)>, lines: Lines, entries: Option<usize>) {
        *self = LazyMap::from_layers_counted(base, lines, entries);
    }

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

    pub(super) fn parse(bytes: Arc<Vec<u8>>, base: Option<&StateBase>, origin: &str) -> Result<State, StateError> {
        let corrupt = |reason: String| StateError::Corrupt { origin: origin.to_owned(), reason };
        let header_end = memchr::memchr(b'\n', &bytes).unwrap_or(bytes.len());
        let newer = |found: String| StateError::Newer { origin: origin.to_owned(), found };
        let mut state: State = match serde_json::from_slice(&bytes[..header_end]) {
            Ok(state) => state,
            // Format 1 is one JSON document, perhaps pretty-printed by hand.
            Err(e) => match serde_json::from_slice(&bytes).ok().filter(|s: &State| s.format == FORMAT_ONE_DOCUMENT) {
                Some(state) => state,
                None => return Err(unknown_header(&bytes, header_end, e).map_or_else(corrupt, newer)),
            },
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
            found if found > STATE_FORMAT => return Err(newer(format!("format {found}"))),
            found => return Err(corrupt(format!("format {found} was never written by rolewatch"))),
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
        if state.format == STATE_FORMAT {
            if let Some(key) = unknown_key(&bytes[..header_end], &state) {
                // Only a newer release writes a field this one does not: it
                // would be dropped at the next save. Refused as newer once the
                // checksum shows a release wrote it, else as damage.
                checked_lines(&bytes, header_end).map_err(corrupt)?;
                return Err(newer(format!("format {STATE_FORMAT} with field {key}, unknown to this release")));
            }
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
            if !state.sections().iter().any(|(known, _)| *known == name) {
                // Under a checksum that holds: a newer release's section,
                // which a save by this one would drop.
                return Err(newer(format!("format {STATE_FORMAT} with section #{name}, unknown to this release")));
            }
            changes.insert(name, lines.into_lines(&shared));
        }
        let entries = state.entries.take();
        // Format 2 has no sections: its histories and inputs came in the first line.
        if state.format == STATE_FORMAT {
            for (name, section) in state.sections_mut() {
                load_section(section, &mut changes, base, name, entries.as_ref().and_then(|e| e.get(name).copied()));
            }
        }
        state.format = STATE_FORMAT;
        Ok(state)
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
    /// A new base is written into the memory `spare` keeps, if it fits.
    pub fn to_parts(&self, spare: &BaseSpare) -> SavedState {
        let base_bytes =
            self.unexpected_source_ip.principals.base_len_bytes() + self.sections_bytes(|s| s.base_len_bytes());
        self.to_parts_within(changes_limit(base_bytes), spare)
    }

    /// [`State::to_parts`] with the changes limited to `limit` bytes.
    pub(crate) fn to_parts_within(&self, limit: usize, spare: &BaseSpare) -> SavedState {
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
        let mut bytes = spare.take(principals.encoded_len_estimate() + estimate + 1024);
        bytes.extend_from_slice(BASE_HEADER);
        bytes.push(b'\n');
        let start = bytes.len();
        let mut starts = Vec::with_capacity(principals.len());
        principals.write_all_lines(&mut bytes, &due, Some(&mut starts));
        let end = bytes.len();
        let sections = self.write_sections(&mut bytes, Layers::All);
        let digest = close(&mut bytes, principals.len());
        let bytes = spare.share(bytes);
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
        let _ = serde_json::to_writer(&mut *out, &Header { state: self, base, entries: EntryCounts(self) });
        out.push(b'\n');
    }
}

/// Why a first line that does not read as this release's state is not
/// ours to replace: `Ok(what)` when it is a newer release's (a format
/// above ours, or a field this release does not know in a state whose
/// checksum holds), `Err(reason)` when it is simply corrupt.
fn unknown_header(bytes: &[u8], header_end: usize, error: serde_json::Error) -> Result<String, String> {
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[..header_end]).map_err(|_| error.to_string())?;
    let format = header.get("format").and_then(serde_json::Value::as_u64);
    match format {
        Some(found) if found > u64::from(STATE_FORMAT) => Ok(format!("format {found}")),
        Some(found) if found >= u64::from(FORMAT_TWO_HISTORIES_IN_HEADER) => match checked_lines(bytes, header_end) {
            Ok(_) => Ok(format!("format {found} with {error}")),
            Err(_) => Err(error.to_string()),
        },
        _ => Err(error.to_string()),
    }
}

/// A key of the first line, as `a.b`, that this release would not write
/// back: `serde` reads past unknown fields inside the detectors' parts.
fn unknown_key(header: &[u8], state: &State) -> Option<String> {
    fn missing(read: &serde_json::Value, kept: &serde_json::Value, path: &str) -> Option<String> {
        let (serde_json::Value::Object(read), serde_json::Value::Object(kept)) = (read, kept) else { return None };
        read.iter().find_map(|(key, value)| {
            let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            match kept.get(key) {
                Some(again) => missing(value, again, &at),
                // Written in the first line by the header itself, not by the state.
                None if path.is_empty() && matches!(key.as_str(), "base" | "entries") => None,
                None => Some(at),
            }
        })
    }
    let read: serde_json::Value = serde_json::from_slice(header).ok()?;
    missing(&read, &serde_json::to_value(state).ok()?, "")
}

/// Loads section `name` of a state: its lines in `changes` over the base's,
/// holding `named` entries. A section holds one entry per line of its own, and each line of
/// its changes adds or removes at most one of the base's: a count that
/// cannot be right (hand-edited, then resealed) is counted again from the
/// lines, never trusted and never a reason to refuse the state.
fn load_section(
    section: &mut dyn Section,
    changes: &mut BTreeMap<String, Lines>,
    base: Option<&StateBase>,
    name: &str,
    named: Option<usize>,
) {
    let lines = changes.remove(name).unwrap_or_default();
    let (below, under) = base.map(|b| b.section(name)).unwrap_or_default();
    let own = lines.count();
    let fits = named.filter(|&n| if under == 0 { n == own } else { n <= under + own && n + own >= under });
    section.load(base.map(|b| (below, b.digest.clone())), lines, fits);
}

pub(super) fn write_section_name(out: &mut Vec<u8>, name: &str) {
    out.push(SECTION_MARK);
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
}

/// Starts the line naming a section: no entry line starts with it (they
/// start with a JSON string).
pub(super) const SECTION_MARK: u8 = b'#';

/// Where the principals' lines and each named section are in saved lines,
/// and where each of their lines starts.
pub(super) struct Sections {
    pub(super) principals: SectionLines,
    pub(super) named: Vec<(String, SectionLines)>,
}

/// One section's lines, and where each starts from the start of `range`.
#[derive(Default)]
pub(super) struct SectionLines {
    pub(super) range: std::ops::Range<usize>,
    pub(super) starts: Vec<usize>,
}

impl SectionLines {
    pub(super) fn into_lines(self, bytes: &SharedBytes) -> Lines {
        Lines::with_starts(Arc::clone(bytes), self.range, self.starts)
    }
}

impl Sections {
    /// One pass finds the section marks and where every line starts: every
    /// invocation loads a state part of up to several hundred kB, and a
    /// second pass for the starts took as long as the first.
    pub(super) fn find(bytes: &[u8], lines: std::ops::Range<usize>) -> Result<Sections, String> {
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
