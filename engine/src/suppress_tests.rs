use super::*;
use crate::alert::{dedup_key, NewAlert, Severity};
use crate::cloudtrail::AssumeRoleEvent;
use crate::config::Config;
use crate::detect::tests::failure;
use crate::engine::{Applied, Engine};
use crate::state::State;

const FULL: &str = r#"
[alerts]
cooldown_seconds = 3600

[[suppress]]
reason = "CI runners egress from changing hosted ranges"
detector = "unexpected_source_ip"
principal = "arn:aws:sts::111111111111:assumed-role/ci-*"
role_arn = "arn:aws:iam::*:role/deploy"
caller_account = "111111111111"
source_cidr = "203.0.113.0/24"
until = "2027-01-31T00:00:00Z"

[[suppress]]
reason = "the load test hammers its own role"
detector = "repeated_failures"
"#;

fn err(toml: &str) -> String {
    Config::from_toml_str(toml).unwrap_err().to_string()
}

#[test]
fn rules_read_from_toml_in_order_and_print_back_the_same() {
    let config = Config::from_toml_str(FULL).unwrap();
    assert_eq!(config.suppress.len(), 2);
    assert_eq!(config.suppress[0].caller_account.as_deref(), Some("111111111111"));
    assert_eq!(config.suppress[1].detector.as_deref(), Some("repeated_failures"));
    assert_eq!(config.suppress[1].principal, None);
    // `check-config` prints the settings in effect; they read back the same.
    let printed = toml::to_string(&config).unwrap();
    assert_eq!(Config::from_toml_str(&printed).unwrap(), config, "{printed}");
}

#[test]
fn a_bad_rule_names_its_number_key_and_value() {
    let e = err("[[suppress]]\ndetector = \"long_session\"\n");
    assert!(e.contains("reason"), "{e}");
    let e = err("[[suppress]]\nreason = \"  \"\n");
    assert!(e.contains("suppress[1].reason"), "{e}");
    let e = err("[[suppress]]\nreason = \"ok\"\n\n[[suppress]]\nreason = \"vendor\"\ncaller_account = \"12345\"\n");
    assert!(e.contains("suppress[2].caller_account") && e.contains("\"12345\""), "{e}");
    let e = err("[[suppress]]\nreason = \"r\"\nsource_cidr = \"10.0.0.0/33\"\n");
    assert!(e.contains("suppress[1].source_cidr") && e.contains("10.0.0.0/33"), "{e}");
    let e = err("[[suppress]]\nreason = \"r\"\nuntil = \"next tuesday\"\n");
    assert!(e.contains("suppress[1].until") && e.contains("next tuesday"), "{e}");
    let e = err("[[suppress]]\nreason = \"r\"\ndetector = \"long_sessions\"\n");
    assert!(e.contains("suppress[1].detector") && e.contains("long_sessions"), "{e}");
    let e = err("[[suppress]]\nreason = \"r\"\nprincipal = \"\"\n");
    assert!(e.contains("suppress[1].principal"), "{e}");
    // deny_unknown_fields: a misspelt key is an error, not a rule matching more.
    let e = err("[[suppress]]\nreason = \"r\"\nprinicpal = \"x\"\n");
    assert!(e.contains("prinicpal"), "{e}");
}

#[test]
fn the_lambda_reads_the_same_rules_as_json_from_rolewatch_suppress() {
    assert!(crate::config::env_var_names().contains(&"ROLEWATCH_SUPPRESS".to_owned()));
    let json = r#"[{"reason": "vendor scan", "caller_account": "444455556666", "until": "2027-01-31T00:00:00Z"}]"#;
    let env = |v: &'static str| move |name: &str| (name == "ROLEWATCH_SUPPRESS").then(|| v.to_owned());
    let config = Config::from_env_lookup(env(json)).unwrap();
    assert_eq!(config.suppress.len(), 1);
    assert_eq!(config.suppress[0].caller_account.as_deref(), Some("444455556666"));
    assert!(Config::from_env_lookup(env("[]")).unwrap().suppress.is_empty());

    let e = Config::from_env_lookup(env("{\"reason\": 1}")).unwrap_err().to_string();
    assert!(e.contains("ROLEWATCH_SUPPRESS") && e.contains("JSON array"), "{e}");
    let e = Config::from_env_lookup(env(r#"[{"reason": "x", "detectr": "long_session"}]"#)).unwrap_err().to_string();
    assert!(e.contains("ROLEWATCH_SUPPRESS") && e.contains("detectr"), "{e}");
    let e = Config::from_env_lookup(env(r#"[{"reason": "x"}, {"reason": "y", "source_cidr": "nope"}]"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ROLEWATCH_SUPPRESS[2].source_cidr") && e.contains("nope"), "{e}");
}

#[test]
fn a_star_stands_for_any_run_of_characters() {
    assert!(glob_match("arn:aws:iam::*:role/deploy", "arn:aws:iam::111122223333:role/deploy"));
    assert!(!glob_match("arn:aws:iam::*:role/deploy", "arn:aws:iam::111122223333:role/deploy-admin"));
    assert!(glob_match("*deploy*", "arn:aws:iam::1:role/deploy-admin"));
    assert!(glob_match("ci-*", "ci-"));
    assert!(glob_match("*", ""));
    assert!(glob_match("a*b*c", "abbbc"));
    assert!(!glob_match("a*b*c", "acb"));
    assert!(!glob_match("ab*ba", "aba"), "the two ends may not overlap");
    assert!(glob_match("exact", "exact") && !glob_match("exact", "exact2") && !glob_match("Exact", "exact"));
}

fn alert(detector: &str, principal: &str, role: Option<&str>, ip: Option<&str>, first: &str) -> Alert {
    let t = crate::cloudtrail::parse_event_time(first).unwrap();
    Alert::new(NewAlert {
        detector,
        severity: Severity::High,
        title: "t",
        summary: "s",
        dedup_key: dedup_key(detector, &[principal]),
        account_id: "1",
        principal,
        // As the principal shows it (see `SuppressSubject::of`).
        caller_account: None,
        role_arn: role,
        source_ip: ip,
        event_name: "AssumeRole",
        first_event_time: t,
        last_event_time: t,
    })
}

fn rule(toml_fields: &str) -> SuppressRule {
    let config = Config::from_toml_str(&format!("[[suppress]]\nreason = \"r\"\n{toml_fields}\n")).unwrap();
    config.suppress[0].clone()
}

fn suppresses(rule: &SuppressRule, alert: &Alert) -> bool {
    rule.matches(&SuppressSubject::of(alert))
}

#[test]
fn each_field_matches_on_its_own_and_all_given_must_match() {
    let ci = "arn:aws:sts::111111111111:assumed-role/ci-runner/run-42";
    let a = alert(
        "unexpected_source_ip",
        ci,
        Some("arn:aws:iam::222222222222:role/deploy"),
        Some("203.0.113.9"),
        "2026-05-01T10:00:00Z",
    );
    let cases = [
        ("detector = \"unexpected_source_ip\"", true),
        ("detector = \"long_session\"", false),
        ("principal = \"arn:aws:sts::111111111111:assumed-role/ci-*\"", true),
        ("principal = \"arn:aws:sts::111111111111:assumed-role/web-*\"", false),
        ("role_arn = \"arn:aws:iam::*:role/deploy\"", true),
        ("role_arn = \"arn:aws:iam::*:role/admin\"", false),
        ("caller_account = \"111111111111\"", true),
        ("caller_account = \"222222222222\"", false),
        ("source_cidr = \"203.0.113.0/24\"", true),
        ("source_cidr = \"203.0.113.9\"", true),
        ("source_cidr = \"198.51.100.0/24\"", false),
        ("source_cidr = \"2001:db8::/32\"", false),
        ("until = \"2026-06-01T00:00:00Z\"", true),
        ("", true),
    ];
    for (fields, expected) in cases {
        assert_eq!(suppresses(&rule(fields), &a), expected, "{fields}");
    }
    let both = rule("detector = \"unexpected_source_ip\"\nsource_cidr = \"198.51.100.0/24\"");
    assert!(!suppresses(&both, &a), "one field not matching keeps the alert");

    // Fields the alert does not have do not match: a rule about a network
    // never silences an alert without a source address.
    let no_ip = alert("long_session", ci, None, None, "2026-05-01T10:00:00Z");
    assert!(!suppresses(&rule("source_cidr = \"0.0.0.0/0\""), &no_ip));
    assert!(!suppresses(&rule("role_arn = \"*\""), &no_ip));
    // The caller account of a role owner's copy and of an IAM user; none for SAML.
    let owner_copy = alert("long_session", "444455556666:AROAEXAMPLE:vendor", None, None, "2026-05-01T10:00:00Z");
    assert!(suppresses(&rule("caller_account = \"444455556666\""), &owner_copy));
    let user = alert("long_session", "arn:aws:iam::444455556666:user/bob", None, None, "2026-05-01T10:00:00Z");
    assert!(suppresses(&rule("caller_account = \"444455556666\""), &user));
    let saml =
        alert("long_session", "arn:aws:iam::444455556666:saml-provider/okta/bob", None, None, "2026-05-01T10:00:00Z");
    assert!(!suppresses(&rule("caller_account = \"444455556666\""), &saml));
}

#[test]
fn until_is_judged_in_event_time_on_the_first_event() {
    let r = rule("until = \"2027-01-31T00:00:00Z\"");
    let at = |t: &str| alert("long_session", "p", None, None, t);
    assert!(suppresses(&r, &at("2027-01-30T23:59:59Z")));
    assert!(suppresses(&r, &at("2027-01-31T00:00:00Z")), "up to and including until");
    assert!(!suppresses(&r, &at("2027-01-31T00:00:01Z")));
    // An offset is honoured: 01:00+01:00 is midnight UTC.
    assert!(suppresses(&rule("until = \"2027-01-31T01:00:00+01:00\""), &at("2027-01-31T00:00:00Z")));
}

fn burst(principal: &str, prefix: &str, start: i64) -> Vec<AssumeRoleEvent> {
    (0..5).map(|i| failure(principal, &format!("{prefix}{i}"), start + i * 10)).collect()
}

fn alerts(applied: Applied) -> Vec<Alert> {
    match applied {
        Applied::Processed { alerts } => alerts,
        Applied::AlreadyProcessed => panic!("input was skipped as already processed"),
    }
}

#[test]
fn a_suppressed_alert_is_not_published_but_counted_and_starts_the_cooldown() {
    let config = Config::from_toml_str(
        "[[suppress]]\nreason = \"load test\"\nprincipal = \"arn:aws:iam::*:user/loadtest\"\n\
         until = \"1970-01-02T00:00:00Z\"\n\n[[suppress]]\nreason = \"never matches\"\ndetector = \"mfa_missing\"\n",
    )
    .unwrap();
    let loadtest = "arn:aws:iam::111122223333:user/loadtest";
    let mut engine = Engine::new(&config, State::default());
    assert!(alerts(engine.apply("a", &burst(loadtest, "a", 0))).is_empty());
    // Another principal's burst is published as usual.
    assert_eq!(alerts(engine.apply("b", &burst("arn:aws:iam::111122223333:user/eve", "b", 0))).len(), 1);
    // A repeat within the cooldown of the suppressed alert is neither
    // published nor counted again, as after a published alert.
    assert!(alerts(engine.apply("c", &burst(loadtest, "c", 1800))).is_empty());
    let counts: Vec<u64> = engine.suppressions().counts().map(|(_, n)| n).collect();
    assert_eq!(counts, [1, 0]);
    // After the cooldown, still before `until`: suppressed and counted again.
    assert!(alerts(engine.apply("d", &burst(loadtest, "d", 7200))).is_empty());
    assert_eq!(engine.suppressions().total(), 2);
    // After `until` (event time), the same pattern pages.
    let got = alerts(engine.apply("e", &burst(loadtest, "e", 86_400 + 60)));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].principal, loadtest);
    assert_eq!(engine.suppressions().total(), 2);
}

#[test]
fn the_cooldown_a_suppressed_alert_started_survives_a_saved_state() {
    let config =
        Config::from_toml_str("[[suppress]]\nreason = \"load test\"\ndetector = \"repeated_failures\"\n").unwrap();
    let mut engine = Engine::new(&config, State::default());
    assert!(alerts(engine.apply("a", &burst("p", "a", 0))).is_empty());
    // The rule is removed; the next run, within the cooldown, stays quiet.
    let state = State::from_bytes(engine.into_state().to_bytes()).unwrap();
    let mut engine = Engine::new(&Config::default(), state);
    assert!(alerts(engine.apply("b", &burst("p", "b", 600))).is_empty());
    assert_eq!(alerts(engine.apply("c", &burst("p", "c", 5000))).len(), 1);
}
