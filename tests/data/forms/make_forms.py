#!/usr/bin/env python3
"""Writes the sample CloudTrail records (events/cloudtrail) in the other
forms `rolewatch replay` reads, for tests/integration/forms.rs:

- lookup-events.json.gz: what `aws cloudtrail lookup-events` prints (newest
  first, each record as the `CloudTrailEvent` string);
- athena-export.jsonl.gz: JSON Lines, one record per line;
- firehose-eventbridge.jsonl.gz: EventBridge events of the records as
  Firehose writes them (back to back, no newline between them, as without a
  delimiter processor);
- not-cloudtrail.json: an AWS Config snapshot, in none of the forms.

Run from the repository root: python3 tests/data/forms/make_forms.py
"""

import gzip
import json
import pathlib

ROOT = pathlib.Path("events/cloudtrail")
OUT = pathlib.Path("tests/data/forms")


def records():
    out = []
    for path in sorted(ROOT.rglob("*.json.gz")):
        if "CloudTrail-Digest" in str(path):
            continue
        out.extend(json.loads(gzip.decompress(path.read_bytes()))["Records"])
    return out


def write_gz(name, text):
    # mtime 0: the same records give the same bytes.
    (OUT / name).write_bytes(gzip.compress(text.encode(), mtime=0))


def lookup_event(r):
    return {
        "EventId": r.get("eventID"),
        "EventName": r.get("eventName"),
        "ReadOnly": "false",
        "EventTime": r.get("eventTime", "").replace("Z", "+00:00"),
        "EventSource": r.get("eventSource"),
        "Username": (r.get("userIdentity") or {}).get("userName") or r.get("eventName"),
        "Resources": [],
        "CloudTrailEvent": json.dumps(r, separators=(",", ":")),
    }


def main():
    rs = records()
    newest_first = sorted(rs, key=lambda r: r.get("eventTime", ""), reverse=True)
    write_gz("lookup-events.json.gz", json.dumps({"Events": [lookup_event(r) for r in newest_first]}, indent=4) + "\n")
    write_gz("athena-export.jsonl.gz", "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rs))
    firehose = "".join(
        json.dumps({
            "version": "0",
            "id": f"eb-{i}",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws." + r.get("eventSource", "sts.amazonaws.com").split(".")[0],
            "account": r.get("recipientAccountId"),
            "time": r.get("eventTime"),
            "region": r.get("awsRegion"),
            "resources": [],
            "detail": r,
        }, separators=(",", ":"))
        for i, r in enumerate(rs)
    )
    write_gz("firehose-eventbridge.jsonl.gz", firehose)
    (OUT / "not-cloudtrail.json").write_text(json.dumps({
        "fileVersion": "1.0",
        "configSnapshotId": "00000000-0000-0000-0000-000000000000",
        "configurationItems": [{"resourceType": "AWS::IAM::Role", "resourceName": "deploy"}],
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
