//! Files and folders on disk: folders walked recursively in lexicographic
//! path order (CloudTrail names sort by time within an account and region).

use std::io;
use std::path::{Path, PathBuf};

use super::layout::DateWindow;
use super::{skip_reason, Planned, Skips};
use crate::replay::{InputError, Problem};

/// What a set of paths holds: the inputs to read in order, what was passed
/// over, and the paths that could not be listed.
#[derive(Debug, Default)]
pub struct Listing {
    pub planned: Vec<Planned>,
    pub skips: Skips,
    pub problems: Vec<Problem>,
}

/// Adds the log files under `path` to `listing`: a folder recursively in
/// lexicographic order, a file as given. Named files follow the same rule
/// as walked ones: digests and non-log names are skipped and counted.
pub fn list_path(path: &Path, window: &DateWindow, listing: &mut Listing) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => walk(path, window, listing),
        Ok(meta) => add_file(path.to_path_buf(), meta.len(), window, listing),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            listing.problems.push(Problem::input(path, InputError::Missing))
        }
        Err(e) => listing.problems.push(Problem::input(path, InputError::Open(e))),
    }
}

fn add_file(path: PathBuf, size: u64, window: &DateWindow, listing: &mut Listing) {
    // Keys use `/`; so do CloudTrail mirrors on disk.
    match skip_reason(&path.to_string_lossy().replace('\\', "/"), window) {
        Some(reason) => listing.skips.add(reason, 1),
        None => listing.planned.push(Planned::File { path, size }),
    }
}

fn walk(dir: &Path, window: &DateWindow, listing: &mut Listing) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            listing.problems.push(Problem::input(dir, InputError::Open(e)));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        match std::fs::metadata(&child) {
            Ok(meta) if meta.is_dir() => walk(&child, window, listing),
            Ok(meta) => add_file(child, meta.len(), window, listing),
            // A dangling link: skipped if not a log name, else fails when opened.
            Err(_) => add_file(child, 0, window, listing),
        }
    }
}
