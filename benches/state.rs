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
/// Event time of the synthetic traffic: recent enough that nothing is pruned.
const START: i64 = 1_795_000_000;

fn main() {
    // `cargo bench` passes `--bench`; the positional arguments are ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let principals: usize = args.first().map_or(DEFAULT_PRINCIPALS, |a| a.parse().expect("PRINCIPALS is a number"));
    let typical_file = args.get(1).map(PathBuf::from);

    let state = state_with_principals(principals);
    let known = state.unexpected_source_ip.principals.len();
    assert_eq!(known, principals, "every synthetic principal is kept in state");

    let saved = state.to_json_vec();
    let save = median(|| {
        std::hint::black_box(state.to_json_vec());
    });
    let load = median(|| {
        std::hint::black_box(State::from_json_slice(&saved).expect("state just saved loads"));
    });
    println!("principals={known}");
    println!("state_bytes={}", saved.len());
    println!("save_ms={:.1}", ms(save));
    println!("load_ms={:.1}", ms(load));

    if let Some(path) = typical_file {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let config = Config::default();
        let mut process = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            // A fresh engine over the loaded state each run, as an invocation has;
            // only reading the file and applying its events is timed.
            let mut engine = Engine::new(&config, state.clone());
            let started = Instant::now();
            let read = read_input(&bytes[..], &InputLimits::default()).expect("typical file reads");
            std::hint::black_box(engine.apply(&path.to_string_lossy(), &read.events));
            process.push(started.elapsed());
        }
        process.sort();
        println!("file={}", path.display());
        println!("file_process_ms={:.1}", ms(process[RUNS / 2]));
    }
}

/// Runs the engine over one successful role assumption per principal, each
/// from its own network, so the state holds what production would keep.
fn state_with_principals(principals: usize) -> State {
    let mut engine = Engine::new(&Config::default(), State::default());
    let events: Vec<AssumeRoleEvent> = (0..principals).map(synthetic_event).collect();
    for (batch, chunk) in events.chunks(2_000).enumerate() {
        engine.apply(&format!("synthetic-{batch}"), chunk);
    }
    engine.into_state()
}

fn synthetic_event(n: usize) -> AssumeRoleEvent {
    let [_, b, c, d] = (n as u32).to_be_bytes();
    AssumeRoleEvent {
        event_id: format!("00000000-0000-4000-8000-{n:012x}"),
        event_time: START + (n as i64 % 3_600),
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
