//! The real runtime loop: `cargo lambda watch` builds and runs the
//! `rolewatch-lambda` binary under its Lambda runtime API emulator, and
//! `cargo lambda invoke --data-file events/s3-notification.json` sends the
//! sample event through it. The alert must arrive in the queue.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, tools_path, workspace, Fixture, REGION};
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

    let mut invoke = Command::new("cargo");
    invoke
        .current_dir(&root)
        .env("PATH", tools_path())
        .args(["lambda", "invoke", "rolewatch-lambda", "--invoke-address", "127.0.0.1", "--invoke-port"])
        .arg(port.to_string())
        .args(["--output-format", "json", "--data-file"])
        .arg(Path::new("events").join("s3-notification.json"));
    let output = run_with_timeout(invoke, BUILD_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo lambda invoke failed: {stdout}\n{}\nwatch log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        watch.log()
    );
    let response: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("invoke output is not JSON ({e}): {stdout}"));
    assert_eq!(response["processed"], 1, "{response}");
    assert_eq!(response["alerts"], 1, "{response}");

    let delivered = fx.drain().await;
    assert_delivered(&delivered, &expected_alerts(&[BURST]));
    assert_eq!(delivered[0].detector(), "repeated_failures");
    let log_text = watch.log();
    assert!(log_text.contains("\"account\":\"111122223333\""), "structured JSON logs from the function:\n{log_text}");
    drop(watch);
}
