//! State load and save cost with many known principals, next to the cost of
//! processing one CloudTrail file: the share state I/O takes of an invocation,
//! saved in one piece (the CLI) and in two parts (the Lambda).
//!
//! `cargo bench --bench state -- [PRINCIPALS] [TYPICAL_FILE.json.gz] [FOLDER]`
//! prints one `key=value` line per figure for `scripts/bench.sh` to read.
//! With a folder, its files run in name order as consecutive invocations of
//! one account, in two parts, and the share of state over all of them is
//! printed: the changes grow, new bases and daily sweeps come due.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rolewatch::cloudtrail::{read_input, AssumeRoleEvent, InputLimits, SourceAddress};
use rolewatch::state::StateBase;
use rolewatch::storage::BaseSpare;
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
    let sequence = args.get(2).map(PathBuf::from);
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
    let whole = state.to_bytes();
    // The figures other than the sequence's share one spare, as one process would.
    let spare = BaseSpare::default();
    let parts = state.to_parts(&spare);
    let base = parts.new_base.expect("this many principals are saved with a base");
    let part = parts.state;
    drop(state);
    println!("principals={known}");
    println!("whole_bytes={}", whole.len());
    println!("base_bytes={}", base.as_bytes().len());
    let raw_base = base.as_bytes().to_vec();

    // The sequence first, as a warm function that read its base from S3 (a
    // buffer of exactly its size) and has written none yet: its first new
    // base is written into fresh memory, as a new execution environment's is.
    // The base written above stays alive meanwhile, out of the sequence's way.
    if let Some(folder) = &sequence {
        // A spare of its own: a function that just started has none.
        let fresh_function = BaseSpare::default();
        let loaded = StateBase::from_bytes(raw_base.clone(), &fresh_function).expect("base loads");
        run_sequence(folder, part.clone(), loaded, &fresh_function, "sequence");
    }

    // One piece (the CLI's state file): read whole, written whole.
    let mut copies: Vec<Vec<u8>> = (0..RUNS).map(|_| whole.clone()).collect();
    let whole_load = median(|| {
        std::hint::black_box(State::from_bytes(copies.pop().unwrap_or_default()).expect("state loads"));
    });
    let loaded = State::from_bytes(whole.clone()).expect("state loads");
    let whole_save = median(|| {
        std::hint::black_box(loaded.to_bytes());
    });
    println!("whole_load_ms={:.2}", ms(whole_load));
    println!("whole_save_ms={:.2}", ms(whole_save));

    // Two parts (the Lambda): reading a base that is not in memory yet
    // (checksum over all of it), and the daily sweep that writes a new one.
    let mut copies: Vec<Vec<u8>> = (0..RUNS).map(|_| raw_base.clone()).collect();
    let base_read = median(|| {
        std::hint::black_box(StateBase::from_bytes(copies.pop().unwrap_or_default(), &spare).expect("base loads"));
    });
    let sweep = median(|| {
        // A day on, nothing due yet: the sweep reads every line's due time only.
        let mut state = State::from_parts(part.clone(), &base).expect("state loads");
        let day_later = state.watermark.unwrap_or_default() + 86_400;
        state.unexpected_source_ip.swept_at = None;
        state.unexpected_source_ip.prune(&Config::default().unexpected_source_ip, day_later);
        std::hint::black_box(state.to_parts(&spare));
    });
    println!("base_read_ms={:.2}", ms(base_read));
    println!("sweep_ms={:.1}", ms(sweep));

    if let (Some(path), Some((bytes, _))) = (typical_file, typical) {
        let config = Config::default();
        let (mut load, mut process, mut save, mut saved_bytes) = (vec![], vec![], vec![], 0);
        for _ in 0..RUNS {
            // As a warm invocation runs: the state part read (its base in
            // memory), the file read and applied, the changes saved.
            let part_copy = part.clone();
            let started = Instant::now();
            let state = State::from_parts(part_copy, &base).expect("state loads");
            let loaded_at = Instant::now();
            let mut engine = Engine::new(&config, state);
            let read = read_input(&bytes[..], &InputLimits::default()).expect("typical file reads");
            std::hint::black_box(engine.apply(&path.to_string_lossy(), &read.events));
            let processed_at = Instant::now();
            let saved = engine.into_state().to_parts(&spare);
            assert!(saved.new_base.is_none(), "one file's changes do not rewrite the base");
            saved_bytes = saved.state.len();
            save.push(processed_at.elapsed());
            load.push(loaded_at - started);
            process.push(processed_at - loaded_at);
        }
        let mid = |mut v: Vec<Duration>| {
            v.sort();
            v[RUNS / 2]
        };
        println!("file={}", path.display());
        println!("part_bytes={saved_bytes}");
        println!("load_ms={:.3}", ms(mid(load)));
        println!("file_process_ms={:.2}", ms(mid(process)));
        println!("save_ms={:.3}", ms(mid(save)));
    }

    if let Some(folder) = sequence {
        // The same invocations from empty state: what the 100,000 principals add.
        let fresh_function = BaseSpare::default();
        let empty = State::default().to_parts(&fresh_function);
        let base = StateBase::from_bytes(raw_base, &fresh_function).expect("base loads");
        run_sequence(&folder, empty.state, base, &fresh_function, "sequence_empty");
    }
}

/// Every file of `folder` as one invocation after another against the same
/// account's state, as the Lambda runs them: state part read (base in
/// memory), file applied, changes saved, a new base when due.
fn run_sequence(folder: &Path, mut part: Vec<u8>, mut base: StateBase, spare: &BaseSpare, name: &str) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    let config = Config::default();
    let (mut load_time, mut save_time, mut new_base_time, mut sweep_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut process_times, mut new_bases, mut sweeps, mut largest_part) = (Vec::new(), 0, 0, 0);
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let started = Instant::now();
        let state = State::from_parts(part, &base).expect("state loads");
        let swept_before = state.unexpected_source_ip.swept_at;
        let loaded_at = Instant::now();
        load_time += loaded_at - started;
        let mut engine = Engine::new(&config, state);
        let read = read_input(&bytes[..], &InputLimits::default()).expect("file reads");
        engine.apply(&path.to_string_lossy(), &read.events);
        let processed_at = Instant::now();
        let state = engine.into_state();
        if state.unexpected_source_ip.swept_at != swept_before {
            // The daily sweep ran inside apply: its time is state upkeep.
            sweeps += 1;
            sweep_time += processed_at - loaded_at;
        } else {
            process_times.push(processed_at - loaded_at);
        }
        let saved = state.to_parts(spare);
        if let Some(new_base) = saved.new_base {
            new_bases += 1;
            new_base_time += processed_at.elapsed();
            base = new_base;
        } else {
            save_time += processed_at.elapsed();
        }
        part = saved.state;
        largest_part = largest_part.max(part.len());
    }
    // A sweeping invocation processes its file like any other.
    let process_each = process_times.iter().sum::<Duration>() / process_times.len().max(1) as u32;
    let process_total = process_each * files.len() as u32;
    let sweep_time = sweep_time.saturating_sub(process_each * sweeps);
    println!("{name}_files={}", files.len());
    println!("{name}_new_bases={new_bases}");
    println!("{name}_sweeps={sweeps}");
    println!("{name}_largest_part_bytes={largest_part}");
    println!("{name}_load_ms={:.1}", ms(load_time));
    println!("{name}_save_ms={:.1}", ms(save_time));
    println!("{name}_new_base_ms={:.1}", ms(new_base_time));
    println!("{name}_sweep_ms={:.1}", ms(sweep_time));
    println!("{name}_state_ms={:.1}", ms(load_time + save_time + new_base_time + sweep_time));
    println!("{name}_process_ms={:.1}", ms(process_total));
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
        caller_account: Some("111122223333".to_owned()),
        session_issuer_arn: Some(format!("arn:aws:iam::111122223333:role/Workload{}", n % 50)),
        shared_event_id: None,
        serial_number_given: false,
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
