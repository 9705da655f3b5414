//! `Alert` in the contract's `rolewatch.alert.v1` form, and its renderings.
//!
//! Much of what an alert quotes (session names, user agents, ARNs of
//! assumed-role sessions) is chosen by whoever made the call, so every
//! string is cleaned of control characters and capped before it is shown.

use serde::{Deserialize, Serialize};

use crate::cloudtrail::{format_rfc3339, EpochSeconds};

pub const SCHEMA: &str = "rolewatch.alert.v1";
/// Event ids an alert carries at most.
pub const MAX_EVENT_IDS: usize = 50;
const MAX_TITLE_CHARS: usize = 100;
/// Caps one quoted field; ARNs are at most 2048 characters.
const MAX_FIELD_CHARS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema: String,
    pub detector: String,
    pub severity: Severity,
    pub title: String,
    pub summary: String,
    pub dedup_key: String,
    pub account_id: String,
    pub principal: String,
    /// The caller's account; null for SAML, web identity and AWS services.
    #[serde(default)]
    pub caller_account: Option<String>,
    pub role_arn: Option<String>,
    pub source_ip: Option<String>,
    pub event_name: String,
    pub first_event_time: String,
    pub last_event_time: String,
    pub event_count: u64,
    pub event_ids: Vec<String>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// Removes control characters (newlines, ANSI escapes, bidi overrides) and
/// caps the length, so a hostile session name cannot forge output lines.
pub fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        out.push(if c.is_control() || is_format_char(c) { ' ' } else { c });
    }
    out
}

/// Unicode format characters that reorder or hide text (Trojan Source).
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A dedup key stable across retries and replays: the detector and a hash
/// of what identifies the incident.
pub fn dedup_key(detector: &str, subject: &[&str]) -> String {
    let joined = subject.join("\u{1f}");
    format!("{detector}:{:016x}", twox_hash::XxHash3_64::oneshot(joined.as_bytes()))
}

/// What a new alert says, by name: `Alert::new(NewAlert { .. })`. Every
/// field must be given, so no detector can forget one.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub detector: &'a str,
    pub severity: Severity,
    pub title: &'a str,
    /// Ends with the first thing to check.
    pub summary: &'a str,
    pub dedup_key: String,
    pub account_id: &'a str,
    pub principal: &'a str,
    pub caller_account: Option<&'a str>,
    pub role_arn: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub event_name: &'a str,
    pub first_event_time: EpochSeconds,
    pub last_event_time: EpochSeconds,
}

impl Alert {
    /// Builds an alert with every quoted string cleaned.
    pub fn new(new: NewAlert<'_>) -> Alert {
        Alert {
            schema: SCHEMA.to_owned(),
            detector: new.detector.to_owned(),
            severity: new.severity,
            title: clean_text(new.title, MAX_TITLE_CHARS - 1),
            summary: clean_text(new.summary, 4 * MAX_FIELD_CHARS),
            dedup_key: new.dedup_key,
            account_id: clean_text(new.account_id, 64),
            principal: clean_text(new.principal, MAX_FIELD_CHARS),
            caller_account: new.caller_account.map(|a| clean_text(a, 64)),
            role_arn: new.role_arn.map(|r| clean_text(r, MAX_FIELD_CHARS)),
            source_ip: new.source_ip.map(|s| clean_text(s, 256)),
            event_name: clean_text(new.event_name, 64),
            first_event_time: format_rfc3339(new.first_event_time),
            last_event_time: format_rfc3339(new.last_event_time),
            event_count: 0,
            event_ids: Vec::new(),
            details: serde_json::Map::new(),
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Alert {
        let value = match value.into() {
            serde_json::Value::String(s) => serde_json::Value::String(clean_text(&s, MAX_FIELD_CHARS)),
            other => other,
        };
        self.details.insert(key.to_owned(), value);
        self
    }

    /// Adds an event id unless present; counts it either way once.
    pub fn add_event(&mut self, event_id: &str) {
        if self.event_ids.iter().any(|id| id == event_id) {
            return;
        }
        self.event_count += 1;
        if self.event_ids.len() < MAX_EVENT_IDS {
            self.event_ids.push(clean_text(event_id, 128));
        }
    }

    /// An input rolewatch could not read: tampering with log delivery, or
    /// plain corruption, is worth a look either way.
    pub fn unreadable_input(
        source: &str,
        account_id: Option<&str>,
        reason: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Alert {
        let source = clean_text(source, MAX_FIELD_CHARS);
        let reason = clean_text(reason, 512);
        let mut alert = Alert::new(NewAlert {
            detector: "unreadable_input",
            severity: Severity::Low,
            title: "CloudTrail log could not be read",
            summary: &format!(
                "rolewatch could not read {source}: {reason}. Role assumptions in it were not checked. \
                 First check whether the object was truncated, replaced or tampered with, then whether log delivery is healthy."
            ),
            dedup_key: dedup_key("unreadable_input", &[&source, &reason]),
            account_id: account_id.unwrap_or("unknown"),
            principal: "rolewatch",
            caller_account: None,
            role_arn: None,
            source_ip: None,
            event_name: "",
            first_event_time: at.timestamp(),
            last_event_time: at.timestamp(),
        });
        alert.details.insert("input".to_owned(), source.into());
        alert.details.insert("reason".to_owned(), reason.into());
        alert
    }

    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The SNS subject: the title (the contract calls it that), made
    /// printable ASCII as SNS requires; severity travels as a message
    /// attribute for filter policies.
    pub fn sns_subject(&self) -> String {
        let ascii: String =
            self.title.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
        let trimmed = ascii.trim();
        let mut subject: String = trimmed.chars().take(MAX_TITLE_CHARS).collect();
        if subject.is_empty() {
            subject.push_str("rolewatch alert");
        }
        subject
    }

    /// A plain-text body for people (e-mail, terminals).
    pub fn to_text(&self) -> String {
        let mut out = format!("{} [{}] {}\n\n{}\n\n", self.detector, self.severity.as_str(), self.title, self.summary);
        let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<12} {v}\n"));
        line("account", &self.account_id);
        line("principal", &self.principal);
        line("caller acct", self.caller_account.as_deref().unwrap_or("-"));
        line("role", self.role_arn.as_deref().unwrap_or("-"));
        line("source ip", self.source_ip.as_deref().unwrap_or("-"));
        line("event", &self.event_name);
        line("time", &format!("{} .. {}", self.first_event_time, self.last_event_time));
        line("events", &self.event_count.to_string());
        line("event ids", &self.event_ids.join(", "));
        line("dedup key", &self.dedup_key);
        for (k, v) in &self.details {
            let shown = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            line(k, &shown);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_removes_control_and_caps_length() {
        assert_eq!(clean_text("a\nb\x1b[31mc\u{202E}d", 100), "a b [31mc d");
        assert_eq!(clean_text(&"x".repeat(10), 4), "xxxx…");
    }

    fn titled(title: &str) -> Alert {
        Alert::new(NewAlert {
            detector: "d",
            severity: Severity::High,
            title,
            summary: "",
            dedup_key: "k".into(),
            account_id: "1",
            principal: "p",
            caller_account: None,
            role_arn: None,
            source_ip: None,
            event_name: "AssumeRole",
            first_event_time: 0,
            last_event_time: 0,
        })
    }

    #[test]
    fn subject_is_the_title_when_it_is_plain_ascii() {
        let a = titled("Repeated failed role assumptions by bob");
        assert_eq!(a.sns_subject(), a.title);
    }

    #[test]
    fn subject_is_short_printable_ascii() {
        // Set past the constructor's cleaning: the subject must hold on its own.
        let mut a = titled("x");
        a.title = format!("évil\n{}", "z".repeat(300));
        let s = a.sns_subject();
        assert!(s.len() <= 100 && s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s}");
    }

    #[test]
    fn dedup_keys_are_stable_and_distinct() {
        assert_eq!(dedup_key("d", &["a", "b"]), dedup_key("d", &["a", "b"]));
        assert_ne!(dedup_key("d", &["a", "b"]), dedup_key("d", &["ab", ""]));
    }
}
