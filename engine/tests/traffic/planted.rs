//! The planted incidents: two of each detector, after the first week (when
//! baselines have matured and outside pairs are learned), each on calls
//! that should raise its detector and nothing else.

use super::org::{
    account, host, role, runner, vendor, vendor_call, Gen, ATTACKER_NET, BOTO_UA, CLI_UA, EXTERNAL_IDS, STRANGER,
    VENDOR_A, VENDOR_B,
};
use super::records::{iam_user, role_session, Call};

pub(super) fn plant_all(g: &mut Gen) {
    repeated_failures(g);
    unexpected_source_ip(g);
    long_session(g);
    role_enumeration(g);
    external_id_missing(g);
    mfa_missing(g);
    outside_organization(g);
}

fn repeated_failures(g: &mut Gen) {
    // An engineer (from her usual office) tries an admin role seven times
    // in four minutes without the MFA code its trust policy demands.
    let chloe = iam_user(account("identity"), "chloe");
    let t = g.at(9, 10, 11);
    let mut ids = Vec::new();
    let mut first = None;
    for i in 0..7 {
        let call = Call::new(t + i * 35, &role("prod-payments", "OrgAdmin"), "chloe", "192.0.2.31", CLI_UA);
        ids.extend(g.deny(&chloe, &call));
        first.get_or_insert(call);
    }
    if let Some(call) = first {
        g.plant("repeated_failures", "an engineer retrying an admin role without MFA", &chloe.principal, &call, &ids);
    }
    // A Lambda function's role hammering a role in another account.
    let orders = role_session(&role("prod-api", "service-role/orders-role-88594"), "orders", g.at(22, 13, 14), false);
    let t = g.at(22, 14, 15);
    let mut ids = Vec::new();
    let mut first = None;
    for i in 0..6 {
        let call = Call::new(t + i * 25, &role("prod-payments", "payments-admin"), "orders", "100.100.4.20", BOTO_UA);
        ids.extend(g.deny(&orders, &call));
        first.get_or_insert(call);
    }
    if let Some(call) = first {
        g.plant("repeated_failures", "a function's role denied six times", &orders.principal, &call, &ids);
    }
}

fn unexpected_source_ip(g: &mut Gen) {
    // An engineer's access key, stolen, used at night from a VPS network
    // into another account: logged twice, in the export days' one file.
    let dmitri = iam_user(account("identity"), "dmitri");
    let t = g.at(17, 3, 4);
    let ip = host(&mut g.rng, ATTACKER_NET);
    let call = Call::new(t, &role("prod-data", "ReadOnly"), "dmitri", &ip, "python-requests/2.31.0");
    let ids = g.grant(&dmitri, &call);
    g.follow_up(&call, false);
    g.plant("unexpected_source_ip", "a stolen key used cross-account from a VPS", &dmitri.principal, &call, &ids);
    // The reporting service's key, used from somewhere it never runs.
    let reporting = iam_user(account("analytics"), "svc-reporting");
    let t = g.at(25, 13, 14);
    let call = Call::new(t, &role("analytics", "reporting-read"), "reporting", "203.0.113.77", BOTO_UA);
    let ids = g.grant(&reporting, &call);
    g.plant("unexpected_source_ip", "a service key used from a new network", &reporting.principal, &call, &ids);
}

fn long_session(g: &mut Gen) {
    // 12 h on a role that has only ever had one-hour sessions, cross-account.
    let elif = iam_user(account("identity"), "elif");
    let t = g.at(20, 15, 16);
    let mut call = Call::new(t, &role("prod-web", "ReadOnly"), "elif", "192.0.2.54", CLI_UA);
    call.duration_seconds = Some(43_200);
    let ids = g.grant(&elif, &call);
    g.plant("long_session", "12 h on a one-hour role, cross-account", &elif.principal, &call, &ids);
    // The build user asking for 8 h.
    let jenkins = iam_user(account("shared-services"), "jenkins");
    let t = g.at(26, 11, 12);
    let mut call = Call::new(t, &role("dev-api", "jenkins-build"), "jenkins-manual", "100.100.1.10", BOTO_UA);
    call.duration_seconds = Some(28_800);
    let ids = g.grant(&jenkins, &call);
    g.plant("long_session", "8 h for the build role", &jenkins.principal, &call, &ids);
}

fn role_enumeration(g: &mut Gen) {
    // A hijacked CI run guesses role names in the payments account.
    let (caller, run) = runner(g, 12, "storefront");
    g.grant(&caller, &run);
    let session = role_session(&run.role_arn, &run.session, run.time, false);
    let guesses =
        ["OrganizationAccountAccessRole", "admin", "Administrator", "payments-admin", "terraform", "PowerUser", "ops"];
    let mut all = Vec::new();
    let mut first = None;
    for (i, guess) in guesses.iter().enumerate() {
        let call = Call::new(
            run.time + 60 + i as i64 * 14,
            &role("prod-payments", guess),
            &run.session,
            &run.source_ip,
            "aws-cli/1.32.50",
        );
        all.extend(g.deny(&session, &call));
        first.get_or_insert(call);
    }
    if let Some(call) = first {
        g.plant("role_enumeration", "a hijacked CI run guessing roles", &session.principal, &call, &all);
    }
    // An engineer's leaked key probing admin roles across accounts.
    let hiro = iam_user(account("identity"), "hiro");
    let t = g.at(24, 2, 3);
    let ip = host(&mut g.rng, ATTACKER_NET);
    let probes = [
        ("management", "OrganizationAccountAccessRole"),
        ("security", "Admin"),
        ("prod-api", "Admin"),
        ("prod-data", "AWSControlTowerExecution"),
        ("network", "NetworkAdmin"),
        ("log-archive", "Administrator"),
    ];
    let mut all = Vec::new();
    let mut first = None;
    for (i, (target, name)) in probes.iter().enumerate() {
        let call = Call::new(t + i as i64 * 40, &role(target, name), "hiro", &ip, "aws-cli/1.32.50");
        all.extend(g.deny(&hiro, &call));
        first.get_or_insert(call);
    }
    if let Some(call) = first {
        g.plant("role_enumeration", "a leaked key probing admin roles", &hiro.principal, &call, &all);
    }
}

fn external_id_missing(g: &mut Gen) {
    // The confused deputy: another tenant of the trusted vendor pointed the
    // vendor at our role, and the call comes without our ExternalId.
    let a = vendor(VENDOR_A, "vendor-a-poller");
    let t = g.at(14, 10, 11);
    let mut call = vendor_call(g, t, &role("prod-payments", "vendor-a-integration"), "vendor-a-poller", "44.210.5", "");
    call.external_id = None;
    let ids = g.grant(&a, &call);
    g.plant("external_id_missing", "the trusted vendor without our ExternalId", &a.owner_copy_principal(), &call, &ids);
    // The cost tool's usual role, once without its ExternalId.
    let session = "vendor-b-31415926";
    let b = vendor(VENDOR_B, session);
    let t = g.at(23, 3, 4);
    let mut call = vendor_call(g, t, &role("analytics", "vendor-b-readonly"), session, "34.201.7", "");
    call.external_id = None;
    let ids = g.grant(&b, &call);
    g.plant("external_id_missing", "the cost tool without its ExternalId", &b.owner_copy_principal(), &call, &ids);
}

fn mfa_missing(g: &mut Gen) {
    // An engineer's admin role without an MFA code (the role should demand one).
    let farid = iam_user(account("identity"), "farid");
    let t = g.at(11, 9, 10);
    // From his usual office (the branch office network).
    let call = Call::new(t, &role("security", "OrgAdmin"), "farid", "198.51.100.77", CLI_UA);
    let ids = g.grant(&farid, &call);
    g.follow_up(&call, false);
    g.plant("mfa_missing", "an admin role assumed without MFA", &farid.principal, &call, &ids);
    // An automation role chaining into break-glass, no MFA anywhere.
    let automation = role_session(&role("management", "ops-automation"), "runbook-4711", g.at(19, 20, 21), false);
    let t = g.at(19, 21, 22);
    let call = Call::new(t, &role("management", "BreakGlass"), "runbook-4711", "100.100.6.12", BOTO_UA);
    let ids = g.grant(&automation, &call);
    g.plant("mfa_missing", "automation chaining into break-glass", &automation.principal, &call, &ids);
}

fn outside_organization(g: &mut Gen) {
    // An account nobody knows, with the cost tool's leaked ExternalId.
    let session = "s";
    let stranger = vendor(STRANGER, session);
    let t = g.at(15, 4, 5);
    let call = vendor_call(g, t, &role("prod-api", "vendor-b-readonly"), session, "185.220.101", EXTERNAL_IDS[1]);
    let ids = g.grant(&stranger, &call);
    g.plant(
        "outside_organization",
        "an unknown account with a leaked ExternalId",
        &stranger.owner_copy_principal(),
        &call,
        &ids,
    );
    // The cost tool assuming a role it never used.
    let session = "vendor-b-27182818";
    let b = vendor(VENDOR_B, session);
    let t = g.at(27, 3, 4);
    let call = vendor_call(g, t, &role("prod-data", "ReadOnly"), session, "34.201.7", EXTERNAL_IDS[1]);
    let ids = g.grant(&b, &call);
    g.plant("outside_organization", "the cost tool in a role it never used", &b.owner_copy_principal(), &call, &ids);
}
