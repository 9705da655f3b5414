//! Benchmark: one large CloudTrail object through the deployed handler,
//! streamed from a real S3 protocol server (`moto_server`), with the
//! process's peak memory. `scripts/bench.sh` runs it; by hand:
//!
//! ```text
//! cargo run --release -p rolewatch-lambda --example bench_s3_object -- FILE.json.gz [--endpoint URL]
//! ```
//!
//! Without `--endpoint` it starts `moto_server` on a free port
//! (`TEST_TOOLS_BIN`, else `.venv/bin`, else PATH) and stops it at the
//! end. It creates the trail and state buckets and the alert topic, uploads
//! FILE under a real CloudTrail key *from a child process* (so this process
//! never holds the object: its peak RSS is the function's), then builds the
//! handler exactly as `main.rs` does and invokes it once with an S3
//! notification: streamed GetObject -> read_input_chunked -> engine (in
//! chunks of role assumptions) -> SNS -> S3 state.
//!
//! Prints `name=value` lines on stdout (sizes in bytes, memory in KiB,
//! times in seconds); logs go to stderr. Exits non-zero if the object was
//! not processed in full.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;
use rolewatch_lambda::{aws_handler, Settings};
use serde_json::json;

const TRAIL_BUCKET: &str = "rolewatch-bench-trail";
const STATE_BUCKET: &str = "rolewatch-bench-state";
const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";

const USAGE: &str = "usage: bench_s3_object FILE.json.gz [--endpoint URL]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // Internal: the upload, run in a child process.
        Some("upload") if args.len() == 4 => runtime().block_on(upload(&args[1], Path::new(&args[2]), &args[3])),
        Some(file) if !file.starts_with('-') => {
            let endpoint = match &args[1..] {
                [] => None,
                [flag, url] if flag == "--endpoint" => Some(url.clone()),
                _ => return usage(),
            };
            bench(Path::new(file), endpoint)
        }
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench_s3_object: {err}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// The runtime `#[tokio::main]` builds in `main.rs`.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

type BoxError = Box<dyn std::error::Error>;

fn bench(file: &Path, endpoint: Option<String>) -> Result<(), BoxError> {
    init_logging();
    let object_bytes = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?.len();
    let json_bytes = gzip_isize(file)?;
    let moto = match endpoint {
        Some(_) => None,
        None => Some(Moto::start()?),
    };
    let endpoint = endpoint.unwrap_or_else(|| moto.as_ref().map(|m| m.endpoint.clone()).unwrap_or_default());
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let key = format!(
        "AWSLogs/o-exampleorg/{ACCOUNT}/CloudTrail/{REGION}/2026/10/05/\
         {ACCOUNT}_CloudTrail_{REGION}_20261005T1005Z_Bench{run}.json.gz"
    );
    // A fresh state prefix per run: the object is never "already processed".
    let state_prefix = format!("rolewatch/bench-{run}/");

    let rt = runtime();
    let topic_arn = rt.block_on(async {
        let sdk = sdk_config(&endpoint).await;
        let s3 = s3_client(&sdk);
        for bucket in [TRAIL_BUCKET, STATE_BUCKET] {
            if s3.head_bucket().bucket(bucket).send().await.is_err() {
                s3.create_bucket().bucket(bucket).send().await.map_err(|e| format!("create bucket {bucket}: {e}"))?;
            }
        }
        let topic = aws_sdk_sns::Client::new(&sdk).create_topic().name("rolewatch-bench-alerts").send().await;
        let topic = topic.map_err(|e| format!("create topic: {e}"))?;
        topic.topic_arn.ok_or_else(|| BoxError::from("create topic: no ARN"))
    })?;

    eprintln!("bench_s3_object: uploading {} ({object_bytes} bytes) as s3://{TRAIL_BUCKET}/{key}", file.display());
    let uploaded = Instant::now();
    let status = Command::new(std::env::current_exe()?)
        .arg("upload")
        .arg(&endpoint)
        .arg(file)
        .arg(&key)
        .stdin(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("upload failed ({status})").into());
    }
    eprintln!("bench_s3_object: uploaded in {:.1} s", uploaded.elapsed().as_secs_f64());

    // The function as `main.rs` builds it: settings from the environment
    // variables it would get, SDK configuration, handler.
    let env = [
        ("ROLEWATCH_ALERT_TOPIC_ARN", topic_arn.as_str()),
        ("ROLEWATCH_STATE_BUCKET", STATE_BUCKET),
        ("ROLEWATCH_STATE_PREFIX", state_prefix.as_str()),
        ("ROLEWATCH_S3_FORCE_PATH_STYLE", "true"),
    ];
    let settings = Settings::from_env_lookup(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))?;
    let event = json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": REGION,
        "s3": {"bucket": {"name": TRAIL_BUCKET}, "object": {"key": key, "size": object_bytes}}
    }]});

    let (before, cpu_before, started, response) = rt.block_on(async {
        let sdk = sdk_config(&endpoint).await;
        let handler = aws_handler(&settings, &sdk);
        let before = status_kib("VmRSS:")?;
        let cpu_before = cpu_seconds()?;
        let started = Instant::now();
        let response = handler.handle(event).await.map_err(|e| format!("invocation failed: {e}"))?;
        Ok::<_, BoxError>((before, cpu_before, started, response))
    })?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    let peak = status_kib("VmHWM:")?;
    drop(rt);
    drop(moto);

    if response["processed"] != 1 || response["failed"] != 0 {
        return Err(format!("the object was not processed: {response}").into());
    }
    let field = |name: &str| response[name].as_u64().unwrap_or(0);
    println!("object_bytes={object_bytes}");
    println!("json_bytes={json_bytes}");
    println!("records={}", field("records"));
    println!("role_assumptions={}", field("role_assumptions"));
    println!("alerts={}", field("alerts"));
    println!("wall_s={wall:.3}");
    println!("cpu_s={cpu:.2}");
    println!("mb_per_s={:.0}", json_bytes as f64 / 1e6 / wall.max(1e-3));
    println!("rss_before_kib={before}");
    println!("peak_rss_kib={peak}");
    Ok(())
}

/// The child process: streams FILE to the trail bucket from disk.
async fn upload(endpoint: &str, file: &Path, key: &str) -> Result<(), BoxError> {
    let sdk = sdk_config(endpoint).await;
    let body = ByteStream::from_path(file).await?;
    s3_client(&sdk)
        .put_object()
        .bucket(TRAIL_BUCKET)
        .key(key)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("put object: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    Ok(())
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "bench"))
        .load()
        .await
}

fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build())
}

/// JSON logs as the function writes them, but to stderr.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,aws_smithy_runtime_api=warn,hyper=warn")
    });
    tracing_subscriber::fmt().json().flatten_event(true).with_writer(std::io::stderr).with_env_filter(filter).init();
}

/// Decompressed size of a single-member gzip file below 4 GiB (its ISIZE).
fn gzip_isize(file: &Path) -> Result<u64, BoxError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file)?;
    f.seek(SeekFrom::End(-4))?;
    let mut isize = [0u8; 4];
    f.read_exact(&mut isize)?;
    Ok(u64::from(u32::from_le_bytes(isize)))
}

/// A `/proc/self/status` field in KiB (`VmRSS:`, `VmHWM:`).
fn status_kib(field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .ok_or_else(|| format!("no {field} in /proc/self/status (Linux only)").into())
}

/// User + system CPU time of this process (`/proc/self/stat`, USER_HZ = 100).
fn cpu_seconds() -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or("unreadable /proc/self/stat");
    // After the command name: state is field 3, utime 14 and stime 15.
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// `moto_server` on 127.0.0.1 and a free port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Result<Moto, BoxError> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let program = moto_server();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {} ({e}); scripts/install-tools.sh installs it", program.display()))?;
        let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto_server exited early ({status})").into());
            }
            if Instant::now() > deadline {
                return Err(format!("moto_server did not listen on {addr} within 60 s").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `TEST_TOOLS_BIN/moto_server`, else the repository's `.venv`, else PATH.
fn moto_server() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin");
    std::env::var_os("TEST_TOOLS_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv])
        .map(|dir| dir.join("moto_server"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("moto_server"))
}
