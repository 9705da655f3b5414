#!/usr/bin/env python3
"""A local stand-in for the deployed stack, on a running moto_server, so that
`cargo lambda watch` + `cargo lambda invoke` can run the real function.

    .venv/bin/moto_server -H 127.0.0.1 -p 5000 &
    .venv/bin/python scripts/local_moto.py setup     # buckets, topic, samples, target/local.env
    .venv/bin/python scripts/local_moto.py alerts    # print (and remove) the alerts published so far

`setup` creates the trail bucket the sample events name (rolewatch-sample-trail)
with events/cloudtrail uploaded into it, a state bucket, the alert topic and a
queue subscribed to it (raw delivery, so each message is one alert), and
writes the function's environment to target/local.env for
`cargo lambda watch --env-file`. Needs boto3 (in .venv).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
TRAIL_BUCKET = "rolewatch-sample-trail"
STATE_BUCKET = "rolewatch-local-state"
TOPIC = "rolewatch-local-alerts"
INBOX = "rolewatch-local-inbox"
REGION = "us-east-1"


def clients(endpoint: str):
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    return (session.client(name, endpoint_url=endpoint) for name in ("s3", "sns", "sqs"))


def setup(endpoint: str, env_file: Path) -> None:
    s3, sns, sqs = clients(endpoint)
    for bucket in (TRAIL_BUCKET, STATE_BUCKET):
        s3.create_bucket(Bucket=bucket)
    samples = ROOT / "events" / "cloudtrail"
    uploaded = 0
    for path in sorted(samples.rglob("*.json.gz")):
        s3.upload_file(str(path), TRAIL_BUCKET, path.relative_to(samples).as_posix())
        uploaded += 1
    topic_arn = sns.create_topic(Name=TOPIC)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=INBOX)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})

    env = {
        "ROLEWATCH_ALERT_TOPIC_ARN": topic_arn,
        "ROLEWATCH_STATE_BUCKET": STATE_BUCKET,
        "ROLEWATCH_STATE_PREFIX": "rolewatch/state/",
        "ROLEWATCH_S3_FORCE_PATH_STYLE": "true",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    print(f"uploaded {uploaded} sample files to s3://{TRAIL_BUCKET}/, topic {topic_arn}, environment in {env_file}",
          file=sys.stderr)


def alerts(endpoint: str) -> None:
    _, _, sqs = clients(endpoint)
    queue_url = sqs.get_queue_url(QueueName=INBOX)["QueueUrl"]
    count = 0
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not batch:
            break
        for message in batch:
            print(json.dumps(json.loads(message["Body"]), sort_keys=True))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            count += 1
    print(f"{count} alerts", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["setup", "alerts"])
    parser.add_argument("--endpoint", default="http://127.0.0.1:5000", help="moto_server address")
    parser.add_argument("--env-file", type=Path, default=ROOT / "target" / "local.env")
    args = parser.parse_args()
    if args.command == "setup":
        setup(args.endpoint, args.env_file)
    else:
        alerts(args.endpoint)


if __name__ == "__main__":
    main()
