//! `rolewatch replay s3://...` against a real `moto_server` with the real
//! SDK client: both organisation-trail layouts, `--since` / `--until`,
//! other services' objects skipped, one unreadable object.
//!
//! Needs `moto_server` in `TEST_TOOLS_BIN` or on PATH (`make test` puts
//! `.venv/bin` there). Without the `e2e` feature these are listed as
//! ignored, naming what they need.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::primitives::ByteStream;
use serde_json::Value;

use crate::run::{alerts, rolewatch, stderr, summary};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/events/cloudtrail");

fn tool(name: &str) -> PathBuf {
    std::env::var_os("TEST_TOOLS_BIN")
        .map(|dir| Path::new(&dir).join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// `moto_server` on a free 127.0.0.1 port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): run `make test`, which installs it into .venv")
            });
        let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(moto.child.try_wait().ok().flatten().is_none(), "moto_server exited early");
            assert!(Instant::now() < deadline, "moto_server did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// A bucket holding `objects` (key, bytes).
    fn bucket(&self, name: &str, objects: &[(String, Vec<u8>)]) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sdk = aws_config::defaults(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&self.endpoint)
                .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
                .load()
                .await;
            let client =
                aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
            client.create_bucket().bucket(name).send().await.expect("create bucket");
            for (key, bytes) in objects {
                client
                    .put_object()
                    .bucket(name)
                    .key(key)
                    .body(ByteStream::from(bytes.clone()))
                    .send()
                    .await
                    .expect("put object");
            }
        });
    }

    /// `rolewatch ARGS` with the standard AWS environment pointing at moto.
    fn rolewatch(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rolewatch"))
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_PROFILE")
            .env("ROLEWATCH_S3_FORCE_PATH_STYLE", "true")
            .output()
            .expect("rolewatch runs")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under events/cloudtrail, keyed by its path below it.
fn sample_objects() -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let key = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.push((key, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(SAMPLES), Path::new(SAMPLES), &mut out);
    out
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// Five denied role assumptions by one user in five minutes: one
/// `repeated_failures` alert.
fn burst(account: &str, user: &str, day: u32) -> Vec<u8> {
    let records: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"eventVersion":"1.08","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2026-10-{day:02}T10:0{i}:00Z","eventID":"{user}-{i}","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.7","recipientAccountId":"{account}","errorCode":"AccessDenied","errorMessage":"not authorized","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::{account}:user/{user}","accountId":"{account}","principalId":"AIDAEXAMPLE{i}"}},"requestParameters":{{"roleArn":"arn:aws:iam::{account}:role/admin","roleSessionName":"s"}}}}"#
            )
        })
        .collect();
    gzip(&format!(r#"{{"Records":[{}]}}"#, records.join(",")))
}

fn detectors(out: &Output) -> Vec<(String, String)> {
    alerts(out).iter().map(|a: &Value| (a["detector"].to_string(), a["dedup_key"].to_string())).collect()
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "needs moto_server: run `make test`, which installs and runs it")]
fn a_bucket_replays_as_the_same_files_on_disk_do() {
    let moto = Moto::start();
    moto.bucket("trail", &sample_objects());
    let from_s3 = moto.rolewatch(&["replay", "--format", "json", "s3://trail/"]);
    let from_disk = rolewatch(&["replay", "--format", "json", SAMPLES]);
    assert_eq!(from_s3.status.code(), Some(0), "{}", stderr(&from_s3));
    assert_eq!(alerts(&from_s3), alerts(&from_disk), "same alerts, same order");
    assert_eq!(alerts(&from_s3).len(), 4);
    for field in ["files", "records", "role assumptions", "skipped"] {
        assert_eq!(summary(&from_s3, field), summary(&from_disk, field), "{field}: {}", stderr(&from_s3));
    }
    // Fetched eight at a time or one at a time, applied in key order.
    let serial = moto.rolewatch(&["replay", "--format", "json", "--jobs", "1", "s3://trail/AWSLogs/"]);
    assert_eq!(alerts(&serial), alerts(&from_s3));
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "needs moto_server: run `make test`, which installs and runs it")]
fn dates_limit_the_listing_to_the_days_asked_for() {
    let moto = Moto::start();
    moto.bucket("trail", &sample_objects());
    let window = ["--since", "2026-10-01", "--until", "2026-10-02"];
    let from_s3 = moto.rolewatch(&[&["replay", "--format", "json"][..], &window, &["s3://trail/AWSLogs/"]].concat());
    let from_disk = rolewatch(&[&["replay", "--format", "json"][..], &window, &[SAMPLES]].concat());
    assert_eq!(from_s3.status.code(), Some(0), "{}", stderr(&from_s3));
    assert_eq!(summary(&from_s3, "files"), 25 + 24, "the objects of 1 and 2 October: {}", stderr(&from_s3));
    assert_eq!(alerts(&from_s3), alerts(&from_disk));
    // 3 to 5 October hold 82 objects and 24 to 30 September 161: listing
    // starts at the first day and stops at the first object past the last,
    // and the digest folder is not listed at all.
    let err = stderr(&from_s3);
    assert!(err.contains("outside dates 1") && err.contains("folders not listed 1"), "{err}");
    assert!(!err.contains("digest"), "{err}");
}

#[test]
#[cfg_attr(not(feature = "e2e"), ignore = "needs moto_server: run `make test`, which installs and runs it")]
fn both_layouts_are_read_other_services_skipped_and_a_broken_object_reported() {
    let moto = Moto::start();
    let plain = "logs/AWSLogs/444455556666/CloudTrail/eu-west-1/2026/10/05/444455556666_CloudTrail_eu-west-1_20261005T1010Z_aaaa.json.gz";
    let org = "logs/AWSLogs/o-abc123def4/777788889999/CloudTrail/us-east-1/2026/10/06/777788889999_CloudTrail_us-east-1_20261006T1010Z_bbbb.json.gz";
    let broken = "logs/AWSLogs/o-abc123def4/777788889999/CloudTrail/us-east-1/2026/10/06/777788889999_CloudTrail_us-east-1_20261006T1015Z_cccc.json.gz";
    let config = "logs/AWSLogs/444455556666/Config/eu-west-1/2026/10/5/ConfigSnapshot/444455556666_Config_eu-west-1_ConfigSnapshot_20261005T101010Z_dddd.json.gz";
    let mut cut = burst("777788889999", "eve", 6);
    cut.truncate(cut.len() / 2);
    moto.bucket(
        "archive",
        &[
            (plain.to_owned(), burst("444455556666", "mallory", 5)),
            (org.to_owned(), burst("777788889999", "trudy", 6)),
            (broken.to_owned(), cut),
            (config.to_owned(), gzip(r#"{"fileVersion":"1.0","configurationItems":[]}"#)),
        ],
    );
    for window in [&[][..], &["--since", "2026-10-05", "--until", "2026-10-06"][..]] {
        let out = moto.rolewatch(&[&["replay", "--format", "json"][..], window, &["s3://archive/logs/"]].concat());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "one object could not be read: {err}");
        assert!(err.contains(&format!("s3://archive/{broken}: ")), "the error names the object: {err}");
        let found = detectors(&out);
        assert_eq!(found.len(), 2, "both layouts read, the others still processed: {found:?}");
        assert!(alerts(&out).iter().any(|a| a["principal"].as_str().unwrap().ends_with("user/mallory")));
        assert!(alerts(&out).iter().any(|a| a["principal"].as_str().unwrap().ends_with("user/trudy")));
        assert_eq!(summary(&out, "failed"), 1);
        assert_eq!(summary(&out, "files"), 3, "the Config object is never read: {err}");
        let skipped = if window.is_empty() { "not CloudTrail 1" } else { "folders not listed 1" };
        assert!(err.contains(skipped), "{err}");
    }
    let missing = moto.rolewatch(&["replay", "s3://no-such-bucket/"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("s3://no-such-bucket/"), "{}", stderr(&missing));
}
