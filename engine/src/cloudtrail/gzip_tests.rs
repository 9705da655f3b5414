//! The gzip reader against flate2's encoder and decoder, on whole, split,
//! damaged and unusual files.

use super::*;
use std::io::{BufReader, Write};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Reads `file` through buffers of `buffer_bytes` into reads of `read_bytes`.
fn inflate(file: &[u8], buffer_bytes: usize, read_bytes: usize) -> io::Result<Vec<u8>> {
    let mut reader = GzipReader::new(BufReader::with_capacity(buffer_bytes, file));
    let mut out = Vec::new();
    let mut piece = vec![0u8; read_bytes];
    loop {
        match reader.read(&mut piece)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&piece[..n]),
        }
    }
}

fn text(len: usize) -> Vec<u8> {
    (0..len).map(|i| b"{\"Records\":[]} abcdefgh"[(i * 7 + i / 13) % 23]).collect()
}

#[test]
fn reads_one_member_and_many_alike_however_split() {
    let data = text(300_000);
    let one = gzip(&data);
    let mut three = gzip(&data[..1_000]);
    three.extend(gzip(&data[1_000..200_000]));
    three.extend(gzip(&data[200_000..]));
    for file in [&one, &three] {
        for (buffer, read) in [(256 << 10, 128 << 10), (1, 7), (3, 64 << 10), (8 << 10, 1)] {
            assert_eq!(inflate(file, buffer, read).unwrap(), data, "buffer {buffer}, reads of {read}");
        }
    }
}

#[test]
fn reads_empty_members_and_headers_with_every_optional_field() {
    let data = text(5_000);
    let mut with_fields = Vec::new();
    let mut enc = flate2::GzBuilder::new()
        .filename("AWSLogs/o-x/111122223333/CloudTrail/eu-west-1/log.json")
        .comment("a comment")
        .extra(vec![7; 300])
        .write(&mut with_fields, flate2::Compression::default());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    let mut file = gzip(b"");
    file.extend(&with_fields);
    file.extend(with_header_crc(&gzip(&data)));
    file.extend(gzip(b""));
    let mut twice = data.clone();
    twice.extend(&data);
    assert_eq!(inflate(&file, 16, 5).unwrap(), twice);
}

/// The member with FHCRC set and the header's CRC-16 after the fixed part.
fn with_header_crc(member: &[u8]) -> Vec<u8> {
    let mut header = member[..10].to_vec();
    header[3] |= FHCRC;
    let mut checksum = Checksum::default();
    checksum.update(&header);
    let crc = checksum.crc32() as u16;
    let mut out = header;
    out.extend(crc.to_le_bytes());
    out.extend(&member[10..]);
    out
}

/// Damage is an error of the kind the reader reports as bad gzip, never
/// data passed off as the file's.
#[test]
fn damaged_files_fail_with_what_is_wrong() {
    let data = text(200_000);
    let file = gzip(&data);
    let len = file.len();
    let mut bad_crc = file.clone();
    bad_crc[len - 8] ^= 1;
    let mut bad_size = file.clone();
    bad_size[len - 1] ^= 1;
    let mut bad_header_crc = with_header_crc(&file);
    bad_header_crc[10] ^= 1;
    let mut reserved = file.clone();
    reserved[3] |= 0x80;
    let mut garbage_after = file.clone();
    garbage_after.extend(b"not gzip at all\n");
    let mut cut_header_after = file.clone();
    cut_header_after.extend(b"\n\n");
    let mut bad_deflate = file.clone();
    bad_deflate[10] = 0xff;
    let cases: [(&str, &[u8], &str); 9] = [
        ("a flipped CRC-32 bit", &bad_crc, "does not match the checksum"),
        ("a wrong size", &bad_size, "does not match the checksum"),
        ("a wrong header CRC-16", &bad_header_crc, "invalid gzip header"),
        ("a reserved flag", &reserved, "invalid gzip header"),
        ("bytes after the last member", &garbage_after, "no gzip magic bytes"),
        ("a few bytes after the last member", &cut_header_after, "ends inside a gzip header"),
        ("a corrupt deflate stream", &bad_deflate, "corrupt deflate stream"),
        ("cut in the data", &file[..len / 2], "incomplete deflate stream"),
        ("cut in the trailer", &file[..len - 3], "ends inside the gzip trailer"),
    ];
    for (name, bytes, message) in cases {
        let error = inflate(bytes, 4096, 4096).expect_err(name);
        assert!(error.to_string().contains(message), "{name}: {error}");
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ),
            "{name}: {:?}",
            error.kind()
        );
    }
}

/// The trailer is handed to the caller, not checked: the inflate thread
/// leaves the check to the scanning one.
#[test]
fn members_hand_over_each_trailer_after_its_data() {
    let mut file = gzip(b"first");
    file.extend(gzip(b"second member"));
    let mut members = Members::new(&file[..]);
    let mut out = [0u8; 64];
    let mut pieces = Vec::new();
    let mut checksum = Checksum::default();
    loop {
        match members.next_piece(&mut out).unwrap() {
            Piece::Data(n) => {
                checksum.update(&out[..n]);
                pieces.push(String::from_utf8(out[..n].to_vec()).unwrap());
            }
            Piece::MemberEnd(trailer) => {
                assert_eq!(trailer.size as usize, pieces.last().unwrap().len());
                checksum.finish_member(trailer).unwrap();
                pieces.push("|".to_owned());
            }
            Piece::End => break,
        }
    }
    assert_eq!(pieces, ["first", "|", "second member", "|"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any data in any number of members, read in any sizes, reads as
    /// flate2's own multi-member decoder reads it.
    #[test]
    fn reads_as_flate2_does(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000),
        cuts in proptest::collection::vec(0usize..20_000, 0..4),
        buffer in 1usize..5_000,
        read in 1usize..5_000,
    ) {
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        ends.sort_unstable();
        ends.push(data.len());
        let mut file = Vec::new();
        let mut start = 0;
        for end in ends {
            file.extend(gzip(&data[start..end]));
            start = end;
        }
        let mut expected = Vec::new();
        flate2::read::MultiGzDecoder::new(&file[..]).read_to_end(&mut expected).unwrap();
        proptest::prop_assert_eq!(&expected, &data);
        proptest::prop_assert_eq!(inflate(&file, buffer, read).unwrap(), data);
    }
}
