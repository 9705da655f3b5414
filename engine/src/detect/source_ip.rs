//! `unexpected_source_ip`: a role assumption from outside the static
//! allow-list, or from a network a mature principal has not used lately.
//!
//! Networks are IPv4 /24 and IPv6 /64: one home, office or NAT gateway.
//! Principals that use many networks (CI runners, Lambda, people on the
//! move) are *roaming*: a new network is normal for them, so only the
//! allow-list applies to them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{secs, short_name, within, LATE_HISTORY_SECONDS, LONG_MEMORY_SECONDS};
use crate::alert::{dedup_key, Alert, NewAlert, Severity};
use crate::cloudtrail::{format_rfc3339, AssumeRoleEvent, EpochSeconds, SourceAddress};
use crate::config::UnexpectedSourceIpConfig;
use crate::storage::LazyMap;
use crate::storage::SWEEP_INTERVAL_SECONDS;

pub const DETECTOR: &str = "unexpected_source_ip";
/// Networks kept per principal. Well above any sane `roaming_networks`:
/// past it the principal is roaming and the oldest sightings matter least.
const MAX_NETWORKS_PER_PRINCIPAL: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIpState {
    /// Saved on lines of their own (see [`crate::state`]); read from here
    /// only in format 1 state.
    #[serde(default, skip_serializing)]
    pub principals: LazyMap<Baseline>,
    /// Watermark of the last prune. A stored baseline is pruned to it when
    /// first used, which gives what pruning it every time would have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_at: Option<EpochSeconds>,
    /// Watermark of the last sweep over every baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_at: Option<EpochSeconds>,
    /// `network_memory_seconds` as of the last prune: when saved baselines
    /// fall due for pruning is worked out with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_memory_seconds: Option<u64>,
}

/// What a principal's successful role assumptions have taught. Saved as
/// an array (see the `Serialize` below); read from an object too.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    pub first_seen: EpochSeconds,
    pub last_seen: EpochSeconds,
    #[serde(default)]
    pub networks: Vec<Sighting>,
    /// Roaming until this event time, unless it qualifies again.
    #[serde(default)]
    pub roaming_until: Option<EpochSeconds>,
    /// The watermark it was last pruned to, while in memory: a baseline is
    /// pruned once per input, at its first use, as pruning every baseline
    /// after every input would have left it. Pruned again within the input,
    /// an old file's own sightings would be forgotten as they are learned.
    #[serde(skip)]
    pruned_to: Option<EpochSeconds>,
}

/// `[first_seen,last_seen,[sightings…]]`, `roaming_until` fourth when set:
/// 100,000 principals fill a state base, and as an object the field names
/// were 36 of a typical principal's 315 bytes, copied and checksummed with
/// every new base. Positional, in the order the derived `Deserialize` reads
/// a sequence.
impl Serialize for Baseline {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        three_and_optional_fourth(
            serializer,
            (&self.first_seen, &self.last_seen, &self.networks),
            self.roaming_until.as_ref(),
        )
    }
}

/// An array of three fields and a fourth when there is one: how a baseline
/// and a sighting are saved.
fn three_and_optional_fourth<S: serde::Serializer>(
    serializer: S,
    (first, second, third): (&impl Serialize, &impl Serialize, &impl Serialize),
    fourth: Option<&impl Serialize>,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeTuple;
    let mut fields = serializer.serialize_tuple(3 + usize::from(fourth.is_some()))?;
    fields.serialize_element(first)?;
    fields.serialize_element(second)?;
    fields.serialize_element(third)?;
    if let Some(fourth) = fourth {
        fields.serialize_element(fourth)?;
    }
    fields.end()
}

/// What was learned, not when it was last pruned in memory.
impl PartialEq for Baseline {
    fn eq(&self, other: &Self) -> bool {
        (self.first_seen, self.last_seen, &self.networks, self.roaming_until)
            == (other.first_seen, other.last_seen, &other.networks, other.roaming_until)
    }
}

impl Eq for Baseline {}

/// Saved as an array, `["203.0.113.0/24",first,last]` with the unjudged use
/// fourth when there is one (see the `Serialize` below); read from an
/// object too, as state before it was saved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Sighting {
    #[serde(rename = "net")]
    pub network: String,
    pub first: EpochSeconds,
    pub last: EpochSeconds,
    /// The network's first use, when it came while the principal was still
    /// learning. A late file can move `first_seen` earlier and make that use
    /// mature after all; then it is judged again, whatever the file order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unjudged: Option<Occurrence>,
}

/// The parts of a role assumption an alert quotes. Saved as an array in
/// field order, `role_arn` `null` when absent; read from an object too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Occurrence {
    #[serde(rename = "id")]
    pub event_id: String,
    #[serde(rename = "t")]
    pub event_time: EpochSeconds,
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(rename = "name")]
    pub event_name: String,
    #[serde(rename = "acct")]
    pub account_id: String,
}

/// A roaming principal keeps dozens of sightings and every invocation that
/// uses it writes them all again: as objects, the field names were a third
/// of their bytes and most of the time it took to write them. Positional,
/// in the order the derived `Deserialize` reads a sequence.
impl Serialize for Sighting {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        three_and_optional_fourth(serializer, (&self.network, &self.first, &self.last), self.unjudged.as_ref())
    }
}

impl Serialize for Occurrence {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.event_id, self.event_time, &self.ip, &self.role_arn, &self.event_name, &self.account_id)
            .serialize(serializer)
    }
}

impl Occurrence {
    fn of(event: &AssumeRoleEvent) -> Occurrence {
        Occurrence {
            event_id: event.event_id.clone(),
            event_time: event.event_time,
            ip: event.source.as_text().unwrap_or_default(),
            role_arn: event.role_arn.clone(),
            event_name: event.event_name.clone(),
            account_id: event.account_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFinding {
    pub kind: FindingKind,
    pub network: String,
    pub occurrence: Occurrence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    OutsideAllowList,
    NewNetwork { first_seen: EpochSeconds, known_networks: usize },
}

/// The /24 or /64 an address belongs to.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        // Once per role assumption: digits pushed directly, where `Display`
        // through `IpNet` was a tenth of the detectors' time.
        IpAddr::V4(v4) => {
            let mut network = String::with_capacity(18);
            for octet in &v4.octets()[..3] {
                push_decimal(&mut network, *octet);
                network.push('.');
            }
            network.push_str("0/24");
            network
        }
        IpAddr::V6(_) => IpNet::new(ip, 64).map(|n| n.trunc().to_string()).unwrap_or_else(|_| ip.to_string()),
    }
}

fn push_decimal(text: &mut String, value: u8) {
    if value >= 100 {
        text.push(char::from(b'0' + value / 100));
    }
    if value >= 10 {
        text.push(char::from(b'0' + value / 10 % 10));
    }
    text.push(char::from(b'0' + value % 10));
}

impl SourceIpState {
    /// Checks a successful role assumption, then learns from it. Usually
    /// one finding at most; more when a late file moves the principal's
    /// first sighting earlier and earlier uses turn out to be mature.
    pub fn observe(
        &mut self,
        config: &UnexpectedSourceIpConfig,
        allowed: &[IpNet],
        event: &AssumeRoleEvent,
    ) -> Vec<IpFinding> {
        let mut findings = Vec::new();
        // Failed calls teach nothing: an attacker must not be able to seed
        // a baseline with denied calls. Failures are repeated_failures' job.
        if !event.succeeded() {
            return findings;
        }
        let SourceAddress::Ip(ip) = event.source else {
            return findings;
        };
        let t = event.event_time;
        let network = network_of(ip);
        let learning = secs(config.learning_period_seconds);
        let memory = secs(config.network_memory_seconds);

        let pruned_at = self.pruned_at;
        let baseline = self.principals.get_or_insert_with(
            &event.principal,
            |known| match pruned_at {
                Some(w) if known.pruned_to != Some(w) => {
                    known.pruned_to = Some(w);
                    known.prune(memory, w)
                }
                _ => true,
            },
            || Baseline {
                first_seen: t,
                last_seen: t,
                networks: Vec::new(),
                roaming_until: None,
                pruned_to: pruned_at,
            },
        );
        let known = baseline.networks.iter().any(|s| {
            s.network == network
                && (within(s.first, t, memory) || within(s.last, t, memory) || (s.first <= t && t <= s.last))
        });
        let mature = t - baseline.first_seen > learning;
        let known_networks = baseline.networks.len();
        let first_seen = baseline.first_seen;
        baseline.learn(&network, t, || (!mature).then(|| Occurrence::of(event)));
        if baseline.qualifies_as_roaming(t, learning, config.roaming_networks) {
            baseline.roaming_until = Some(baseline.roaming_until.unwrap_or(t).max(t + memory));
            // A roaming principal's new networks are normal: nothing to judge again,
            // and a roaming CI identity costs a flag, not an occurrence per network.
            baseline.networks.iter_mut().for_each(|s| s.unjudged = None);
        }
        let roaming = baseline.roaming_until.is_some_and(|until| t <= until);
        if baseline.first_seen < first_seen {
            findings.extend(baseline.judge_again(learning, config.roaming_networks));
        }

        if !allowed.is_empty() && !allowed.iter().any(|net| net.contains(&ip)) {
            findings.push(IpFinding {
                kind: FindingKind::OutsideAllowList,
                network,
                occurrence: Occurrence::of(event),
            });
        } else if mature && !known && !roaming {
            findings.push(IpFinding {
                kind: FindingKind::NewNetwork { first_seen, known_networks },
                network,
                occurrence: Occurrence::of(event),
            });
        }
        findings
    }

    /// Principals roaming at `at`, for the run summary.
    /// Decodes every stored baseline, so it is slow with many principals;
    /// the run summary is its only user.
    pub fn roaming_at(&self, at: EpochSeconds) -> usize {
        let mut roaming = 0;
        self.principals.for_each_value(|b| roaming += usize::from(b.roaming_until.is_some_and(|u| at <= u)));
        roaming
    }

    /// Prunes a baseline when it is next used, and all of them once per
    /// `SWEEP_INTERVAL_SECONDS`: pruning every baseline after every input
    /// would cost as much as the input with many principals. Pruning is
    /// monotone in the watermark (pruning at an older one first changes
    /// nothing), so a baseline pruned late ends as if pruned every time.
    pub fn prune(&mut self, config: &UnexpectedSourceIpConfig, watermark: EpochSeconds) {
        if self.swept_at.is_none_or(|at| watermark - at >= SWEEP_INTERVAL_SECONDS) {
            let memory = secs(config.network_memory_seconds);
            self.principals.sweep(watermark, |b| {
                b.pruned_to = Some(watermark);
                b.prune(memory, watermark)
            });
            self.swept_at = Some(watermark);
        }
        self.pruned_at = Some(watermark);
        self.network_memory_seconds = Some(config.network_memory_seconds);
    }

    /// When a baseline next changes by pruning, for saving it (see
    /// [`LazyMap::sweep`]). Saved with another memory than the one it is
    /// swept with, a baseline is pruned early (harmless) or late, when used.
    pub fn due(&self) -> impl Fn(&Baseline) -> EpochSeconds {
        let memory =
            secs(self.network_memory_seconds.unwrap_or(UnexpectedSourceIpConfig::default().network_memory_seconds));
        move |baseline| baseline.prune_due(memory)
    }
}

impl Baseline {
    /// The first watermark at which [`Baseline::prune`] changes it.
    fn prune_due(&self, memory: i64) -> EpochSeconds {
        let after_memory = |t: EpochSeconds| t.saturating_add(memory).saturating_add(LATE_HISTORY_SECONDS + 1);
        let lasting = self.last_seen - self.first_seen >= 86_400;
        let forgotten =
            if lasting { self.last_seen.saturating_add(LONG_MEMORY_SECONDS + 1) } else { after_memory(self.last_seen) };
        let network = self.networks.iter().map(|s| after_memory(s.last)).min();
        let roaming = self.roaming_until.map(after_memory);
        [Some(forgotten), network, roaming].into_iter().flatten().min().unwrap_or(EpochSeconds::MAX)
    }

    /// Forgets what is past the horizon at `watermark`; false when nothing
    /// worth keeping is left.
    fn prune(&mut self, memory: i64, watermark: EpochSeconds) -> bool {
        let horizon = watermark - memory - LATE_HISTORY_SECONDS;
        self.networks.retain(|s| s.last >= horizon);
        if self.roaming_until.is_some_and(|u| u < horizon) {
            self.roaming_until = None;
        }
        // A principal seen over more than a day keeps its first-seen time
        // long after its networks are forgotten, so a credential that
        // returns after months from a new network is still checked.
        // One-off sessions (CI, instances) are dropped with their networks.
        let lasting = self.last_seen - self.first_seen >= 86_400;
        self.last_seen >= if lasting { watermark - LONG_MEMORY_SECONDS } else { horizon }
    }

    /// Records a use of `network` at `t`; `unjudged` is this use when the
    /// principal was still learning (built only when it is kept).
    fn learn(&mut self, network: &str, t: EpochSeconds, unjudged: impl FnOnce() -> Option<Occurrence>) {
        self.first_seen = self.first_seen.min(t);
        self.last_seen = self.last_seen.max(t);
        if let Some(s) = self.networks.iter_mut().find(|s| s.network == network) {
            if t < s.first {
                // An earlier first use replaces the later one.
                s.first = t;
                s.unjudged = unjudged();
            }
            s.last = s.last.max(t);
            return;
        }
        self.networks.push(Sighting { network: network.to_owned(), first: t, last: t, unjudged: unjudged() });
        if self.networks.len() > MAX_NETWORKS_PER_PRINCIPAL {
            if let Some(oldest) = self.networks.iter().enumerate().min_by_key(|(_, s)| s.last).map(|(i, _)| i) {
                self.networks.swap_remove(oldest);
            }
        }
    }

    /// After `first_seen` moved earlier: networks whose first use is now
    /// past the learning period were new when used, unless roaming then.
    fn judge_again(&mut self, learning: i64, roaming_networks: u64) -> Vec<IpFinding> {
        let first_seen = self.first_seen;
        let due: Vec<usize> = (0..self.networks.len())
            .filter(|&i| self.networks[i].unjudged.is_some() && self.networks[i].first - first_seen > learning)
            .collect();
        let mut findings = Vec::new();
        for i in due {
            let at = self.networks[i].first;
            let Some(occurrence) = self.networks[i].unjudged.take() else { continue };
            let roaming = self.roaming_until.is_some_and(|u| at <= u && at >= u - LONG_MEMORY_SECONDS)
                || self.qualifies_as_roaming(at, learning, roaming_networks);
            if roaming {
                continue;
            }
            let known_networks = self.networks.iter().filter(|s| s.first < at).count();
            findings.push(IpFinding {
                kind: FindingKind::NewNetwork { first_seen, known_networks },
                network: self.networks[i].network.clone(),
                occurrence,
            });
        }
        findings
    }

    /// More than `limit` networks within a learning-period span that holds
    /// `t` (checked on the spans ending and starting at `t`).
    fn qualifies_as_roaming(&self, t: EpochSeconds, learning: i64, limit: u64) -> bool {
        let count_in = |lo: i64, hi: i64| self.networks.iter().filter(|s| s.last >= lo && s.first <= hi).count() as u64;
        count_in(t - learning, t) > limit || count_in(t, t + learning) > limit
    }
}

/// `caller_account` is the principal's: one principal, one account.
pub fn alert(
    config: &UnexpectedSourceIpConfig,
    principal: &str,
    caller_account: Option<&str>,
    finding: &IpFinding,
) -> Alert {
    let who = short_name(principal);
    let seen = &finding.occurrence;
    let ip = seen.ip.as_str();
    let network = finding.network.as_str();
    let role = seen.role_arn.as_deref().unwrap_or("a role");
    let (reason, severity, title, summary) = match finding.kind {
        FindingKind::OutsideAllowList => (
            "outside_allowed_cidrs",
            Severity::High,
            format!("{who} assumed a role from {ip}, outside the allowed networks"),
            format!(
                "{principal} assumed {role} from {ip}, which is outside allowed_cidrs. Role credentials used from an \
                 unapproved network can mean stolen credentials. First check with the owner whether they made this call from {ip}."
            ),
        ),
        FindingKind::NewNetwork { first_seen, known_networks } => (
            "new_network",
            Severity::Medium,
            format!("{who} assumed a role from new network {network}"),
            format!(
                "{principal} assumed {role} from {ip} ({network}), a network it has not used in the last {days} days. \
                 It has been seen since {since} on {known_networks} other network(s). A new network for an established \
                 identity is how stolen credentials look; travel or a new ISP looks the same. \
                 First check with the owner whether they made this call from {ip}.",
                days = config.network_memory_seconds / 86_400,
                since = format_rfc3339(first_seen),
            ),
        ),
    };
    let mut alert = Alert::new(NewAlert {
        detector: DETECTOR,
        severity,
        title: &title,
        summary: &summary,
        // One key per principal and reason, not per network: a principal that
        // starts roaming would otherwise page once per network until it
        // qualifies as roaming.
        dedup_key: dedup_key(DETECTOR, &[principal, reason]),
        account_id: &seen.account_id,
        principal,
        caller_account,
        role_arn: seen.role_arn.as_deref(),
        source_ip: Some(ip),
        event_name: &seen.event_name,
        first_event_time: seen.event_time,
        last_event_time: seen.event_time,
    })
    .with_detail("network", network)
    .with_detail("reason", reason);
    if let FindingKind::NewNetwork { known_networks, first_seen } = finding.kind {
        alert = alert
            .with_detail("known_networks", known_networks)
            .with_detail("principal_first_seen", format_rfc3339(first_seen))
            .with_detail("learning_period_seconds", config.learning_period_seconds);
    }
    alert.add_event(&seen.event_id);
    alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::from_ip;

    const DAY: i64 = 86_400;

    #[test]
    fn baselines_and_sightings_are_saved_as_arrays_and_read_back_in_either_shape() {
        let unjudged = Occurrence {
            event_id: "e1".to_owned(),
            event_time: 7,
            ip: "203.0.113.9".to_owned(),
            role_arn: None,
            event_name: "AssumeRole".to_owned(),
            account_id: "111122223333".to_owned(),
        };
        let baseline = Baseline {
            first_seen: 1,
            last_seen: 9,
            networks: vec![
                Sighting { network: "203.0.113.0/24".to_owned(), first: 7, last: 9, unjudged: Some(unjudged) },
                Sighting { network: "2001:db8::/64".to_owned(), first: 2, last: 3, unjudged: None },
            ],
            roaming_until: None,
            pruned_to: None,
        };
        let saved = serde_json::to_string(&baseline).unwrap();
        assert_eq!(
            saved,
            r#"[1,9,[["203.0.113.0/24",7,9,["e1",7,"203.0.113.9",null,"AssumeRole","111122223333"]],["2001:db8::/64",2,3]]]"#
        );
        assert_eq!(serde_json::from_str::<Baseline>(&saved).unwrap(), baseline);
        let roaming = Baseline { roaming_until: Some(99), ..baseline.clone() };
        let saved_roaming = serde_json::to_string(&roaming).unwrap();
        assert!(saved_roaming.ends_with(",99]"), "{saved_roaming}");
        assert_eq!(serde_json::from_str::<Baseline>(&saved_roaming).unwrap(), roaming);
        // As state written before principals were arrays.
        let as_object = r#"{"first_seen":1,"last_seen":9,"networks":[["203.0.113.0/24",7,9,["e1",7,"203.0.113.9",null,"AssumeRole","111122223333"]],["2001:db8::/64",2,3]]}"#;
        assert_eq!(serde_json::from_str::<Baseline>(as_object).unwrap(), baseline);
        // As state written before sightings were arrays.
        let as_objects = r#"{"first_seen":1,"last_seen":9,"networks":[
            {"net":"203.0.113.0/24","first":7,"last":9,"unjudged":{"id":"e1","t":7,"ip":"203.0.113.9","name":"AssumeRole","acct":"111122223333"}},
            {"net":"2001:db8::/64","first":2,"last":3}]}"#;
        assert_eq!(serde_json::from_str::<Baseline>(as_objects).unwrap(), baseline);
    }

    proptest::proptest! {
        /// A sweep skips saved baselines not yet due, so pruning before the
        /// due time must change nothing, and at it something.
        #[test]
        fn a_baseline_is_unchanged_by_pruning_until_it_is_due(
            first_seen in 0i64..500 * DAY,
            span in 0i64..10 * DAY,
            networks in proptest::collection::vec((0i64..500 * DAY, 0i64..DAY), 0..4),
            roaming in proptest::option::of(0i64..600 * DAY),
            memory_days in 1i64..100,
        ) {
            let memory = memory_days * DAY;
            let baseline = Baseline {
                first_seen,
                last_seen: first_seen + span,
                networks: networks
                    .iter()
                    .enumerate()
                    .map(|(i, &(first, len))| Sighting { network: format!("n{i}"), first, last: first + len, unjudged: None })
                    .collect(),
                roaming_until: roaming,
                pruned_to: None,
            };
            let due = baseline.prune_due(memory);
            let mut before = baseline.clone();
            proptest::prop_assert!(before.prune(memory, due - 1), "kept before it is due");
            proptest::prop_assert_eq!(&before, &baseline);
            let mut at = baseline.clone();
            let kept = at.prune(memory, due);
            proptest::prop_assert!(!kept || at != baseline, "pruning at the due time changes it");
        }
    }

    /// The single finding of an observation, if any.
    fn one(mut findings: Vec<IpFinding>) -> Option<IpFinding> {
        assert!(findings.len() <= 1, "{findings:?}");
        findings.pop()
    }

    #[test]
    fn a_baseline_arriving_late_makes_an_earlier_processed_use_new() {
        let c = cfg();
        let mut s = SourceIpState::default();
        // Day 10 from a new network is processed first: the principal looks brand new.
        assert_eq!(one(s.observe(&c, &[], &from_ip("alice", "attack", 10 * DAY, "203.0.113.66"))), None);
        // Its history from day 0 arrives late: the day-10 use was mature and new after all.
        let got = s.observe(&c, &[], &from_ip("alice", "old", 0, "198.51.100.7"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].occurrence.event_id, "attack");
        assert_eq!(got[0].network, "203.0.113.0/24");
        // Judged once: more late history raises nothing more.
        assert!(s.observe(&c, &[], &from_ip("alice", "older", DAY / 2, "198.51.100.8")).is_empty());
    }

    fn cfg() -> UnexpectedSourceIpConfig {
        UnexpectedSourceIpConfig::default()
    }

    #[test]
    fn learning_period_stays_quiet_then_a_new_network_alerts() {
        let c = cfg();
        let mut s = SourceIpState::default();
        assert_eq!(one(s.observe(&c, &[], &from_ip("alice", "1", 0, "198.51.100.7"))), None);
        // During learning: a second network is simply learned.
        assert_eq!(one(s.observe(&c, &[], &from_ip("alice", "2", 3 * DAY, "203.0.113.9"))), None);
        // Mature, known networks: quiet (same /24, other host).
        assert_eq!(one(s.observe(&c, &[], &from_ip("alice", "3", 8 * DAY, "198.51.100.99"))), None);
        let got = one(s.observe(&c, &[], &from_ip("alice", "4", 9 * DAY, "192.0.2.50")));
        assert!(
            matches!(got, Some(IpFinding { kind: FindingKind::NewNetwork { .. }, ref network, .. }) if network == "192.0.2.0/24"),
            "{got:?}"
        );
    }

    #[test]
    fn maturity_is_strictly_after_the_learning_period() {
        let c = cfg();
        let mut s = SourceIpState::default();
        one(s.observe(&c, &[], &from_ip("alice", "1", 0, "198.51.100.7")));
        assert_eq!(one(s.observe(&c, &[], &from_ip("alice", "2", 7 * DAY, "192.0.2.1"))), None);
        let got = one(s.observe(&c, &[], &from_ip("alice", "3", 7 * DAY + 1, "203.0.113.1")));
        assert!(matches!(got, Some(IpFinding { kind: FindingKind::NewNetwork { .. }, .. })), "{got:?}");
    }

    #[test]
    fn roaming_principals_stay_quiet_but_the_allow_list_still_applies() {
        let c = cfg();
        let mut s = SourceIpState::default();
        for i in 0..11 {
            assert_eq!(
                one(s.observe(
                    &c,
                    &[],
                    &from_ip("ci", &format!("l{i}"), i64::from(i) * 3600, &format!("198.51.{i}.1"))
                )),
                None
            );
        }
        assert_eq!(s.roaming_at(DAY), 1);
        assert_eq!(one(s.observe(&c, &[], &from_ip("ci", "new", 20 * DAY, "203.0.113.1"))), None);
        let allowed: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(matches!(
            one(s.observe(&c, &allowed, &from_ip("ci", "x", 21 * DAY, "203.0.113.2"))),
            Some(IpFinding { kind: FindingKind::OutsideAllowList, .. })
        ));
        assert_eq!(one(s.observe(&c, &allowed, &from_ip("ci", "y", 21 * DAY, "10.1.2.3"))), None);
    }

    #[test]
    fn roaming_ends_when_memory_passes_without_qualifying_again() {
        let c = cfg();
        let mut s = SourceIpState::default();
        for i in 0..11 {
            one(s.observe(&c, &[], &from_ip("ci", &format!("l{i}"), i64::from(i), &format!("198.51.{i}.1"))));
        }
        // Back on one network for long after the roaming memory expires.
        let end = 100 * DAY;
        for d in (20..100).step_by(5) {
            one(s.observe(&c, &[], &from_ip("ci", &format!("d{d}"), d * DAY, "198.51.0.1")));
        }
        s.prune(&c, end);
        let got = one(s.observe(&c, &[], &from_ip("ci", "late", end + DAY, "203.0.113.5")));
        assert!(matches!(got, Some(IpFinding { kind: FindingKind::NewNetwork { .. }, .. })), "{got:?}");
    }

    #[test]
    fn a_dormant_principal_returning_from_a_new_network_alerts() {
        let c = cfg();
        let mut s = SourceIpState::default();
        for d in 0..10 {
            one(s.observe(&c, &[], &from_ip("alice", &format!("a{d}"), d * DAY, "198.51.100.7")));
        }
        // Someone else moves the state's newest event far ahead.
        one(s.observe(&c, &[], &from_ip("bob", "b", 140 * DAY, "192.0.2.1")));
        s.prune(&c, 140 * DAY);
        let got = one(s.observe(&c, &[], &from_ip("alice", "back", 141 * DAY, "203.0.113.99")));
        assert!(matches!(got, Some(IpFinding { kind: FindingKind::NewNetwork { .. }, .. })), "{got:?}");
    }

    #[test]
    fn late_files_do_not_make_known_networks_new() {
        let c = cfg();
        let mut s = SourceIpState::default();
        one(s.observe(&c, &[], &from_ip("alice", "1", 0, "198.51.100.7")));
        one(s.observe(&c, &[], &from_ip("alice", "2", 10 * DAY, "198.51.100.7")));
        // An older event from the same network, processed late.
        assert_eq!(one(s.observe(&c, &[], &from_ip("alice", "3", 9 * DAY, "198.51.100.8"))), None);
    }

    #[test]
    fn services_and_unparsable_addresses_are_not_checked() {
        let c = cfg();
        let allowed: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut s = SourceIpState::default();
        for (i, src) in ["lambda.amazonaws.com", "AWS Internal", "06.237.252.245"].iter().enumerate() {
            assert_eq!(one(s.observe(&c, &allowed, &from_ip("svc", &i.to_string(), 0, src))), None);
        }
        assert!(s.principals.is_empty());
    }

    #[test]
    fn ipv6_networks_are_slash_64() {
        assert_eq!(network_of("2001:db8:1:2:3:4:5:6".parse().unwrap()), "2001:db8:1:2::/64");
        assert_eq!(network_of("203.0.113.77".parse().unwrap()), "203.0.113.0/24");
        // Every octet width, against the general formatting.
        for text in ["0.0.0.0", "9.10.99.1", "100.255.0.7", "10.1.200.255"] {
            let ip: IpAddr = text.parse().unwrap();
            let general = IpNet::new(ip, 24).unwrap().trunc().to_string();
            assert_eq!(network_of(ip), general, "{text}");
        }
    }
}
