//! A sorted map whose stored entries stay encoded until they are used.
//!
//! An account's state can know 100,000 principals while one CloudTrail file
//! touches a few dozen. Decoding every entry on load and encoding every entry
//! on save made state I/O cost more than the file itself, so stored entries
//! are kept as the lines they were saved as: one `"key"\t{json}\n` line per
//! entry, sorted by key. A lookup is a binary search over those bytes; only
//! entries that are used get decoded, and saving copies the untouched lines
//! as they are.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone)]
pub struct LazyMap<V> {
    /// The saved state's bytes; `lines` is the part holding this map's lines.
    stored: Arc<Vec<u8>>,
    lines: Range<usize>,
    /// Entries decoded or written since loading; `None` removes a stored one.
    loaded: BTreeMap<String, Option<V>>,
    len: usize,
}

impl<V> Default for LazyMap<V> {
    fn default() -> Self {
        LazyMap { stored: Arc::default(), lines: 0..0, loaded: BTreeMap::new(), len: 0 }
    }
}

impl<V: Serialize + DeserializeOwned> LazyMap<V> {
    /// A map over lines written by [`LazyMap::write_lines`]; `len` is how many.
    pub(crate) fn from_lines(stored: Arc<Vec<u8>>, lines: Range<usize>, len: usize) -> Self {
        LazyMap { stored, lines, loaded: BTreeMap::new(), len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry for `key`, decoded from storage on first use or made by
    /// `new`. `on_load` brings a stored entry up to date and says whether it
    /// is still wanted; one that is not is replaced by a new one.
    pub fn get_or_insert_with(
        &mut self,
        key: &str,
        on_load: impl FnOnce(&mut V) -> bool,
        new: impl FnOnce() -> V,
    ) -> &mut V {
        // `None`: decoded already; `Some(None)`: not stored either. A stored
        // entry comes with whether `on_load` keeps it.
        let stored = (!self.loaded.contains_key(key)).then(|| {
            self.find_stored(key).map(|mut value| {
                let keep = on_load(&mut value);
                (value, keep)
            })
        });
        let slot = self.loaded.entry(key.to_owned()).or_insert(None);
        match stored {
            Some(Some((value, true))) => *slot = Some(value),
            // Replaced by a new one below: the count stays.
            Some(Some((_, false))) => {}
            Some(None) => self.len += 1,
            None if slot.is_none() => self.len += 1,
            None => {}
        }
        slot.get_or_insert_with(new)
    }

    /// About how many bytes [`LazyMap::write_lines`] writes, to size its buffer.
    pub(crate) fn encoded_len_estimate(&self) -> usize {
        let per_stored_line = self.lines.len() / self.len.max(1);
        self.lines.len() + self.loaded.len() * per_stored_line.max(512)
    }

    /// Keeps the decoded entries `keep` says yes to. Stored entries are left
    /// as they are: they are brought up to date when loaded.
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
        self.len -= removed;
    }

    /// Decodes every stored entry, so the next [`LazyMap::retain_loaded`]
    /// sees all of them: how entries nobody touched are ever dropped.
    pub fn load_all(&mut self) {
        let stored = Arc::clone(&self.stored);
        let lines = stored.get(self.lines.clone()).unwrap_or_default();
        for line in lines.split_inclusive(|&b| b == b'\n') {
            if let Some((key, value)) = decode_line::<V>(line) {
                self.loaded.entry(key.into_owned()).or_insert(Some(value));
            }
        }
        self.loaded.retain(|_, slot| slot.is_some());
        self.len = self.loaded.len();
        self.stored = Arc::default();
        self.lines = 0..0;
    }

    /// Every entry as it is now, decoded; stored ones as they were saved.
    pub fn for_each_value(&self, mut visit: impl FnMut(&V)) {
        self.loaded.values().flatten().for_each(&mut visit);
        for line in self.stored_lines().split_inclusive(|&b| b == b'\n') {
            if let Some((key, value)) = decode_line::<V>(line) {
                if !self.loaded.contains_key(key.as_ref()) {
                    visit(&value);
                }
            }
        }
    }

    /// Writes every entry as one line, sorted by key: untouched stored lines
    /// are copied as they are.
    pub(crate) fn write_lines(&self, out: &mut Vec<u8>) {
        let lines = self.stored_lines();
        let mut cursor = 0;
        for (key, slot) in &self.loaded {
            let at = cursor + lower_bound(&lines[cursor..], key);
            out.extend_from_slice(&lines[cursor..at]);
            cursor = at;
            if let Some(end) = line_end(lines, at) {
                if line_key(&lines[at..end]).is_some_and(|k| k == key.as_str()) {
                    cursor = end;
                }
            }
            if let Some(value) = slot {
                encode_line(out, key, value);
            }
        }
        out.extend_from_slice(&lines[cursor..]);
    }

    fn stored_lines(&self) -> &[u8] {
        self.stored.get(self.lines.clone()).unwrap_or_default()
    }

    fn find_stored(&self, key: &str) -> Option<V> {
        let lines = self.stored_lines();
        let at = lower_bound(lines, key);
        let line = &lines[at..line_end(lines, at)?];
        match decode_line::<V>(line) {
            Some((found, value)) if found == key => Some(value),
            _ => None,
        }
    }

    /// Every entry decoded, for comparisons.
    fn decoded(&self) -> BTreeMap<String, V>
    where
        V: Clone,
    {
        let mut all: BTreeMap<String, V> =
            self.loaded.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect();
        for line in self.stored_lines().split_inclusive(|&b| b == b'\n') {
            if let Some((key, value)) = decode_line::<V>(line) {
                if !self.loaded.contains_key(key.as_ref()) {
                    all.insert(key.into_owned(), value);
                }
            }
        }
        all
    }
}

fn encode_line<V: Serialize>(out: &mut Vec<u8>, key: &str, value: &V) {
    // JSON escapes every control character, so neither part can hold the
    // tab or newline that delimit a line. Strings and plain data always encode.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b'\t');
    let _ = serde_json::to_writer(&mut *out, value);
    out.push(b'\n');
}

/// The key of one line (with or without its newline).
fn line_key(line: &[u8]) -> Option<Cow<'_, str>> {
    let tab = memchr::memchr(b'\t', line)?;
    let quoted = &line[..tab];
    match quoted {
        [b'"', inner @ .., b'"'] if memchr::memchr(b'\\', inner).is_none() => {
            std::str::from_utf8(inner).ok().map(Cow::Borrowed)
        }
        _ => serde_json::from_slice::<String>(quoted).ok().map(Cow::Owned),
    }
}

fn decode_line<V: DeserializeOwned>(line: &[u8]) -> Option<(Cow<'_, str>, V)> {
    let key = line_key(line)?;
    let tab = memchr::memchr(b'\t', line)?;
    let value = line.get(tab + 1..)?;
    Some((key, serde_json::from_slice(value).ok()?))
}

/// Where the line starting at `at` ends (after its newline).
fn line_end(lines: &[u8], at: usize) -> Option<usize> {
    let rest = lines.get(at..).filter(|r| !r.is_empty())?;
    Some(at + memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1))
}

/// Offset of the first line whose key is not below `key` (`lines.len()` if
/// none): a binary search over the bytes, without an index.
fn lower_bound(lines: &[u8], key: &str) -> usize {
    // Every line starting before `lo` is below `key`; every line starting
    // at or after `hi` is not.
    let (mut lo, mut hi) = (0, lines.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = memchr::memrchr(b'\n', &lines[lo..mid]).map_or(lo, |i| lo + i + 1);
        let end = line_end(lines, start).unwrap_or(lines.len());
        // A line that cannot be read sorts first: the search moves past it.
        let below = line_key(&lines[start..end]).is_none_or(|k| k.as_ref() < key);
        if below {
            lo = end;
        } else {
            hi = start;
        }
    }
    lo
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
            .field("stored_bytes", &self.lines.len())
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
        Ok(LazyMap { stored: Arc::default(), lines: 0..0, loaded, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Saves `map` as a state would and loads it back from the bytes.
    fn reloaded(map: &LazyMap<u32>) -> LazyMap<u32> {
        let mut bytes = b"header\n".to_vec();
        map.write_lines(&mut bytes);
        let len = map.len();
        let end = bytes.len();
        LazyMap::from_lines(Arc::new(bytes), 7..end, len)
    }

    fn set(map: &mut LazyMap<u32>, key: &str, value: u32) {
        *map.get_or_insert_with(key, |_| true, || value) = value;
    }

    fn remove(map: &mut LazyMap<u32>, key: &str) {
        map.get_or_insert_with(key, |_| true, || 0);
        map.retain_loaded(|k, _| k != key);
    }

    fn contents(map: &LazyMap<u32>) -> Vec<(String, u32)> {
        map.decoded().into_iter().collect()
    }

    #[test]
    fn only_entries_in_use_are_decoded_and_the_rest_is_copied_as_saved() {
        let mut map = LazyMap::default();
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            set(&mut map, key, i as u32);
        }
        let mut map = reloaded(&map);
        set(&mut map, "c", 30);
        assert_eq!(map.loaded.len(), 1, "one lookup decodes one entry");
        let mut saved = Vec::new();
        map.write_lines(&mut saved);
        assert_eq!(String::from_utf8_lossy(&saved), "\"a\"\t0\n\"b\"\t1\n\"c\"\t30\n\"d\"\t3\n");
    }

    #[test]
    fn a_stored_entry_not_kept_on_load_is_replaced_by_a_new_one() {
        let mut map = LazyMap::default();
        set(&mut map, "old", 1);
        let mut map = reloaded(&map);
        assert_eq!(*map.get_or_insert_with("old", |_| false, || 99), 99);
        assert_eq!(map.len(), 1);
        let mut seen = 0;
        map.get_or_insert_with("old", |_| panic!("already decoded"), || 0);
        map.for_each_value(|_| seen += 1);
        assert_eq!(seen, 1);
    }

    #[test]
    fn damaged_lines_read_as_missing_not_as_a_crash() {
        let bytes = b"\"a\"\t1\nnot a line\n\"c\"\t{\n\"d\"\t4\n".to_vec();
        let end = bytes.len();
        let mut map: LazyMap<u32> = LazyMap::from_lines(Arc::new(bytes), 0..end, 4);
        assert_eq!(*map.get_or_insert_with("d", |_| true, || 0), 4);
        assert_eq!(*map.get_or_insert_with("c", |_| true, || 7), 7);
        // Damage breaks the sort order the search relies on: an entry may read
        // as missing (the checksum keeps this from happening to saved state).
        assert!([0, 1].contains(map.get_or_insert_with("a", |_| true, || 0)));
    }

    proptest! {
        /// Whatever is written, removed, saved and loaded in whatever order,
        /// the map holds what a plain map would, and its lines stay sorted.
        #[test]
        fn behaves_like_a_plain_map_across_saves(
            batches in prop::collection::vec(
                prop::collection::vec(("[a-c\"\\\\\t\n\u{e9}]{0,3}", prop::option::of(0u32..100)), 0..12),
                1..6,
            )
        ) {
            let mut model: BTreeMap<String, u32> = BTreeMap::new();
            let mut map: LazyMap<u32> = LazyMap::default();
            for batch in batches {
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
                prop_assert_eq!(map.len(), model.len());
                map = reloaded(&map);
                prop_assert_eq!(contents(&map), model.clone().into_iter().collect::<Vec<_>>());
                let lines = map.stored_lines();
                let keys: Vec<String> =
                    lines.split_inclusive(|&b| b == b'\n').filter_map(line_key).map(|k| k.into_owned()).collect();
                prop_assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
            }
            for (key, value) in &model {
                prop_assert_eq!(*map.get_or_insert_with(key, |_| true, || u32::MAX), *value);
            }
        }
    }
}
