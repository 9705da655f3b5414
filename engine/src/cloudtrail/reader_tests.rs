//! The reader on hand-made input: shapes, oddities, limits and buffers.

use super::super::value_scan::{prefix_xor, BlockMasks, Kernel, BLOCK_BYTES};
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
    assert_eq!(buffer.buf.capacity(), READ_CHUNK_BYTES, "the buffer was handed back for the next input");
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
        let mut slow = ValueScan::new(Kernel::Baseline);
        let slow_step = slow.advance_bytes(&bytes, 0, bytes.len()).map_or_else(|step| step, |_| Step::More);
        let slow = outcome(&slow, slow_step);
        for kernel in Kernel::runnable() {
            assert_eq!(BlockMasks::of(block, kernel), BlockMasks::of_bytes(block), "{kernel:?}");
            let mut fast = ValueScan::new(kernel);
            let fast_step = fast.advance(&bytes, 0);
            assert_eq!(outcome(&fast, fast_step), slow, "{kernel:?}: {}", String::from_utf8_lossy(&bytes));
        }
    }
}

/// Readers that hand out one byte at a time exercise every resume path.
#[test]
fn byte_at_a_time_reads_match() {
    let text = format!(r#"{{"Records":[{NOISE},{OK},{NOISE},{OK}]}}"#);
    let got = read_input(crate::sample::ByteAtATime(text.as_bytes()), &InputLimits::default()).unwrap();
    assert_eq!((got.records, got.events.len()), (4, 2));
}

/// How a scan of one value ended, the reference's way: where it ended, or
/// the state a scan waiting for more bytes is in (depth, inside a string,
/// an escape pending).
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done(usize),
    More(u32, bool, bool),
    Invalid,
}

/// The scanner's rules in their plainest form, one byte at a time and no
/// shared code with the reader: what every architecture's block path must agree with.
fn reference_scan(bytes: &[u8]) -> Outcome {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    for (i, &byte) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
                if depth == 0 {
                    return Outcome::Done(i + 1);
                }
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return if i == 0 { Outcome::Invalid } else { Outcome::Done(i) },
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Outcome::Done(i + 1);
                }
            }
            b',' | b' ' | b'\n' | b'\r' | b'\t' if depth == 0 => {
                return if i == 0 { Outcome::Invalid } else { Outcome::Done(i) }
            }
            _ => {}
        }
    }
    Outcome::More(depth, in_string, escaped)
}

/// The reader's scan fed `bytes` in pieces ending at `cuts`, as refills hand
/// it more of a value, resuming where it stopped each time.
fn scan_in_pieces(bytes: &[u8], cuts: &[usize], kernel: Kernel) -> Outcome {
    let mut scan = ValueScan::new(kernel);
    let mut scanned = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|&c| c % (bytes.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(bytes.len());
    for end in ends {
        if end < scanned {
            continue;
        }
        match scan.advance(&bytes[..end], scanned) {
            Step::Done(n) => return Outcome::Done(n),
            Step::Invalid(_) => return Outcome::Invalid,
            Step::More => scanned = end,
        }
    }
    Outcome::More(scan.depth, scan.in_string, scan.pending_escape)
}

/// Bytes the scanner must get right: quotes, escapes, brackets of both
/// kinds, separators, and UTF-8 whose bytes are all >= 0x80 (and 0x5B/0x7B
/// plus 0x20 is no other character's byte).
fn adversarial_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        Just(&b"\""[..]),
        Just(&b"\\"[..]),
        Just(&b"\\\""[..]),
        Just(&b"\\\\"[..]),
        Just(&b"{"[..]),
        Just(&b"}"[..]),
        Just(&b"["[..]),
        Just(&b"]"[..]),
        Just(&b","[..]),
        Just(&b":"[..]),
        Just(&b" "[..]),
        Just("é日🦀".as_bytes()),
        Just(&b"{}[]\"x\""[..]),
        Just(&b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]),
        Just(&b";=\x7b\x5b\x7d\x5d\x3b\x1b"[..]),
    ];
    proptest::collection::vec(piece, 0..200).prop_map(|pieces| {
        let mut bytes = vec![b'{'];
        pieces.iter().for_each(|p| bytes.extend_from_slice(p));
        bytes
    })
}

/// A JSON record with strings full of what trips scanners: escaped quotes
/// and backslashes, brackets and braces, UTF-8, and strings that run across
/// 64-byte blocks; nested objects and arrays.
fn tricky_record() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let text = proptest::collection::vec(
        prop_oneof![
            Just("\""),
            Just("\\"),
            Just("\\\""),
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just("é"),
            Just("日本"),
            Just("🦀"),
            Just("\u{1}"),
            Just("sts.amazonaws.com"),
            Just("a long run of plain text that crosses a block or two of sixty-four bytes"),
        ],
        0..12,
    )
    .prop_map(|parts| serde_json::Value::String(parts.concat()));
    let leaf = prop_oneof![text, any::<i64>().prop_map(serde_json::Value::from), Just(serde_json::Value::Null)];
    let value = leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-z{}\\[\\]\"\\\\é]{1,8}", inner, 0..5)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map("[a-zA-Z\"{}]{1,12}", value, 1..6)
        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect()))
}

/// Hands out the input in pieces of the given sizes, over and over.
struct Pieces<'a> {
    bytes: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()].min(buf.len()).min(self.bytes.len());
        self.next += 1;
        buf[..size].copy_from_slice(&self.bytes[..size]);
        self.bytes = &self.bytes[size..];
        Ok(size)
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Every block path this CPU runs (SSE2 and, where the CPU has it, AVX2
    /// on x86-64; NEON on aarch64; plain bytes elsewhere) ends every value
    /// where the reference does, or waits for more in the reference's state,
    /// however the value is cut.
    #[test]
    fn the_scan_agrees_with_the_reference_however_the_bytes_arrive(
        bytes in adversarial_bytes(),
        cuts in proptest::collection::vec(0usize..20_000, 0..6),
        word in proptest::num::u64::ANY,
    ) {
        let reference = reference_scan(&bytes);
        for kernel in Kernel::runnable() {
            proptest::prop_assert_eq!(&scan_in_pieces(&bytes, &cuts, kernel), &reference, "{:?}", kernel);
            proptest::prop_assert_eq!(&scan_in_pieces(&bytes, &[], kernel), &reference, "{:?}", kernel);
            for block in bytes.chunks_exact(BLOCK_BYTES) {
                let block: &[u8; BLOCK_BYTES] = block.try_into().unwrap();
                proptest::prop_assert_eq!(BlockMasks::of(block, kernel), BlockMasks::of_bytes(block), "{:?}", kernel);
            }
            let plain = (0..64).fold(0u64, |acc, k| acc | ((word & (u64::MAX >> (63 - k))).count_ones() as u64 & 1) << k);
            proptest::prop_assert_eq!(prefix_xor(word, kernel), plain, "{:?}", kernel);
        }
    }
}

proptest::proptest! {
    // Each case builds and reads a dozen records: fewer, so the suite stays
    // quick under qemu too.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Records with tricky strings, read whole and in pieces of any size
    /// (records split across reads and blocks at every kind of byte), are
    /// all counted and every role assumption among them is found.
    #[test]
    fn records_with_tricky_strings_read_alike_however_split(
        records in proptest::collection::vec((tricky_record(), proptest::bool::ANY), 1..12),
        sizes in proptest::collection::vec(1usize..300, 1..5),
    ) {
        let texts: Vec<String> =
            records.iter().map(|(record, sts)| if *sts { OK.to_owned() } else { record.to_string() }).collect();
        let text = format!(r#"{{"Records":[{}]}}"#, texts.join(","));
        let whole = read(text.as_bytes()).unwrap();
        let sts = records.iter().filter(|(_, sts)| *sts).count();
        proptest::prop_assert_eq!((whole.records, whole.events.len(), whole.bad_record_count), (texts.len() as u64, sts, 0));
        let split = read_input(Pieces { bytes: text.as_bytes(), sizes, next: 0 }, &InputLimits::default()).unwrap();
        proptest::prop_assert_eq!((split.records, split.events.len(), split.bad_record_count), (texts.len() as u64, sts, 0));
    }
}

/// What a user would see of one read: records, role assumptions (handed
/// over in chunks or left at the end), bad records and how it ended.
fn read_with(bytes: &[u8], limits: &InputLimits, buffer: &mut ScanBuffer) -> String {
    let mut handed = Vec::new();
    let result = read_input_chunked(bytes, limits, 3, &mut |chunk| handed.extend(chunk), buffer);
    let (read, ending) = match result {
        Ok(read) => (read, "complete".to_owned()),
        Err(failure) => (failure.partial, failure.error.to_string()),
    };
    handed.extend(read.events);
    let ids: Vec<_> = handed.iter().map(|e| format!("{e:?}")).collect();
    format!("{} records, {} bad {:?}, {ending}, events {ids:?}", read.records, read.bad_record_count, read.bad_records)
}

/// Gzip inflated on a second thread reads exactly as inflated in line:
/// the same records, events, bad records and errors, with the thread's
/// chunks reused from one input to the next and never more than it may hold.
#[test]
fn inflating_on_a_second_thread_reads_exactly_as_in_line() {
    let records: Vec<String> = (0..2_500).map(|i| if i % 7 == 0 { OK.to_owned() } else { NOISE.to_owned() }).collect();
    let body = format!(r#"{{"Records":[{},42]}}"#, records.join(","));
    let whole = gzip(body.as_bytes());
    let mut two_members = gzip(&body.as_bytes()[..body.len() / 3]);
    two_members.extend(gzip(&body.as_bytes()[body.len() / 3..]));
    let early_error = gzip(format!(r#"{{"Records":[{OK},x{}]}}"#, records.join(",")).as_bytes());
    // The inflate thread checks each member's CRC-32, after handing over its data.
    let mut bad_checksum = two_members.clone();
    let at = bad_checksum.len() - 8;
    bad_checksum[at] ^= 1;
    // Records longer than a chunk's headroom, some longer than a chunk, are
    // put together outside the chunks; a byte order mark starts the file.
    let long: Vec<String> = (0..60)
        .map(|i| OK.replacen('{', &format!(r#"{{"padding":"{}","#, "p".repeat(1_000 + i * 3_000)), 1))
        .chain(records.iter().take(300).cloned())
        .collect();
    let long = gzip(format!("\u{feff}{{\"Records\":[{}]}}", long.join(",")).as_bytes());
    let small_records = InputLimits { max_record_bytes: 64 << 10, ..InputLimits::default() };
    let cases: [(&str, &[u8], InputLimits); 9] = [
        ("a damaged CRC-32 in the last member", &bad_checksum, InputLimits::default()),
        ("records longer than a chunk", &long, InputLimits::default()),
        ("records past max_record_bytes", &long, small_records),
        ("whole", &whole, InputLimits::default()),
        ("two gzip members", &two_members, InputLimits::default()),
        ("truncated gzip", &whole[..whole.len() / 2], InputLimits::default()),
        ("gzip without its trailer", &whole[..whole.len() - 6], InputLimits::default()),
        ("past the size limit", &whole, InputLimits { max_decompressed_bytes: 256 << 10, ..InputLimits::default() }),
        ("a syntax error early in a long input", &early_error, InputLimits::default()),
    ];
    let mut threaded = ScanBuffer { inflate_thread: true, ..ScanBuffer::default() };
    for (name, bytes, limits) in cases {
        let in_line = read_with(bytes, &limits, &mut ScanBuffer::default());
        assert!(in_line.len() > 1_000, "{name}: the case reads events: {in_line:.200}");
        let threaded_read = read_with(bytes, &limits, &mut threaded);
        assert!(threaded_read == in_line, "{name}:\n{threaded_read:.600}\n{in_line:.600}");
        let kept = threaded.chunks.len();
        assert!(kept > 0 && kept <= super::super::inflate_thread::MAX_CHUNKS, "{name}: {kept}");
    }
    // Records of 1 to 178 KB: none skipped, and with a 64 KiB limit exactly
    // those over it (the 38 from the 23rd on), wherever the chunks end.
    assert!(read_with(&long, &InputLimits::default(), &mut threaded).starts_with("360 records, 0 bad"));
    assert!(
        read_with(&long, &small_records, &mut threaded).starts_with("360 records, 38 bad [RecordError { index: 22,")
    );
    let damaged = read_with(&bad_checksum, &InputLimits::default(), &mut threaded);
    assert!(
        damaged.contains("invalid gzip data: corrupt gzip stream: the data does not match the checksum"),
        "{damaged:.300}"
    );
    assert_eq!(
        read_with(&whole, &InputLimits::default(), &mut threaded),
        read_with(&whole, &InputLimits::default(), &mut ScanBuffer::default()),
        "after a failed input"
    );
}
