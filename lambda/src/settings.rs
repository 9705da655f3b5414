//! Everything the function reads from its environment, read and validated
//! once at cold start. A bad value stops the function with an error that
//! names the variable.

use rolewatch::config::{env_var_names, Config, ConfigError};
use thiserror::Error;

use crate::aws::{DEFAULT_BASE_CACHE_BYTES, DEFAULT_LEASE_WAIT, DEFAULT_STATE_PREFIX};

pub const TOPIC_ARN_VAR: &str = "ROLEWATCH_ALERT_TOPIC_ARN";
pub const STATE_BUCKET_VAR: &str = "ROLEWATCH_STATE_BUCKET";
pub const STATE_PREFIX_VAR: &str = "ROLEWATCH_STATE_PREFIX";
pub const FORCE_PATH_STYLE_VAR: &str = "ROLEWATCH_S3_FORCE_PATH_STYLE";
pub const EXPECTED_BUCKET_OWNER_VAR: &str = "ROLEWATCH_EXPECTED_BUCKET_OWNER";
pub const LEASE_WAIT_SECONDS_VAR: &str = "ROLEWATCH_LEASE_WAIT_SECONDS";
pub const CHAT_TOPIC_ARN_VAR: &str = "ROLEWATCH_CHAT_TOPIC_ARN";

#[derive(Debug, Clone)]
pub struct Settings {
    /// Detector settings (`ROLEWATCH_<SECTION>_<KEY>`).
    pub config: Config,
    pub topic_arn: String,
    /// Optional SNS topic for chat notifications (a chat channel subscribes).
    pub chat_topic_arn: Option<String>,
    pub state_bucket: String,
    /// Always empty or ending in `/`.
    pub state_prefix: String,
    pub force_path_style: bool,
    /// The account that owns the trail bucket, checked on every read.
    pub expected_bucket_owner: Option<String>,
    /// How long to wait for another invocation's lease on an account.
    pub lease_wait_seconds: u64,
    /// Bytes of state bases kept in memory between invocations: a third of
    /// the function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB).
    pub base_cache_bytes: usize,
}

#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("{name} is not set: it must name the {meaning}")]
    Missing { name: &'static str, meaning: &'static str },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid { name: &'static str, value: String, reason: &'static str },
    #[error("{name} is not a rolewatch setting (misspelt?); the settings are {known}")]
    Unknown { name: String, known: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Settings {
    /// Rejects `ROLEWATCH_*` variables that name no setting: a misspelt
    /// threshold must stop the function, not leave the default in force,
    /// as an unknown key in the CLI's TOML does.
    pub fn check_variable_names(names: impl IntoIterator<Item = String>) -> Result<(), SettingsError> {
        let mut known = env_var_names();
        known.extend(
            [
                TOPIC_ARN_VAR,
                STATE_BUCKET_VAR,
                STATE_PREFIX_VAR,
                FORCE_PATH_STYLE_VAR,
                EXPECTED_BUCKET_OWNER_VAR,
                LEASE_WAIT_SECONDS_VAR,
                CHAT_TOPIC_ARN_VAR,
            ]
            .map(str::to_owned),
        );
        for name in names {
            if name.starts_with("ROLEWATCH_") && !known.contains(&name) {
                known.sort();
                return Err(SettingsError::Unknown { name, known: known.join(", ") });
            }
        }
        Ok(())
    }

    /// Reads the settings through `lookup` (`|name| std::env::var(name).ok()`
    /// in production). Empty values count as unset.
    pub fn from_env_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let config = Config::from_env_lookup(&lookup)?;

        let topic_arn = get(TOPIC_ARN_VAR)
            .ok_or(SettingsError::Missing { name: TOPIC_ARN_VAR, meaning: "SNS topic that receives alerts" })?;
        if !(topic_arn.starts_with("arn:") && topic_arn.split(':').nth(2) == Some("sns")) {
            return Err(SettingsError::Invalid {
                name: TOPIC_ARN_VAR,
                value: topic_arn,
                reason: "expected an SNS topic ARN such as arn:aws:sns:us-east-1:111122223333:rolewatch-alerts",
            });
        }

        let chat_topic_arn = get(CHAT_TOPIC_ARN_VAR);
        if let Some(arn) = &chat_topic_arn {
            if !(arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sns")) {
                return Err(SettingsError::Invalid {
                    name: CHAT_TOPIC_ARN_VAR,
                    value: arn.clone(),
                    reason: "expected an SNS topic ARN such as arn:aws:sns:us-east-1:111122223333:rolewatch-chat",
                });
            }
        }

        let state_bucket = get(STATE_BUCKET_VAR)
            .ok_or(SettingsError::Missing { name: STATE_BUCKET_VAR, meaning: "S3 bucket that holds detector state" })?;
        if state_bucket.contains('/') || state_bucket.starts_with("arn:") {
            return Err(SettingsError::Invalid {
                name: STATE_BUCKET_VAR,
                value: state_bucket,
                reason: "expected a bare bucket name, not an ARN or a path",
            });
        }

        let mut state_prefix = get(STATE_PREFIX_VAR).unwrap_or_else(|| DEFAULT_STATE_PREFIX.to_owned());
        if state_prefix.starts_with('/') {
            return Err(SettingsError::Invalid {
                name: STATE_PREFIX_VAR,
                value: state_prefix,
                reason: "S3 keys do not start with '/'; use e.g. rolewatch/state/",
            });
        }
        if !state_prefix.is_empty() && !state_prefix.ends_with('/') {
            state_prefix.push('/');
        }

        let force_path_style = match get(FORCE_PATH_STYLE_VAR).as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(SettingsError::Invalid {
                    name: FORCE_PATH_STYLE_VAR,
                    value: v.to_owned(),
                    reason: "expected true or false",
                })
            }
        };

        let expected_bucket_owner = get(EXPECTED_BUCKET_OWNER_VAR);
        if let Some(owner) = &expected_bucket_owner {
            if owner.len() != 12 || !owner.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SettingsError::Invalid {
                    name: EXPECTED_BUCKET_OWNER_VAR,
                    value: owner.clone(),
                    reason: "expected the 12-digit account id that owns the trail bucket",
                });
            }
        }

        let lease_wait_seconds = match get(LEASE_WAIT_SECONDS_VAR) {
            None => DEFAULT_LEASE_WAIT.as_secs(),
            Some(v) => match v.parse::<u64>() {
                Ok(seconds) if (1..=600).contains(&seconds) => seconds,
                _ => {
                    return Err(SettingsError::Invalid {
                        name: LEASE_WAIT_SECONDS_VAR,
                        value: v,
                        reason: "expected whole seconds from 1 to 600, well under the function's timeout",
                    })
                }
            },
        };

        let base_cache_bytes = get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .and_then(|mb| mb.parse::<usize>().ok())
            .map_or(DEFAULT_BASE_CACHE_BYTES, |mb| mb.saturating_mul(1 << 20) / 3);
        Ok(Settings {
            config,
            topic_arn,
            chat_topic_arn,
            state_bucket,
            state_prefix,
            force_path_style,
            expected_bucket_owner,
            lease_wait_seconds,
            base_cache_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_env_lookup(|name| env.get(name).cloned())
    }

    const TOPIC: (&str, &str) = (TOPIC_ARN_VAR, "arn:aws:sns:us-east-1:111122223333:alerts");
    const BUCKET: (&str, &str) = (STATE_BUCKET_VAR, "state-bucket");

    #[test]
    fn minimal_environment_gets_defaults() {
        let s = settings(&[TOPIC, BUCKET]).map_err(|e| e.to_string());
        let s = s.as_ref().map(|s| (s.state_prefix.as_str(), s.force_path_style, s.config.repeated_failures.threshold));
        assert_eq!(s, Ok(("rolewatch/state/", false, 5)));
    }

    #[test]
    fn a_misspelt_variable_stops_the_function_by_name() {
        let names = ["PATH", "ROLEWATCH_STATE_BUCKET", "ROLEWATCH_REPEATED_FAILURES_TRESHOLD"].map(str::to_owned);
        let err = Settings::check_variable_names(names).map(|()| String::new()).unwrap_or_else(|e| e.to_string());
        assert!(err.contains("ROLEWATCH_REPEATED_FAILURES_TRESHOLD") && err.contains("misspelt"), "{err}");
        let good =
            ["ROLEWATCH_ALERTS_COOLDOWN_SECONDS", "ROLEWATCH_S3_FORCE_PATH_STYLE", "AWS_REGION"].map(str::to_owned);
        assert!(Settings::check_variable_names(good).is_ok());
    }

    #[test]
    fn the_chat_topic_is_optional() {
        let chat = (CHAT_TOPIC_ARN_VAR, "arn:aws:sns:us-east-1:111122223333:rolewatch-chat");
        assert_eq!(settings(&[TOPIC, BUCKET]).map(|s| s.chat_topic_arn).ok(), Some(None));
        assert_eq!(settings(&[TOPIC, BUCKET, chat]).map(|s| s.chat_topic_arn).ok(), Some(Some(chat.1.to_owned())));
        assert!(Settings::check_variable_names([CHAT_TOPIC_ARN_VAR.to_owned()]).is_ok());
    }

    #[test]
    fn errors_name_the_variable() {
        for (vars, name) in [
            (vec![BUCKET], TOPIC_ARN_VAR),
            (vec![TOPIC], STATE_BUCKET_VAR),
            (vec![(TOPIC_ARN_VAR, "alerts"), BUCKET], TOPIC_ARN_VAR),
            (vec![TOPIC, (STATE_BUCKET_VAR, "arn:aws:s3:::b")], STATE_BUCKET_VAR),
            (vec![TOPIC, BUCKET, (FORCE_PATH_STYLE_VAR, "yes")], FORCE_PATH_STYLE_VAR),
            (vec![TOPIC, BUCKET, (STATE_PREFIX_VAR, "/state")], STATE_PREFIX_VAR),
            (
                vec![TOPIC, BUCKET, (EXPECTED_BUCKET_OWNER_VAR, "arn:aws:iam::111122223333:root")],
                EXPECTED_BUCKET_OWNER_VAR,
            ),
            (vec![TOPIC, BUCKET, (LEASE_WAIT_SECONDS_VAR, "0")], LEASE_WAIT_SECONDS_VAR),
            (vec![TOPIC, BUCKET, (CHAT_TOPIC_ARN_VAR, "https://hooks.slack.com/x")], CHAT_TOPIC_ARN_VAR),
            (
                vec![TOPIC, BUCKET, ("ROLEWATCH_REPEATED_FAILURES_THRESHOLD", "0")],
                "ROLEWATCH_REPEATED_FAILURES_THRESHOLD",
            ),
        ] {
            match settings(&vars) {
                Ok(_) => panic!("{vars:?} should be rejected"),
                Err(err) => assert!(err.to_string().contains(name), "{err} should name {name}"),
            }
        }
    }

    #[test]
    fn the_template_s_bucket_owner_and_lease_wait_are_read() {
        // The template sets both on every deployment: unknown, they would stop the function.
        let names = [EXPECTED_BUCKET_OWNER_VAR, LEASE_WAIT_SECONDS_VAR].map(str::to_owned);
        assert!(Settings::check_variable_names(names).is_ok());
        let s = settings(&[TOPIC, BUCKET, (EXPECTED_BUCKET_OWNER_VAR, "444455556666"), (LEASE_WAIT_SECONDS_VAR, "45")]);
        let s = s.map(|s| (s.expected_bucket_owner, s.lease_wait_seconds)).map_err(|e| e.to_string());
        assert_eq!(s, Ok((Some("444455556666".to_owned()), 45)));
        let s = settings(&[TOPIC, BUCKET]).map(|s| (s.expected_bucket_owner, s.lease_wait_seconds));
        assert_eq!(s.map_err(|e| e.to_string()), Ok((None, 60)), "unset: no owner check, a minute's wait");
    }

    #[test]
    fn the_template_s_suppress_rules_are_read_and_a_bad_rule_stops_the_function() {
        assert!(Settings::check_variable_names(["ROLEWATCH_SUPPRESS".to_owned()]).is_ok());
        // The template's default.
        let s = settings(&[TOPIC, BUCKET, ("ROLEWATCH_SUPPRESS", "[]")]).map(|s| s.config.suppress.len());
        assert_eq!(s.map_err(|e| e.to_string()), Ok(0));
        let rules = r#"[{"reason": "vendor scans", "caller_account": "444455556666"}]"#;
        let s = settings(&[TOPIC, BUCKET, ("ROLEWATCH_SUPPRESS", rules)]).map(|s| s.config.suppress);
        assert_eq!(s.map(|r| r[0].caller_account.clone()).map_err(|e| e.to_string()), Ok(Some("444455556666".into())));
        let err = settings(&[TOPIC, BUCKET, ("ROLEWATCH_SUPPRESS", r#"[{"caller_account": "444455556666"}]"#)])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ROLEWATCH_SUPPRESS") && err.contains("reason"), "{err}");
    }

    #[test]
    fn prefix_gets_a_trailing_slash_and_path_style_parses() {
        let s = settings(&[TOPIC, BUCKET, (STATE_PREFIX_VAR, "custom/state"), (FORCE_PATH_STYLE_VAR, "TRUE")]);
        let s = s.map(|s| (s.state_prefix, s.force_path_style)).map_err(|e| e.to_string());
        assert_eq!(s, Ok(("custom/state/".to_owned(), true)));
    }
}
