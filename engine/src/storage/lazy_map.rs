//! A sorted map whose stored entries stay encoded until they are used.
//!
//! An account's state can know 100,000 principals while one CloudTrail file
//! touches a few dozen. Decoding every entry on load and encoding every entry
//! on save made state I/O cost more than the file itself, so stored entries
//! are kept as the lines they were saved as: one `"key"\t<due>\t{json}\n`
//! line per entry, sorted by key, where `<due>` is the event time from which
//! the entry needs bringing up to date (pruning), so a sweep over every
//! entry decodes only the ones that do. A lookup is a binary search over
//! where the lines start (found once, as they are read), reading keys only;
//! only entries that are used get decoded, and saving copies the untouched
//! lines as they are.
//!
//! Stored lines come in two layers. The *base* holds every entry as of some
//! save and is shared, unchanged, by many saves (the Lambda keeps it in an
//! object of its own and in memory between invocations); the *delta* holds
//! what changed since, a `null` value marking an entry removed from the base.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::base_buffer::SharedBytes;

/// Sorted lines inside a shared buffer.
#[derive(Clone)]
pub(crate) struct Lines {
    bytes: SharedBytes,
    range: Range<usize>,
    /// Where each line starts, from the start of `range`: found once, as
    /// the lines are read, so a lookup reads keys only. A binary search
    /// over the bytes alone scanned each probed line for its start, kBs
    /// for a roaming principal.
    starts: Arc<Vec<usize>>,
}

impl Default for Lines {
    fn default() -> Self {
        Lines { bytes: Arc::new(Vec::new()), range: 0..0, starts: Arc::default() }
    }
}

impl Lines {
    pub(crate) fn new(bytes: SharedBytes, range: Range<usize>) -> Lines {
        let mut lines = Lines { bytes, range, starts: Arc::default() };
        lines.starts = Arc::new(lines.scan_starts());
        lines
    }

    /// Lines whose starts are known already: those a merge wrote.
    pub(crate) fn with_starts(bytes: SharedBytes, range: Range<usize>, starts: Vec<usize>) -> Lines {
        let lines = Lines { bytes, range, starts: Arc::new(starts) };
        debug_assert_eq!(*lines.starts, lines.scan_starts(), "a merge knows where the lines it wrote start");
        lines
    }

    fn scan_starts(&self) -> Vec<usize> {
        let slice = self.as_slice();
        let first = (!slice.is_empty()).then_some(0);
        // A line starts after every newline but the last byte's.
        let after_newlines = memchr::memchr_iter(b'\n', slice).map(|i| i + 1).filter(|&i| i < slice.len());
        first.into_iter().chain(after_newlines).collect()
    }

    fn as_slice(&self) -> &[u8] {
        (*self.bytes).as_ref().get(self.range.clone()).unwrap_or_default()
    }

    pub(crate) fn len_bytes(&self) -> usize {
        self.range.len()
    }

    /// How many lines there are.
    pub(crate) fn count(&self) -> usize {
        self.starts.len()
    }

    /// The line holding `key`, if there is one.
    fn find(&self, key: &str) -> Option<&[u8]> {
        let lines = self.as_slice();
        let at = self.lower_bound(key);
        key_at(lines, at).filter(|found| found == key)?;
        Some(&lines[at..line_end(lines, at)?])
    }

    /// Offset of the first line whose key is not below `key` (the end if
    /// none). A line that cannot be read sorts first.
    fn lower_bound(&self, key: &str) -> usize {
        self.lower_bound_from(0, key)
    }

    /// [`Lines::lower_bound`] among the lines from offset `from` on. A save
    /// asks for its changes in order, each usually a few lines after the
    /// last: the search looks 1, 2, 4… lines on before halving.
    fn lower_bound_from(&self, from: usize, key: &str) -> usize {
        let lines = self.as_slice();
        let below = |&start: &usize| line_below(lines, start, key);
        let mut first = self.starts.partition_point(|&start| start < from);
        let mut step = 1;
        while let Some(start) = self.starts.get(first + step - 1) {
            if !below(start) {
                break;
            }
            first += step;
            step *= 2;
        }
        let window = &self.starts[first..(first + step).min(self.starts.len())];
        let at = first + window.partition_point(below);
        self.starts.get(at).copied().unwrap_or(lines.len())
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let lines = self.as_slice();
        self.starts.iter().map(move |&start| &lines[start..line_end(lines, start).unwrap_or(lines.len())])
    }
}

#[derive(Clone)]
pub struct LazyMap<V> {
    /// Every entry as of the base's save; never holds removals.
    base: Lines,
    /// Identifies the base (its checksum) for the saves that build on it.
    base_digest: Option<String>,
    /// Changes since the base, newer than it: entries and removals (`null`).
    delta: Lines,
    /// Entries decoded or written since loading; `None` removes a stored one.
    loaded: BTreeMap<String, Option<V>>,
    len: usize,
}

impl<V> Default for LazyMap<V> {
    fn default() -> Self {
        LazyMap { base: Lines::default(), base_digest: None, delta: Lines::default(), loaded: BTreeMap::new(), len: 0 }
    }
}

/// What a merge does to a stored line.
enum Change<'a, V> {
    Set(&'a V),
    /// A stored line from a layer above, written as it is.
    Copy(&'a [u8]),
    /// Dropped; with `null` in its place when a base below still holds it.
    Remove {
        mark: bool,
    },
}

impl<V: Serialize + DeserializeOwned + Clone> LazyMap<V> {
    /// A map over saved lines: `base` (with its digest) and the `delta` on
    /// top of it. `len` is how many entries they hold together.
    pub(crate) fn from_layers(base: Option<(Lines, String)>, delta: Lines, len: usize) -> Self {
        let (base, base_digest) = match base {
            Some((lines, digest)) => (lines, Some(digest)),
            None => (Lines::default(), None),
        };
        LazyMap { base, base_digest, delta, loaded: BTreeMap::new(), len }
    }

    /// [`LazyMap::from_layers`] with the entries counted from the lines
    /// when no count is given.
    pub(crate) fn from_layers_counted(base: Option<(Lines, String)>, delta: Lines, len: Option<usize>) -> Self {
        let mut map = LazyMap::from_layers(base, delta, len.unwrap_or_default());
        if len.is_none() {
            map.len = map.count_stored();
        }
        map
    }

    /// The stored entries, counted from their lines: the base's, plus each
    /// line of the delta that adds a key, less each removal of a base's key.
    fn count_stored(&self) -> usize {
        let mut count = self.base.count();
        for line in self.delta.iter() {
            let Some(key) = line_key(line) else { continue };
            match (line_holds_removal(line), self.base.find(&key).is_some()) {
                (true, true) => count = count.saturating_sub(1),
                (false, false) => count += 1,
                _ => {}
            }
        }
        count
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn base_digest(&self) -> Option<&str> {
        self.base_digest.as_deref()
    }

    pub(crate) fn base_len_bytes(&self) -> usize {
        self.base.len_bytes()
    }

    /// The entry for `key`, decoded from storage on first use or made by
    /// `new`. `refresh` brings an existing entry up to date and says whether
    /// it is still wanted; one that is not is replaced by a new one.
    pub fn get_or_insert_with(
        &mut self,
        key: &str,
        refresh: impl FnOnce(&mut V) -> bool,
        new: impl FnOnce() -> V,
    ) -> &mut V {
        let decoded_before = self.loaded.contains_key(key);
        if !decoded_before {
            // `Some(None)`: stored on a line that does not decode, replaced
            // by a new one below (the count stays); `None`: not stored either.
            let stored = match self.find_stored(key) {
                Some(decoded) => decoded,
                None => {
                    self.len += 1;
                    None
                }
            };
            self.loaded.insert(key.to_owned(), stored);
        }
        // Looked up, not `entry`: the usual case once warm allocates no key.
        let Some(slot) = self.loaded.get_mut(key) else {
            unreachable!("inserted just above if it was missing");
        };
        if decoded_before && slot.is_none() {
            // Removed earlier: what comes below is a new entry.
            self.len += 1;
        }
        // One not kept is replaced by a new one below: the count stays.
        if slot.as_mut().is_some_and(|value| !refresh(value)) {
            *slot = None;
        }
        slot.get_or_insert_with(new)
    }

    /// The entry for `key`, made by `new` if there is none. Unlike
    /// [`LazyMap::get_or_insert_with`], `decoded` runs only when the entry
    /// is decoded from storage: for entries whose decoded copies are kept
    /// up to date by [`LazyMap::retain_loaded`].
    pub fn get_or_insert_decoded(
        &mut self,
        key: &str,
        decoded: impl FnOnce(&mut V) -> bool,
        new: impl FnOnce() -> V,
    ) -> &mut V {
        let in_memory = self.loaded.contains_key(key);
        self.get_or_insert_with(key, |value| in_memory || decoded(value), new)
    }

    /// Sets the entry for `key`, stored or not.
    pub fn insert(&mut self, key: &str, value: V) {
        if !self.contains_key(key) {
            self.len += 1;
        }
        self.loaded.insert(key.to_owned(), Some(value));
    }

    /// Removes the entry for `key`, if there is one.
    pub fn remove(&mut self, key: &str) {
        if self.contains_key(key) {
            self.len = self.len.saturating_sub(1);
        }
        self.loaded.insert(key.to_owned(), None);
    }

    /// Every entry's key and value, decoded, in key order.
    pub fn entries(&self) -> Vec<(String, V)> {
        self.decoded().into_iter().collect()
    }

    /// Whether there is an entry for `key`, without decoding it.
    pub fn contains_key(&self, key: &str) -> bool {
        match self.loaded.get(key) {
            Some(slot) => slot.is_some(),
            None => self.stored_line(key).is_some(),
        }
    }

    /// The entry for `key`, decoded, as it is now.
    pub fn get(&self, key: &str) -> Option<Cow<'_, V>> {
        match self.loaded.get(key) {
            Some(slot) => slot.as_ref().map(Cow::Borrowed),
            None => self.find_stored(key).flatten().map(Cow::Owned),
        }
    }

    /// Keeps the decoded entries `keep` says yes to. Stored entries are left
    /// as they are (see [`LazyMap::sweep`]).
    pub fn retain_loaded(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        let mut removed = 0;
        for (key, slot) in self.loaded.iter_mut() {
            if let Some(value) = slot {
                if !keep(key, value) {
                    *slot = None;
                    removed += 1;
                }
            }
        }
        self.len = self.len.saturating_sub(removed);
    }

    /// Every entry as it is now, decoded; stored ones as they were saved.
    pub fn for_each_value(&self, mut visit: impl FnMut(&V)) {
        self.for_each_entry(|_, value| visit(value));
    }

    /// Writes what changed since the base, one line per entry, sorted by key:
    /// the delta's untouched lines as they are, then the changes on top.
    /// `due` says from when an entry needs bringing up to date.
    pub(crate) fn write_delta_lines(&self, out: &mut Vec<u8>, due: &dyn Fn(&V) -> i64) {
        merge_lines(out, &self.delta, self.delta_changes(), due, None);
    }

    /// What the decoded entries change in the delta.
    fn delta_changes(&self) -> impl Iterator<Item = (&str, Change<'_, V>)> {
        self.loaded.iter().map(|(key, slot)| {
            let change = match slot {
                Some(value) => Change::Set(value),
                None => Change::Remove { mark: self.base.find(key).is_some() },
            };
            (key.as_str(), change)
        })
    }

    /// Writes every entry, one line each, sorted by key, needing no base.
    /// Delta lines are copied as they are, not decoded: a new base is
    /// written when the delta is at its largest. With `starts`, where each
    /// line starts is pushed to it, counted from where the lines begin in `out`.
    pub(crate) fn write_all_lines(&self, out: &mut Vec<u8>, due: &dyn Fn(&V) -> i64, starts: Option<&mut Vec<usize>>) {
        if self.base.len_bytes() == 0 {
            // Without a base the delta holds no removal marks: it is everything.
            return merge_lines(out, &self.delta, self.delta_changes(), due, starts);
        }
        let mut delta = self.delta.iter().filter_map(|line| Some((line_key(line)?, line))).peekable();
        let mut loaded = self.loaded.iter().peekable();
        let changes = std::iter::from_fn(move || {
            let next_delta = delta.peek().map(|(key, _)| key.as_ref());
            let next_loaded = loaded.peek().map(|(key, _)| key.as_str());
            // Decoded entries are newer than their delta lines.
            let take_loaded = match (next_delta, next_loaded) {
                (Some(d), Some(l)) => l <= d,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if take_loaded {
                let (key, slot) = loaded.next()?;
                if delta.peek().is_some_and(|(d, _)| d.as_ref() == key.as_str()) {
                    delta.next();
                }
                let change = match slot {
                    Some(value) => Change::Set(value),
                    None => Change::Remove { mark: false },
                };
                return Some((Cow::Borrowed(key.as_str()), change));
            }
            let (key, line) = delta.next()?;
            let change = if line_holds_removal(line) { Change::Remove { mark: false } } else { Change::Copy(line) };
            Some((key, change))
        });
        merge_lines(out, &self.base, changes, due, starts);
    }

    /// Brings every entry due by `watermark` up to date with `refresh`,
    /// dropping those it does not keep: how entries nobody uses are pruned.
    /// Stored entries not yet due are not even decoded.
    pub fn sweep(&mut self, watermark: i64, mut refresh: impl FnMut(&mut V) -> bool) {
        self.retain_loaded(|_, value| refresh(value));
        let (delta, base) = (self.delta.clone(), self.base.clone());
        for (layer, below) in [(&delta, None), (&base, Some(&delta))] {
            for line in layer.iter() {
                if line_due(line).is_some_and(|due| due > watermark) {
                    continue;
                }
                let Some((key, Some(mut value))) = decode_line::<V>(line) else { continue };
                if self.loaded.contains_key(key.as_ref()) || below.is_some_and(|d| d.find(&key).is_some()) {
                    continue;
                }
                let keep = refresh(&mut value);
                if !keep {
                    self.len = self.len.saturating_sub(1);
                }
                self.loaded.insert(key.into_owned(), keep.then_some(value));
            }
        }
    }

    /// About how many bytes [`LazyMap::write_delta_lines`] writes.
    pub(crate) fn changes_len_estimate(&self) -> usize {
        self.delta.len_bytes() + self.loaded_len_estimate()
    }

    /// About how many bytes [`LazyMap::write_all_lines`] writes, to size its buffer.
    pub(crate) fn encoded_len_estimate(&self) -> usize {
        self.base.len_bytes() + self.delta.len_bytes() + self.loaded_len_estimate()
    }

    /// The decoded entries at the stored entries' mean line length, from 512
    /// bytes to 8 KiB: the count comes from saved state, and a wrong one must
    /// not ask for a buffer the size of everything times everything.
    fn loaded_len_estimate(&self) -> usize {
        let per_line = (self.base.len_bytes() + self.delta.len_bytes()) / self.len.max(1);
        self.loaded.len().saturating_mul(per_line.clamp(512, 8 * 1024))
    }

    /// The stored entry for `key`: `None` when there is none, `Some(None)`
    /// when its line does not decode (only a hand-edited state has one; it
    /// counts as an entry, which a new one replaces).
    fn find_stored(&self, key: &str) -> Option<Option<V>> {
        let line = self.stored_line(key)?;
        Some(decode_line::<V>(line).and_then(|(_, value)| value))
    }

    /// The stored line holding `key`'s entry: the delta's over the base's,
    /// none when the delta marks it removed.
    fn stored_line(&self, key: &str) -> Option<&[u8]> {
        let line = match self.delta.find(key) {
            Some(line) => line,
            None => self.base.find(key)?,
        };
        (!line_holds_removal(line)).then_some(line)
    }

    /// Every entry decoded, for comparisons.
    fn decoded(&self) -> BTreeMap<String, V> {
        let mut all = BTreeMap::new();
        self.for_each_entry(|key, value| {
            all.insert(key.to_owned(), value.clone());
        });
        all
    }

    fn for_each_entry(&self, mut visit: impl FnMut(&str, &V)) {
        for (key, value) in &self.loaded {
            if let Some(value) = value {
                visit(key, value);
            }
        }
        for line in self.delta.iter() {
            if let Some((key, Some(value))) = decode_line::<V>(line) {
                if !self.loaded.contains_key(key.as_ref()) {
                    visit(&key, &value);
                }
            }
        }
        for line in self.base.iter() {
            if let Some((key, Some(value))) = decode_line::<V>(line) {
                if !self.loaded.contains_key(key.as_ref()) && self.delta.find(&key).is_none() {
                    visit(&key, &value);
                }
            }
        }
    }
}

/// Copies the `stored` lines to `out` with `changes` (sorted by key)
/// applied: lines nobody changed are copied in runs, as they are. With
/// `starts`, where each line written starts is pushed to it, counted from
/// where the merge begins in `out`.
fn merge_lines<'a, K: AsRef<str>, V: Serialize + 'a>(
    out: &mut Vec<u8>,
    stored: &Lines,
    changes: impl IntoIterator<Item = (K, Change<'a, V>)>,
    due: &dyn Fn(&V) -> i64,
    mut starts: Option<&mut Vec<usize>>,
) {
    let lines = stored.as_slice();
    let origin = out.len();
    let mut cursor = 0;
    for (key, change) in changes {
        let key = key.as_ref();
        let at = stored.lower_bound_from(cursor, key);
        copy_run(out, stored, cursor..at, origin, starts.as_deref_mut());
        cursor = at;
        if key_at(lines, at).is_some_and(|k| k == key) {
            cursor = line_end(lines, at).unwrap_or(lines.len());
        }
        if let Some(starts) = starts.as_deref_mut() {
            if !matches!(change, Change::Remove { mark: false }) {
                starts.push(out.len() - origin);
            }
        }
        match change {
            Change::Set(value) => encode_line(out, key, due(value), Some(value)),
            Change::Copy(line) => {
                out.extend_from_slice(line);
                if !line.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            // A removal mark never needs bringing up to date.
            Change::Remove { mark: true } => encode_line::<V>(out, key, i64::MAX, None),
            Change::Remove { mark: false } => {}
        }
    }
    copy_run(out, stored, cursor..lines.len(), origin, starts);
}

/// Copies `run`, whole lines of `stored`, to `out`; with `starts`, pushes
/// where they start in `out` (counted from `origin`) as `stored` knows them.
fn copy_run(out: &mut Vec<u8>, stored: &Lines, run: Range<usize>, origin: usize, starts: Option<&mut Vec<usize>>) {
    if let Some(starts) = starts {
        let first = stored.starts.partition_point(|&start| start < run.start);
        let last = stored.starts.partition_point(|&start| start < run.end);
        let shift = out.len() - origin;
        starts.extend(stored.starts[first..last].iter().map(|&start| start - run.start + shift));
    }
    out.extend_from_slice(&stored.as_slice()[run]);
}

fn encode_line<V: Serialize>(out: &mut Vec<u8>, key: &str, due: i64, value: Option<&V>) {
    // JSON escapes every control character, so neither part can hold the
    // tab or newline that delimit a line. Strings and plain data always encode.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b'\t');
    let _ = write!(out, "{due}");
    out.push(b'\t');
    let _ = serde_json::to_writer(&mut *out, &value);
    out.push(b'\n');
}

/// Whether a stored line is a removal mark (`null`).
fn line_holds_removal(line: &[u8]) -> bool {
    line.strip_suffix(b"\n").unwrap_or(line).ends_with(b"\tnull")
}

/// The `<due>` field of a line.
fn line_due(line: &[u8]) -> Option<i64> {
    let first = memchr::memchr(b'\t', line)? + 1;
    let len = memchr::memchr(b'\t', line.get(first..)?)?;
    std::str::from_utf8(line.get(first..first + len)?).ok()?.parse().ok()
}

/// The key of one line (with or without its newline).
fn line_key(line: &[u8]) -> Option<Cow<'_, str>> {
    let tab = memchr::memchr(b'\t', line)?;
    unquoted_key(&line[..tab])
}

/// A key as saved, a JSON string, read.
fn unquoted_key(quoted: &[u8]) -> Option<Cow<'_, str>> {
    match quoted {
        [b'"', inner @ .., b'"'] if memchr::memchr(b'\\', inner).is_none() => {
            std::str::from_utf8(inner).ok().map(Cow::Borrowed)
        }
        _ => serde_json::from_slice::<String>(quoted).ok().map(Cow::Owned),
    }
}

/// A line's key and value; `None` for a removal mark.
fn decode_line<V: DeserializeOwned>(line: &[u8]) -> Option<(Cow<'_, str>, Option<V>)> {
    let key = line_key(line)?;
    let first = memchr::memchr(b'\t', line)? + 1;
    let second = first + memchr::memchr(b'\t', line.get(first..)?)? + 1;
    let value = line.get(second..)?;
    Some((key, serde_json::from_slice(value).ok()?))
}

/// Where the line starting at `at` ends (after its newline).
fn line_end(lines: &[u8], at: usize) -> Option<usize> {
    let rest = lines.get(at..).filter(|r| !r.is_empty())?;
    Some(at + memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1))
}

/// The key of the line starting at `start`, reading no further than its
/// tab; `None` when the line has no tab before its end, or no key there.
fn key_at(lines: &[u8], start: usize) -> Option<Cow<'_, str>> {
    let rest = lines.get(start..)?;
    let key_end = memchr::memchr2(b'\t', b'\n', rest).filter(|&i| rest[i] == b'\t')?;
    unquoted_key(&rest[..key_end])
}

/// Whether the line at `start` sorts below `key`. One that cannot be read
/// sorts first.
fn line_below(lines: &[u8], start: usize, key: &str) -> bool {
    key_at(lines, start).is_none_or(|k| k.as_ref() < key)
}

impl<V: Serialize + DeserializeOwned + Clone + PartialEq> PartialEq for LazyMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.decoded() == other.decoded()
    }
}

impl<V: Serialize + DeserializeOwned + Clone + Eq> Eq for LazyMap<V> {}

impl<V> fmt::Debug for LazyMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyMap")
            .field("len", &self.len)
            .field("base_bytes", &self.base.len_bytes())
            .field("delta_bytes", &self.delta.len_bytes())
            .field("loaded", &self.loaded.len())
            .finish()
    }
}

/// From a JSON object: how format 1 state, which kept every entry in one
/// document, is read.
impl<'de, V: Deserialize<'de>> Deserialize<'de> for LazyMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = BTreeMap::<String, V>::deserialize(deserializer)?;
        let len = entries.len();
        let loaded = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
        Ok(LazyMap { loaded, len, ..LazyMap::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How a map is saved and loaded again.
    #[derive(Debug, Clone, Copy)]
    enum Save {
        /// Every entry in one document.
        Whole,
        /// Only the changes, on top of the base it was loaded with.
        OnItsBase,
        /// Every entry into a new base, nothing on top.
        NewBase,
    }

    /// Test entries are due from their own value.
    fn due(value: &u32) -> i64 {
        i64::from(*value)
    }

    fn lines_of(bytes: Vec<u8>) -> Lines {
        let end = bytes.len();
        Lines::new(Arc::new(bytes), 0..end)
    }

    fn reloaded(map: &LazyMap<u32>, how: Save) -> LazyMap<u32> {
        let mut out = Vec::new();
        match how {
            Save::Whole => {
                map.write_all_lines(&mut out, &due, None);
                LazyMap::from_layers(None, lines_of(out), map.len())
            }
            Save::OnItsBase => {
                map.write_delta_lines(&mut out, &due);
                let base = map.base_digest().map(|digest| (map.base.clone(), digest.to_owned()));
                LazyMap::from_layers(base, lines_of(out), map.len())
            }
            Save::NewBase => {
                // As a new base is: with the starts its merge found.
                let mut starts = Vec::new();
                map.write_all_lines(&mut out, &due, Some(&mut starts));
                let digest = format!("{:x}", twox_hash::XxHash3_64::oneshot(&out));
                let end = out.len();
                let base = Lines::with_starts(Arc::new(out), 0..end, starts);
                assert_eq!(*base.starts, base.scan_starts(), "a merge knows where the lines it wrote start");
                LazyMap::from_layers(Some((base, digest)), Lines::default(), map.len())
            }
        }
    }

    fn set(map: &mut LazyMap<u32>, key: &str, value: u32) {
        *map.get_or_insert_with(key, |_| true, || value) = value;
    }

    fn remove(map: &mut LazyMap<u32>, key: &str) {
        map.get_or_insert_with(key, |_| true, || 0);
        map.retain_loaded(|k, _| k != key);
    }

    fn text(lines: &Lines) -> String {
        String::from_utf8_lossy(lines.as_slice()).into_owned()
    }

    #[test]
    fn only_entries_in_use_are_decoded_and_the_rest_is_copied_as_saved() {
        let mut map = LazyMap::default();
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            set(&mut map, key, i as u32);
        }
        let mut map = reloaded(&map, Save::Whole);
        set(&mut map, "c", 30);
        assert_eq!(map.loaded.len(), 1, "one lookup decodes one entry");
        let mut saved = Vec::new();
        map.write_all_lines(&mut saved, &due, None);
        assert_eq!(String::from_utf8_lossy(&saved), "\"a\"\t0\t0\n\"b\"\t1\t1\n\"c\"\t30\t30\n\"d\"\t3\t3\n");
    }

    #[test]
    fn on_a_base_only_changes_are_saved_and_removals_are_marked() {
        let mut map = LazyMap::default();
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            set(&mut map, key, i as u32);
        }
        let mut map = reloaded(&map, Save::NewBase);
        set(&mut map, "b", 10);
        set(&mut map, "z", 26);
        remove(&mut map, "c");
        let map = reloaded(&map, Save::OnItsBase);
        let removed = i64::MAX;
        assert_eq!(text(&map.delta), format!("\"b\"\t10\t10\n\"c\"\t{removed}\tnull\n\"z\"\t26\t26\n"));
        assert_eq!(text(&map.base), "\"a\"\t0\t0\n\"b\"\t1\t1\n\"c\"\t2\t2\n", "the base is shared as it was");
        assert_eq!(map.len(), 3);
        let whole = reloaded(&map, Save::Whole);
        assert_eq!(text(&whole.delta), "\"a\"\t0\t0\n\"b\"\t10\t10\n\"z\"\t26\t26\n");
    }

    #[test]
    fn an_entry_not_kept_on_refresh_is_replaced_by_a_new_one() {
        let mut map = LazyMap::default();
        set(&mut map, "old", 1);
        let mut map = reloaded(&map, Save::Whole);
        assert_eq!(*map.get_or_insert_with("old", |_| false, || 99), 99);
        assert_eq!(map.len(), 1);
        let mut seen = 0;
        map.get_or_insert_with("old", |_| true, || 0);
        map.for_each_value(|_| seen += 1);
        assert_eq!(seen, 1);
    }

    #[test]
    fn damaged_lines_read_as_missing_not_as_a_crash() {
        let lines = lines_of(b"\"a\"\t1\t1\nnot a line\n\"c\"\t0\t{\n\"d\"\t4\t4\n".to_vec());
        let mut map: LazyMap<u32> = LazyMap::from_layers(None, lines, 4);
        assert_eq!(*map.get_or_insert_with("d", |_| true, || 0), 4);
        assert_eq!(*map.get_or_insert_with("c", |_| true, || 7), 7);
        // Damage breaks the sort order the search relies on: an intact entry
        // may then read as missing (the checksum keeps this from happening to
        // saved state), but never as another entry's value.
        let a = *map.get_or_insert_with("a", |_| true, || 99);
        assert!(a == 1 || a == 99, "\"a\" read as {a}, neither its value nor missing");
    }

    fn save_strategy() -> impl Strategy<Value = Save> {
        prop_oneof![Just(Save::Whole), Just(Save::OnItsBase), Just(Save::NewBase)]
    }

    proptest! {
        /// The binary search over lines lands where a walk from the first
        /// line would, whatever the keys' escapes and the lines' lengths.
        #[test]
        fn lower_bound_finds_the_first_line_not_below_a_key(
            entries in prop::collection::btree_map("[a-c\"\\\t\u{e9}]{0,4}", 0usize..3000, 0..40),
            probes in prop::collection::vec("[a-c\"\\\t\u{e9}]{0,4}", 1..20),
        ) {
            let mut bytes = Vec::new();
            let mut starts = Vec::new();
            for (key, value_len) in &entries {
                starts.push(bytes.len());
                encode_line(&mut bytes, key, 0, Some(&"v".repeat(*value_len)));
            }
            let end = bytes.len();
            let lines = lines_of(bytes);
            prop_assert_eq!(lines.count(), entries.len());
            for probe in probes.iter().chain(entries.keys()) {
                let walked = entries.keys().position(|k| k >= probe).map_or(end, |i| starts[i]);
                prop_assert_eq!(lines.lower_bound(probe), walked, "{:?}", probe);
                // From any line at or before it.
                for &from in starts.iter().filter(|&&from| from <= walked) {
                    prop_assert_eq!(lines.lower_bound_from(from, probe), walked, "{:?} from {}", probe, from);
                }
            }
        }

        /// Whatever is written, removed, saved and loaded in whatever order
        /// and way, the map holds what a plain map would, and its lines stay
        /// sorted.
        #[test]
        fn behaves_like_a_plain_map_across_saves(
            batches in prop::collection::vec(
                (
                    prop::collection::vec(("[a-c\"\\\\\t\n\u{e9}]{0,3}", prop::option::of(0u32..100)), 0..12),
                    save_strategy(),
                    prop::option::of(0u32..100),
                ),
                1..8,
            )
        ) {
            let mut model: BTreeMap<String, u32> = BTreeMap::new();
            let mut map: LazyMap<u32> = LazyMap::default();
            for (batch, how, sweep) in batches {
                for (key, value) in batch {
                    match value {
                        Some(v) => {
                            set(&mut map, &key, v);
                            model.insert(key, v);
                        }
                        None => {
                            remove(&mut map, &key);
                            model.remove(&key);
                        }
                    }
                }
                if let Some(watermark) = sweep {
                    // An entry is due from its value: a sweep drops those at or below.
                    map.sweep(i64::from(watermark), |v| *v > watermark);
                    model.retain(|_, v| *v > watermark);
                }
                prop_assert_eq!(map.len(), model.len());
                map = reloaded(&map, how);
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(&map.decoded(), &model);
                for layer in [&map.base, &map.delta] {
                    let keys: Vec<String> = layer.iter().filter_map(line_key).map(|k| k.into_owned()).collect();
                    let mut sorted = keys.clone();
                    sorted.sort();
                    sorted.dedup();
                    prop_assert_eq!(keys, sorted);
                }
            }
            for (key, value) in &model {
                prop_assert_eq!(*map.get_or_insert_with(key, |_| true, || u32::MAX), *value);
            }
        }
    }
}
