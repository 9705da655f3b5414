//! A month of an organisation's AssumeRole-family CloudTrail traffic, for
//! the engine's integration tests: what the detectors meet in a real
//! organisation, plus a few planted incidents of each detector, delivered
//! as an organisation trail delivers it (one gzip file per account, region
//! and 5 minutes, records shuffled inside).
//!
//! Deterministic: a seeded generator and fixed calendar, no wall clock, no
//! hash-map iteration; the same seed gives the same bytes.
//!
//! - [`records`]: the record shapes (real CloudTrail field names and forms,
//!   both copies of a cross-account call).
//! - [`org`]: the organisation, its people, CI, services and vendors, day by
//!   day, and the delivery into files.
//! - [`planted`]: the planted incidents, two per detector.

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

pub mod org;
pub mod planted;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use rolewatch::alert::Alert;
use rolewatch::cloudtrail::{parse_event_time, EpochSeconds};

/// The month starts on a Monday.
pub const START: &str = "2026-03-02T00:00:00Z";
pub const DAYS: i64 = 30;
/// An alert this close in event time to a planted incident, about its
/// principal, is about that incident.
pub const PLANTED_TOLERANCE_SECONDS: i64 = 1800;

/// One planted incident: what must page, about whom, and when.
#[derive(Debug, Clone)]
pub struct Planted {
    pub detector: &'static str,
    /// What happened, for failure messages.
    pub what: &'static str,
    /// The principal the alert names (`userIdentity.arn`, or
    /// `<accountId>:<principalId>` when only a role owner's copy exists).
    pub principal: String,
    pub role_arn: Option<String>,
    pub around_time: EpochSeconds,
    /// Every copy of every call of the incident.
    pub event_ids: BTreeSet<String>,
}

impl Planted {
    /// Whether `alert` is about this incident, whichever detector raised
    /// it: it names one of the incident's events, or its principal close
    /// to its time.
    pub fn concerns(&self, alert: &Alert) -> bool {
        if alert.event_ids.iter().any(|id| self.event_ids.contains(id)) {
            return true;
        }
        let Some(first) = parse_event_time(&alert.first_event_time) else {
            return false;
        };
        alert.principal == self.principal && (first - self.around_time).abs() <= PLANTED_TOLERANCE_SECONDS
    }

    /// Whether `alert` is this incident being found.
    pub fn found_by(&self, alert: &Alert) -> bool {
        alert.detector == self.detector && self.concerns(alert)
    }
}

/// One delivered log file.
#[derive(Debug, Clone)]
pub struct LogFile {
    /// Its S3 key under the trail's bucket.
    pub key: String,
    /// When CloudTrail delivered it.
    pub delivered: EpochSeconds,
    pub gzip: Vec<u8>,
}

/// The month, ready to be fed to an engine.
pub struct Month {
    /// In the order `rolewatch replay` walks them: by key.
    pub files: Vec<LogFile>,
    pub planted: Vec<Planted>,
    /// Every role-assumption eventID and the call it records: its
    /// `sharedEventID` when the call was logged in two accounts, else the
    /// eventID itself.
    pub call_of_event: BTreeMap<String, String>,
    pub organization: Vec<String>,
    pub trusted_vendors: Vec<String>,
    /// Role ARN patterns that must be assumed with MFA.
    pub mfa_roles: Vec<String>,
    pub records: u64,
    pub role_assumptions: u64,
    /// Calls logged in two accounts (both copies generated).
    pub calls_logged_twice: u64,
}

impl Month {
    pub fn generate(seed: u64) -> Month {
        org::generate(seed, DAYS)
    }

    /// The first `days` of the month (the planted incidents still come).
    pub fn generate_days(seed: u64, days: i64) -> Month {
        org::generate(seed, days)
    }

    /// The files in the order the Lambda meets them: by delivery time,
    /// accounts interleaved.
    pub fn in_delivery_order(&self) -> Vec<&LogFile> {
        let mut files: Vec<&LogFile> = self.files.iter().collect();
        files.sort_by(|a, b| (a.delivered, &a.key).cmp(&(b.delivered, &b.key)));
        files
    }

    /// The month's configuration as TOML: its organisation, its vendors and
    /// the roles that require MFA.
    pub fn config_toml(&self) -> String {
        let list = |items: &[String]| items.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ");
        format!(
            "[organization]\naccount_ids = [{}]\n\n[outside_organization]\ntrusted_accounts = [{}]\n\n\
             [mfa_required]\nroles = [{}]\n\n",
            list(&self.organization),
            list(&self.trusted_vendors),
            list(&self.mfa_roles)
        )
    }
}

/// A small deterministic generator (SplitMix64): the month must not
/// change with a dependency's version.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`hi` excluded).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo).max(1) as u64) as i64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as i64) as usize]
    }

    /// A random version-4 UUID, as eventID, requestID and sharedEventID are.
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }

    /// `n` characters of `alphabet`.
    pub fn text(&mut self, alphabet: &str, n: usize) -> String {
        let chars: Vec<char> = alphabet.chars().collect();
        (0..n).map(|_| *self.pick(&chars)).collect()
    }
}

/// Writes gzip files of `{"Records":[...]}`, as CloudTrail does, with one
/// deflate state for all of them: a new one per file costs more than the
/// compression of a small file.
pub struct Gzipper {
    deflate: flate2::write::DeflateEncoder<Vec<u8>>,
}

impl Default for Gzipper {
    fn default() -> Self {
        Gzipper { deflate: flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast()) }
    }
}

impl Gzipper {
    pub fn file(&mut self, records: Vec<serde_json::Value>) -> Vec<u8> {
        // `Value`'s Display is serde_json's own, optimised code.
        let body = serde_json::Value::Array(records).to_string();
        let body = format!("{{\"Records\":{body}}}");
        let mut crc = flate2::Crc::new();
        crc.update(body.as_bytes());
        // Writing into a Vec cannot fail.
        let _ = self.deflate.write_all(body.as_bytes());
        let deflated = self.deflate.reset(Vec::new()).unwrap_or_default();
        // RFC 1952: magic, deflate, no flags, mtime 0, fastest, Unix; then CRC-32 and size.
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3];
        out.extend_from_slice(&deflated);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out
    }
}

pub fn start() -> EpochSeconds {
    parse_event_time(START).unwrap_or_default()
}
