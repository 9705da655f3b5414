//! The real runtime loop: `cargo lambda watch` builds and runs the
//! `rolewatch-lambda` binary under its Lambda runtime API emulator, and
//! `cargo lambda invoke --data-file events/s3-notification.json` sends the
//! sample event through it. The alert must arrive in the queue. Then a
//! notification for a shared log archive bucket (a CloudTrail log file among
//! AWS Config, VPC flow log, digest and Insights objects): one alert, the
//! rest skipped and counted, the invocation a success.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{
    cloudtrail_gz, denied_assume_role, free_port, log_key, s3_event, tools_path, workspace, Fixture, ACCOUNT, REGION,
    TRAIL_BUCKET,
};
use crate::oracle::{assert_delivered, expected_alerts};
use crate::samples::BURST;

/// First builds of the function in a cold target directory take minutes on
/// a small machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1500);

/// `cargo lambda watch` and everything it started (cargo, the function),
/// stopped together on drop.
struct Watch {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Watch {
    fn log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(self.log.path()).and_then(|mut f| f.read_to_string(&mut text));
        let start = text.len().saturating_sub(6000);
        text[text.floor_char_boundary_compat(start)..].to_owned()
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut index: usize) -> usize {
        while index > 0 && !self.is_char_boundary(index) {
            index -= 1;
        }
        index
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The watch runs in its own process group: signal all of it.
        let group = format!("-{}", self.child.id());
        let quiet = |signal: &str| {
            Command::new("kill").args([signal, "--", &group]).stderr(Stdio::null()).status().map(|s| s.success())
        };
        let _ = quiet("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = quiet("-KILL");
        let _ = self.child.wait();
    }
}

fn require_cargo_lambda() {
    let found = Command::new("cargo")
        .args(["lambda", "--version"])
        .env("PATH", tools_path())
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(found, Ok(true)),
        "cargo-lambda is not installed: `make test` installs it into .venv (pip install cargo-lambda==1.9.2)"
    );
}

fn run_with_timeout(mut command: Command, timeout: Duration) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "timed out after {timeout:?}: {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "e2e"),
    ignore = "needs moto_server and cargo-lambda: run `make test`, which installs and runs them"
)]
async fn cargo_lambda_watch_and_invoke_deliver_an_alert_through_the_runtime_loop() {
    require_cargo_lambda();
    let fx = Fixture::new().await;
    fx.upload_samples(&[BURST]).await;
    let root = workspace();

    // The function's environment, as a deployment would set it, pointed at moto.
    let env_file = tempfile::NamedTempFile::new().expect("env file");
    let mut env: Vec<(String, String)> = fx.env("rolewatch/state/");
    env.extend(
        [
            ("AWS_ENDPOINT_URL", fx.moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("RUST_LOG", "info"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let env_text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(env_file.path(), env_text).expect("write env file");

    let port = free_port();
    let log = tempfile::NamedTempFile::new().expect("watch log");
    let mut command = Command::new("cargo");
    command
        .current_dir(&root)
        .args(["lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .args(["--timeout", &BUILD_TIMEOUT.as_secs().to_string()])
        .args(["--package", "rolewatch-lambda", "--bin", "rolewatch-lambda", "--env-file"])
        .arg(env_file.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PATH", tools_path())
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(log.reopen().expect("log"))
        .stderr(log.reopen().expect("log"))
        .process_group(0);
    let child = command.spawn().expect("start cargo lambda watch");
    let watch = Watch { child, log };

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "cargo lambda watch did not listen on {addr}:\n{}", watch.log());
        std::thread::sleep(Duration::from_millis(250));
    }

    // Succeeds (the invocation did not fail) and answers JSON.
    let invoke = |data_file: &Path| {
        let mut invoke = Command::new("cargo");
        invoke
            .current_dir(&root)
            .env("PATH", tools_path())
            .args(["lambda", "invoke", "rolewatch-lambda", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .args(["--output-format", "json", "--data-file"])
            .arg(data_file);
        let output = run_with_timeout(invoke, BUILD_TIMEOUT);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "cargo lambda invoke failed: {stdout}\n{}\nwatch log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            watch.log()
        );
        serde_json::from_str::<serde_json::Value>(stdout.trim())
            .unwrap_or_else(|e| panic!("invoke output is not JSON ({e}): {stdout}"))
    };
    let response = invoke(&Path::new("events").join("s3-notification.json"));
    assert_eq!(response["processed"], 1, "{response}");
    assert_eq!(response["alerts"], 1, "{response}");

    let delivered = fx.drain().await;
    assert_delivered(&delivered, &expected_alerts(&[BURST]));
    assert_eq!(delivered[0].detector(), "role_enumeration");
    let log_text = watch.log();
    assert!(log_text.contains("\"account\":\"111122223333\""), "structured JSON logs from the function:\n{log_text}");

    // A shared log archive bucket: one CloudTrail log file with an incident,
    // delivered with what AWS Config, VPC flow logs, CloudTrail digests and
    // CloudTrail Insights write into the same bucket, named by one notification.
    let mixed = mixed_bucket_objects();
    for (key, body) in &mixed {
        fx.put(TRAIL_BUCKET, key, body.clone()).await;
    }
    let keys: Vec<&str> = mixed.iter().map(|(key, _)| key.as_str()).collect();
    let event_file = tempfile::NamedTempFile::new().expect("event file");
    std::fs::write(event_file.path(), s3_event(&keys).to_string()).expect("write event");
    let response = invoke(event_file.path());
    assert_eq!(
        [&response["objects"], &response["processed"], &response["alerts"], &response["failed"]],
        [1, 1, 1, 0],
        "only the log file is read, and raises one alert: {response}"
    );
    assert_eq!(response["skipped_digests"], 1, "the digest, counted: {response}");
    assert_eq!(response["skipped_not_logs"], 4, "Config snapshot and history, flow logs, Insights: {response}");
    let delivered = fx.drain().await;
    let got: Vec<(&str, &str)> =
        delivered.iter().map(|d| (d.detector(), d.alert["principal"].as_str().unwrap_or_default())).collect();
    let burster = format!("arn:aws:iam::{ACCOUNT}:user/archive-prober");
    assert_eq!(got, [("repeated_failures", burster.as_str())], "exactly one alert, no unreadable_input or state_reset");
    // Its metrics, as CloudWatch would extract them from the function's stdout.
    let log_text = watch.log();
    let emf: Vec<serde_json::Value> = log_text
        .lines()
        .filter_map(|line| line.find('{').map(|at| &line[at..]))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|document| document.get("_aws").is_some())
        .collect();
    let skipped = |reason: &str| {
        emf.iter().rev().find(|d| d["reason"] == reason).map(|d| d["SkippedObjects"].clone()).unwrap_or_default()
    };
    assert_eq!([skipped("cloudtrail_digest"), skipped("not_a_cloudtrail_log")], [1, 4], "EMF lines:\n{log_text}");
    let by_detector = emf.iter().rev().find(|d| d["detector"] == "repeated_failures").cloned().unwrap_or_default();
    assert_eq!(by_detector["Alerts"], 1, "{by_detector}");
    drop(watch);
}

/// What a shared (Control Tower style) log archive bucket receives beside
/// an organisation trail's log file, under the keys each service writes:
/// the log file (a burst of denied AssumeRole calls), a CloudTrail digest,
/// a CloudTrail Insights file (it has `Records` too, of Insights events),
/// an AWS Config snapshot and history file, and a VPC flow log.
fn mixed_bucket_objects() -> Vec<(String, Vec<u8>)> {
    let burst: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            denied_assume_role(&format!("mixed-{i}"), &format!("2026-10-05T11:00:{:02}Z", i * 5), "archive-prober")
        })
        .collect();
    let gz = |text: String| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, text.as_bytes()).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    };
    let insight = serde_json::json!({"Records": [{"eventVersion": "1.08", "eventTime": "2026-10-05T11:00:00Z",
        "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole", "eventType": "AwsCloudTrailInsight",
        "eventCategory": "Insight", "recipientAccountId": ACCOUNT, "sharedEventID": "0b1f4c7e-insight",
        "insightDetails": {"state": "Start", "eventSource": "sts.amazonaws.com", "eventName": "AssumeRole",
            "insightType": "ApiCallRateInsight"}}]});
    let config = serde_json::json!({"fileVersion": "1.0", "configSnapshotId": "6a3e1c9b-snapshot",
        "configurationItems": [{"resourceType": "AWS::IAM::Role", "awsAccountId": ACCOUNT}]});
    let history = serde_json::json!({"fileVersion": "1.0", "configurationItems": []});
    let digest = serde_json::json!({"awsAccountId": ACCOUNT, "digestStartTime": "2026-10-05T10:00:00Z",
        "digestEndTime": "2026-10-05T11:00:00Z", "logFiles": []});
    let flow = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
        2 111122223333 eni-0a1b2c3d 198.18.9.20 10.0.0.5 443 49152 6 10 840 1791198000 1791198060 ACCEPT OK\n";
    let day = "2026/10/05";
    vec![
        (log_key("05", "20261005T1105Z_mIxEdBuCkEt00001"), cloudtrail_gz(&burst)),
        (
            format!("AWSLogs/o-exampleorg/{ACCOUNT}/CloudTrail-Digest/{REGION}/{day}/{ACCOUNT}_CloudTrail-Digest_{REGION}_org-trail_{REGION}_20261005T110000Z.json.gz"),
            gz(digest.to_string()),
        ),
        (
            format!("AWSLogs/o-exampleorg/{ACCOUNT}/CloudTrail-Insight/{REGION}/{day}/{ACCOUNT}_CloudTrail-Insight_{REGION}_20261005T1105Z_iNsIgHt000000001.json.gz"),
            gz(insight.to_string()),
        ),
        (
            format!("AWSLogs/{ACCOUNT}/Config/{REGION}/2026/10/5/ConfigSnapshot/{ACCOUNT}_Config_{REGION}_ConfigSnapshot_20261005T110000Z_6a3e1c9b-0d2f-4e5a-9b8c-7d6e5f4a3b2c.json.gz"),
            gz(config.to_string()),
        ),
        (
            format!("AWSLogs/{ACCOUNT}/Config/{REGION}/2026/10/5/ConfigHistory/{ACCOUNT}_Config_{REGION}_ConfigHistory_AWS::IAM::Role_20261005T100000Z_20261005T110000Z_1.json.gz"),
            gz(history.to_string()),
        ),
        (
            format!("AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/{day}/{ACCOUNT}_vpcflowlogs_{REGION}_fl-0a1b2c3d4e5f_20261005T1105Z_4f2e1d0c.log.gz"),
            gz(flow.to_owned()),
        ),
    ]
}
