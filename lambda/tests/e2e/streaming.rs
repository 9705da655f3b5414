//! A large object is streamed: memory stays flat while hundreds of
//! megabytes are decompressed and walked, and while an object's role
//! assumptions are applied, however many it holds.

use std::io::Write;

use crate::harness::{denied_assume_role, granted_assume_role, log_key, other_call, s3_event, Fixture, TRAIL_BUCKET};

/// Decompressed size of the generated object.
const DECOMPRESSED_BYTES: usize = 200 << 20;
/// Allowed growth of the process's peak resident memory while it is read.
const MAX_GROWTH_BYTES: u64 = 64 << 20;
/// Role assumptions in the STS-heavy object: held whole, as before they
/// were applied in chunks, they took about twice `MAX_GROWTH_BYTES`.
const ROLE_ASSUMPTIONS: u64 = 200_000;

/// Set in the child process that runs one measuring test alone.
const ALONE_VAR: &str = "ROLEWATCH_TEST_MEASURE_ALONE";

/// Peak resident memory is a figure of the whole process, and this binary's
/// other tests run beside these ones: so a measuring test runs its body in a
/// child process of this test binary that runs just that one test. True in
/// that child (go on and measure); in the parent, runs the child and fails
/// unless it ran the test and passed.
async fn measuring_alone(test: &str) -> bool {
    if std::env::var_os(ALONE_VAR).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let name = test.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(ALONE_VAR, "1")
            .output()
            .expect("run the test binary again")
    })
    .await
    .expect("child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} in a process of its own:\n{stdout}\n{stderr}"
    );
    false
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// A gzip CloudTrail log of about `DECOMPRESSED_BYTES`, ending in a burst of
/// failed role assumptions (so the alert proves it was read to the end).
fn large_log() -> (Vec<u8>, u64) {
    let filler = other_call("filler", "2026-10-05T09:00:00Z").to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut records = 0u64;
    let mut written = 0;
    gz.write_all(b"{\"Records\":[").expect("gzip");
    while written < DECOMPRESSED_BYTES {
        gz.write_all(filler.as_bytes()).expect("gzip");
        gz.write_all(b",").expect("gzip");
        written += filler.len() + 1;
        records += 1;
    }
    for i in 0..5 {
        let record = denied_assume_role(&format!("tail-{i}"), &format!("2026-10-05T10:00:{:02}Z", i * 10), "guesser");
        if i > 0 {
            gz.write_all(b",").expect("gzip");
        }
        gz.write_all(record.to_string().as_bytes()).expect("gzip");
        records += 1;
    }
    gz.write_all(b"]}").expect("gzip");
    (gz.finish().expect("gzip"), records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn a_large_object_is_streamed_in_flat_memory() {
    if !measuring_alone("streaming::a_large_object_is_streamed_in_flat_memory").await {
        return;
    }
    let fx = Fixture::new().await;
    let key = log_key("05", "20261005T1005Z_LargeObject00001");
    let (object, records) = large_log();
    fx.put(TRAIL_BUCKET, &key, object).await;
    let handler = fx.handler("rolewatch/state/");

    // Reset the peak-RSS mark, then read the object.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM (Linux)");
    let before = status_kib("VmRSS:") * 1024;
    let response = handler.handle(s3_event(&[&key])).await.expect("large object processed");
    let peak = status_kib("VmHWM:") * 1024;

    assert_eq!(response["records"], records, "{response}");
    assert_eq!(response["alerts"], 1, "the burst at the very end was seen: {response}");
    let growth = peak.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_BYTES,
        "peak memory grew by {} MiB reading a {} MiB log",
        growth >> 20,
        DECOMPRESSED_BYTES >> 20
    );
    assert_eq!(fx.drain().await.len(), 1);
}

/// A gzip CloudTrail log of nothing but `ROLE_ASSUMPTIONS` granted role
/// assumptions by a few users, ending in a burst of failed ones.
fn role_assumptions_log() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"Records\":[").expect("gzip");
    // One record rendered once; each copy gets its own event id and time.
    let template = granted_assume_role("EVENT-ID", "EVENT-TIME", "USER").to_string();
    for i in 0..ROLE_ASSUMPTIONS {
        let time = format!("2026-10-05T09:{:02}:{:02}Z", i / 2000 % 60, i / 40 % 50);
        let record = template
            .replace("EVENT-ID", &format!("bulk-{i}"))
            .replace("EVENT-TIME", &time)
            .replace("USER", &format!("user{}", i % 16));
        gz.write_all(record.as_bytes()).expect("gzip");
        gz.write_all(b",").expect("gzip");
    }
    for i in 0..5 {
        let record = denied_assume_role(&format!("tail-{i}"), &format!("2026-10-05T10:00:{:02}Z", i * 10), "guesser");
        if i > 0 {
            gz.write_all(b",").expect("gzip");
        }
        gz.write_all(record.to_string().as_bytes()).expect("gzip");
    }
    gz.write_all(b"]}").expect("gzip");
    gz.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn an_object_of_role_assumptions_is_applied_in_chunks_in_flat_memory() {
    if !measuring_alone("streaming::an_object_of_role_assumptions_is_applied_in_chunks_in_flat_memory").await {
        return;
    }
    let fx = Fixture::new().await;
    let key = log_key("05", "20261005T1005Z_RoleAssumptions1");
    fx.put(TRAIL_BUCKET, &key, role_assumptions_log()).await;
    let handler = fx.handler("rolewatch/state/");

    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM (Linux)");
    let before = status_kib("VmRSS:") * 1024;
    let response = handler.handle(s3_event(&[&key])).await.expect("object processed");
    let peak = status_kib("VmHWM:") * 1024;

    assert_eq!(response["role_assumptions"], ROLE_ASSUMPTIONS + 5, "{response}");
    assert_eq!(response["alerts"], 1, "the burst at the very end was seen: {response}");
    let growth = peak.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_BYTES,
        "peak memory grew by {} MiB applying {ROLE_ASSUMPTIONS} role assumptions",
        growth >> 20
    );
    assert_eq!(fx.drain().await.len(), 1);
}
