//! The reader on hand-made input: shapes, oddities, limits and buffers.

use super::*;
use std::io::Write;

const OK: &str = r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"2024-01-01T00:00:00Z","eventID":"a","sourceIPAddress":"192.0.2.1","requestParameters":{"roleArn":"arn:aws:iam::111122223333:role/r"}}"#;
const NOISE: &str = r#"{"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","eventTime":"2024-01-01T00:00:00Z","requestParameters":{"filterSet":{"items":[{"name":"x]}\"{"}]}}}"#;

fn read(bytes: &[u8]) -> Result<InputEvents, ReadFailure> {
    read_input(bytes, &InputLimits::default())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn reads_records_object_and_bare_array_alike() {
    let obj = format!(r#"{{"Records":[{NOISE},{OK}, {NOISE}]}}"#);
    let arr = format!("[{NOISE},{OK},{NOISE}]");
    for text in [obj, arr] {
        let got = read(text.as_bytes()).unwrap();
        assert_eq!(got.records, 3);
        assert_eq!(got.events.len(), 1);
        assert!(got.bad_records.is_empty());
    }
}

#[test]
fn a_scan_never_reads_what_the_last_one_left_in_its_buffer() {
    // The second input is the first cut short: on a reused buffer, the
    // first one's bytes lie just past where the second one ends.
    let mut buffer = ScanBuffer::default();
    let mut read = |bytes: &[u8]| read_input_chunked(bytes, &InputLimits::default(), 100, &mut |_| {}, &mut buffer);
    let whole = format!(r#"{{"Records":[{OK},{NOISE},{OK}]}}"#);
    assert_eq!(read(whole.as_bytes()).unwrap().events.len(), 2);
    let cut = &whole.as_bytes()[..whole.len() / 2];
    let failure = read(cut).unwrap_err();
    assert!(matches!(failure.error, ReadError::Truncated { .. }), "{:?}", failure.error);
    assert_eq!(failure.partial.events.len(), 1, "only the record before the cut");
    assert_eq!(read(whole.as_bytes()).unwrap().events.len(), 2, "and the whole one reads as before");
    assert_eq!(buffer.0.capacity(), READ_CHUNK_BYTES, "the buffer was handed back for the next input");
}

#[test]
fn chunked_reading_hands_over_every_event_once() {
    let text = format!(r#"{{"Records":[{OK},{NOISE},{OK},{OK},{OK},{OK}]}}"#);
    let mut chunks = Vec::new();
    let rest = read_input_chunked(
        text.as_bytes(),
        &InputLimits::default(),
        2,
        &mut |c| chunks.push(c.len()),
        &mut ScanBuffer::default(),
    )
    .unwrap();
    assert_eq!(chunks, [2, 2]);
    assert_eq!(rest.events.len(), 1);
    assert_eq!((rest.records, rest.role_assumptions), (6, 5));
}

#[test]
fn multi_member_gzip_is_read_whole() {
    let mut two = gzip(format!(r#"{{"Records":[{OK},"#).as_bytes());
    two.extend(gzip(format!("{OK}]}}").as_bytes()));
    let got = read(&two).unwrap();
    assert_eq!((got.records, got.events.len()), (2, 2));
}

#[test]
fn a_bad_record_is_reported_and_the_rest_goes_on() {
    let bad = r#"{"eventSource":"sts.amazonaws.com","eventName":"AssumeRole","eventTime":"never"}"#;
    let text = format!(r#"{{"Records":[{OK},{bad},42,{OK}]}}"#);
    let got = read(text.as_bytes()).unwrap();
    assert_eq!(got.records, 4);
    assert_eq!(got.events.len(), 2);
    let indexes: Vec<u64> = got.bad_records.iter().map(|e| e.index).collect();
    assert_eq!(indexes, [1, 2]);
}

#[test]
fn truncation_keeps_what_was_read() {
    let text = format!(r#"{{"Records":[{OK},{OK},{{"eventSource":"sts.ama"#);
    let err = read(text.as_bytes()).unwrap_err();
    assert!(matches!(err.error, ReadError::Truncated { index: 2 }), "{err}");
    assert_eq!(err.partial.events.len(), 2);
    let gz = gzip(format!(r#"{{"Records":[{OK},{OK}]}}"#).as_bytes());
    let err = read(&gz[..gz.len() - 12]).unwrap_err();
    assert!(matches!(err.error, ReadError::Gzip(_) | ReadError::Truncated { .. }), "{err}");
}

#[test]
fn not_cloudtrail_is_named() {
    for (text, want) in [
        (&b""[..], "empty"),
        (b"{\"foo\": 1}", "no \"Records\""),
        (b"{\"Records\": {}}", "not an array"),
        (b"hello", "expected"),
    ] {
        let err = read(text).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn decompressed_size_is_capped() {
    let big = format!(r#"{{"Records":[{}]}}"#, vec![NOISE; 2000].join(","));
    let limits = InputLimits { max_decompressed_bytes: 10_000, ..InputLimits::default() };
    let err = read_input(&gzip(big.as_bytes())[..], &limits).unwrap_err();
    assert!(matches!(err.error, ReadError::TooLarge { limit_bytes: 10_000 }), "{err}");
}

#[test]
fn a_file_of_nothing_but_bad_records_counts_them_all_and_keeps_a_few() {
    // Gzip shrinks 200,000 of these to a few kB: kept whole, their
    // problems would fill a small Lambda's memory.
    let text = format!(r#"{{"Records":[{},{OK}]}}"#, vec!["1"; 200_000].join(","));
    let got = read_input(&gzip(text.as_bytes())[..], &InputLimits::default()).unwrap();
    assert_eq!((got.records, got.bad_record_count, got.events.len()), (200_001, 200_000, 1));
    assert_eq!(got.bad_records.len(), MAX_BAD_RECORDS_KEPT);
    assert_eq!(got.bad_records.last().map(|b| b.index), Some(MAX_BAD_RECORDS_KEPT as u64 - 1));
}

#[test]
fn oversized_record_is_skipped_not_buffered() {
    let huge = format!(r#"{{"eventSource":"sts.amazonaws.com","x":"{}"}}"#, "a".repeat(3_000_000));
    let text = format!(r#"{{"Records":[{huge},{OK}]}}"#);
    let limits = InputLimits { max_record_bytes: 1 << 20, ..InputLimits::default() };
    let got = read_input(text.as_bytes(), &limits).unwrap();
    assert_eq!(got.events.len(), 1);
    assert!(matches!(got.bad_records[0].error, RecordProblem::TooLarge { .. }));
}

/// The bit-mask block path must find the same value ends as the byte loop,
/// on inputs dense in quotes, escapes and brackets (inside and outside strings).
#[test]
fn block_scan_matches_byte_scan() {
    // After `Done` the scan is dropped, so only a pending scan's state must match.
    fn outcome(scan: &ValueScan, step: Step) -> (String, Option<(u32, bool, bool)>) {
        match step {
            Step::Done(n) => (format!("done {n}"), None),
            Step::More => ("more".to_owned(), Some((scan.depth, scan.in_string, scan.pending_escape))),
            Step::Invalid(what) => (what.to_owned(), None),
        }
    }
    // Mixes that end values early, nest deep, and hold long strings.
    let alphabets: [&[u8]; 3] = [b"\"\"\\{}[]{}[],: ax", b"\"\\{{[[{[}],:axxxx", b"\"aaaaaaaaaaaaaaaaaaaaaa\\{}"];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for case in 0..30_000 {
        let alphabet = alphabets[case % alphabets.len()];
        let len = 64 + case % 300;
        let mut bytes = vec![b'{'];
        for _ in 1..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let block: &[u8; BLOCK_BYTES] = bytes[..BLOCK_BYTES].try_into().unwrap();
        assert_eq!(BlockMasks::of(block), BlockMasks::of_bytes(block));
        let mut fast = ValueScan::default();
        let fast_step = fast.advance(&bytes, 0);
        let mut slow = ValueScan::default();
        let slow_step = slow.advance_bytes(&bytes, 0, bytes.len()).map_or_else(|step| step, |_| Step::More);
        assert_eq!(outcome(&fast, fast_step), outcome(&slow, slow_step), "{}", String::from_utf8_lossy(&bytes));
    }
}

/// Readers that hand out one byte at a time exercise every resume path.
#[test]
fn byte_at_a_time_reads_match() {
    let text = format!(r#"{{"Records":[{NOISE},{OK},{NOISE},{OK}]}}"#);
    let got = read_input(crate::sample::ByteAtATime(text.as_bytes()), &InputLimits::default()).unwrap();
    assert_eq!((got.records, got.events.len()), (4, 2));
}
