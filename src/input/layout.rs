//! What a CloudTrail object name says: its date and where its region's
//! folder ends, in both organisation-trail layouts:
//! `[prefix/]AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>`.

use chrono::NaiveDate;

/// The days a replay is limited to (both ends included), by the date in
/// an object's name: the UTC day CloudTrail delivered the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateWindow {
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

impl DateWindow {
    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }

    pub fn contains(&self, date: NaiveDate) -> bool {
        self.since.is_none_or(|since| date >= since) && self.until.is_none_or(|until| date <= until)
    }

    /// Whether a key is outside the window. Keys without a CloudTrail date
    /// are never outside: nothing says when they were written.
    pub fn excludes(&self, key: &str) -> bool {
        key_date(key).is_some_and(|date| !self.contains(date))
    }
}

/// `YYYY/MM/DD`, as CloudTrail names its day folders.
pub fn day_folder(date: NaiveDate) -> String {
    date.format("%Y/%m/%d").to_string()
}

/// The path components after `AWSLogs`, with the byte offset each starts at.
fn after_awslogs(key: &str) -> Option<Vec<(usize, &str)>> {
    let mut offset = 0;
    let mut parts = Vec::new();
    let mut seen = false;
    for part in key.split('/') {
        if seen {
            parts.push((offset, part));
        } else if part == "AWSLogs" {
            seen = true;
        }
        offset += part.len() + 1;
    }
    seen.then_some(parts)
}

/// The components from the account on: `<account>/CloudTrail/<region>/...`,
/// the organisation id (when there is one) passed over.
fn from_account(key: &str) -> Option<Vec<(usize, &str)>> {
    let mut parts = after_awslogs(key)?;
    if parts.first().is_some_and(|(_, p)| p.starts_with("o-")) {
        parts.remove(0);
    }
    Some(parts)
}

/// The date in a CloudTrail key (`.../CloudTrail/<region>/YYYY/MM/DD/...`).
pub fn key_date(key: &str) -> Option<NaiveDate> {
    let parts = from_account(key)?;
    let [_, (_, "CloudTrail"), _, (_, y), (_, m), (_, d), ..] = parts.as_slice() else {
        return None;
    };
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

/// The length of `prefix` up to and including `<region>/` when the prefix
/// reaches into a region's folder of the CloudTrail layout: below it,
/// object names sort by date.
pub fn region_folder_len(prefix: &str) -> Option<usize> {
    let parts = from_account(prefix)?;
    // The region must be followed by a `/`: another component, even empty.
    let [_, (_, "CloudTrail"), (start, region), _, ..] = parts.as_slice() else {
        return None;
    };
    (!region.is_empty()).then_some(start + region.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "trail/AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/2026/10/05/x.json.gz";
    const PLAIN: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/10/05/x.json.gz";

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_date_comes_from_both_layouts() {
        assert_eq!(key_date(ORG), Some(day(2026, 10, 5)));
        assert_eq!(key_date(PLAIN), Some(day(2026, 10, 5)));
        assert_eq!(key_date("AWSLogs/111122223333/Config/us-east-1/2026/10/5/x.json.gz"), None);
        assert_eq!(key_date("exports/2026/10/05/x.json"), None);
    }

    #[test]
    fn region_folders_are_found_with_or_without_the_organisation() {
        assert_eq!(region_folder_len(ORG), Some("trail/AWSLogs/o-abc123/111122223333/CloudTrail/eu-west-1/".len()));
        assert_eq!(region_folder_len("AWSLogs/111122223333/CloudTrail/us-east-1/"), Some(42));
        assert_eq!(region_folder_len("AWSLogs/111122223333/CloudTrail/us-east-1"), None, "could be us-east-10");
        assert_eq!(region_folder_len("AWSLogs/111122223333/CloudTrail/"), None);
        assert_eq!(region_folder_len("AWSLogs/o-abc123/"), None);
    }

    #[test]
    fn a_window_holds_its_end_days_and_keys_without_a_date() {
        let window = DateWindow { since: Some(day(2026, 10, 5)), until: Some(day(2026, 10, 6)) };
        assert!(!window.excludes(PLAIN));
        assert!(window.excludes(&PLAIN.replace("/05/", "/07/")));
        assert!(window.excludes(&PLAIN.replace("/10/05/", "/09/30/")));
        assert!(!window.excludes("exports/x.json"));
        assert_eq!(day_folder(day(2026, 1, 2)), "2026/01/02");
    }
}
