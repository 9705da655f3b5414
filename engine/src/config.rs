//! Typed configuration: from TOML (the CLI) or from environment variables
//! (the Lambda), validated before anything runs.
//!
//! Every key has an environment variable `ROLEWATCH_<SECTION>_<KEY>`; lists
//! are comma-separated. Durations are whole seconds, named `*_seconds`.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cloudtrail::InputLimits;
use crate::suppress::SuppressRule;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub repeated_failures: RepeatedFailuresConfig,
    pub unexpected_source_ip: UnexpectedSourceIpConfig,
    pub long_session: LongSessionConfig,
    pub alerts: AlertsConfig,
    pub organization: OrganizationConfig,
    pub role_enumeration: RoleEnumerationConfig,
    pub external_id: ExternalIdConfig,
    pub mfa_required: MfaRequiredConfig,
    pub outside_organization: OutsideOrganizationConfig,
    pub input: InputConfig,
    /// `[[suppress]]` rules, in the order written (last: TOML writes
    /// arrays of tables after the plain ones).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suppress: Vec<SuppressRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepeatedFailuresConfig {
    /// Failed role assumptions by one principal that make a burst ...
    pub threshold: u64,
    /// ... within this many seconds of event time.
    pub window_seconds: u64,
}

impl Default for RepeatedFailuresConfig {
    fn default() -> Self {
        RepeatedFailuresConfig { threshold: 5, window_seconds: 600 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnexpectedSourceIpConfig {
    /// Static allow-list; empty means none.
    pub allowed_cidrs: Vec<String>,
    pub learning_period_seconds: u64,
    pub roaming_networks: u64,
    pub network_memory_seconds: u64,
}

impl Default for UnexpectedSourceIpConfig {
    fn default() -> Self {
        UnexpectedSourceIpConfig {
            allowed_cidrs: Vec::new(),
            learning_period_seconds: 604_800,
            roaming_networks: 10,
            network_memory_seconds: 7_776_000,
        }
    }
}

impl UnexpectedSourceIpConfig {
    /// The allow-list, parsed. Validation guarantees every entry parses.
    pub fn allowed_networks(&self) -> Vec<IpNet> {
        self.allowed_cidrs.iter().filter_map(|c| parse_cidr(c).ok()).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LongSessionConfig {
    pub max_duration_seconds: u64,
    /// 0 alerts on every long request.
    pub habitual_seconds: u64,
}

impl Default for LongSessionConfig {
    fn default() -> Self {
        LongSessionConfig { max_duration_seconds: 3600, habitual_seconds: 1_209_600 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub cooldown_seconds: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig { cooldown_seconds: 3600 }
    }
}

/// The organisation's own accounts; see the contract's "Inside and outside".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganizationConfig {
    /// 12-digit account ids; empty = learn them from the logs read.
    pub account_ids: Vec<String>,
    /// With `account_ids` empty, the account-based detectors stay quiet
    /// this long from the first event ever read.
    pub discovery_seconds: u64,
}

impl Default for OrganizationConfig {
    fn default() -> Self {
        OrganizationConfig { account_ids: Vec::new(), discovery_seconds: 3600 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoleEnumerationConfig {
    /// Distinct roles one principal fails to assume that make a burst ...
    pub distinct_roles: u64,
    /// ... within this many seconds of event time.
    pub window_seconds: u64,
    /// A role granted to the principal (or its role's sessions) this
    /// recently is not a guess.
    pub memory_seconds: u64,
}

impl Default for RoleEnumerationConfig {
    fn default() -> Self {
        RoleEnumerationConfig { distinct_roles: 5, window_seconds: 600, memory_seconds: 7_776_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalIdConfig {
    /// The same (role, caller account) finding raises again after this.
    pub repeat_seconds: u64,
}

impl Default for ExternalIdConfig {
    fn default() -> Self {
        ExternalIdConfig { repeat_seconds: 2_592_000 }
    }
}

/// IAM Identity Center's roles: their sessions passed MFA at the identity provider.
pub const DEFAULT_FEDERATED_ROLES: &str = "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MfaRequiredConfig {
    /// Role ARN patterns (`*` = any run of characters); empty = off.
    pub roles: Vec<String>,
    /// Sessions of roles matching these passed MFA at their identity provider.
    pub federated_roles: Vec<String>,
}

impl Default for MfaRequiredConfig {
    fn default() -> Self {
        MfaRequiredConfig { roles: Vec::new(), federated_roles: vec![DEFAULT_FEDERATED_ROLES.to_owned()] }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutsideOrganizationConfig {
    /// Outside accounts expected to assume roles (vendors).
    pub trusted_accounts: Vec<String>,
    /// Pairs first seen this soon after the start are learned quietly.
    pub learning_period_seconds: u64,
    /// A (caller account, role) pair unused this long is forgotten.
    pub memory_seconds: u64,
}

impl Default for OutsideOrganizationConfig {
    fn default() -> Self {
        OutsideOrganizationConfig {
            trusted_accounts: Vec::new(),
            learning_period_seconds: 604_800,
            memory_seconds: 7_776_000,
        }
    }
}

/// Limits on what one input may cost; not detector settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Decompressed bytes one file or object may hold (gzip bombs).
    pub max_decompressed_bytes: u64,
    /// A single record larger than this is reported and skipped.
    pub max_record_bytes: u64,
}

impl Default for InputConfig {
    fn default() -> Self {
        let limits = InputLimits::default();
        InputConfig {
            max_decompressed_bytes: limits.max_decompressed_bytes,
            max_record_bytes: limits.max_record_bytes as u64,
        }
    }
}

impl InputConfig {
    pub fn limits(&self) -> InputLimits {
        InputLimits {
            max_decompressed_bytes: self.max_decompressed_bytes,
            max_record_bytes: usize::try_from(self.max_record_bytes).unwrap_or(usize::MAX),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid config: {0}")]
    Toml(String),
    #[error("invalid value for {key}: {value:?} ({reason})")]
    Value { key: String, value: String, reason: String },
}

/// `(section, key)` pairs, the source of every environment variable name.
const KEYS: &[(&str, &str)] = &[
    ("repeated_failures", "threshold"),
    ("repeated_failures", "window_seconds"),
    ("unexpected_source_ip", "allowed_cidrs"),
    ("unexpected_source_ip", "learning_period_seconds"),
    ("unexpected_source_ip", "roaming_networks"),
    ("unexpected_source_ip", "network_memory_seconds"),
    ("long_session", "max_duration_seconds"),
    ("long_session", "habitual_seconds"),
    ("alerts", "cooldown_seconds"),
    ("organization", "account_ids"),
    ("organization", "discovery_seconds"),
    ("role_enumeration", "distinct_roles"),
    ("role_enumeration", "window_seconds"),
    ("role_enumeration", "memory_seconds"),
    ("external_id", "repeat_seconds"),
    ("mfa_required", "roles"),
    ("mfa_required", "federated_roles"),
    ("outside_organization", "trusted_accounts"),
    ("outside_organization", "learning_period_seconds"),
    ("outside_organization", "memory_seconds"),
    ("input", "max_decompressed_bytes"),
    ("input", "max_record_bytes"),
];

/// The `[[suppress]]` rules for the Lambda: a JSON array of the same rules.
pub const SUPPRESS_VAR: &str = "ROLEWATCH_SUPPRESS";

/// Every detector and input variable name, `ROLEWATCH_<SECTION>_<KEY>`,
/// and [`SUPPRESS_VAR`].
pub fn env_var_names() -> Vec<String> {
    let mut names: Vec<String> = KEYS.iter().map(|(section, key)| env_var_name(section, key)).collect();
    names.push(SUPPRESS_VAR.to_owned());
    names
}

/// The environment variable for a key: `ROLEWATCH_<SECTION>_<KEY>`.
pub fn env_var_name(section: &str, key: &str) -> String {
    format!("ROLEWATCH_{}_{}", section.to_ascii_uppercase(), key.to_ascii_uppercase())
}

impl Config {
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Toml(e.message().to_owned() + &toml_location(&e, text)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        Config::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Toml(msg) => ConfigError::Toml(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Reads the `ROLEWATCH_<SECTION>_<KEY>` variables through `lookup`
    /// (`|name| std::env::var(name).ok()` in production). Unset keys keep
    /// their defaults.
    pub fn from_env_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for &(section, key) in KEYS {
            let name = env_var_name(section, key);
            let Some(value) = lookup(&name) else { continue };
            let value = value.trim();
            if let Some(list) = config.list_slot(section, key) {
                *list = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
                continue;
            }
            let number: u64 = value.parse().map_err(|_| ConfigError::Value {
                key: name.clone(),
                value: value.to_owned(),
                reason: "expected a whole number, 0 or more".to_owned(),
            })?;
            if let Some(slot) = config.number_slot(section, key) {
                *slot = number;
            }
        }
        if let Some(json) = lookup(SUPPRESS_VAR).filter(|v| !v.trim().is_empty()) {
            config.suppress = serde_json::from_str(&json).map_err(|e| ConfigError::Value {
                key: SUPPRESS_VAR.to_owned(),
                value: json.chars().take(200).collect(),
                reason: format!("expected a JSON array of [[suppress]] rules: {e}"),
            })?;
        }
        config.validate().map_err(|e| match e {
            // Name the variable the operator set, not the TOML key.
            ConfigError::Value { key, value, reason } if key.starts_with("suppress[") => {
                ConfigError::Value { key: format!("{SUPPRESS_VAR}{}", &key["suppress".len()..]), value, reason }
            }
            ConfigError::Value { key, value, reason } => {
                let name = key.split_once('.').map_or(key.clone(), |(s, k)| env_var_name(s, k));
                ConfigError::Value { key: name, value, reason }
            }
            other => other,
        })?;
        Ok(config)
    }

    /// The list a `(section, key)` names, if it names one.
    fn list_slot(&mut self, section: &str, key: &str) -> Option<&mut Vec<String>> {
        Some(match (section, key) {
            ("unexpected_source_ip", "allowed_cidrs") => &mut self.unexpected_source_ip.allowed_cidrs,
            ("organization", "account_ids") => &mut self.organization.account_ids,
            ("mfa_required", "roles") => &mut self.mfa_required.roles,
            ("mfa_required", "federated_roles") => &mut self.mfa_required.federated_roles,
            ("outside_organization", "trusted_accounts") => &mut self.outside_organization.trusted_accounts,
            _ => return None,
        })
    }

    /// The number a `(section, key)` names, if it names one.
    fn number_slot(&mut self, section: &str, key: &str) -> Option<&mut u64> {
        Some(match (section, key) {
            ("repeated_failures", "threshold") => &mut self.repeated_failures.threshold,
            ("repeated_failures", "window_seconds") => &mut self.repeated_failures.window_seconds,
            ("unexpected_source_ip", "learning_period_seconds") => {
                &mut self.unexpected_source_ip.learning_period_seconds
            }
            ("unexpected_source_ip", "roaming_networks") => &mut self.unexpected_source_ip.roaming_networks,
            ("unexpected_source_ip", "network_memory_seconds") => &mut self.unexpected_source_ip.network_memory_seconds,
            ("long_session", "max_duration_seconds") => &mut self.long_session.max_duration_seconds,
            ("long_session", "habitual_seconds") => &mut self.long_session.habitual_seconds,
            ("alerts", "cooldown_seconds") => &mut self.alerts.cooldown_seconds,
            ("organization", "discovery_seconds") => &mut self.organization.discovery_seconds,
            ("role_enumeration", "distinct_roles") => &mut self.role_enumeration.distinct_roles,
            ("role_enumeration", "window_seconds") => &mut self.role_enumeration.window_seconds,
            ("role_enumeration", "memory_seconds") => &mut self.role_enumeration.memory_seconds,
            ("external_id", "repeat_seconds") => &mut self.external_id.repeat_seconds,
            ("outside_organization", "learning_period_seconds") => {
                &mut self.outside_organization.learning_period_seconds
            }
            ("outside_organization", "memory_seconds") => &mut self.outside_organization.memory_seconds,
            ("input", "max_record_bytes") => &mut self.input.max_record_bytes,
            ("input", "max_decompressed_bytes") => &mut self.input.max_decompressed_bytes,
            _ => return None,
        })
    }

    /// Rejects values that would silently disable or break a detector.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::Value {
                    key: key.to_owned(),
                    value: value.to_string(),
                    reason: "must be at least 1".to_owned(),
                })
            } else {
                Ok(())
            }
        };
        positive("repeated_failures.threshold", self.repeated_failures.threshold)?;
        positive("repeated_failures.window_seconds", self.repeated_failures.window_seconds)?;
        positive("unexpected_source_ip.learning_period_seconds", self.unexpected_source_ip.learning_period_seconds)?;
        positive("unexpected_source_ip.network_memory_seconds", self.unexpected_source_ip.network_memory_seconds)?;
        positive("input.max_decompressed_bytes", self.input.max_decompressed_bytes)?;
        positive("input.max_record_bytes", self.input.max_record_bytes)?;
        positive("role_enumeration.distinct_roles", self.role_enumeration.distinct_roles)?;
        positive("role_enumeration.window_seconds", self.role_enumeration.window_seconds)?;
        positive("external_id.repeat_seconds", self.external_id.repeat_seconds)?;
        positive("outside_organization.memory_seconds", self.outside_organization.memory_seconds)?;
        for (key, accounts) in [
            ("organization.account_ids", &self.organization.account_ids),
            ("outside_organization.trusted_accounts", &self.outside_organization.trusted_accounts),
        ] {
            if let Some(bad) = accounts.iter().find(|a| !is_account_id(a)) {
                return Err(ConfigError::Value {
                    key: key.to_owned(),
                    value: bad.clone(),
                    reason: "not a 12-digit AWS account id".to_owned(),
                });
            }
        }
        for (key, patterns) in [
            ("mfa_required.roles", &self.mfa_required.roles),
            ("mfa_required.federated_roles", &self.mfa_required.federated_roles),
        ] {
            if let Some(bad) = patterns.iter().find(|p| !is_role_pattern(p)) {
                return Err(ConfigError::Value {
                    key: key.to_owned(),
                    value: bad.clone(),
                    reason: "not a role ARN pattern such as arn:aws:iam::*:role/admin-*".to_owned(),
                });
            }
        }
        for cidr in &self.unexpected_source_ip.allowed_cidrs {
            parse_cidr(cidr).map_err(|reason| ConfigError::Value {
                key: "unexpected_source_ip.allowed_cidrs".to_owned(),
                value: cidr.clone(),
                reason,
            })?;
        }
        // Event times are i64 seconds; absurd spans would overflow arithmetic.
        const TEN_YEARS_SECONDS: u64 = 10 * 366 * 86_400;
        for (key, value) in [
            ("repeated_failures.window_seconds", self.repeated_failures.window_seconds),
            ("unexpected_source_ip.learning_period_seconds", self.unexpected_source_ip.learning_period_seconds),
            ("unexpected_source_ip.network_memory_seconds", self.unexpected_source_ip.network_memory_seconds),
            ("long_session.habitual_seconds", self.long_session.habitual_seconds),
            ("long_session.max_duration_seconds", self.long_session.max_duration_seconds),
            ("alerts.cooldown_seconds", self.alerts.cooldown_seconds),
            ("organization.discovery_seconds", self.organization.discovery_seconds),
            ("role_enumeration.window_seconds", self.role_enumeration.window_seconds),
            ("role_enumeration.memory_seconds", self.role_enumeration.memory_seconds),
            ("external_id.repeat_seconds", self.external_id.repeat_seconds),
            ("outside_organization.learning_period_seconds", self.outside_organization.learning_period_seconds),
            ("outside_organization.memory_seconds", self.outside_organization.memory_seconds),
        ] {
            if value > TEN_YEARS_SECONDS {
                return Err(ConfigError::Value {
                    key: key.to_owned(),
                    value: value.to_string(),
                    reason: "longer than ten years".to_owned(),
                });
            }
        }
        // Numbered from 1, in the order written, as the run summary counts them.
        for (i, rule) in self.suppress.iter().enumerate() {
            rule.validate(&format!("suppress[{}]", i + 1))?;
        }
        Ok(())
    }
}

fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:<partition>:iam::<account or *>:role/<path and name>`, `*` anywhere;
/// or `*` alone. A typo here would silently match nothing.
fn is_role_pattern(text: &str) -> bool {
    if text == "*" {
        return true;
    }
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    !text.chars().any(char::is_whitespace)
        && matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
            if (partition.starts_with("aws") || *partition == "*")
                && (is_account_id(account) || account.contains('*'))
                && (resource.starts_with("role/") || resource.starts_with('*')))
}

/// A CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (a /32 or /128).
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not an IPv4 or IPv6 CIDR such as 203.0.113.0/24".to_owned())
}

/// Where a TOML error is: the line and its text, with the section it sits in,
/// so the message names the key and value even for type errors.
fn toml_location(err: &toml::de::Error, text: &str) -> String {
    let Some(span) = err.span() else {
        return String::new();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    let section = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|s| s.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    // `key = value` on that line names the key the way check-config does.
    let key = line.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty() && !k.starts_with('['));
    match (section, key) {
        (Some(section), Some(key)) => format!(" (key {section}.{key}, line {line_no}: `{line}`)"),
        (None, Some(key)) => format!(" (key {key}, line {line_no}: `{line}`)"),
        _ => format!(" (line {line_no}: `{line}`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!((c.repeated_failures.threshold, c.repeated_failures.window_seconds), (5, 600));
        assert_eq!(c.unexpected_source_ip.learning_period_seconds, 604_800);
        assert_eq!(c.unexpected_source_ip.roaming_networks, 10);
        assert_eq!(c.unexpected_source_ip.network_memory_seconds, 7_776_000);
        assert_eq!((c.long_session.max_duration_seconds, c.long_session.habitual_seconds), (3600, 1_209_600));
        assert_eq!(c.alerts.cooldown_seconds, 3600);
    }

    #[test]
    fn bad_values_name_the_key_and_value() {
        let err = Config::from_toml_str("[repeated_failures]\nthreshold = -1\n").unwrap_err().to_string();
        assert!(err.contains("repeated_failures.threshold") && err.contains("-1"), "{err}");
        let err = Config::from_toml_str("[unexpected_source_ip]\nallowed_cidrs = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("allowed_cidrs") && err.contains("10.0.0.0/33"), "{err}");
        let err = Config::from_toml_str("[alerts]\ncooldown = 5\n").unwrap_err().to_string();
        assert!(err.contains("cooldown"), "{err}");
        let err = Config::from_toml_str("[nonsense]\n").unwrap_err().to_string();
        assert!(err.contains("nonsense"), "{err}");
        let err = Config::from_toml_str("[repeated_failures]\nthreshold = 0\n").unwrap_err().to_string();
        assert!(err.contains("repeated_failures.threshold") && err.contains("\"0\""), "{err}");
    }

    #[test]
    fn the_organisation_and_its_detectors_have_the_contract_s_defaults_and_checks() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!((c.organization.account_ids.len(), c.organization.discovery_seconds), (0, 3600));
        let e = &c.role_enumeration;
        assert_eq!((e.distinct_roles, e.window_seconds, e.memory_seconds), (5, 600, 7_776_000));
        assert_eq!(c.external_id.repeat_seconds, 2_592_000);
        assert!(c.mfa_required.roles.is_empty());
        assert_eq!(c.mfa_required.federated_roles, ["arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*"]);
        let o = &c.outside_organization;
        assert_eq!((o.trusted_accounts.len(), o.learning_period_seconds, o.memory_seconds), (0, 604_800, 7_776_000));
        for (text, key, value) in [
            ("[organization]\naccount_ids = [\"12345\"]\n", "organization.account_ids", "12345"),
            ("[outside_organization]\ntrusted_accounts = [\"x99999999999\"]\n", "trusted_accounts", "x99999999999"),
            ("[role_enumeration]\ndistinct_roles = 0\n", "role_enumeration.distinct_roles", "0"),
            ("[mfa_required]\nroles = [\"admin\"]\n", "mfa_required.roles", "admin"),
            ("[external_id]\nrepeat_seconds = 0\n", "external_id.repeat_seconds", "0"),
            ("[outside_organization]\nlearning_period_seconds = -1\n", "learning_period_seconds", "-1"),
            ("[mfa_required]\nrole = []\n", "role", ""),
        ] {
            let err = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(value), "{text}: {err}");
        }
        let ok = "[mfa_required]\nroles = [\"arn:aws:iam::*:role/admin-*\", \"arn:aws:iam::111122223333:role/break-glass\"]\n";
        assert_eq!(Config::from_toml_str(ok).unwrap().mfa_required.roles.len(), 2);
    }

    #[test]
    fn environment_variables_cover_every_key() {
        let env = |name: &str| match name {
            "ROLEWATCH_REPEATED_FAILURES_THRESHOLD" => Some("3".to_owned()),
            "ROLEWATCH_UNEXPECTED_SOURCE_IP_ALLOWED_CIDRS" => Some("10.0.0.0/8, 2001:db8::/32".to_owned()),
            "ROLEWATCH_LONG_SESSION_HABITUAL_SECONDS" => Some("0".to_owned()),
            "ROLEWATCH_ALERTS_COOLDOWN_SECONDS" => Some("60".to_owned()),
            "ROLEWATCH_INPUT_MAX_RECORD_BYTES" => Some("1000".to_owned()),
            "ROLEWATCH_ORGANIZATION_ACCOUNT_IDS" => Some("111111111111,222222222222".to_owned()),
            "ROLEWATCH_MFA_REQUIRED_FEDERATED_ROLES" => Some("".to_owned()),
            "ROLEWATCH_EXTERNAL_ID_REPEAT_SECONDS" => Some("86400".to_owned()),
            _ => None,
        };
        let c = Config::from_env_lookup(env).unwrap();
        assert_eq!(c.repeated_failures.threshold, 3);
        assert_eq!(c.unexpected_source_ip.allowed_cidrs, ["10.0.0.0/8", "2001:db8::/32"]);
        assert_eq!(c.long_session.habitual_seconds, 0);
        assert_eq!(c.alerts.cooldown_seconds, 60);
        assert_eq!(c.input.max_record_bytes, 1000);
        assert_eq!(c.organization.account_ids, ["111111111111", "222222222222"]);
        assert!(c.mfa_required.federated_roles.is_empty(), "an empty list is a list");
        assert_eq!(c.external_id.repeat_seconds, 86_400);
        let err = Config::from_env_lookup(|n| {
            (n == "ROLEWATCH_OUTSIDE_ORGANIZATION_TRUSTED_ACCOUNTS").then(|| "111111111111,nope".to_owned())
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("ROLEWATCH_OUTSIDE_ORGANIZATION_TRUSTED_ACCOUNTS")
                && err.to_string().contains("nope")
        );
        let err =
            Config::from_env_lookup(|n| (n == "ROLEWATCH_REPEATED_FAILURES_WINDOW_SECONDS").then(|| "ten".to_owned()))
                .unwrap_err();
        assert!(err.to_string().contains("ROLEWATCH_REPEATED_FAILURES_WINDOW_SECONDS"), "{err}");
        let err = Config::from_env_lookup(|n| {
            (n == "ROLEWATCH_UNEXPECTED_SOURCE_IP_ALLOWED_CIDRS").then(|| "nope".to_owned())
        })
        .unwrap_err();
        assert!(err.to_string().contains("ROLEWATCH_UNEXPECTED_SOURCE_IP_ALLOWED_CIDRS"), "{err}");
    }
}
