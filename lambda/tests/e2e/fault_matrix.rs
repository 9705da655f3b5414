//! The fault matrix: the real S3/SNS capabilities against moto, wrapped in
//! decorators that fail one chosen call (S3 GetObject, state load, state
//! write with a real 412 or an error, SNS publish of the whole batch or of
//! part of it) at each step of an invocation. For every cell the invocation
//! either succeeds with every alert delivered, or fails and its retry
//! delivers every alert; duplicates only ever repeat an alert (same
//! dedup_key, same events), and the delivered set equals a fault-free run's.
//!
//! The matrix is printed to stderr (cargo shows it with `--nocapture`),
//! written to `target/fault-matrix.txt` and appended to
//! `target/make-test/figures.txt`, which `make test` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rolewatch::alert::Alert;
use rolewatch::state::State;
use rolewatch_lambda::aws::{S3Source, S3StateStore, SnsSink};
use rolewatch_lambda::ports::{
    AccountStateStore, AlertSink, LoadedState, ObjectReader, ObjectSource, SaveOutcome, SinkError, SourceError,
    StateVersion, StoreError,
};
use rolewatch_lambda::triggers::ObjectRef;
use rolewatch_lambda::Handler;
use serde_json::Value;

use crate::harness::{cloudtrail_gz, s3_event, Fixture, ACCOUNT, STATE_BUCKET, TRAIL_BUCKET};
use crate::synth::{
    account_key, account_of, denied, distinct, granted, long_session, oracle, other, recorded_inputs, report,
    target_dir, Signature,
};

const OTHER_ACCOUNT: &str = "444455556666";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Load,
    Save,
    Publish,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Load => "load",
            Op::Save => "save",
            Op::Publish => "publish",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    GetError,
    LoadError,
    WriteConflict,
    WriteError,
    PublishError,
    PublishPartial,
}

const FAULTS: [Fault; 6] = [
    Fault::GetError,
    Fault::LoadError,
    Fault::WriteConflict,
    Fault::WriteError,
    Fault::PublishError,
    Fault::PublishPartial,
];

impl Fault {
    fn op(self) -> Op {
        match self {
            Fault::GetError => Op::Get,
            Fault::LoadError => Op::Load,
            Fault::WriteConflict | Fault::WriteError => Op::Save,
            Fault::PublishError | Fault::PublishPartial => Op::Publish,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fault::GetError => "S3 GetObject error",
            Fault::LoadError => "state load error",
            Fault::WriteConflict => "state write 412",
            Fault::WriteError => "state write error",
            Fault::PublishError => "SNS publish fails",
            Fault::PublishPartial => "SNS partial batch",
        }
    }
}

/// Counts every call by operation (the trace) and fails the `at`-th call
/// of the fault's operation.
struct Injector {
    fault: Option<(Fault, usize)>,
    trace: Mutex<Vec<Op>>,
    fired: Mutex<Vec<String>>,
}

impl Injector {
    fn new(fault: Option<(Fault, usize)>) -> Arc<Injector> {
        Arc::new(Injector { fault, trace: Mutex::new(Vec::new()), fired: Mutex::new(Vec::new()) })
    }

    /// Records a call; the fault to inject into it, if this is the one.
    fn call(&self, op: Op) -> Option<Fault> {
        let mut trace = self.trace.lock().expect("trace lock");
        trace.push(op);
        let n = trace.iter().filter(|o| **o == op).count();
        match self.fault {
            Some((fault, at)) if fault.op() == op && n == at => Some(fault),
            _ => None,
        }
    }

    fn fired(&self, what: String) {
        self.fired.lock().expect("fired lock").push(what);
    }

    fn trace(&self) -> Vec<Op> {
        self.trace.lock().expect("trace lock").clone()
    }
}

struct FaultySource {
    inner: S3Source,
    injector: Arc<Injector>,
}

impl ObjectSource for FaultySource {
    async fn open(&self, object: &ObjectRef) -> Result<ObjectReader, SourceError> {
        if self.injector.call(Op::Get).is_some() {
            self.injector.fired(format!("GetObject {}", object.key));
            return Err(SourceError::Request("injected: GetObject 503 SlowDown".into()));
        }
        self.inner.open(object).await
    }
}

struct FaultyRepo {
    inner: S3StateStore,
    injector: Arc<Injector>,
}

impl AccountStateStore for FaultyRepo {
    async fn load(&self, account: &str) -> Result<LoadedState, StoreError> {
        if self.injector.call(Op::Load).is_some() {
            self.injector.fired(format!("load {account}"));
            return Err(StoreError {
                operation: "load",
                location: self.inner.location(account),
                source: "injected: GetObject 500 InternalError".into(),
            });
        }
        self.inner.load(account).await
    }

    async fn save(
        &self,
        account: &str,
        state: &State,
        expected: Option<&StateVersion>,
    ) -> Result<SaveOutcome, StoreError> {
        match self.injector.call(Op::Save) {
            Some(Fault::WriteConflict) => {
                // A real conditional PUT that moto must refuse: the ETag
                // named is not the stored one (or nothing is stored).
                let stale = StateVersion("\"00000000000000000000000000000000\"".into());
                let outcome = self.inner.save(account, state, Some(&stale)).await;
                self.injector.fired(format!("save {account} with a stale ETag -> {outcome:?}"));
                assert_eq!(outcome.as_ref().ok(), Some(&SaveOutcome::Conflict), "moto must answer 412: {outcome:?}");
                outcome
            }
            Some(_) => {
                self.injector.fired(format!("save {account}"));
                Err(StoreError {
                    operation: "save",
                    location: self.inner.location(account),
                    source: "injected: PutObject 503 SlowDown".into(),
                })
            }
            None => self.inner.save(account, state, expected).await,
        }
    }

    async fn quarantine(&self, account: &str, raw: &[u8]) -> Result<String, StoreError> {
        self.inner.quarantine(account, raw).await
    }

    fn location(&self, account: &str) -> String {
        self.inner.location(account)
    }
}

struct FaultySink {
    inner: SnsSink,
    injector: Arc<Injector>,
}

impl AlertSink for FaultySink {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), SinkError> {
        match self.injector.call(Op::Publish) {
            Some(Fault::PublishPartial) => {
                // SNS took the first half of the batch and rejected the rest.
                let half = alerts.len() / 2;
                self.inner.publish(&alerts[..half]).await?;
                self.injector.fired(format!("publish: {half} of {} accepted", alerts.len()));
                Err(SinkError::Rejected {
                    failed: alerts.len() - half,
                    total: alerts.len(),
                    details: "injected: InternalError".into(),
                })
            }
            Some(_) => {
                self.injector.fired(format!("publish of {}", alerts.len()));
                Err(SinkError::Request("injected: dispatch failure: connection refused".into()))
            }
            None => self.inner.publish(alerts).await,
        }
    }
}

type FaultyHandler = Handler<FaultySource, FaultyRepo, FaultySink>;

fn handler(fx: &Fixture, prefix: &str, injector: &Arc<Injector>) -> FaultyHandler {
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&fx.sdk).force_path_style(true).build());
    Handler::new(
        FaultySource { inner: S3Source::new(s3.clone()), injector: Arc::clone(injector) },
        FaultyRepo { inner: S3StateStore::new(s3, STATE_BUCKET, prefix), injector: Arc::clone(injector) },
        FaultySink {
            inner: SnsSink::new(aws_sdk_sns::Client::new(&fx.sdk), &fx.topic_arn),
            injector: Arc::clone(injector),
        },
        fx.settings(prefix).config,
    )
}

/// Five objects across two accounts: in each, a burst of five AccessDenied
/// split across its objects and one long session, so each account's
/// single publish carries two alerts.
fn objects() -> BTreeMap<String, Vec<u8>> {
    let (a, b) = (ACCOUNT, OTHER_ACCOUNT);
    let t = |m: u32, s: u32| format!("2026-10-05T10:{m:02}:{s:02}Z");
    let mut out = BTreeMap::new();
    let mut put = |account: &str, name: &str, records: Vec<Value>| {
        out.insert(account_key(account, name), cloudtrail_gz(&records));
    };
    put(
        a,
        "20261005T1001Z_MatrixA1xxxxxxx",
        vec![denied(a, "a-d1", &t(1, 0)), long_session(a, "a-long", &t(1, 10)), denied(a, "a-d2", &t(1, 20))],
    );
    put(
        a,
        "20261005T1003Z_MatrixA2xxxxxxx",
        vec![other(a, "a-o1", &t(3, 0)), denied(a, "a-d3", &t(3, 5)), granted(a, "a-g1", &t(3, 9))],
    );
    put(a, "20261005T1005Z_MatrixA3xxxxxxx", vec![denied(a, "a-d4", &t(5, 0)), denied(a, "a-d5", &t(5, 30))]);
    put(
        b,
        "20261005T1001Z_MatrixB1xxxxxxx",
        vec![denied(b, "b-d1", &t(1, 0)), denied(b, "b-d2", &t(1, 30)), granted(b, "b-g1", &t(1, 40))],
    );
    put(
        b,
        "20261005T1004Z_MatrixB2xxxxxxx",
        vec![
            denied(b, "b-d3", &t(4, 0)),
            long_session(b, "b-long", &t(4, 10)),
            denied(b, "b-d4", &t(4, 20)),
            denied(b, "b-d5", &t(4, 40)),
        ],
    );
    out
}

/// The steps, as the position in a fault-free invocation's call trace from
/// which the fault hits the first call of its operation.
fn steps(trace: &[Op]) -> Vec<(&'static str, usize)> {
    let nth = |op: Op, n: usize| {
        trace
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == op)
            .nth(n)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("trace {trace:?} has no {op:?} #{}", n + 1))
    };
    let last_publish = trace.iter().rposition(|o| *o == Op::Publish).expect("the fault-free run publishes");
    vec![
        ("first object", 0),
        ("later object", nth(Op::Get, 2)),
        ("first state write", nth(Op::Save, 0)),
        ("after publish", last_publish + 1),
    ]
}

/// Which call of `op` the fault hits for a step at `position`, if any.
fn call_at(trace: &[Op], op: Op, position: usize) -> Option<usize> {
    let before = trace[..position.min(trace.len())].iter().filter(|o| **o == op).count();
    let total = trace.iter().filter(|o| **o == op).count();
    (before < total).then_some(before + 1)
}

struct Cell {
    text: String,
    /// Calls to S3 and SNS by the faulted invocation and its retry.
    calls: usize,
}

#[allow(clippy::too_many_arguments)]
async fn run_cell(
    fx: &Fixture,
    fault: Fault,
    at: usize,
    prefix: &str,
    event: &Value,
    baseline: &BTreeSet<Signature>,
    inputs: &BTreeMap<String, BTreeSet<String>>,
) -> Cell {
    let label = format!("{} at {}#{at}", fault.name(), fault.op().name());
    let injector = Injector::new(Some((fault, at)));
    let first = handler(fx, prefix, &injector).handle(event.clone()).await;
    let fired = injector.fired.lock().expect("fired lock").clone();
    assert_eq!(fired.len(), 1, "{label}: the fault must fire exactly once: {fired:?}");
    let mut delivered = fx.drain().await;
    let mut calls = injector.trace().len();
    let outcome = match &first {
        Ok(summary) => {
            assert_eq!(fault, Fault::WriteConflict, "{label}: a failure was swallowed: {summary}");
            "ok, conflict re-applied".to_owned()
        }
        Err(err) => {
            assert_ne!(fault, Fault::WriteConflict, "{label}: a write conflict must be re-applied, not fail: {err}");
            // Lambda's retry: the same event, the fault gone.
            let retried = Injector::new(None);
            let retry = handler(fx, prefix, &retried).handle(event.clone()).await;
            assert!(retry.is_ok(), "{label}: the retry must succeed: {:?}", retry.err());
            calls += retried.trace().len();
            delivered.extend(fx.drain().await);
            "failed -> retry ok".to_owned()
        }
    };
    let (got, duplicates) = distinct(&delivered);
    let lost: Vec<_> = baseline.difference(&got).collect();
    let extra: Vec<_> = got.difference(baseline).collect();
    assert!(lost.is_empty() && extra.is_empty(), "{label}: alerts lost {lost:?}, unexpected {extra:?}");
    for (account, want) in inputs {
        let recorded = recorded_inputs(fx, prefix, account).await;
        assert!(recorded.is_superset(want), "{label}: state of {account} lost inputs: {recorded:?}");
    }
    let dup = if duplicates > 0 { format!(", {duplicates} dup") } else { String::new() };
    Cell { text: format!("{}#{at}: {outcome}{dup}", fault.op().name()), calls }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn every_fault_at_every_step_delivers_every_alert_after_at_most_one_retry() {
    matrix().await;
}

async fn matrix() {
    let fx = Fixture::new().await;
    let objects = objects();
    for (key, bytes) in &objects {
        fx.put(TRAIL_BUCKET, key, bytes.clone()).await;
    }
    let keys: Vec<&str> = objects.keys().map(String::as_str).collect();
    let event = s3_event(&keys);
    let mut inputs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in &keys {
        inputs.entry(account_of(key)).or_default().insert(format!("s3://{TRAIL_BUCKET}/{key}"));
    }

    // The fault-free run: what every cell must deliver, and the call trace.
    let (expected, _) = oracle(&objects);
    let injector = Injector::new(None);
    handler(&fx, "matrix/baseline/", &injector).handle(event.clone()).await.expect("fault-free run");
    let (baseline, duplicates) = distinct(&fx.drain().await);
    assert_eq!(duplicates, 0);
    assert_eq!(baseline, expected, "the fault-free run delivers the engine's alerts");
    let detectors: BTreeSet<(&str, &str)> = baseline.iter().map(|s| (s.0.as_str(), s.1.as_str())).collect();
    assert_eq!(baseline.len(), 4, "a burst and a long session in each account: {detectors:?}");
    let trace = injector.trace();
    let steps = steps(&trace);

    let mut rows: Vec<(Fault, Vec<String>)> = Vec::new();
    let mut done: BTreeMap<(usize, usize), String> = BTreeMap::new();
    let mut most_calls = 0;
    for (f, fault) in FAULTS.iter().enumerate() {
        let mut row = Vec::new();
        for (step, position) in &steps {
            let Some(at) = call_at(&trace, fault.op(), *position) else {
                row.push("n/a".to_owned());
                continue;
            };
            if let Some(text) = done.get(&(f, at)) {
                row.push(text.clone());
                continue;
            }
            let prefix = format!("matrix/{f}-{at}/");
            let cell = run_cell(&fx, *fault, at, &prefix, &event, &baseline, &inputs).await;
            // Counted, not timed: a fault may cost one more pass, never a
            // loop of retries (a wall-clock bound would flake on a busy CI).
            assert!(
                cell.calls <= 2 * trace.len() + 2,
                "{} at {step}: {} calls, the fault-free run makes {}",
                fault.name(),
                cell.calls,
                trace.len()
            );
            most_calls = most_calls.max(cell.calls);
            done.insert((f, at), cell.text.clone());
            row.push(cell.text);
        }
        rows.push((*fault, row));
    }

    let widths: Vec<usize> = (0..steps.len())
        .map(|i| rows.iter().map(|(_, r)| r[i].len()).chain([steps[i].0.len()]).max().unwrap_or(0))
        .collect();
    let mut table = format!(
        "fault matrix: {} objects in 2 accounts, {} alerts expected; trace {}\n",
        objects.len(),
        baseline.len(),
        trace.iter().map(|o| o.name()).collect::<Vec<_>>().join(" ")
    );
    table.push_str(&format!("{:<20}", "fault \\ step"));
    for (i, (step, _)) in steps.iter().enumerate() {
        table.push_str(&format!(" | {:<w$}", step, w = widths[i]));
    }
    table.push('\n');
    for (fault, row) in &rows {
        table.push_str(&format!("{:<20}", fault.name()));
        for (i, text) in row.iter().enumerate() {
            table.push_str(&format!(" | {:<w$}", text, w = widths[i]));
        }
        table.push('\n');
    }
    table.push_str(&format!(
        "{} cells run, at most {most_calls} calls in a cell (fault-free: {}); every cell delivered all {} alerts \
         (dup = same dedup_key again)",
        done.len(),
        trace.len(),
        baseline.len()
    ));
    let table: String = table.lines().map(|line| format!("{}\n", line.trim_end())).collect();
    let table = table.trim_end();
    let path = target_dir().join("fault-matrix.txt");
    if let Err(e) = std::fs::create_dir_all(target_dir()).and_then(|()| std::fs::write(&path, format!("{table}\n"))) {
        eprintln!("cannot write {}: {e}", path.display());
    }
    report(table);
}
