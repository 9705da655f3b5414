//! The organisation, one call counted once, and the four detectors of the
//! threat model, end to end: CloudTrail text in, alerts out.

mod records;

use records::{file, Call, Caller, DAY, T0};
use rolewatch::cloudtrail::{InputLimits, ScanBuffer};
use rolewatch::ingest::{ingest, IngestOutcome};
use rolewatch::{Alert, Config, Engine, State};
use serde_json::Value;

const ENGINEER: Caller = Caller::User { account: "111111111111", name: "engineer", mfa: false };
const DEPLOY: &str = "arn:aws:iam::222222222222:role/deploy";
const HOME: &str = "arn:aws:iam::111111111111:role/readonly";

/// Reads `text` as one input named `name`; its alerts.
fn read(engine: &mut Engine, name: &str, text: &str) -> Vec<Alert> {
    let got = ingest(engine, name, text.as_bytes(), &InputLimits::default(), 4096, &mut ScanBuffer::default());
    assert!(matches!(got.outcome, IngestOutcome::Read(_)), "{name}: {:?}", got.outcome);
    got.alerts
}

fn detectors(alerts: &[Alert]) -> Vec<&str> {
    let mut names: Vec<&str> = alerts.iter().map(|a| a.detector.as_str()).collect();
    names.sort_unstable();
    names
}

/// Each way both copies of a call can arrive: one file either order, two
/// files either order.
fn deliveries(caller_copy: Value, owner_copy: Value) -> Vec<(&'static str, Vec<String>)> {
    let (c, o) = (caller_copy, owner_copy);
    vec![
        ("one file, caller's copy first", vec![file(&[c.clone(), o.clone()])]),
        ("one file, owner's copy first", vec![file(&[o.clone(), c.clone()])]),
        ("two files, caller's first", vec![file(std::slice::from_ref(&c)), file(std::slice::from_ref(&o))]),
        ("two files, owner's first", vec![file(&[o]), file(&[c])]),
    ]
}

/// A week and more of the engineer's same-account routine from one network,
/// read before the call under test, in the caller's account's log.
fn engineer_history() -> String {
    let calls: Vec<Value> =
        (0..10).map(|d| Call::new(&format!("h{d}"), T0 + d * DAY, ENGINEER, HOME).caller_copy()).collect();
    file(&calls)
}

#[test]
fn a_cross_account_call_from_a_new_network_pages_once_in_every_order() {
    let mut call = Call::new("x", T0 + 11 * DAY, ENGINEER, DEPLOY);
    call.ip = "203.0.113.66".to_owned();
    for (how, files) in deliveries(call.caller_copy(), call.owner_copy()) {
        let mut engine = Engine::new(&Config::default(), State::default());
        assert!(read(&mut engine, "history", &engineer_history()).is_empty(), "{how}");
        let alerts: Vec<Alert> =
            files.iter().enumerate().flat_map(|(n, f)| read(&mut engine, &format!("f{n}"), f)).collect();
        assert_eq!(detectors(&alerts), ["unexpected_source_ip"], "{how}: {alerts:#?}");
        assert_eq!(alerts[0].principal, "arn:aws:iam::111111111111:user/engineer", "{how}: the caller's copy is used");
        assert_eq!(alerts[0].caller_account.as_deref(), Some("111111111111"), "{how}");
    }
}

#[test]
fn with_habitual_zero_a_long_cross_account_session_pages_once_in_every_order() {
    let mut config = Config::default();
    config.long_session.habitual_seconds = 0;
    let mut call = Call::new("long", T0, ENGINEER, DEPLOY);
    call.duration = Some(43_200);
    for (how, files) in deliveries(call.caller_copy(), call.owner_copy()) {
        // A fresh deployment: whether the caller's account is read yet depends on the order.
        let mut engine = Engine::new(&config, State::default());
        let alerts: Vec<Alert> =
            files.iter().enumerate().flat_map(|(n, f)| read(&mut engine, &format!("f{n}"), f)).collect();
        assert_eq!(detectors(&alerts), ["long_session"], "{how}: {alerts:#?}");
        // Saved and loaded between the copies, as two Lambda invocations.
        let mut engine = Engine::new(&config, State::default());
        let mut all = Vec::new();
        for (n, f) in files.iter().enumerate() {
            all.extend(read(&mut engine, &format!("f{n}"), f));
            engine = Engine::new(&config, State::from_bytes(engine.into_state().to_bytes()).unwrap());
        }
        assert_eq!(detectors(&all), ["long_session"], "{how}, state saved between files: {all:#?}");
    }
}

#[test]
fn the_owner_s_copy_is_used_when_the_caller_s_logs_are_not_read() {
    let mut config = Config::default();
    config.long_session.habitual_seconds = 0;
    // Both accounts are the organisation's; only the role owner's logs are read.
    config.organization.account_ids = vec!["111111111111".to_owned(), "222222222222".to_owned()];
    let mut call = Call::new("long", T0, ENGINEER, DEPLOY);
    call.duration = Some(43_200);
    let mut engine = Engine::new(&config, State::default());
    let alerts = read(&mut engine, "owner", &file(&[call.owner_copy()]));
    assert_eq!(detectors(&alerts), ["long_session"]);
    assert_eq!(alerts[0].principal, "111111111111:AIDAENGINEER", "<accountId>:<principalId>");
    assert_eq!(alerts[0].caller_account.as_deref(), Some("111111111111"));
    assert_eq!(alerts[0].account_id, "222222222222");
    // The same copy again a week and a day later (a separate call reusing
    // the id, or a replay past the memory) is a new call.
    let mut again = call.clone();
    again.time += 8 * DAY;
    let alerts = read(&mut engine, "owner-later", &file(&[again.owner_copy()]));
    assert_eq!(detectors(&alerts), ["long_session"]);
}

/// Six guesses at roles in other accounts by a stolen access key, denied
/// with `requestParameters: null`, the role only in the error message.
fn guesses(caller: &Caller, start: i64, prefix: &str) -> Vec<Value> {
    ["admin", "OrganizationAccountAccessRole", "deploy", "backup", "security-audit", "billing"]
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let mut call = Call::new(
                &format!("{prefix}{i}"),
                start + i as i64 * 20,
                caller.clone(),
                &format!("arn:aws:iam::22222222222{}:role/{role}", i % 3),
            );
            call.denied = true;
            call.caller_copy()
        })
        .collect()
}

#[test]
fn role_guessing_pages_once_as_role_enumeration_and_not_as_repeated_failures() {
    let mut engine = Engine::new(&Config::default(), State::default());
    let alerts = read(&mut engine, "guesses", &file(&guesses(&ENGINEER, T0, "g")));
    assert_eq!(detectors(&alerts), ["role_enumeration"], "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert.severity.as_str(), "critical");
    assert_eq!(alert.event_count, 6);
    assert_eq!(alert.role_arn, None, "requestParameters was null");
    assert_eq!(alert.details["roles"].as_array().map(Vec::len), Some(5), "the roles that made the burst");
    assert!(alert.details["roles"][0].as_str().unwrap().starts_with("arn:aws:iam::222222222220:role/"));
    // More failures within the cooldown: repeated_failures stays quiet too.
    let more: Vec<Value> = (0..6)
        .map(|i| {
            let mut call =
                Call::new(&format!("m{i}"), T0 + 600 + i * 10, ENGINEER, "arn:aws:iam::222222222220:role/admin");
            call.denied = true;
            call.caller_copy()
        })
        .collect();
    let alerts = read(&mut engine, "more", &file(&more));
    assert!(alerts.is_empty(), "{alerts:#?}");
    // The same guesses read again under another name raise nothing.
    assert!(read(&mut engine, "copy", &file(&guesses(&ENGINEER, T0, "g"))).is_empty());
}

#[test]
fn a_pipeline_whose_trust_broke_is_not_guessing() {
    // Yesterday's runs, each under a new session name, were granted the roles.
    let roles = ["admin", "OrganizationAccountAccessRole", "deploy", "backup", "security-audit", "billing"];
    let runs: Vec<Value> = roles
        .iter()
        .enumerate()
        .flat_map(|(i, role)| {
            let session = Caller::Session { account: "111111111111", role: "ci", session: "run-1041", mfa: false };
            let call = Call::new(
                &format!("ok{i}"),
                T0 - DAY + i as i64,
                session,
                &format!("arn:aws:iam::22222222222{}:role/{role}", i % 3),
            );
            call.copies()
        })
        .collect();
    let mut engine = Engine::new(&Config::default(), State::default());
    assert!(read(&mut engine, "yesterday", &file(&runs)).is_empty());
    let today = Caller::Session { account: "111111111111", role: "ci", session: "run-1042", mfa: false };
    let alerts = read(&mut engine, "today", &file(&guesses(&today, T0, "t")));
    assert_eq!(detectors(&alerts), ["repeated_failures"], "failing on roles it used is not guessing: {alerts:#?}");
}

/// Grants of the six roles guessed in [`guesses`], to the engineer, at `at`.
fn grants(at: i64) -> String {
    let roles = ["admin", "OrganizationAccountAccessRole", "deploy", "backup", "security-audit", "billing"];
    let calls: Vec<Value> = roles
        .iter()
        .enumerate()
        .flat_map(|(i, role)| {
            Call::new(&format!("grant{i}"), at, ENGINEER, &format!("arn:aws:iam::22222222222{}:role/{role}", i % 3))
                .copies()
        })
        .collect();
    file(&calls)
}

#[test]
fn grants_count_when_read_before_the_failures_and_do_not_withdraw_an_alert_after() {
    // Read first, though a day later in event time (the failures' file was late): not guesses.
    let mut engine = Engine::new(&Config::default(), State::default());
    assert!(read(&mut engine, "grants", &grants(T0 + DAY)).is_empty());
    let alerts = read(&mut engine, "guesses", &file(&guesses(&ENGINEER, T0, "g")));
    assert_eq!(detectors(&alerts), ["repeated_failures"], "{alerts:#?}");
    // Read after the failures: the alert stands, and nothing more is raised.
    let mut engine = Engine::new(&Config::default(), State::default());
    assert_eq!(detectors(&read(&mut engine, "guesses", &file(&guesses(&ENGINEER, T0, "g")))), ["role_enumeration"]);
    assert!(read(&mut engine, "grants", &grants(T0 - DAY)).is_empty());
    // Granted longer ago than role_enumeration.memory_seconds: guesses again.
    let mut engine = Engine::new(&Config::default(), State::default());
    read(&mut engine, "grants", &grants(T0 - 91 * DAY));
    let alerts = read(&mut engine, "guesses", &file(&guesses(&ENGINEER, T0, "g")));
    assert_eq!(detectors(&alerts), ["role_enumeration"]);
}

const VENDOR: Caller = Caller::Session { account: "999999999999", role: "VendorScanner", session: "scan", mfa: false };
const AUDIT: &str = "arn:aws:iam::222222222222:role/vendor-audit";

/// The organisation's own traffic, so accounts 111111111111 and 222222222222 are read.
fn own_traffic(at: i64) -> String {
    let own = Caller::User { account: "222222222222", name: "ops", mfa: true };
    file(&[
        Call::new(&format!("own{at}"), at, ENGINEER, HOME).caller_copy(),
        Call::new(&format!("ops{at}"), at, own, "arn:aws:iam::222222222222:role/ops").caller_copy(),
    ])
}

#[test]
fn an_outside_account_without_an_external_id_raises_once_per_role_and_month() {
    let mut engine = Engine::new(&Config::default(), State::default());
    read(&mut engine, "own", &own_traffic(T0));
    // Within the discovery hour: quiet.
    let early = Call::new("early", T0 + 600, VENDOR, AUDIT);
    assert!(read(&mut engine, "early", &file(&[early.owner_copy()])).is_empty());
    let mut all = Vec::new();
    for day in 8..40 {
        let call = Call::new(&format!("v{day}"), T0 + day * DAY, VENDOR, AUDIT);
        all.extend(read(&mut engine, &format!("d{day}"), &file(&[call.owner_copy()])));
    }
    let found: Vec<&Alert> = all.iter().filter(|a| a.detector == "external_id_missing").collect();
    assert_eq!(found.len(), 2, "day 8 and 30 days later: {found:#?}");
    assert_eq!(found[0].caller_account.as_deref(), Some("999999999999"));
    assert_eq!(found[0].severity.as_str(), "high");
    assert_eq!(found[0].role_arn.as_deref(), Some(AUDIT));
}

#[test]
fn an_external_id_is_never_kept_or_shown() {
    let secret = "vendor-shared-secret-7f3a";
    let mut engine = Engine::new(&Config::default(), State::default());
    read(&mut engine, "own", &own_traffic(T0));
    let mut call = Call::new("v", T0 + 9 * DAY, VENDOR, AUDIT);
    call.external_id = Some("vendor-shared-secret-7f3a");
    let alerts = read(&mut engine, "vendor", &file(&[call.owner_copy()]));
    assert_eq!(detectors(&alerts), ["outside_organization"], "with an ExternalId: {alerts:#?}");
    assert!(alerts.iter().all(|a| !a.to_json().contains(secret) && !a.to_text().contains(secret)));
    let saved = engine.into_state().to_bytes();
    assert!(!String::from_utf8_lossy(&saved).contains(secret));
}

#[test]
fn outside_callers_are_learned_in_the_first_week_and_new_ones_raise_after() {
    let mut config = Config::default();
    config.outside_organization.trusted_accounts = vec!["888888888888".to_owned()];
    let mut engine = Engine::new(&config, State::default());
    read(&mut engine, "own", &own_traffic(T0));
    let with_id = |id: &str, t: i64, caller: Caller, role: &str| {
        let mut call = Call::new(id, t, caller, role);
        call.external_id = Some("x");
        file(&[call.owner_copy()])
    };
    // A vendor's daily job, first seen in the learning week.
    for day in 1..20 {
        assert!(read(&mut engine, &format!("v{day}"), &with_id(&format!("v{day}"), T0 + day * DAY, VENDOR, AUDIT))
            .is_empty());
    }
    // A trusted vendor: never.
    let trusted = Caller::Session { account: "888888888888", role: "Backup", session: "b", mfa: false };
    assert!(read(&mut engine, "trusted", &with_id("t", T0 + 10 * DAY, trusted, AUDIT)).is_empty());
    // A new outside account after the learning week, and the known vendor on another role.
    let stranger = Caller::User { account: "777777777777", name: "x", mfa: false };
    let alerts = read(&mut engine, "stranger", &with_id("s", T0 + 10 * DAY, stranger, AUDIT));
    assert_eq!(detectors(&alerts), ["outside_organization"]);
    let alerts =
        read(&mut engine, "other", &with_id("o", T0 + 11 * DAY, VENDOR, "arn:aws:iam::222222222222:role/admin"));
    assert_eq!(detectors(&alerts), ["outside_organization"]);
    // Accounts in organization.account_ids are inside even when their logs are not read.
    config.organization.account_ids = vec!["777777777777".to_owned()];
    let mut engine = Engine::new(&config, State::default());
    read(&mut engine, "own", &own_traffic(T0));
    assert!(read(&mut engine, "listed", &with_id("l", T0 + 10 * DAY, stranger_of("777777777777"), AUDIT)).is_empty());
}

fn stranger_of(account: &'static str) -> Caller {
    Caller::User { account, name: "x", mfa: false }
}

fn mfa_config() -> Config {
    let mut config = Config::default();
    config.mfa_required.roles = vec!["arn:aws:iam::*:role/admin".to_owned()];
    config
}

const ADMIN: &str = "arn:aws:iam::222222222222:role/admin";

fn mfa_alerts(call: &Call) -> Vec<Alert> {
    let mut engine = Engine::new(&mfa_config(), State::default());
    read(&mut engine, "own", &own_traffic(T0 - DAY));
    read(&mut engine, "call", &file(&call.copies())).into_iter().filter(|a| a.detector == "mfa_missing").collect()
}

#[test]
fn an_mfa_required_role_assumed_without_mfa_raises_once_however_it_is_logged() {
    let call = Call::new("nomfa", T0, ENGINEER, ADMIN);
    for (how, files) in deliveries(call.caller_copy(), call.owner_copy()) {
        let mut engine = Engine::new(&mfa_config(), State::default());
        read(&mut engine, "own", &own_traffic(T0 - DAY));
        let alerts: Vec<Alert> =
            files.iter().enumerate().flat_map(|(n, f)| read(&mut engine, &format!("f{n}"), f)).collect();
        assert_eq!(detectors(&alerts), ["mfa_missing"], "{how}: {alerts:#?}");
        assert_eq!(alerts[0].principal, "arn:aws:iam::111111111111:user/engineer");
    }
    assert!(mfa_alerts(&Call::new("other", T0, ENGINEER, DEPLOY)).is_empty(), "not an MFA-required role");
}

#[test]
fn mfa_in_the_session_or_the_request_or_at_the_identity_provider_is_enough() {
    let with_mfa = Caller::User { account: "111111111111", name: "engineer", mfa: true };
    assert!(mfa_alerts(&Call::new("a", T0, with_mfa, ADMIN)).is_empty(), "mfaAuthenticated true");
    let mut serial = Call::new("b", T0, ENGINEER, ADMIN);
    serial.serial_number = true;
    assert!(mfa_alerts(&serial).is_empty(), "serialNumber given");
    let sso = Caller::Session {
        account: "111111111111",
        role: "aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123456789abcdef",
        session: "alice@example.com",
        mfa: false,
    };
    assert!(mfa_alerts(&Call::new("c", T0, sso, ADMIN)).is_empty(), "an Identity Center session");
    for (id, caller) in [("d", Caller::Saml), ("e", Caller::WebIdentity), ("f", Caller::Service("ec2.amazonaws.com"))] {
        assert!(mfa_alerts(&Call::new(id, T0, caller, ADMIN)).is_empty(), "{id}");
    }
}

#[test]
fn a_session_chained_from_an_identity_center_session_is_an_ordinary_role_session() {
    // alice's Identity Center session assumed role/jump; the jump session assumes admin.
    let chained = Caller::Session { account: "111111111111", role: "jump", session: "alice@example.com", mfa: false };
    let alerts = mfa_alerts(&Call::new("chain", T0, chained, ADMIN));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].details["session_issuer_arn"], "arn:aws:iam::111111111111:role/jump");
}

#[test]
fn saml_callers_have_no_caller_account() {
    let mut config = Config::default();
    config.long_session.habitual_seconds = 0;
    let mut engine = Engine::new(&config, State::default());
    let mut call = Call::new(
        "saml",
        T0,
        Caller::Saml,
        "arn:aws:iam::222222222222:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_1",
    );
    call.duration = Some(43_200);
    let alerts = read(&mut engine, "saml", &file(&call.copies()));
    assert_eq!(detectors(&alerts), ["long_session"]);
    let json: Value = serde_json::from_str(&alerts[0].to_json()).unwrap();
    assert_eq!(json.get("caller_account"), Some(&Value::Null), "present, and null");
    assert_eq!(json["principal"], "/nQTosBbaHrvuioiTKQkrbl3/WM=/alice@example.com");
}

#[test]
fn every_summary_ends_with_the_first_thing_to_check() {
    let mut config = mfa_config();
    config.long_session.habitual_seconds = 0;
    let mut engine = Engine::new(&config, State::default());
    read(&mut engine, "own", &own_traffic(T0));
    let mut alerts = read(&mut engine, "guesses", &file(&guesses(&ENGINEER, T0 + 9 * DAY, "g")));
    let mut long = Call::new("long", T0 + 9 * DAY, ENGINEER, ADMIN);
    long.duration = Some(43_200);
    long.ip = "203.0.113.9".to_owned();
    alerts.extend(read(&mut engine, "long", &file(&long.copies())));
    let stranger = Call::new("s", T0 + 9 * DAY, stranger_of("777777777777"), AUDIT);
    alerts.extend(read(&mut engine, "stranger", &file(&[stranger.owner_copy()])));
    let mut fails = guesses(&ENGINEER, T0 + 20 * DAY, "f");
    for f in &mut fails {
        f["errorMessage"] = Value::Null;
    }
    alerts.extend(read(&mut engine, "fails", &file(&fails)));
    let mut seen = detectors(&alerts);
    seen.dedup();
    assert_eq!(
        seen,
        [
            "external_id_missing",
            "long_session",
            "mfa_missing",
            "outside_organization",
            "repeated_failures",
            "role_enumeration",
            "unexpected_source_ip"
        ]
    );
    for alert in &alerts {
        let last = alert.summary.rsplit(". ").next().unwrap_or_default();
        assert!(last.contains("check") || last.contains("First"), "{}: {}", alert.detector, alert.summary);
        assert!(alert.summary.contains("First check") || alert.summary.contains("First inspect"), "{}", alert.summary);
    }
}

#[test]
fn accounts_read_by_another_engine_make_the_owner_s_copy_redundant() {
    // The Lambda's engine for the role owner's account, told that the
    // caller's account has a state of its own (its logs are read there).
    let mut config = Config::default();
    config.long_session.habitual_seconds = 0;
    let mut call = Call::new("long", T0, ENGINEER, DEPLOY);
    call.duration = Some(43_200);
    let mut owner = Engine::new(&config, State::default());
    owner.note_accounts_read(&["111111111111"]);
    assert!(read(&mut owner, "owner", &file(&[call.owner_copy()])).is_empty(), "the caller's engine counts it");
    let mut caller = Engine::new(&config, State::default());
    assert_eq!(detectors(&read(&mut caller, "caller", &file(&[call.caller_copy()]))), ["long_session"]);
}

#[test]
fn the_caller_s_copy_read_after_the_owner_s_is_still_judged_for_mfa_once() {
    // Path order over an organisation trail: the role's account sorts first,
    // so its copy is read before any log of the caller's account.
    let call = Call::new("nomfa", T0 + DAY, ENGINEER, ADMIN);
    let mut config = mfa_config();
    config.organization.account_ids = vec!["111111111111".to_owned(), "222222222222".to_owned()];
    let mut engine = Engine::new(&config, State::default());
    assert!(read(&mut engine, "222", &file(&[call.owner_copy()])).is_empty(), "the owner's copy shows no session");
    let alerts = read(&mut engine, "111", &file(&[call.caller_copy()]));
    assert_eq!(detectors(&alerts), ["mfa_missing"], "{alerts:#?}");
    assert_eq!(alerts[0].principal, "arn:aws:iam::111111111111:user/engineer");
    // The same copy again (a replay under another name) raises nothing.
    assert!(read(&mut engine, "111-again", &file(&[call.caller_copy()])).is_empty());
}
