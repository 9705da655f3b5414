//! `long_session`: a role assumption asking for more than
//! `max_duration_seconds`, unless the same role was granted a session at
//! least as long at another time within `habitual_seconds` of it (before or
//! after, in event time). Long sessions keep stolen credentials useful for
//! longer; a role that always gets them is routine, not news.

use serde::{Deserialize, Serialize};

use super::{secs, short_name, within, LATE_HISTORY_SECONDS};
use crate::alert::{dedup_key, Alert, NewAlert, Severity};
use crate::cloudtrail::{AssumeRoleEvent, EpochSeconds};
use crate::config::LongSessionConfig;
use crate::storage::LazyMap;
use crate::storage::{HorizonPruning, Timed};

pub const DETECTOR: &str = "long_session";
/// STS's own default when a request names no `DurationSeconds`.
pub const DEFAULT_DURATION_SECONDS: u64 = 3600;
/// Long grants kept per role; the newest win. Thinning (see
/// [`thin_redundant`]) keeps a habitual role far below this.
const MAX_GRANTS_PER_ROLE: usize = 512;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongSessionState {
    /// Granted sessions longer than `max_duration_seconds`, per role,
    /// sorted. Saved on lines of their own (see [`crate::state`]); read
    /// from here only in state of formats 1 and 2.
    #[serde(default, skip_serializing)]
    pub by_role: LazyMap<Vec<Grant>>,
    #[serde(default)]
    pub pruning: HorizonPruning,
}

/// A long session granted, saved as `[time, duration, event]`: roles that
/// habitually get long sessions keep hundreds, and every invocation that
/// sees one reads and writes them all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub time: EpochSeconds,
    pub duration_seconds: u64,
    /// xxh3-64 of the event id: only ever compared, to tell the same event
    /// seen again from another one, so 8 bytes do instead of 36.
    pub event: u64,
}

impl Timed for Grant {
    fn time(&self) -> EpochSeconds {
        self.time
    }
}

impl Grant {
    pub fn event_key(event_id: &str) -> u64 {
        twox_hash::XxHash3_64::oneshot(event_id.as_bytes())
    }
}

impl Serialize for Grant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.time, self.duration_seconds, self.event).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Grant {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GrantVisitor)
    }
}

/// Reads `[time, duration, event]`, and `{"t":…,"d":…,"id":"…"}` as the
/// first release saved grants.
struct GrantVisitor;

impl<'de> serde::de::Visitor<'de> for GrantVisitor {
    type Value = Grant;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a grant: [time, duration, event] or {\"t\", \"d\", \"id\"}")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Grant, A::Error> {
        let missing = |n| serde::de::Error::invalid_length(n, &self);
        let time = seq.next_element()?.ok_or_else(|| missing(0))?;
        let duration_seconds = seq.next_element()?.ok_or_else(|| missing(1))?;
        let event = seq.next_element()?.ok_or_else(|| missing(2))?;
        Ok(Grant { time, duration_seconds, event })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Grant, A::Error> {
        let (mut time, mut duration_seconds, mut event) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "t" => time = Some(map.next_value()?),
                "d" => duration_seconds = Some(map.next_value()?),
                "id" => event = Some(Grant::event_key(&map.next_value::<String>()?)),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let missing = serde::de::Error::missing_field;
        Ok(Grant {
            time: time.ok_or_else(|| missing("t"))?,
            duration_seconds: duration_seconds.ok_or_else(|| missing("d"))?,
            event: event.ok_or_else(|| missing("id"))?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongFinding {
    pub duration_seconds: u64,
}

impl LongSessionState {
    pub fn observe(&mut self, config: &LongSessionConfig, event: &AssumeRoleEvent) -> Option<LongFinding> {
        // A refused request granted nothing; only sessions that exist count.
        if !event.succeeded() {
            return None;
        }
        let role = event.role_arn.as_deref()?;
        let duration = event.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS);
        if duration <= config.max_duration_seconds {
            return None;
        }
        let habitual = secs(config.habitual_seconds);
        let grants = self.pruning.entry(&mut self.by_role, role);
        // Grants read from the first release were sorted by event id, not its hash.
        if !grants.is_sorted() {
            grants.sort_unstable();
        }
        let this_event = Grant::event_key(&event.event_id);
        let routine = config.habitual_seconds > 0
            && grants.iter().any(|g| {
                g.event != this_event && g.duration_seconds >= duration && within(g.time, event.event_time, habitual)
            });
        let grant = Grant { time: event.event_time, duration_seconds: duration, event: this_event };
        if let Err(at) = grants.binary_search(&grant) {
            grants.insert(at, grant);
            // Only a hand-edited state holds more; thinning is quadratic in the worst case.
            if grants.len() > 2 * MAX_GRANTS_PER_ROLE {
                grants.drain(..grants.len() - 2 * MAX_GRANTS_PER_ROLE);
            }
            thin_redundant(grants, habitual);
            if grants.len() > MAX_GRANTS_PER_ROLE {
                grants.drain(..grants.len() - MAX_GRANTS_PER_ROLE);
            }
        }
        (!routine).then_some(LongFinding { duration_seconds: duration })
    }

    pub fn prune(&mut self, config: &LongSessionConfig, watermark: EpochSeconds) {
        let horizon = watermark - secs(config.habitual_seconds) - LATE_HISTORY_SECONDS;
        self.pruning.prune(&mut self.by_role, horizon);
    }
}

/// Drops every grant whose absence changes no answer `observe` can give:
/// one with two other grants at least as long, one no later and one no
/// earlier than it, at most `habitual` apart. Any event within `habitual`
/// of the dropped grant is also within it of one of those two (of the
/// other, when the event is one of them). A role granted long sessions
/// every hour then keeps a few grants a fortnight instead of hundreds,
/// and every invocation reads and writes far less.
///
/// Answers stay the same for events as old as the late history: a witness
/// pruned by time is older than the late history and `habitual` together.
/// A larger `habitual_seconds` later keeps them the same; a smaller one
/// may turn some old grants' habit into alerts. So may two different
/// grants under one event id (a forged or broken log): thinning can add
/// an alert, never lose one, as it only ever drops witnesses.
fn thin_redundant(grants: &mut Vec<Grant>, habitual: i64) {
    // One pass: grants before `kept` stay, those from `next` on are still to
    // be judged, each against the grants kept so far and those after it.
    let mut kept = 0;
    for next in 0..grants.len() {
        let (before, rest) = grants.split_at(next);
        if !is_redundant(&before[..kept], &rest[0], &rest[1..], habitual) {
            grants.swap(kept, next);
            kept += 1;
        }
    }
    grants.truncate(kept);
}

/// Whether `grant` has the two witnesses [`thin_redundant`] needs among
/// the grants `before` and `after` it (sorted by time); only grants within
/// `habitual` are looked at.
fn is_redundant(before: &[Grant], grant: &Grant, after: &[Grant], habitual: i64) -> bool {
    let Some(earlier) = before
        .iter()
        .rev()
        .take_while(|g| within(g.time, grant.time, habitual))
        .find(|g| g.duration_seconds >= grant.duration_seconds)
    else {
        return false;
    };
    after
        .iter()
        .take_while(|g| within(g.time, earlier.time, habitual))
        .any(|g| g.duration_seconds >= grant.duration_seconds)
}

pub fn alert(config: &LongSessionConfig, event: &AssumeRoleEvent, finding: &LongFinding) -> Alert {
    let role = event.role_arn.as_deref().unwrap_or_default();
    let hours = finding.duration_seconds as f64 / 3600.0;
    let mut alert = Alert::new(NewAlert {
        detector: DETECTOR,
        severity: Severity::Medium,
        title: &format!("{}s session requested for role {}", finding.duration_seconds, short_name(role)),
        summary: &format!(
            "{principal} was granted a {duration} s ({hours:.1} h) session on {role}, above max_duration_seconds {max}, and the role \
             was not granted a session this long within {habit_days} days either side. Long sessions keep stolen credentials useful. \
             First check with the caller's owner that the job needed a session this long.",
            principal = event.principal,
            duration = finding.duration_seconds,
            max = config.max_duration_seconds,
            habit_days = config.habitual_seconds / 86_400,
        ),
        // With habitual_seconds = 0 every long request is its own incident.
        dedup_key: if config.habitual_seconds == 0 {
            dedup_key(DETECTOR, &[role, &finding.duration_seconds.to_string(), &event.event_id])
        } else {
            dedup_key(DETECTOR, &[role, &finding.duration_seconds.to_string()])
        },
        account_id: &event.account_id,
        principal: &event.principal,
        caller_account: event.caller_account.as_deref(),
        role_arn: Some(role),
        source_ip: event.source.as_text().as_deref(),
        event_name: &event.event_name,
        first_event_time: event.event_time,
        last_event_time: event.event_time,
    })
    .with_detail("duration_seconds", finding.duration_seconds)
    .with_detail("max_duration_seconds", config.max_duration_seconds)
    .with_detail("habitual_seconds", config.habitual_seconds)
    .with_detail("duration_defaulted", event.duration_seconds.is_none());
    if let Some(session) = &event.role_session_name {
        alert = alert.with_detail("role_session_name", session.as_str());
    }
    alert.add_event(&event.event_id);
    alert
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_saved_short_and_first_release_grants_still_read() {
        let grant = Grant { time: 1_700_000_000, duration_seconds: 43_200, event: Grant::event_key("e1") };
        let saved = serde_json::to_string(&grant).unwrap();
        assert_eq!(saved, format!("[1700000000,43200,{}]", grant.event));
        assert_eq!(serde_json::from_str::<Grant>(&saved).unwrap(), grant);
        let first_release: Grant = serde_json::from_str(r#"{"t":1700000000,"d":43200,"id":"e1"}"#).unwrap();
        assert_eq!(first_release, grant);
        assert!(serde_json::from_str::<Grant>(r#"{"t":1,"d":2}"#).is_err(), "a grant needs its event");
    }
    use crate::detect::tests::long;
    use proptest::prelude::*;

    /// What `observe` answers when every grant is kept: the contract's words.
    fn routine_with_every_grant(
        kept: &[(i64, u64, String)],
        c: &LongSessionConfig,
        time: i64,
        duration: u64,
        id: &str,
    ) -> bool {
        c.habitual_seconds > 0
            && kept
                .iter()
                .any(|(t, d, other)| other != id && *d >= duration && within(*t, time, secs(c.habitual_seconds)))
    }

    proptest! {
        /// Thinning never changes whether a long session alerts, whatever
        /// the order, the replays and the pruning, for events within the
        /// late history of each other. Where one id names two different
        /// grants, it may alert more, never less.
        #[test]
        fn thinned_grants_answer_as_every_grant_would(
            events in prop::collection::vec(
                (0..30 * DAY, prop::sample::select(vec![3_601u64, 7_200, 43_200]), 0usize..8),
                1..120,
            ),
            order in prop::collection::vec((0usize..1_000, any::<bool>()), 1..300),
            shared_ids in any::<bool>(),
            habitual_days in prop::sample::select(vec![0i64, 1, 3, 14]),
        ) {
            let c = LongSessionConfig { habitual_seconds: (habitual_days * DAY) as u64, ..LongSessionConfig::default() };
            let (mut thinned, mut kept) = (LongSessionState::default(), Vec::new());
            for (pick, prune) in order {
                let n = pick % events.len();
                let (time, duration, shared) = events[n];
                let id = if shared_ids { format!("shared{shared}") } else { format!("e{n}") };
                let expected = !routine_with_every_grant(&kept, &c, time, duration, &id);
                let alerted = thinned.observe(&c, &long("r", &id, time, duration)).is_some();
                if shared_ids {
                    prop_assert!(alerted || !expected, "{} at {} for {} s was missed", id, time, duration);
                } else {
                    prop_assert_eq!(alerted, expected, "event {} at {} for {} s", id, time, duration);
                }
                let grant = (time, duration, id);
                if !kept.contains(&grant) {
                    kept.push(grant);
                }
                if prune {
                    let watermark = kept.iter().map(|(t, _, _)| *t).max().unwrap_or_default();
                    thinned.prune(&c, watermark);
                }
            }
        }
    }

    #[test]
    fn an_edited_state_with_a_huge_grant_list_is_cut_to_the_cap_first() {
        let c = LongSessionConfig::default();
        let mut s = LongSessionState::default();
        // Ever longer grants: none is redundant, so thinning alone keeps all.
        let grants: Vec<Grant> =
            (0..100_000).map(|n| Grant { time: n, duration_seconds: 3_601 + n as u64, event: n as u64 }).collect();
        s.by_role.insert("arn:aws:iam::111122223333:role/r", grants);
        assert!(s.observe(&c, &long("r", "new", 200_000, 500_000)).is_some());
        let kept = s.by_role.get("arn:aws:iam::111122223333:role/r").map_or(0, |g| g.len());
        assert_eq!(kept, MAX_GRANTS_PER_ROLE);
    }

    #[test]
    fn a_role_granted_long_sessions_every_hour_keeps_a_few_grants_a_fortnight() {
        let c = LongSessionConfig::default();
        let mut s = LongSessionState::default();
        let mut alerts = 0;
        for hour in 0..(28 * 24) {
            alerts += usize::from(s.observe(&c, &long("etl", &format!("h{hour}"), hour * 3600, 43_200)).is_some());
        }
        assert_eq!(alerts, 1, "only the first long grant is news");
        let kept = s.by_role.get("arn:aws:iam::111122223333:role/etl").map_or(0, |g| g.len());
        assert!(kept <= 6, "28 days of hourly grants thin to a few, kept {kept}");
    }

    /// A second pass over the same grants, after their input records are
    /// forgotten, must not find a grant "new" that was routine the first time.
    #[test]
    fn pruning_keeps_the_grants_a_replay_needs() {
        let c = LongSessionConfig::default();
        let mut s = LongSessionState::default();
        assert!(s.observe(&c, &long("r", "g1", 0, 43_200)).is_some());
        assert_eq!(s.observe(&c, &long("r", "g2", 5 * 3600, 43_200)), None);
        assert!(s.observe(&c, &long("r", "g3", 23 * DAY, 43_200)).is_some());
        s.prune(&c, 23 * DAY);
        assert_eq!(s.observe(&c, &long("r", "g2", 5 * 3600, 43_200)), None);
    }

    const DAY: i64 = 86_400;

    #[test]
    fn above_the_limit_alerts_and_at_the_limit_does_not() {
        let c = LongSessionConfig::default();
        let mut s = LongSessionState::default();
        assert_eq!(s.observe(&c, &long("a", "1", 0, 3600)), None);
        assert_eq!(s.observe(&c, &long("a", "2", 0, 3601)), Some(LongFinding { duration_seconds: 3601 }));
    }

    #[test]
    fn a_habitual_duration_is_quiet_in_either_order() {
        let c = LongSessionConfig::default();
        let mut s = LongSessionState::default();
        // The later grant is processed first: it alerts, the earlier one does not.
        assert!(s.observe(&c, &long("etl", "later", 10 * DAY, 43_200)).is_some());
        assert_eq!(s.observe(&c, &long("etl", "earlier", 0, 43_200)), None);
        // Longer than anything seen before is news again.
        assert!(s.observe(&c, &long("etl", "longer", 11 * DAY, 86_400)).is_some());
    }

    #[test]
    fn habitual_span_boundary() {
        let c = LongSessionConfig::default();
        let span = 1_209_600;
        let mut s = LongSessionState::default();
        assert!(s.observe(&c, &long("r", "1", 0, 7200)).is_some());
        assert_eq!(s.observe(&c, &long("r", "2", span, 7200)), None);
        let mut s = LongSessionState::default();
        assert!(s.observe(&c, &long("r", "1", 0, 7200)).is_some());
        assert!(s.observe(&c, &long("r", "2", span + 1, 7200)).is_some());
    }

    #[test]
    fn zero_habitual_alerts_every_time_and_missing_duration_means_an_hour() {
        let c = LongSessionConfig { habitual_seconds: 0, ..LongSessionConfig::default() };
        let mut s = LongSessionState::default();
        assert!(s.observe(&c, &long("r", "1", 0, 7200)).is_some());
        assert!(s.observe(&c, &long("r", "2", 1, 7200)).is_some());
        let strict = LongSessionConfig { max_duration_seconds: 1800, ..LongSessionConfig::default() };
        let mut e = long("fresh", "3", 0, 0);
        e.duration_seconds = None;
        assert_eq!(s.observe(&strict, &e), Some(LongFinding { duration_seconds: 3600 }));
    }

    #[test]
    fn refused_requests_neither_alert_nor_count_as_grants() {
        let c = LongSessionConfig::default();
        let mut s = LongSessionState::default();
        let mut refused = long("r", "1", 0, 43_200);
        refused.error_code = Some("AccessDenied".into());
        assert_eq!(s.observe(&c, &refused), None);
        assert!(s.observe(&c, &long("r", "2", 10, 43_200)).is_some());
    }
}
