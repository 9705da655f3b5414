//! A real `moto_server` per test, with the trail bucket, the state bucket,
//! the alert topic and an SQS queue subscribed to it (raw delivery off, so
//! the SNS envelope shows the subject and message attributes).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::primitives::ByteStream;
use rolewatch::sample;
use rolewatch_lambda::aws::{S3Source, S3StateStore, SnsSink};
use rolewatch_lambda::ports::AccountStateStore;
use rolewatch_lambda::{aws_handler, AwsHandler, Handler, Settings};
use serde_json::{json, Value};

pub const TRAIL_BUCKET: &str = "rolewatch-sample-trail";
pub const STATE_BUCKET: &str = "rolewatch-state";
pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";

/// The workspace root (events/ lives there).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Sample CloudTrail objects, by their S3 key (the path below events/cloudtrail/).
pub fn sample_object(key: &str) -> Vec<u8> {
    let path = workspace().join("events/cloudtrail").join(key);
    std::fs::read(&path).unwrap_or_else(|e| panic!("sample object {}: {e}", path.display()))
}

/// A sample Lambda event from events/.
pub fn sample_event(name: &str) -> Value {
    let path = workspace().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `TEST_TOOLS_BIN` (set by `make test` to `.venv/bin`) holds the
/// pinned tools; without it they are looked up on PATH.
pub fn tools_dir() -> Option<PathBuf> {
    std::env::var_os("TEST_TOOLS_BIN").map(PathBuf::from).filter(|dir| dir.is_dir())
}

/// A tool by name: from `TEST_TOOLS_BIN` when it is there, else PATH.
pub fn tool(name: &str) -> PathBuf {
    tools_dir().map(|dir| dir.join(name)).filter(|path| path.is_file()).unwrap_or_else(|| PathBuf::from(name))
}

/// PATH with `TEST_TOOLS_BIN` first, for tools started through others
/// (`cargo lambda` finds `cargo-lambda` and zig on PATH).
pub fn tools_path() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(dir) = tools_dir() else { return path };
    let mut dirs = vec![dir];
    dirs.extend(std::env::split_paths(&path));
    std::env::join_paths(dirs).unwrap_or(path)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// `moto_server` on 127.0.0.1, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("temp file for moto's log");
        let child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("reopen moto log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): it must be in TEST_TOOLS_BIN or on PATH. \
                     `make test` installs it into .venv; or `pip install 'moto[server]==5.2.1'`"
                )
            });
        let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = moto.child.try_wait() {
                let log = std::fs::read_to_string(log.path()).unwrap_or_default();
                panic!("moto_server exited early ({status}): {log}");
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not listen on {addr} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SDK configuration for a test server (or a dead port).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests"))
        .load()
        .await
}

/// A message that arrived in the subscribed queue.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub subject: String,
    /// name -> (Type, Value)
    pub attributes: BTreeMap<String, (String, String)>,
    /// The alert JSON (`default` of the json message structure).
    pub alert: Value,
}

impl Delivered {
    pub fn detector(&self) -> &str {
        self.alert["detector"].as_str().unwrap_or("")
    }
    pub fn dedup_key(&self) -> &str {
        self.alert["dedup_key"].as_str().unwrap_or("")
    }
}

pub struct Fixture {
    pub moto: Moto,
    pub sdk: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub topic_arn: String,
    pub queue_url: String,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let moto = Moto::start();
        let sdk = sdk_config(&moto.endpoint).await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        let sns = aws_sdk_sns::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        for bucket in [TRAIL_BUCKET, STATE_BUCKET] {
            s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
        }
        let topic_arn = sns
            .create_topic()
            .name("rolewatch-alerts")
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        let queue_url =
            sqs.create_queue().queue_name("alerts").send().await.expect("create queue").queue_url.expect("queue url");
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        let queue_arn = attributes
            .attributes
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .expect("queue arn");
        sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(&queue_arn).send().await.expect("subscribe");
        Fixture { moto, sdk, s3, sqs, topic_arn, queue_url }
    }

    /// The environment the function would get, pointing at this server.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            ("ROLEWATCH_ALERT_TOPIC_ARN", self.topic_arn.as_str()),
            ("ROLEWATCH_STATE_BUCKET", STATE_BUCKET),
            ("ROLEWATCH_STATE_PREFIX", prefix),
            ("ROLEWATCH_S3_FORCE_PATH_STYLE", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub fn settings(&self, prefix: &str) -> Settings {
        let env = self.env(prefix);
        Settings::from_env_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("test settings are valid")
    }

    /// The handler exactly as `main` builds it, against this server.
    pub fn handler(&self, prefix: &str) -> AwsHandler {
        aws_handler(&self.settings(prefix), &self.sdk)
    }

    /// The handler `main` builds, with the state store `repo` makes of the
    /// real S3 one (to slow it, count its conflicts, configure it).
    pub fn handler_with<R: AccountStateStore>(
        &self,
        prefix: &str,
        repo: impl FnOnce(S3StateStore) -> R,
    ) -> Handler<S3Source, R, SnsSink> {
        Handler::new(
            S3Source::new(self.s3.clone()),
            repo(S3StateStore::new(self.s3.clone(), STATE_BUCKET, prefix)),
            SnsSink::new(aws_sdk_sns::Client::new(&self.sdk), &self.topic_arn),
            self.settings(prefix).config,
        )
    }

    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.s3.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send().await.expect("put object");
    }

    pub async fn upload_samples(&self, keys: &[&str]) {
        for key in keys {
            self.put(TRAIL_BUCKET, key, sample_object(key)).await;
        }
    }

    /// The stored bytes and ETag of an object, if it exists.
    pub async fn get(&self, bucket: &str, key: &str) -> Option<(Vec<u8>, String)> {
        let output = self.s3.get_object().bucket(bucket).key(key).send().await.ok()?;
        let etag = output.e_tag.clone().unwrap_or_default();
        let bytes = output.body.collect().await.expect("read object").to_vec();
        Some((bytes, etag))
    }

    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let output = self.s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list objects");
        output.contents.unwrap_or_default().into_iter().filter_map(|o| o.key).collect()
    }

    /// The detector state the function saved for the sample account.
    pub async fn state(&self, prefix: &str) -> Option<rolewatch::state::State> {
        self.state_of(prefix, ACCOUNT).await
    }

    /// An account's saved state, with the base it names when saved in two parts.
    pub async fn state_of(&self, prefix: &str, account: &str) -> Option<rolewatch::state::State> {
        use rolewatch::state::{State, StateBase};
        let (bytes, _) = self.get(STATE_BUCKET, &format!("{prefix}{account}.json")).await?;
        let state = match State::base_of(&bytes) {
            None => State::from_bytes(bytes),
            Some(digest) => {
                let (base, _) =
                    self.get(STATE_BUCKET, &format!("{prefix}{account}.base-{digest}")).await.expect("the named base");
                State::from_parts(bytes, &StateBase::from_bytes(base, &Default::default()).expect("the base is valid"))
            }
        };
        Some(state.expect("saved state is valid"))
    }

    /// Every message now in the queue (removed from it).
    pub async fn drain(&self) -> Vec<Delivered> {
        let mut out = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < 2 {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive messages");
            let messages = output.messages.unwrap_or_default();
            if messages.is_empty() {
                empty_polls += 1;
                continue;
            }
            for message in messages {
                let body = message.body.clone().unwrap_or_default();
                out.push(parse_envelope(&body));
                if let Some(handle) = message.receipt_handle {
                    self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(handle).send().await.ok();
                }
            }
        }
        out
    }
}

/// Reads the SNS envelope SQS receives when raw delivery is off.
fn parse_envelope(body: &str) -> Delivered {
    let envelope: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("SNS envelope is not JSON ({e}): {body}"));
    assert_eq!(envelope["Type"], "Notification", "{envelope}");
    let message = envelope["Message"].as_str().unwrap_or_else(|| panic!("no Message in {envelope}"));
    let alert: Value =
        serde_json::from_str(message).unwrap_or_else(|e| panic!("Message is not alert JSON ({e}): {message}"));
    let attributes = envelope["MessageAttributes"]
        .as_object()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(name, v)| {
                    let field = |f: &str| v[f].as_str().unwrap_or_default().to_owned();
                    (name.clone(), (field("Type"), field("Value")))
                })
                .collect()
        })
        .unwrap_or_default();
    Delivered { subject: envelope["Subject"].as_str().unwrap_or_default().to_owned(), attributes, alert }
}

/// An S3 notification for `keys` in the trail bucket (keys URL-encoded as S3 does).
pub fn s3_event(keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|key| {
            let encoded = urlencoding::encode(key).replace("%2F", "/").replace("%20", "+");
            json!({"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                   "s3": {"bucket": {"name": TRAIL_BUCKET}, "object": {"key": encoded}}})
        })
        .collect();
    json!({ "Records": records })
}

/// A gzip CloudTrail log of `records`.
pub fn cloudtrail_gz(records: &[Value]) -> Vec<u8> {
    sample::log_gz(records)
}

/// A CloudTrail key of the sample account for a synthetic object.
pub fn log_key(day: &str, name: &str) -> String {
    format!(
        "AWSLogs/o-exampleorg/{ACCOUNT}/CloudTrail/{REGION}/2026/10/{day}/{ACCOUNT}_CloudTrail_{REGION}_{name}.json.gz"
    )
}

/// A failed `AssumeRole` by an IAM user of the sample account.
pub fn denied_assume_role(event_id: &str, time: &str, user: &str) -> Value {
    sample::denied_assume_role(ACCOUNT, user, event_id, time)
}

/// A granted `AssumeRole` by an IAM user of the sample account.
pub fn granted_assume_role(event_id: &str, time: &str, user: &str) -> Value {
    sample::granted_assume_role(ACCOUNT, user, event_id, time)
}

/// Some other traffic in the sample account, which rolewatch reads past.
pub fn other_call(event_id: &str, time: &str) -> Value {
    sample::other_call(ACCOUNT, event_id, time)
}
