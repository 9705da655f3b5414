#!/usr/bin/env python3
"""Writes the malformed-input corpus next to this script, byte for byte the
same on every run (fixed seeds, gzip mtime 0). Run it after changing it and
commit its output; README.md says what rolewatch must do with each file.

Every family record here lives on 2025-03-01 under account 444455556666 and
asks for no long session, so no file raises an alert of its own: the tests
replay each file next to a good file and expect exactly the good file's
alerts. The exceptions are hostile-strings.json and secrets.json, which are
meant to raise alerts (safe-output and secrets tests).
"""

import gzip
import io
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "444455556666"


def record(i, **overrides):
    """A well-formed AssumeRole that raises nothing on its own."""
    rec = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAMALFORMED%02d" % i,
            "arn": "arn:aws:iam::%s:user/corpus-%02d" % (ACCOUNT, i),
            "accountId": ACCOUNT,
            "userName": "corpus-%02d" % i,
        },
        "eventTime": "2025-03-01T12:%02d:00Z" % (i % 60),
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.%d" % (10 + i),
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {
            "roleArn": "arn:aws:iam::%s:role/corpus" % ACCOUNT,
            "roleSessionName": "corpus-%02d" % i,
            "durationSeconds": 900,
        },
        "responseElements": None,
        "requestID": "req-malformed-%02d" % i,
        "eventID": "evt-malformed-%02d" % i,
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }
    rec.update(overrides)
    return rec


def noise(i):
    """A record of another service: counted, never parsed."""
    return {
        "eventTime": "2025-03-01T12:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "eventID": "evt-noise-%02d" % i,
        "recipientAccountId": ACCOUNT,
    }


def log(records):
    return json.dumps({"Records": records}, indent=1).encode()


def gz(data):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9, filename="") as f:
        f.write(data)
    return buf.getvalue()


def with_request(i, **params):
    rec = record(i)
    rec["requestParameters"] = dict(rec["requestParameters"], **params)
    return rec


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    rng = random.Random(20250301)

    # Whole-file failures.
    good_gz = gz(log([record(0), noise(1), record(2)]))
    write("truncated.json.gz", good_gz[: len(good_gz) // 2])
    write("truncated-plain.json", log([record(0), noise(1), record(2)])[:-400])
    write("gz-name-random-bytes.json.gz", b"\x00" + bytes(rng.randrange(256) for _ in range(2047)))
    write("gzip-header-then-garbage.json.gz", b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(2044)))
    # 50 MB of spaces inside the Records array compresses to about 50 KB.
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb", mtime=0, compresslevel=9, filename="") as f:
        f.write(b'{"Records":[')
        chunk = b" " * (1 << 20)
        for _ in range(50):
            f.write(chunk)
        f.write(b"]}")
    write("gzip-bomb.json.gz", bomb.getvalue())
    write("not-cloudtrail.json", json.dumps({"name": "package.json", "version": "1.0.0", "dependencies": {}}).encode())
    write("records-not-array.json", json.dumps({"Records": {"0": record(0)}}).encode())
    write("empty.json", b"")

    # Readable files with bad records.
    write("gz-name-plain-json.json.gz", log([record(0), noise(1)]))
    write("bom.json", b"\xef\xbb\xbf" + log([record(0), noise(1)]))
    write("record-not-object.json", log([42, "AssumeRole sts.amazonaws.com", None, [record(3)], True, record(5)]))

    wrong = [
        record(0, eventTime=1740830400),
        record(1, userIdentity="arn:aws:iam::444455556666:user/corpus-01"),
        record(2, requestParameters=[{"roleArn": "arn:aws:iam::444455556666:role/corpus"}]),
        with_request(3, durationSeconds={"seconds": 900}),
        record(4, sourceIPAddress=3221225994),
        record(5, eventID=5),
        with_request(6, roleArn=["arn:aws:iam::444455556666:role/corpus"]),
        with_request(7, roleSessionName={"name": "corpus-07"}),
        record(8, userAgent=["aws-cli/2.15.0"]),
        record(9, errorCode=403),
        record(10, recipientAccountId=444455556666),
        record(11, awsRegion=False),
        record(12),
    ]
    write("wrong-types.json", log(wrong))

    # A 0xFF byte inside the session name of an STS record (record 1), and
    # inside a record of another service (record 2), which is never parsed.
    text = log([record(0), with_request(1, roleSessionName="BAD-UTF8"), noise(2), record(3)])
    text = text.replace(b"BAD-UTF8", b"bad\xff\xfeutf8", 1).replace(b"evt-noise-02", b"evt-noise-\xff", 1)
    write("invalid-utf8.json", text)

    big = "A" * (1 << 20)
    write(
        "long-strings.json.gz",
        gz(
            log(
                [
                    with_request(0, roleSessionName=big),
                    record(1, userAgent="B" * (5 << 20)),
                    record(2, eventTime=big),
                    record(3),
                ]
            )
        ),
    )

    deep = 10000
    nested = "[" * deep + "]" * deep
    parts = [
        '{"eventSource":"ec2.amazonaws.com","eventName":"RunInstances","requestParameters":%s}' % nested,
        json.dumps(record(1))[:-1] + ',"additionalEventData":%s}' % nested,
        json.dumps(record(2)).replace('"eventTime"', '"deep":%s,"eventTime"' % ("{\"a\":" * deep + "1" + "}" * deep), 1),
        nested,
        json.dumps(record(4)),
    ]
    write("deep-nesting.json", ('{"Records":[' + ",\n".join(parts) + "]}").encode())

    times_and_ips = [
        record(0, eventTime="2025-13-45T99:99:99Z"),
        record(1, eventTime=""),
        record(2, eventTime="yesterday"),
        record(3, eventTime="2025-02-29T12:00:00Z"),
        {k: v for k, v in record(4).items() if k != "eventTime"},
        record(5, sourceIPAddress="999.1.1.1"),
        record(6, sourceIPAddress="not an address"),
        record(7, sourceIPAddress="2001:db8::g"),
        record(8, sourceIPAddress=""),
        record(9, sourceIPAddress="192.0.2.1/24"),
    ]
    write("invalid-times-and-ips.json", log(times_and_ips))

    write("hostile-strings.json.gz", gz(log(hostile_records())))
    write("secrets.json", log(secret_records()))


def hostile(tag):
    """Newlines, ANSI escapes, a NUL, bidi overrides and isolates, then 10 KB."""
    return tag + "\n\u001b[31mFAKE\r\n[critical] forged line\u001b[0m\u0000\u202e\u2066evil\u2069\u200b" + "x" * 10240


def hostile_records():
    """Records that trigger every detector while quoting hostile strings.

    Account 777788889999, 2025-04-01..09; the hostile text goes into the
    caller's ARN, session name, user agent, role ARN, event id, error code
    and message, and an unparsable source address.
    """
    acct = "777788889999"
    role = "arn:aws:iam::%s:role/%s" % (acct, hostile("role"))
    out = []
    for i in range(5):  # repeated_failures
        out.append(
            {
                "eventTime": "2025-04-01T10:00:%02dZ" % (i * 5),
                "eventSource": "sts.amazonaws.com",
                "eventName": "AssumeRole",
                "eventID": hostile("failure-%d" % i),
                "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::%s:user/%s" % (acct, hostile("guesser")), "accountId": acct},
                "sourceIPAddress": hostile("ip"),
                "userAgent": hostile("agent"),
                "errorCode": "AccessDenied\n\u001b[0m",
                "errorMessage": hostile("message"),
                "requestParameters": {"roleArn": role, "roleSessionName": hostile("session")},
                "recipientAccountId": acct,
            }
        )
    long_session = {
        "eventTime": "2025-04-02T10:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "eventID": hostile("long"),
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::%s:assumed-role/ops/%s" % (acct, hostile("caller")), "accountId": acct},
        "sourceIPAddress": "192.0.2.55",
        "userAgent": hostile("agent"),
        "requestParameters": {"roleArn": role, "roleSessionName": hostile("session"), "durationSeconds": 43200},
        "recipientAccountId": acct,
    }
    out.append(long_session)
    traveller = "arn:aws:iam::%s:user/%s" % (acct, hostile("traveller"))
    for day, ip in ((1, "198.51.100.1"), (9, "203.0.113.1")):  # unexpected_source_ip after the learning period
        out.append(
            {
                "eventTime": "2025-04-%02dT10:00:00Z" % day,
                "eventSource": "sts.amazonaws.com",
                "eventName": "AssumeRole",
                "eventID": hostile("travel-%d" % day),
                "userIdentity": {"type": "IAMUser", "arn": traveller, "accountId": acct},
                "sourceIPAddress": ip,
                "userAgent": hostile("agent"),
                "requestParameters": {"roleArn": "arn:aws:iam::%s:role/travel" % acct, "roleSessionName": hostile("session")},
                "recipientAccountId": acct,
            }
        )
    # Bad records whose problem line on stderr quotes hostile text.
    out.append(dict(long_session, eventID="bad-time", eventTime=hostile("time")))
    out.append(dict(long_session, eventID="bad-identity", userIdentity=hostile("identity")))
    return out


def secret_records():
    """Secrets CloudTrail can carry next to a role assumption; none may leave.

    Account 555566667777, 2025-05-01. Five wrong external-id guesses raise
    repeated_failures; the granted 43200 s session raises long_session and
    carries credentials in responseElements; the last record is bad (a
    wrong-typed durationSeconds) so a problem line is printed for it.
    """
    acct = "555566667777"
    vendor = {"type": "AWSAccount", "principalId": "AIDAVENDOREXAMPLE", "accountId": "999900001111"}
    role = "arn:aws:iam::%s:role/vendor-audit" % acct
    out = []
    for i in range(5):
        out.append(
            {
                "eventTime": "2025-05-01T09:00:%02dZ" % (i * 3),
                "eventSource": "sts.amazonaws.com",
                "eventName": "AssumeRole",
                "eventID": "evt-secret-guess-%d" % i,
                "userIdentity": vendor,
                "sourceIPAddress": "198.51.100.200",
                "errorCode": "AccessDenied",
                "errorMessage": "User: arn:aws:iam::999900001111:root is not authorized to perform: sts:AssumeRole on resource: %s" % role,
                "requestParameters": {"roleArn": role, "roleSessionName": "audit", "externalId": "EXTID-SECRET-GUESS-%d-7f3a9c" % i},
                "recipientAccountId": acct,
            }
        )
    granted = {
        "eventTime": "2025-05-01T09:30:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "AssumeRole",
        "eventID": "evt-secret-granted",
        "userIdentity": dict(vendor, accessKeyId="AKIAVENDORKEYEXAMPLE"),
        "sourceIPAddress": "198.51.100.200",
        "requestParameters": {
            "roleArn": role,
            "roleSessionName": "audit",
            "durationSeconds": 43200,
            "externalId": "EXTID-SECRET-REAL-2b8e41d0",
        },
        "responseElements": {
            "credentials": {
                "accessKeyId": "ASIASESSIONKEYEXAMPLE",
                "sessionToken": "IQoJb3JpZ2luX2VjSESSIONTOKENSECRET0123456789abcdef",
                "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/SECRETACCESSKEYEXAMPLE",
                "expiration": "May 1, 2025, 9:30:00 PM",
            },
            "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:audit", "arn": "arn:aws:sts::%s:assumed-role/vendor-audit/audit" % acct},
        },
        "recipientAccountId": acct,
    }
    out.append(granted)
    bad = json.loads(json.dumps(granted))
    bad["eventID"] = "evt-secret-bad"
    bad["requestParameters"]["externalId"] = "EXTID-SECRET-IN-BAD-RECORD-91c2"
    bad["requestParameters"]["durationSeconds"] = {"value": "EXTID-SECRET-IN-BAD-RECORD-91c2"}
    out.append(bad)
    return out


if __name__ == "__main__":
    main()
