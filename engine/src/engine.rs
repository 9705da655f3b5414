//! The engine: runs every detector over role assumptions, applies the
//! cooldown per dedup key, and remembers processed inputs. Pure: state and
//! events in, state and alerts out; time is event time only.

use std::collections::{BTreeMap, HashMap, HashSet};

use ipnet::IpNet;

use crate::alert::Alert;
use crate::cloudtrail::{AssumeRoleEvent, EpochSeconds};
use crate::config::Config;
use crate::detect::organization::Counted;
use crate::detect::{
    external_id_missing, long_session, mfa_missing, outside_organization, repeated_failures, role_enumeration, secs,
    source_ip, LONG_MEMORY_SECONDS,
};
use crate::state::State;
use crate::suppress::Suppressions;

/// Processed inputs are remembered this long behind the newest event.
const INPUT_MEMORY_SECONDS: i64 = 3 * 86_400;
/// Processed inputs remembered at most, newest kept.
const MAX_REMEMBERED_INPUTS: usize = 100_000;
/// Past the cap, the oldest are forgotten down to this many, so that the
/// sort this takes happens once per many inputs, not after each one.
const REMEMBERED_INPUTS_AFTER_TRIM: usize = MAX_REMEMBERED_INPUTS - MAX_REMEMBERED_INPUTS / 10;
/// How far the inputs' horizon moves before the inputs themselves are
/// pruned. Pruning walks every input recorded in this run, so doing it
/// after each input made a long replay quadratic; until then an expired
/// input is only remembered a little longer, which never repeats an alert.
const INPUT_PRUNE_STEP_SECONDS: i64 = 3_600;
/// Stands for "no event time known yet" on an input without role assumptions.
const UNDATED_INPUT: EpochSeconds = EpochSeconds::MAX;
/// Alert times kept per dedup key.
const MAX_RAISED_PER_KEY: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The input was processed before; nothing was done.
    AlreadyProcessed,
    Processed {
        alerts: Vec<Alert>,
    },
}

pub struct Engine {
    config: Config,
    allowed: Vec<IpNet>,
    state: State,
    /// Findings held back by the cooldown, per detector, since this engine
    /// was made (for the run summary; not state).
    cooldown_held: BTreeMap<String, u64>,
    /// Accounts whose logs other engines read (see [`Engine::note_accounts_read`]).
    read_elsewhere: std::collections::BTreeSet<String>,
    /// `[[suppress]]` rules and what they held back in this engine's life.
    suppressions: Suppressions,
}

impl Engine {
    pub fn new(config: &Config, state: State) -> Engine {
        Engine {
            config: config.clone(),
            allowed: config.unexpected_source_ip.allowed_networks(),
            state,
            cooldown_held: BTreeMap::new(),
            read_elsewhere: std::collections::BTreeSet::new(),
            suppressions: Suppressions::new(&config.suppress),
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn into_state(self) -> State {
        self.state
    }

    /// The alerts each `[[suppress]]` rule held back so far.
    pub fn suppressions(&self) -> &Suppressions {
        &self.suppressions
    }

    pub fn is_processed(&self, input_id: &str) -> bool {
        self.state.inputs_pruning.contains(&self.state.inputs, input_id)
    }

    /// Processes one input's role assumptions once: a redelivered input
    /// (same id) raises nothing.
    pub fn apply(&mut self, input_id: &str, events: &[AssumeRoleEvent]) -> Applied {
        if self.is_processed(input_id) {
            return Applied::AlreadyProcessed;
        }
        let alerts = self.apply_unrecorded(events);
        self.record_input(input_id, events.iter().map(|e| e.event_time).max());
        Applied::Processed { alerts }
    }

    /// Marks an input processed once all its events went through
    /// [`Engine::apply_unrecorded`] (in chunks, for very large inputs).
    /// `newest` is the newest event time it held, if any.
    pub fn record_input(&mut self, input_id: &str, newest: Option<EpochSeconds>) {
        let newest = newest.or(self.state.watermark).unwrap_or(UNDATED_INPUT);
        self.state.inputs.insert(input_id, newest);
        self.prune_inputs();
    }

    /// Processes events without recording an input: for what could be read
    /// of a broken file, so a repaired copy is still processed later.
    pub fn apply_unrecorded(&mut self, events: &[AssumeRoleEvent]) -> Vec<Alert> {
        // Event order, not file order: the same events give the same alerts.
        let mut ordered: Vec<&AssumeRoleEvent> = events.iter().collect();
        ordered.sort_by(|a, b| (a.event_time, &a.event_id).cmp(&(b.event_time, &b.event_id)));
        let mut pending = Pending::default();
        self.state.organization.note_read(events);
        if let Some(newest) = events.iter().map(|e| e.event_time).max() {
            let elsewhere: Vec<&str> = self.read_elsewhere.iter().map(String::as_str).collect();
            self.state.organization.note_accounts(&elsewhere, newest);
        }
        for event in ordered {
            // One call logged in two accounts is counted once.
            match self.state.organization.counts(event) {
                Counted::Everywhere => self.observe(event, &mut pending),
                Counted::CallerSessionOnly => self.observe_session(event, &mut pending),
                Counted::Nowhere => {}
            }
        }
        if let Some(newest) = events.iter().map(|e| e.event_time).max() {
            self.state.watermark = Some(self.state.watermark.map_or(newest, |w| w.max(newest)));
        }
        self.prune();
        // Suppressed alerts were raised (their cooldown runs) but are not published.
        self.suppressions.filter(pending.alerts)
    }

    fn observe(&mut self, event: &AssumeRoleEvent, pending: &mut Pending) {
        let config = &self.config;
        let state = &mut self.state;
        let cooldown = config.alerts.cooldown_seconds;
        let t = event.event_time;
        let one = || vec![event.event_id.clone()];
        // Findings are rare, so building the alert before the cooldown check costs little.
        let mut found: Vec<(Alert, EpochSeconds, Vec<String>, u64)> = Vec::new();
        let enumeration = state.role_enumeration.observe(&config.role_enumeration, event);
        let failures = state.repeated_failures.observe(&config.repeated_failures, event);
        let mut silenced = None;
        if let Some(burst) = enumeration {
            found.push((
                role_enumeration::alert(&config.role_enumeration, event, &burst),
                t,
                burst.event_ids,
                cooldown,
            ));
            // One incident, one page: the guesses are failures too, and
            // repeated_failures stays quiet for this principal for the cooldown.
            silenced = Some(crate::alert::dedup_key(repeated_failures::DETECTOR, &[&event.principal]));
        } else if let Some(burst) = failures {
            found.push((
                repeated_failures::alert(&config.repeated_failures, event, &burst),
                t,
                burst.event_ids,
                cooldown,
            ));
        }
        for finding in state.unexpected_source_ip.observe(&config.unexpected_source_ip, &self.allowed, event) {
            let alert = source_ip::alert(
                &config.unexpected_source_ip,
                &event.principal,
                event.caller_account.as_deref(),
                &finding,
            );
            found.push((alert, finding.occurrence.event_time, vec![finding.occurrence.event_id], cooldown));
        }
        if let Some(finding) = state.long_session.observe(&config.long_session, event) {
            found.push((long_session::alert(&config.long_session, event, &finding), t, one(), cooldown));
        }
        let org = state.organization.view(&config.organization);
        if external_id_missing::observe(&org, event) {
            // Once per (role, caller account) per repeat_seconds.
            let repeat = config.external_id.repeat_seconds;
            found.push((external_id_missing::alert(&config.external_id, event), t, one(), repeat));
        }
        if mfa_missing::observe(&config.mfa_required, event) {
            found.push((mfa_missing::alert(event), t, one(), cooldown));
        }
        if state.outside_organization.observe(&config.outside_organization, &org, event) {
            found.push((outside_organization::alert(&config.outside_organization, event), t, one(), cooldown));
        }
        if let Some(key) = silenced {
            self.silence(key, t);
        }
        for (alert, time, event_ids, cooldown) in found {
            self.raise(pending, time, &event_ids, alert, cooldown);
        }
    }

    /// The caller's copy of a call already counted from the role owner's
    /// copy: only the detectors that judge what the owner's copy cannot
    /// show (the caller's session) see it, each of them once.
    fn observe_session(&mut self, event: &AssumeRoleEvent, pending: &mut Pending) {
        // Learns the grant of the caller's session; owner's copies teach none.
        let _ = self.state.role_enumeration.observe(&self.config.role_enumeration, event);
        if mfa_missing::observe(&self.config.mfa_required, event) {
            let alert = mfa_missing::alert(event);
            self.raise(
                pending,
                event.event_time,
                std::slice::from_ref(&event.event_id),
                alert,
                self.config.alerts.cooldown_seconds,
            );
        }
    }

    /// Counts `key` as raised at `t`, so it stays quiet for the cooldown.
    fn silence(&mut self, key: String, t: EpochSeconds) {
        let times = self.state.raised.entry(key).or_default();
        if let Err(at) = times.binary_search(&t) {
            times.insert(at, t);
            if times.len() > MAX_RAISED_PER_KEY {
                times.remove(0);
            }
        }
    }

    /// One alert per dedup key per cooldown: later findings in the same
    /// input join the pending alert; findings within the cooldown of an
    /// earlier alert (either side, in event time) are suppressed.
    /// `cooldown_seconds` is the alerts' cooldown, or a detector's own repeat span.
    fn raise(
        &mut self,
        pending: &mut Pending,
        t: EpochSeconds,
        event_ids: &[String],
        alert: Alert,
        cooldown_seconds: u64,
    ) {
        let key = alert.dedup_key.clone();
        let cooldown = secs(cooldown_seconds);
        if let Some(&(index, raised_at)) = pending.by_key.get(&key) {
            if t.abs_diff(raised_at) < cooldown.unsigned_abs() {
                let alert = &mut pending.alerts[index];
                for id in event_ids {
                    if pending.counted[index].insert(id.clone()) {
                        alert.add_event(id);
                    }
                }
                // RFC 3339 in UTC with a Z compares in time order.
                let time = crate::cloudtrail::format_rfc3339(t);
                if time < alert.first_event_time {
                    alert.first_event_time = time.clone();
                }
                if time > alert.last_event_time {
                    alert.last_event_time = time;
                }
                return;
            }
        }
        let times = self.state.raised.entry(key.clone()).or_default();
        if times.iter().any(|r| t.abs_diff(*r) < cooldown.unsigned_abs()) {
            *self.cooldown_held.entry(alert.detector).or_default() += 1;
            return;
        }
        times.push(t);
        times.sort_unstable();
        if times.len() > MAX_RAISED_PER_KEY {
            times.remove(0);
        }
        pending.by_key.insert(key, (pending.alerts.len(), t));
        pending.counted.push(event_ids.iter().chain(&alert.event_ids).cloned().collect());
        pending.alerts.push(alert);
    }

    fn prune(&mut self) {
        let Some(watermark) = self.state.watermark else {
            return;
        };
        let config = &self.config;
        self.state.repeated_failures.prune(&config.repeated_failures, watermark);
        self.state.unexpected_source_ip.prune(&config.unexpected_source_ip, watermark);
        self.state.long_session.prune(&config.long_session, watermark);
        self.state.organization.prune(watermark);
        self.state.role_enumeration.prune(&config.role_enumeration, watermark);
        self.state.outside_organization.prune(&config.outside_organization, watermark);
        self.state.raised.retain(|_, times| {
            times.retain(|t| *t >= watermark - LONG_MEMORY_SECONDS);
            !times.is_empty()
        });
    }

    fn prune_inputs(&mut self) {
        let Some(watermark) = self.state.watermark else {
            return;
        };
        let (inputs, pruning) = (&mut self.state.inputs, &mut self.state.inputs_pruning);
        let horizon = watermark - INPUT_MEMORY_SECONDS;
        if pruning.horizon.is_none() {
            // Inputs without role assumptions seen before any event time was
            // known are dated by the first event time that arrives. Only a
            // new state has them, so decoding every input here costs little.
            inputs.sweep(EpochSeconds::MAX, |newest| {
                if *newest == UNDATED_INPUT {
                    *newest = watermark;
                }
                true
            });
        }
        if pruning.horizon.is_none_or(|last| horizon - last >= INPUT_PRUNE_STEP_SECONDS) {
            pruning.prune(inputs, horizon);
        }
        if inputs.len() > MAX_REMEMBERED_INPUTS {
            // Expired ones the sweep has not reached yet go first, then the oldest.
            let mut by_time: Vec<(EpochSeconds, String)> =
                inputs.entries().into_iter().map(|(key, newest)| (newest, key)).collect();
            by_time.sort_unstable();
            let expired = by_time.partition_point(|(newest, _)| *newest < horizon);
            let excess = (by_time.len() - expired).saturating_sub(REMEMBERED_INPUTS_AFTER_TRIM);
            for (_, key) in by_time.into_iter().take(expired + excess) {
                inputs.remove(&key);
            }
        }
    }

    /// Raises an operational alert (an unreadable input) once per dedup key
    /// for as long as the state remembers it, however often the input is
    /// retried or redelivered.
    pub fn raise_once(&mut self, alert: Alert) -> Option<Alert> {
        if self.state.raised.contains_key(&alert.dedup_key) {
            return None;
        }
        let at = self.state.watermark.unwrap_or(0);
        self.state.raised.insert(alert.dedup_key.clone(), vec![at]);
        Some(alert)
    }

    /// Findings the cooldown held back since this engine was made, per
    /// detector: an alert already raised for the same incident.
    pub fn cooldown_held(&self) -> &BTreeMap<String, u64> {
        &self.cooldown_held
    }

    /// Counts `accounts` as accounts whose logs rolewatch reads, though this
    /// engine does not: the Lambda keeps one state per account, so the
    /// accounts that have a state object are read by the others. Without
    /// it, each account's engine knows only its own logs (see "Inside and
    /// outside the organisation" in docs/detectors.md).
    /// Noted with the event time of the role assumptions next applied.
    /// `rolewatch replay` notes the account each CloudTrail file is logged
    /// in, so that files without role assumptions count too.
    pub fn note_accounts_read(&mut self, accounts: &[&str]) {
        for account in accounts {
            if !self.read_elsewhere.contains(*account) {
                self.read_elsewhere.insert((*account).to_owned());
            }
        }
    }

    /// Principals currently roaming (newest event time), for the run summary.
    pub fn roaming_principals(&self) -> usize {
        self.state.watermark.map_or(0, |w| self.state.unexpected_source_ip.roaming_at(w))
    }
}

#[derive(Default)]
struct Pending {
    alerts: Vec<Alert>,
    by_key: HashMap<String, (usize, EpochSeconds)>,
    /// Every event id each alert counts; `event_ids` stops at 50.
    counted: Vec<HashSet<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::tests::{failure, from_ip, long};

    fn alerts(applied: Applied) -> Vec<Alert> {
        match applied {
            Applied::Processed { alerts } => alerts,
            Applied::AlreadyProcessed => panic!("input was skipped as already processed"),
        }
    }

    fn burst(principal: &str, prefix: &str, start: i64, n: usize) -> Vec<AssumeRoleEvent> {
        (0..n).map(|i| failure(principal, &format!("{prefix}{i}"), start + i as i64 * 10)).collect()
    }

    #[test]
    fn one_burst_one_alert_with_every_event() {
        let mut engine = Engine::new(&Config::default(), State::default());
        let got = alerts(engine.apply("f1", &burst("alice", "e", 0, 8)));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_count, 8);
        assert_eq!(got[0].event_ids.len(), 8);
        assert_eq!(got[0].first_event_time, "1970-01-01T00:00:00Z");
        assert_eq!(got[0].last_event_time, "1970-01-01T00:01:10Z");
    }

    #[test]
    fn a_burst_longer_than_fifty_events_counts_each_once() {
        let mut engine = Engine::new(&Config::default(), State::default());
        let events: Vec<AssumeRoleEvent> = (0..60).map(|i| failure("alice", &format!("e{i:02}"), i * 5)).collect();
        let got = alerts(engine.apply("f", &events));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_count, 60);
        assert_eq!(got[0].event_ids.len(), 50);
    }

    #[test]
    fn a_mature_principal_starting_to_roam_pages_once() {
        let mut engine = Engine::new(&Config::default(), State::default());
        let mut events: Vec<AssumeRoleEvent> =
            (0..9).map(|d| from_ip("alice", &format!("home{d}"), d * 86_400, "198.51.100.7")).collect();
        events.extend(
            (0..11).map(|i| from_ip("alice", &format!("away{i}"), 9 * 86_400 + i * 60, &format!("192.0.{i}.1"))),
        );
        let got = alerts(engine.apply("f", &events));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].detector, "unexpected_source_ip");
    }

    #[test]
    fn with_habitual_zero_every_long_request_is_its_own_alert() {
        let config = Config {
            long_session: crate::config::LongSessionConfig { habitual_seconds: 0, ..Default::default() },
            ..Config::default()
        };
        let mut engine = Engine::new(&config, State::default());
        let mut bob = long("r", "bob", 600, 43_200);
        bob.principal = "arn:aws:iam::111122223333:user/bob".into();
        let got = alerts(engine.apply("f", &[long("r", "alice", 0, 43_200), bob]));
        assert_eq!(got.len(), 2, "{got:?}");
    }

    #[test]
    fn redelivery_raises_nothing_twice() {
        let mut engine = Engine::new(&Config::default(), State::default());
        assert_eq!(alerts(engine.apply("f1", &burst("alice", "e", 0, 5))).len(), 1);
        assert_eq!(engine.apply("f1", &burst("alice", "e", 0, 5)), Applied::AlreadyProcessed);
        // The same events under another name: event ids and the cooldown hold.
        assert!(alerts(engine.apply("copy-of-f1", &burst("alice", "e", 0, 5))).is_empty());
    }

    #[test]
    fn a_burst_split_across_files_out_of_order_alerts_once() {
        let mut engine = Engine::new(&Config::default(), State::default());
        let events = burst("alice", "e", 1000, 6);
        assert!(alerts(engine.apply("late", &events[3..])).is_empty());
        let got = alerts(engine.apply("early", &events[..3]));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_count, 6);
    }

    #[test]
    fn cooldown_suppresses_then_expires() {
        let mut engine = Engine::new(&Config::default(), State::default());
        assert_eq!(alerts(engine.apply("a", &burst("alice", "a", 0, 5))).len(), 1);
        // Last alert at t=40; another burst starting 3000 s later is inside the cooldown.
        assert!(alerts(engine.apply("b", &burst("alice", "b", 3000, 5))).is_empty());
        // The cooldown counts from the alert's event time (40 s): 40 + 3600 is out.
        let got = alerts(engine.apply("c", &burst("alice", "c", 3640 - 40, 5)));
        assert_eq!(got.len(), 1, "{got:?}");
    }

    #[test]
    fn each_detector_raises_in_one_run() {
        let mut engine = Engine::new(&Config::default(), State::default());
        let mut events = burst("mallory", "f", 0, 5);
        events.push(from_ip("alice", "ip0", 0, "198.51.100.1"));
        events.push(from_ip("alice", "ip1", 8 * 86_400, "203.0.113.1"));
        events.push(long("etl", "long", 100, 43_200));
        let got = alerts(engine.apply("mixed", &events));
        let mut detectors: Vec<&str> = got.iter().map(|a| a.detector.as_str()).collect();
        detectors.sort_unstable();
        assert_eq!(detectors, ["long_session", "repeated_failures", "unexpected_source_ip"]);
    }

    #[test]
    fn an_input_without_role_assumptions_is_remembered_before_any_time_is_known() {
        let mut engine = Engine::new(&Config::default(), State::default());
        assert!(alerts(engine.apply("empty", &[])).is_empty());
        assert!(alerts(engine.apply("burst", &burst("alice", "a", 5_000_000, 5))).len() == 1);
        assert_eq!(engine.apply("empty", &[]), Applied::AlreadyProcessed);
    }

    /// Reloads the engine's state from its saved bytes, as the next run would.
    fn saved_and_loaded(engine: Engine) -> Engine {
        let state = State::from_bytes(engine.into_state().to_bytes()).unwrap();
        Engine::new(&Config::default(), state)
    }

    #[test]
    fn saved_inputs_are_remembered_three_days_of_event_time_dated_or_not() {
        let day = 86_400;
        let mut engine = Engine::new(&Config::default(), State::default());
        engine.apply("undated", &[]);
        engine.apply("day0", &burst("alice", "a", 0, 1));
        let mut engine = saved_and_loaded(engine);
        engine.apply("day3", &burst("bob", "b", 3 * day, 1));
        let mut engine = saved_and_loaded(engine);
        // Three days on, both are still remembered, the undated one dated by
        // the first event time that arrived.
        assert_eq!(engine.apply("undated", &[]), Applied::AlreadyProcessed);
        assert_eq!(engine.apply("day0", &[]), Applied::AlreadyProcessed);
        // Inputs are pruned as the horizon moves by steps: a little past three days.
        engine.apply("later", &burst("carol", "c", 3 * day + INPUT_PRUNE_STEP_SECONDS, 1));
        let mut engine = saved_and_loaded(engine);
        assert_eq!(engine.state().processed_inputs(), ["day3", "later"]);
        assert!(matches!(engine.apply("day0", &[]), Applied::Processed { .. }), "forgotten past three days");
        assert!(matches!(engine.apply("undated", &[]), Applied::Processed { .. }), "forgotten past three days");
    }

    #[test]
    fn past_the_cap_the_oldest_inputs_are_forgotten_first() {
        let mut state = State::default();
        state.watermark = Some(1_000_000);
        for n in 0..MAX_REMEMBERED_INPUTS {
            state.inputs.insert(&format!("old-{n:06}"), 900_000 + (n % 1000) as i64);
        }
        let mut engine = saved_and_loaded(Engine::new(&Config::default(), state));
        engine.apply("newest", &burst("alice", "a", 1_000_000, 1));
        let mut engine = saved_and_loaded(engine);
        let inputs = engine.state().processed_inputs();
        assert_eq!(inputs.len(), REMEMBERED_INPUTS_AFTER_TRIM);
        assert!(inputs.contains(&"newest".to_owned()) && !inputs.contains(&"old-000000".to_owned()));
        assert_eq!(engine.apply("old-000999", &[]), Applied::AlreadyProcessed, "the newest of the old are kept");
    }

    #[test]
    fn state_survives_serialisation() {
        let mut engine = Engine::new(&Config::default(), State::default());
        engine.apply("a", &burst("alice", "a", 0, 3));
        let bytes = engine.into_state().to_bytes();
        let mut engine = Engine::new(&Config::default(), State::from_bytes(bytes.clone()).unwrap());
        assert_eq!(alerts(engine.apply("b", &burst("alice", "b", 100, 2))).len(), 1);
    }

    #[test]
    fn a_baseline_left_stored_past_its_horizon_is_forgotten_when_next_used() {
        let mut config = Config::default();
        config.unexpected_source_ip.network_memory_seconds = 86_400;
        let day = 86_400;
        let bob = "arn:aws:iam::111122223333:user/bob";
        let alice = "arn:aws:iam::111122223333:user/alice";
        // bob once; the daily sweep at 35.5 days keeps him (his horizon is
        // 36 days); alice at 36.1 days moves the watermark past it without a
        // sweep, so bob's stored baseline is stale when he comes back.
        let files = [
            vec![from_ip(bob, "b1", 0, "198.51.100.1")],
            vec![from_ip(alice, "a1", 35 * day + day / 2, "198.51.100.2")],
            vec![from_ip(alice, "a2", 36 * day + day / 10, "198.51.100.2")],
            vec![from_ip(bob, "b2", 36 * day + day / 5, "203.0.113.9")],
        ];
        let mut kept = Engine::new(&config, State::default());
        let mut saved = State::default().to_bytes();
        for (n, events) in files.iter().enumerate() {
            let expected = alerts(kept.apply(&format!("f{n}"), events));
            let mut reloaded = Engine::new(&config, State::from_bytes(saved).unwrap());
            assert_eq!(alerts(reloaded.apply(&format!("f{n}"), events)), expected, "file {n}");
            saved = reloaded.into_state().to_bytes();
        }
        // Forgotten, bob starts learning again instead of paging as a mature identity.
        let state = State::from_bytes(saved).unwrap();
        let mut engine = Engine::new(&config, state);
        assert!(alerts(engine.apply("again", &[from_ip(bob, "b3", 36 * day + day / 4, "192.0.2.1")])).is_empty());
    }

    #[test]
    fn an_old_file_replayed_behind_the_watermark_keeps_what_it_teaches_while_it_is_read() {
        let day = 86_400;
        let alice = "arn:aws:iam::111122223333:user/alice";
        let bob = "arn:aws:iam::111122223333:user/bob";
        let mut engine = Engine::new(&Config::default(), State::default());
        engine
            .apply("first", &[from_ip(alice, "a0", 0, "198.51.100.1"), from_ip(alice, "a1", 2 * day, "198.51.100.1")]);
        engine.apply("now", &[from_ip(bob, "b0", 300 * day, "198.51.100.9")]);
        // A backfilled file from day 10, far behind the newest event: alice on a
        // new network twice, three hours apart (past the cooldown).
        let backfill = [
            from_ip(alice, "old1", 10 * day + 36_000, "203.0.113.7"),
            from_ip(alice, "old2", 10 * day + 46_800, "203.0.113.8"),
        ];
        let got = alerts(engine.apply("backfill", &backfill));
        assert_eq!(got.len(), 1, "the second use is of a network the file itself just taught: {got:?}");
    }

    /// Pseudo-random traffic over `days`: two groups of principals taking
    /// turns every 36 days (a one-day network memory plus the late history,
    /// so networks fall due for pruning just as their principals return), a
    /// few networks each, some failures and long sessions, one file per 6 hours,
    /// and now and then a file from weeks before.
    fn traffic(seed: u64, days: i64) -> Vec<Vec<AssumeRoleEvent>> {
        let mut x = seed | 1;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut files = Vec::new();
        for (n, now) in (0..days * 24).step_by(6).enumerate() {
            // Every 16th file is a backfill from weeks behind, where pruned
            // and unpruned history would judge events differently.
            let hour = if n % 16 == 15 { (now - 24 * (40 + next(20) as i64)).max(0) } else { now };
            let group = (hour / 24 / 36) as u64 % 2;
            let events: Vec<AssumeRoleEvent> = (0..next(16))
                .map(|i| {
                    let who = format!("arn:aws:iam::111122223333:user/p{}", group * 20 + next(20));
                    let id = format!("f{n}-{i}");
                    let t = hour * 3_600 + next(6 * 3_600) as i64;
                    let ip = format!("198.51.{}.{}", next(4), next(250) + 1);
                    match next(20) {
                        0..=1 => failure(&who, &id, t),
                        2 => long(&format!("role{}", next(3)), &id, t, 43_200),
                        _ => from_ip(&who, &id, t, &ip),
                    }
                })
                .collect();
            files.push(events);
        }
        files
    }

    /// Makes the next prune of everything a sweep over every entry.
    fn forget_sweeps(state: &mut State) {
        state.unexpected_source_ip.swept_at = None;
        state.repeated_failures.pruning.swept_at = None;
        state.long_session.pruning.swept_at = None;
        state.organization.accounts_pruning.swept_at = None;
        state.organization.shared_pruning.swept_at = None;
        state.role_enumeration.guesses_pruning.swept_at = None;
        state.role_enumeration.grants_pruning.swept_at = None;
        state.outside_organization.pruning.swept_at = None;
        state.inputs_pruning.swept_at = None;
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]
        /// Pruning every baseline and history after every input (eager, the
        /// reference) and pruning them when used and in a daily sweep, with the state
        /// saved and loaded between inputs in every way it is saved (one
        /// piece, changes on a base, a new base), raise the same alerts and
        /// remember the same baselines.
        #[test]
        fn lazy_pruning_and_saving_between_inputs_change_nothing(seed in proptest::prelude::any::<u64>()) {
            let mut config = Config::default();
            config.unexpected_source_ip.network_memory_seconds = 86_400;
            let files = traffic(seed, 125);
            let mut eager = Engine::new(&config, State::default());
            let mut saved = crate::state::SavedState { state: State::default().to_bytes(), base: None, new_base: None };
            let mut base: Option<crate::state::StateBase> = None;
            let mut raised = 0;
            for (n, events) in files.iter().enumerate() {
                let id = format!("file-{n}");
                // No sweep done yet, as far as the eager engine knows: it sweeps after every input.
                let mut state = eager.into_state();
                forget_sweeps(&mut state);
                eager = Engine::new(&config, state);
                let expected = alerts(eager.apply(&id, events));
                raised += expected.len();

                base = saved.new_base.take().or(base);
                let state = match (&saved.base, &base) {
                    (Some(_), Some(base)) => State::from_parts(saved.state, base),
                    _ => State::from_bytes(saved.state),
                };
                let mut lazy = Engine::new(&config, state.unwrap());
                let got = alerts(lazy.apply(&id, events));
                proptest::prop_assert_eq!(&got, &expected, "file {}", n);
                let state = lazy.into_state();
                // Runs of changes on a base, a new base now and then, and one
                // piece now and then, in an order that varies with the seed.
                saved = match (n as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61 {
                    0 => crate::state::SavedState { state: state.to_bytes(), base: None, new_base: None },
                    1 | 2 => state.to_parts_within(0, &crate::storage::BaseSpare::default()),
                    _ => state.to_parts_within(usize::MAX, &crate::storage::BaseSpare::default()),
                };
            }
            proptest::prop_assert!(raised > 0, "the traffic raises alerts to compare");
            let base = saved.new_base.take().or(base);
            let mut lazy = match (&saved.base, &base) {
                (Some(_), Some(base)) => State::from_parts(saved.state, base),
                _ => State::from_bytes(saved.state),
            }
            .unwrap();
            let mut eager = eager.into_state();
            // Sweep both, so entries pruned late and entries pruned every time compare.
            for state in [&mut lazy, &mut eager] {
                forget_sweeps(state);
                let watermark = state.watermark.unwrap_or_default();
                state.unexpected_source_ip.prune(&config.unexpected_source_ip, watermark);
                state.repeated_failures.prune(&config.repeated_failures, watermark);
                state.long_session.prune(&config.long_session, watermark);
                state.organization.prune(watermark);
                state.role_enumeration.prune(&config.role_enumeration, watermark);
                state.outside_organization.prune(&config.outside_organization, watermark);
                let horizon = state.inputs_pruning.horizon.unwrap_or_default();
                state.inputs_pruning.prune(&mut state.inputs, horizon);
            }
            proptest::prop_assert_eq!(lazy, eager);
        }
    }
}
