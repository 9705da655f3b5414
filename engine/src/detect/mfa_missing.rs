//! `mfa_missing`: a successful `AssumeRole` of a role matching
//! `mfa_required.roles` with no sign of MFA (no `serialNumber`, and the
//! caller's session not `mfaAuthenticated`): its trust policy does not
//! demand MFA. Judged only on the caller's own copy of a call; SAML, web
//! identity and AWS services are not judged (their identity provider
//! enforces MFA out of CloudTrail's sight), nor sessions of
//! `federated_roles` (IAM Identity Center shows `mfaAuthenticated` false
//! although its identity provider asked for MFA).

use super::short_name;
use crate::alert::{dedup_key, Alert, NewAlert, Severity};
use crate::cloudtrail::AssumeRoleEvent;
use crate::config::MfaRequiredConfig;
use crate::suppress::glob_match as matches_pattern;

pub const DETECTOR: &str = "mfa_missing";

/// Whether `event` assumed an MFA-required role without MFA.
pub fn observe(config: &MfaRequiredConfig, event: &AssumeRoleEvent) -> bool {
    let Some(role) = event.role_arn.as_deref() else { return false };
    let federated = |issuer: &str| config.federated_roles.iter().any(|p| matches_pattern(p, issuer));
    event.succeeded()
        && event.event_name == "AssumeRole"
        && event.caller_account.is_some()
        && !matches!(event.identity_type.as_str(), "AWSAccount" | "SAMLUser" | "WebIdentityUser" | "AWSService")
        && config.roles.iter().any(|p| matches_pattern(p, role))
        && !event.serial_number_given
        && event.mfa_authenticated != Some(true)
        && !event.session_issuer_arn.as_deref().is_some_and(federated)
}

pub fn alert(event: &AssumeRoleEvent) -> Alert {
    let role = event.role_arn.as_deref().unwrap_or_default();
    let how = match (event.identity_type.as_str(), event.session_issuer_arn.as_deref()) {
        ("AssumedRole", Some(issuer)) => format!("from a session of {issuer} that did not sign in with MFA"),
        _ => "with credentials that did not use MFA".to_owned(),
    };
    let mut alert = Alert::new(NewAlert {
        detector: DETECTOR,
        severity: Severity::High,
        title: &format!("{} assumed {} without MFA", short_name(&event.principal), short_name(role)),
        summary: &format!(
            "{principal} assumed {role} {how}, and the request named no MFA device (serialNumber). The role is listed in \
             mfa_required.roles, but its trust policy let the call in without MFA. First check the role's trust policy: \
             it should hold a Condition Bool aws:MultiFactorAuthPresent true; then ask the caller's owner whether this \
             call was theirs.",
            principal = event.principal,
        ),
        dedup_key: dedup_key(DETECTOR, &[&event.principal, role]),
        account_id: &event.account_id,
        principal: &event.principal,
        caller_account: event.caller_account.as_deref(),
        role_arn: Some(role),
        source_ip: event.source.as_text().as_deref(),
        event_name: &event.event_name,
        first_event_time: event.event_time,
        last_event_time: event.event_time,
    })
    .with_detail("identity_type", event.identity_type.as_str());
    if let Some(issuer) = &event.session_issuer_arn {
        alert = alert.with_detail("session_issuer_arn", issuer.as_str());
    }
    alert.add_event(&event.event_id);
    alert
}
