//! `[[suppress]]` rules: a team accepts a known pattern without turning a
//! detector off. A rule matches an alert when every field it gives
//! matches; `reason` is required so the next person knows why.
//!
//! A suppressed alert is not published but otherwise behaves as a
//! published one: its dedup key starts the cooldown, so a repeat within
//! `cooldown_seconds` is neither published nor counted again, exactly as a
//! repeat of a published alert is not. Rules are judged on the alert as it
//! leaves the engine (a burst's events merged), in event time: `until`
//! compares with `first_event_time`, never with the clock.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::cloudtrail::{account_of_arn, parse_event_time, EpochSeconds};
use crate::config::{parse_cidr, ConfigError};
use crate::detect::DETECTORS;

/// One `[[suppress]]` rule, as written in TOML or in `ROLEWATCH_SUPPRESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressRule {
    /// Why the pattern is accepted: shown in the run summary.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    /// `*` stands for any run of characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cidr: Option<String>,
    /// RFC 3339; an alert whose first event is after this is not suppressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl SuppressRule {
    /// Checks every field; `key_prefix` names the rule (`suppress[2]`) so
    /// the error says which rule and key hold the bad value.
    pub fn validate(&self, key_prefix: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &str, reason: &str| ConfigError::Value {
            key: format!("{key_prefix}.{key}"),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if self.reason.trim().is_empty() {
            return Err(bad("reason", &self.reason, "required: say why this pattern is accepted"));
        }
        if let Some(detector) = &self.detector {
            if !DETECTORS.contains(&detector.as_str()) {
                return Err(bad("detector", detector, &format!("not a detector; one of {}", DETECTORS.join(", "))));
            }
        }
        for (key, value) in [("principal", &self.principal), ("role_arn", &self.role_arn)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(bad(key, "", "empty; leave the key out to match any"));
            }
        }
        if let Some(account) = &self.caller_account {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("caller_account", account, "expected a 12-digit AWS account id"));
            }
        }
        if let Some(cidr) = &self.source_cidr {
            parse_cidr(cidr).map_err(|reason| bad("source_cidr", cidr, &reason))?;
        }
        if let Some(until) = &self.until {
            if self.until_time().is_none() {
                return Err(bad("until", until, "expected an RFC 3339 time such as 2027-01-31T00:00:00Z"));
            }
        }
        Ok(())
    }

    fn until_time(&self) -> Option<EpochSeconds> {
        self.until.as_deref().and_then(parse_event_time)
    }

    /// Whether every field the rule gives matches `subject`. A field the
    /// alert does not have (no source IP, no caller account) does not match.
    pub fn matches(&self, subject: &SuppressSubject<'_>) -> bool {
        let glob = |pattern: &Option<String>, value: Option<&str>| {
            pattern.as_deref().is_none_or(|p| value.is_some_and(|v| glob_match(p, v)))
        };
        self.detector.as_deref().is_none_or(|d| d == subject.detector)
            && glob(&self.principal, Some(subject.principal))
            && glob(&self.role_arn, subject.role_arn)
            && self.caller_account.as_deref().is_none_or(|a| subject.caller_account == Some(a))
            && self.source_cidr.as_deref().is_none_or(|cidr| {
                let net = parse_cidr(cidr).ok();
                subject.source_ip.zip(net).is_some_and(|(ip, net): (IpAddr, IpNet)| net.contains(&ip))
            })
            && self.until_time().is_none_or(|until| subject.first_event_time.is_some_and(|t| t <= until))
    }
}

/// What rules look at in an alert.
#[derive(Debug, Clone, Copy)]
pub struct SuppressSubject<'a> {
    pub detector: &'a str,
    pub principal: &'a str,
    pub role_arn: Option<&'a str>,
    pub caller_account: Option<&'a str>,
    pub source_ip: Option<IpAddr>,
    pub first_event_time: Option<EpochSeconds>,
}

impl<'a> SuppressSubject<'a> {
    pub fn of(alert: &'a Alert) -> SuppressSubject<'a> {
        SuppressSubject {
            detector: &alert.detector,
            principal: &alert.principal,
            role_arn: alert.role_arn.as_deref(),
            caller_account: alert.caller_account.as_deref().or_else(|| caller_account_of(&alert.principal)),
            source_ip: alert.source_ip.as_deref().and_then(|ip| ip.parse().ok()),
            first_event_time: parse_event_time(&alert.first_event_time),
        }
    }
}

/// The caller account as the principal shows it, for an alert that does
/// not carry one (read from before `caller_account` existed): the account in an ARN
/// (`arn:aws:sts::111111111111:assumed-role/...`), or the account of a
/// role owner's copy (`111111111111:AROA...:session`). SAML, web identity
/// and AWS services have none.
fn caller_account_of(principal: &str) -> Option<&str> {
    if principal.starts_with("arn:") {
        let account = account_of_arn(principal)?;
        // A SAML or OIDC provider ARN names the provider's account, not a caller account.
        return (!principal.contains(":saml-provider/") && !principal.contains(":oidc-provider/")).then_some(account);
    }
    let (account, rest) = principal.split_once(':')?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()).then_some(account)
}

/// `*` stands for any run of characters (none included); everything else
/// matches itself, case-sensitively as ARNs are compared.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*`: the whole text
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The rules in force and how many alerts each held back.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    rules: Vec<SuppressRule>,
    counts: Vec<u64>,
    /// The same alerts counted by detector, for the run summary's table.
    by_detector: std::collections::BTreeMap<String, u64>,
}

impl Suppressions {
    pub fn new(rules: &[SuppressRule]) -> Suppressions {
        Suppressions { rules: rules.to_vec(), counts: vec![0; rules.len()], by_detector: Default::default() }
    }

    /// Keeps the alerts no rule matches; counts the others against the
    /// first rule that matches each.
    pub fn filter(&mut self, alerts: Vec<Alert>) -> Vec<Alert> {
        if self.rules.is_empty() {
            return alerts;
        }
        alerts
            .into_iter()
            .filter(|alert| {
                let subject = SuppressSubject::of(alert);
                match self.rules.iter().position(|rule| rule.matches(&subject)) {
                    Some(rule) => {
                        self.counts[rule] += 1;
                        *self.by_detector.entry(alert.detector.clone()).or_default() += 1;
                        false
                    }
                    None => true,
                }
            })
            .collect()
    }

    /// Per rule, in the order written: the rule and the alerts it held back.
    pub fn counts(&self) -> impl Iterator<Item = (&SuppressRule, u64)> {
        self.rules.iter().zip(self.counts.iter().copied())
    }

    /// Per detector: the alerts any rule held back.
    pub fn by_detector(&self) -> &std::collections::BTreeMap<String, u64> {
        &self.by_detector
    }

    /// Whether any rule is in force (the summary shows the column then).
    pub fn any_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
#[path = "suppress_tests.rs"]
mod tests;
