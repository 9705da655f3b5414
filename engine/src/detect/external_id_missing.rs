//! `external_id_missing`: a successful `AssumeRole` by a caller account
//! outside the organisation with no `externalId`. The role's trust policy
//! lets a third party in without an ExternalId condition: the confused
//! deputy. Only the presence of an external id is ever looked at; the
//! parser drops its value unread.

use super::organization::Organization;
use super::{is_aws_own, short_name};
use crate::alert::{dedup_key, Alert, NewAlert, Severity};
use crate::cloudtrail::AssumeRoleEvent;
use crate::config::ExternalIdConfig;

pub const DETECTOR: &str = "external_id_missing";

/// Whether `event` lets an outside account in without an external id.
pub fn observe(org: &Organization<'_>, event: &AssumeRoleEvent) -> bool {
    let Some(caller) = event.caller_account.as_deref() else { return false };
    event.succeeded()
        && event.event_name == "AssumeRole"
        && !event.external_id_given
        && event.role_arn.is_some()
        && !is_aws_own(event)
        && !org.discovering(event.event_time)
        && !org.is_inside(caller)
}

pub fn alert(config: &ExternalIdConfig, event: &AssumeRoleEvent) -> Alert {
    let role = event.role_arn.as_deref().unwrap_or_default();
    let caller = event.caller_account.as_deref().unwrap_or_default();
    let mut alert = Alert::new(NewAlert {
        detector: DETECTOR,
        severity: Severity::High,
        title: &format!("Outside account {caller} assumed {} without an ExternalId", short_name(role)),
        summary: &format!(
            "Account {caller}, outside the organisation, assumed {role} without an ExternalId. The role's trust policy lets \
             that account in without an sts:ExternalId condition, so any customer of the same third party could make it \
             act on this account (the confused deputy). Raised once per role and caller account every {days} days. \
             First check the role's trust policy: add a Condition StringEquals sts:ExternalId with the value the third \
             party gave you, or remove {caller} if nobody expects it.",
            days = config.repeat_seconds / 86_400,
        ),
        dedup_key: dedup_key(DETECTOR, &[role, caller]),
        account_id: &event.account_id,
        principal: &event.principal,
        caller_account: Some(caller),
        role_arn: Some(role),
        source_ip: event.source.as_text().as_deref(),
        event_name: &event.event_name,
        first_event_time: event.event_time,
        last_event_time: event.event_time,
    })
    .with_detail("repeat_seconds", config.repeat_seconds)
    .with_detail("external_id_given", false);
    alert.add_event(&event.event_id);
    alert
}
