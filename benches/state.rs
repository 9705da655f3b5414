//! State load and save cost with many known principals, next to the cost of
//! processing one CloudTrail file: the share state I/O takes of an invocation.
//!
//! `cargo bench --bench state -- [PRINCIPALS] [TYPICAL_FILE.json.gz]`
//! prints one `key=value` line per figure for `scripts/bench.sh` to read.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rolewatch::cloudtrail::{read_input, AssumeRoleEvent, InputLimits, SourceAddress};
use rolewatch::{Config, Engine, State};

const DEFAULT_PRINCIPALS: usize = 100_000;
/// Timings are the median of this many runs; the machine is shared and noisy.
const RUNS: usize = 7;
/// Event time of the synthetic traffic when no typical file sets it.
const DEFAULT_START: i64 = 1_795_000_000;

fn main() {
    // `cargo bench` passes `--bench`; the positional arguments are ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let principals: usize = args.first().map_or(DEFAULT_PRINCIPALS, |a| a.parse().expect("PRINCIPALS is a number"));
    let typical_file = args.get(1).map(PathBuf::from);
    let typical = typical_file.as_ref().map(|path| {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let events = read_input(&bytes[..], &InputLimits::default()).expect("typical file reads").events;
        (bytes, events)
    });
    // The principals were last seen in the hour before the typical file, as
    // in an account's steady state: nothing expires, no daily sweep is due.
    let start = typical
        .as_ref()
        .and_then(|(_, events)| events.iter().map(|e| e.event_time).min())
        .map_or(DEFAULT_START, |first| first - 3_600);

    let state = state_with_principals(principals, start);
    let known = state.unexpected_source_ip.principals.len();
    assert_eq!(known, principals, "every synthetic principal is kept in state");
    let saved = state.to_bytes();
    drop(state);
    println!("principals={known}");
    println!("state_bytes={}", saved.len());

    // What every invocation pays: reading the saved bytes and writing them
    // back after a file touched a few dozen principals.
    // Timed without obtaining the bytes (an S3 GET or a file read).
    let mut copies: Vec<Vec<u8>> = (0..RUNS).map(|_| saved.clone()).collect();
    let load = median(|| {
        let bytes = copies.pop().unwrap_or_default();
        std::hint::black_box(State::from_bytes(bytes).expect("state just saved loads"));
    });
    let loaded = State::from_bytes(saved.clone()).expect("state just saved loads");
    let save = median(|| {
        std::hint::black_box(loaded.to_bytes());
    });
    // What one invocation a day pays per account: every baseline decoded,
    // pruned and encoded again.
    let mut copies: Vec<Vec<u8>> = (0..RUNS).map(|_| saved.clone()).collect();
    let sweep = median(|| {
        let mut state = State::from_bytes(copies.pop().unwrap_or_default()).expect("state just saved loads");
        state.unexpected_source_ip.principals.load_all();
        std::hint::black_box(state.to_bytes());
    });
    println!("load_ms={:.2}", ms(load));
    println!("save_ms={:.2}", ms(save));
    println!("sweep_ms={:.1}", ms(sweep));

    if let (Some(path), Some((bytes, _))) = (typical_file, typical) {
        let config = Config::default();
        let (mut process, mut invocation) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
        for _ in 0..RUNS {
            // As an invocation runs: load, read the file and apply its events, save.
            let bytes_of_state = saved.clone();
            let started = Instant::now();
            let state = State::from_bytes(bytes_of_state).expect("state just saved loads");
            let mut engine = Engine::new(&config, state);
            let processing = Instant::now();
            let read = read_input(&bytes[..], &InputLimits::default()).expect("typical file reads");
            std::hint::black_box(engine.apply(&path.to_string_lossy(), &read.events));
            process.push(processing.elapsed());
            std::hint::black_box(engine.into_state().to_bytes());
            invocation.push(started.elapsed());
        }
        process.sort();
        invocation.sort();
        println!("file={}", path.display());
        println!("file_process_ms={:.2}", ms(process[RUNS / 2]));
        println!("invocation_ms={:.2}", ms(invocation[RUNS / 2]));
    }
}

/// Runs the engine over one successful role assumption per principal, each
/// from its own network, so the state holds what production would keep.
fn state_with_principals(principals: usize, start: i64) -> State {
    let mut engine = Engine::new(&Config::default(), State::default());
    let events: Vec<AssumeRoleEvent> = (0..principals).map(|n| synthetic_event(n, start)).collect();
    for (batch, chunk) in events.chunks(2_000).enumerate() {
        engine.apply(&format!("synthetic-{batch}"), chunk);
    }
    engine.into_state()
}

fn synthetic_event(n: usize, start: i64) -> AssumeRoleEvent {
    let [_, b, c, d] = (n as u32).to_be_bytes();
    AssumeRoleEvent {
        event_id: format!("00000000-0000-4000-8000-{n:012x}"),
        event_time: start + (n as i64 % 3_600),
        event_name: "AssumeRole".to_owned(),
        principal: format!("arn:aws:sts::111122223333:assumed-role/Workload{}/session-{n}", n % 50),
        identity_type: "AssumedRole".to_owned(),
        role_arn: Some(format!("arn:aws:iam::111122223333:role/Target{}", n % 20)),
        denied_role_arn: None,
        role_session_name: Some(format!("session-{n}")),
        source: SourceAddress::Ip(IpAddr::V4(Ipv4Addr::new(10 + b, c, d, 7))),
        user_agent: Some("aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5".to_owned()),
        duration_seconds: Some(3_600),
        external_id_given: false,
        mfa_authenticated: Some(false),
        error_code: None,
        account_id: "111122223333".to_owned(),
        recipient_account_id: Some("111122223333".to_owned()),
        aws_region: Some("us-east-1".to_owned()),
    }
}

fn median(mut run: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
