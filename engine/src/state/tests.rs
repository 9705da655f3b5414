//! Saved state: round trips, older formats, damage refused.

use super::format::*;
use super::*;
use crate::storage::BaseSpare;

#[test]
fn checksums_are_the_xxh3_values_saved_state_already_holds() {
    // Computed with the xxhash-rust crate that wrote earlier releases'
    // checksums: a different value would set every account's state aside.
    let bytes = b"{\"rolewatch_state_base\":3}\n\"alice\"\t1\t[1,2,[]]\n";
    assert_eq!(digest(bytes, 1), "c2d6b4b7147f9f55");
}

#[test]
fn file_store_round_trips_and_missing_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStateStore::new(dir.path().join("state.json"));
    assert_eq!(store.load().unwrap(), State::default());
    let mut state = State::default();
    state.inputs.insert("x", 5);
    store.save(&state).unwrap();
    assert_eq!(store.load().unwrap(), state);
}

fn state_with_principals(n: usize) -> State {
    let mut engine = crate::Engine::new(&crate::Config::default(), State::default());
    let events: Vec<_> = (0..n)
        .map(|i| {
            crate::detect::tests::success(&format!("arn:aws:iam::111122223333:user/u{i}"), &format!("e{i}"), 1_000)
        })
        .collect();
    engine.apply("f", &events);
    engine.into_state()
}

#[test]
fn saved_state_is_read_back_whole() {
    let state = state_with_principals(50);
    let saved = state.to_bytes();
    let loaded = State::from_bytes(saved.clone()).unwrap();
    assert_eq!(loaded.unexpected_source_ip.principals.len(), 50);
    assert_eq!(loaded, state);
    assert_eq!(loaded.to_bytes(), saved, "saving unchanged state changes nothing");
}

#[test]
fn damaged_or_truncated_state_is_refused_with_the_reason() {
    let saved = state_with_principals(20).to_bytes();
    let mut damaged = saved.clone();
    let at = damaged.len() / 2;
    damaged[at] ^= 0x01;
    let err = State::from_bytes(damaged).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    let err = State::from_bytes(saved[..saved.len() - 10].to_vec()).unwrap_err().to_string();
    assert!(err.contains("closing"), "{err}");
    let err = State::from_bytes(saved[..saved.len() / 3].to_vec()).unwrap_err().to_string();
    assert!(err.contains("checksum") || err.contains("closing"), "{err}");
}

#[test]
fn a_changed_count_on_the_closing_line_is_refused() {
    let saved = String::from_utf8(state_with_principals(20).to_bytes()).unwrap();
    let edited = saved.replace("\"principals\":20,", "\"principals\":1,");
    assert_ne!(edited, saved);
    let err = State::from_bytes(edited.into_bytes()).unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn format_one_state_is_read_and_saved_as_the_current_format() {
    let v1 = br#"{"format":1,"watermark":1000,"inputs":{"f":1000},"raised":{},"repeated_failures":{"by_principal":{}},
        "unexpected_source_ip":{"principals":{"alice":{"first_seen":900,"last_seen":1000,"networks":[{"net":"192.0.2.0/24","first":900,"last":1000}]}}},
        "long_session":{"by_role":{}}}"#;
    let state = State::from_bytes(v1.to_vec()).unwrap();
    assert_eq!(state.unexpected_source_ip.principals.len(), 1);
    let again = State::from_bytes(state.to_bytes()).unwrap();
    assert_eq!(again.format, STATE_FORMAT);
    assert_eq!(again, state);
    let err = State::from_bytes(br#"{"format":4}"#.to_vec()).unwrap_err().to_string();
    assert!(err.contains("format 4"), "{err}");
}

#[test]
fn format_two_state_with_histories_in_its_first_line_is_read_and_saved_with_sections() {
    let mut v2 = br#"{"format":2,"watermark":5,"repeated_failures":{"by_principal":{"alice":[{"t":5,"id":"e1"}]}},"long_session":{"by_role":{"arn:aws:iam::1:role/etl":[[5,43200,7]]}}}"#.to_vec();
    v2.push(b'\n');
    close(&mut v2, 0);
    let state = State::from_bytes(v2).unwrap();
    assert_eq!(state.repeated_failures.by_principal.get("alice").map(|f| f.len()), Some(1));
    assert!(state.long_session.by_role.contains_key("arn:aws:iam::1:role/etl"));
    let saved = String::from_utf8(state.to_bytes()).unwrap();
    let first_line = saved.lines().next().unwrap();
    assert!(first_line.contains(r#""format":3"#) && !first_line.contains("alice"), "{first_line}");
    assert!(saved.contains("\n#repeated_failures\n\"alice\"\t6\t"), "{saved}");
    assert!(saved.contains("\n#long_session\n\"arn:aws:iam::1:role/etl\"\t6\t"), "{saved}");
    assert_eq!(State::from_bytes(saved.into_bytes()).unwrap(), state);
}

#[test]
fn histories_and_inputs_untouched_by_an_input_are_saved_as_they_were_read() {
    let mut engine = crate::Engine::new(&crate::Config::default(), State::default());
    let failures: Vec<_> = (0..40)
        .map(|i| {
            crate::detect::tests::failure(&format!("arn:aws:iam::111122223333:user/u{i}"), &format!("f{i}"), 1_000)
        })
        .collect();
    engine.apply("f", &failures);
    let saved = engine.into_state().to_bytes();
    let loaded = State::from_bytes(saved.clone()).unwrap();
    let mut engine = crate::Engine::new(&crate::Config::default(), loaded);
    engine.apply("g", &[crate::detect::tests::failure("arn:aws:iam::111122223333:user/u7", "g1", 1_001)]);
    let state = engine.into_state();
    assert_eq!(state.repeated_failures.by_principal.len(), 40);
    let again = state.to_bytes();
    let lines = |bytes: &[u8]| String::from_utf8_lossy(bytes).lines().map(str::to_owned).collect::<Vec<_>>();
    let (before, after) = (lines(&saved), lines(&again));
    let changed: Vec<_> = after.iter().filter(|line| !before.contains(line)).collect();
    // The first line (watermark), u7's failures (as repeated failures and
    // as guessed roles), the new input, and the closing checksum.
    assert_eq!(changed.len(), 5, "{changed:#?}");
    assert!(changed[1].starts_with("\"arn:aws:iam::111122223333:user/u7\"\t"), "{changed:#?}");
    assert!(changed[2].starts_with("\"arn:aws:iam::111122223333:user/u7\"\t"), "{changed:#?}");
    assert!(changed[3].starts_with("\"g\"\t"), "{changed:#?}");
    assert_eq!(State::from_bytes(again).unwrap(), state);
}

#[test]
fn unknown_repeated_or_misplaced_sections_are_refused() {
    let seal = |text: &str| {
        let mut bytes = text.as_bytes().to_vec();
        close(&mut bytes, 0);
        State::from_bytes(bytes).map(|_| ()).unwrap_err().to_string()
    };
    let err = seal("{\"format\":3}\n#surprise\n\"k\"\t1\t[]\n");
    assert!(err.contains("section #surprise, unknown to this release") && err.contains("newer rolewatch"), "{err}");
    let err = seal("{\"format\":3}\n#long_session\n#long_session\n");
    assert!(err.contains("appears twice"), "{err}");
    let err = seal("{\"format\":3,\"repeated_failures\":{\"by_principal\":{\"a\":[{\"t\":1,\"id\":\"x\"}]}}}\n");
    assert!(err.contains("histories belong on lines of their own"), "{err}");
}

#[test]
fn saved_in_two_parts_state_reads_back_whole_and_later_saves_carry_only_changes() {
    let state = state_with_principals(3_000);
    let first = state.to_parts(&crate::storage::BaseSpare::default());
    let base = first.new_base.expect("3,000 principals outgrow the changes limit: a base is written");
    assert!(first.state.len() < 1_000, "the state part names the base and holds no principal");
    let loaded = State::from_parts(first.state.clone(), &base).unwrap();
    assert_eq!(loaded, state);

    let mut engine = crate::Engine::new(&crate::Config::default(), loaded);
    let newcomer = crate::detect::tests::success("arn:aws:iam::111122223333:user/newcomer", "n1", 2_000);
    let known = crate::detect::tests::success("arn:aws:iam::111122223333:user/u7", "n2", 2_000);
    engine.apply("g", &[newcomer, known]);
    let changed = engine.into_state();
    let second = changed.to_parts(&crate::storage::BaseSpare::default());
    assert!(second.new_base.is_none(), "two changed principals do not rewrite the base");
    assert!(second.state.len() < 4_000, "{} bytes saved for two principals", second.state.len());
    assert_eq!(State::base_of(&second.state).as_deref(), Some(base.digest()));
    let again = State::from_parts(second.state.clone(), &base).unwrap();
    assert_eq!(again.unexpected_source_ip.principals.len(), 3_001);
    assert_eq!(again, changed);
    assert_eq!(State::from_bytes(again.to_bytes()).unwrap(), changed, "and in one piece for a file");
}

#[test]
fn in_two_parts_histories_and_inputs_live_in_the_base_and_the_state_carries_their_changes() {
    let mut engine = crate::Engine::new(&crate::Config::default(), state_with_principals(3_000));
    let failures: Vec<_> = (0..300)
        .map(|i| {
            crate::detect::tests::failure(&format!("arn:aws:iam::111122223333:user/u{i}"), &format!("x{i}"), 1_500)
        })
        .collect();
    engine.apply("failures", &failures);
    let state = engine.into_state();
    let first = state.to_parts(&crate::storage::BaseSpare::default());
    let base = first.new_base.expect("a base is written");
    let base_text = String::from_utf8_lossy(base.as_bytes()).into_owned();
    assert!(base_text.contains("\n#repeated_failures\n") && base_text.contains("\n#inputs\n"));
    assert!(!String::from_utf8_lossy(&first.state).contains('#'), "the state part holds no section");
    let loaded = State::from_parts(first.state, &base).unwrap();
    assert_eq!(loaded, state);

    let mut engine = crate::Engine::new(&crate::Config::default(), loaded);
    engine.apply("next", &[crate::detect::tests::failure("arn:aws:iam::111122223333:user/u9", "y", 1_600)]);
    let changed = engine.into_state();
    let second = changed.to_parts(&crate::storage::BaseSpare::default());
    assert!(second.new_base.is_none());
    let text = String::from_utf8_lossy(&second.state).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1..lines.len() - 1],
        ["#repeated_failures", lines[2], "#inputs", "\"next\"\t1601\t1600"],
        "{text}"
    );
    assert!(lines[2].starts_with("\"arn:aws:iam::111122223333:user/u9\"\t"), "{text}");
    let again = State::from_parts(second.state, &base).unwrap();
    assert_eq!(again.repeated_failures.by_principal.len(), 300);
    assert_eq!(again, changed);
}

#[test]
fn a_base_of_principals_only_from_format_two_is_still_read() {
    let mut state = state_with_principals(3_000);
    state.inputs = LazyMap::default();
    let saved = state.to_parts(&crate::storage::BaseSpare::default());
    let base = saved.new_base.unwrap();
    let mut old = BASE_HEADER_PRINCIPALS_ONLY.to_vec();
    let body = &base.as_bytes()[BASE_HEADER.len()..];
    old.extend_from_slice(
        &body[..body.len() - memchr::memrchr(b'\n', &body[..body.len() - 1]).map_or(0, |i| body.len() - 1 - i)],
    );
    let digest = close(&mut old, 3_000);
    let old = StateBase::from_bytes(old, &crate::storage::BaseSpare::default()).unwrap();
    let part = String::from_utf8(saved.state).unwrap().replace(base.digest(), &digest);
    let mut part = part.lines().next().unwrap().as_bytes().to_vec();
    part.push(b'\n');
    close(&mut part, 3_000);
    assert_eq!(State::from_parts(part, &old).unwrap(), state);
}

#[test]
fn a_section_count_that_cannot_be_right_is_counted_again_from_the_lines() {
    let mut bytes = br#"{"format":3,"entries":{"repeated_failures":0,"long_session":0,"inputs":0}}"#.to_vec();
    bytes.extend_from_slice(b"\n#inputs\n\"a\"\t6\t5\n\"b\"\t6\t5\n");
    close(&mut bytes, 0);
    assert_eq!(State::from_bytes(bytes).unwrap().inputs.len(), 2);

    // A renamed key in the changes over a base keeps a count that fits;
    // it is counted again once it no longer does, and saves read back.
    use crate::detect::tests::failure;
    let config = crate::Config::default();
    let mut engine = crate::Engine::new(&config, State::default());
    engine.apply("first", &[failure("m1", "f1", 2_000), failure("m2", "f2", 2_000)]);
    let saved = engine.into_state().to_parts_within(0, &BaseSpare::default());
    let base = saved.new_base.unwrap();
    let mut engine = crate::Engine::new(&config, State::from_parts(saved.state, &base).unwrap());
    engine.apply("second", &[failure("m1", "g1", 2_001)]);
    let part = String::from_utf8(engine.into_state().to_parts_within(usize::MAX, &BaseSpare::default()).state).unwrap();
    let edited = resealed(part.replace("\n\"m1\"\t", "\n\"x1\"\t").into_bytes());
    let mut engine = crate::Engine::new(&config, State::from_parts(edited, &base).unwrap());
    engine.apply("third", &[failure("m2", "h1", 2_002)]);
    let state = engine.into_state();
    let whole = State::from_bytes(state.to_bytes()).unwrap();
    assert_eq!(whole.repeated_failures.by_principal.len(), 3);
    let parts = state.to_parts_within(0, &BaseSpare::default());
    let again = State::from_parts(parts.state, &parts.new_base.unwrap()).unwrap();
    assert_eq!(again.repeated_failures.by_principal.len(), 3);
}

/// State holding some of everything: principals, failures, a long
/// grant, inputs, alert times.
fn state_with_everything() -> State {
    use crate::detect::tests::{failure, long, success};
    let mut engine = crate::Engine::new(&crate::Config::default(), State::default());
    let mut events: Vec<_> = (0..40).map(|i| success(&format!("u{i}"), &format!("s{i}"), 1_000 + i)).collect();
    events.extend((0..6).map(|i| failure("mallory", &format!("f{i}"), 2_000 + i)));
    events.push(long("etl", "l1", 3_000, 43_200));
    engine.apply("first", &events);
    engine.apply("second", &[success("u1", "s-again", 4_000)]);
    engine.into_state()
}

/// Replaces the closing line so that edited bytes pass the checksum.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len().saturating_sub(1);
    let cut = memchr::memrchr(b'\n', &bytes[..body]).map_or(0, |i| i + 1);
    let principals = serde_json::from_slice::<Trailer>(&bytes[cut..]).map_or(0, |t| t.principals);
    bytes.truncate(cut);
    close(&mut bytes, principals);
    bytes
}

proptest::proptest! {
    /// Saved state is our own output, but it comes back from a file or
    /// an S3 object: edited in any byte, checksum and all, it is refused
    /// or read, never a panic, and what is read is used and saved again.
    #[test]
    fn edited_state_with_a_good_checksum_is_refused_or_read_never_a_panic(
        at in 0.0f64..1.0,
        byte in proptest::prelude::any::<u8>(),
        edit in 0..3,
    ) {
        let state = state_with_everything();
        // 0: one piece; 1: a base; 2: the changes saved over a base.
        let (part, base) = match edit {
            0 => (state.to_bytes(), None),
            _ => {
                let saved = state.to_parts_within(0, &BaseSpare::default());
                let base = saved.new_base.expect("a base was asked for");
                let mut engine = crate::Engine::new(
                    &crate::Config::default(),
                    State::from_parts(saved.state, &base).expect("state reads back"),
                );
                let failure = crate::detect::tests::failure("mallory", "later", 4_500);
                engine.apply("later", &[failure, crate::detect::tests::success("u3", "s3-again", 4_500)]);
                (engine.into_state().to_parts_within(usize::MAX, &BaseSpare::default()).state, Some(base))
            }
        };
        let mut edited = match (&base, edit) {
            (Some(base), 1) => base.as_bytes().to_vec(),
            _ => part.clone(),
        };
        let i = ((edited.len() - 1) as f64 * at) as usize;
        edited[i] = byte;
        let edited = resealed(edited);
        let loaded = match (&base, edit) {
            (None, _) => State::from_bytes(edited),
            (Some(_), 1) => StateBase::from_bytes(edited, &crate::storage::BaseSpare::default()).and_then(|base| State::from_parts(part.clone(), &base)),
            (Some(base), _) => State::from_parts(edited, base),
        };
        if let Ok(state) = loaded {
            let mut engine = crate::Engine::new(&crate::Config::default(), state);
            let failure = crate::detect::tests::failure("mallory", "again", 5_000);
            engine.apply("third", &[failure, crate::detect::tests::success("u2", "s2-again", 5_000)]);
            let state = engine.into_state();
            let again = State::from_bytes(state.to_bytes());
            proptest::prop_assert!(again.is_ok(), "saved state does not read back: {:?}", again.err());
            let parts = state.to_parts_within(0, &BaseSpare::default());
            let base = parts.new_base.expect("a base was asked for");
            let again = State::from_parts(parts.state, &base);
            proptest::prop_assert!(again.is_ok(), "saved parts do not read back: {:?}", again.err());
        }
    }
}

#[test]
fn two_part_state_without_its_base_is_refused_naming_the_base() {
    let saved = state_with_principals(3_000).to_parts(&crate::storage::BaseSpare::default());
    let base = saved.new_base.unwrap();
    let err = State::from_bytes(saved.state.clone()).unwrap_err().to_string();
    assert!(err.contains(base.digest()), "{err}");
    let other = state_with_principals(2_500).to_parts(&crate::storage::BaseSpare::default()).new_base.unwrap();
    assert!(State::from_parts(saved.state, &other).is_err());
    let mut damaged = base.as_bytes().to_vec();
    damaged[100] ^= 0x20;
    assert!(StateBase::from_bytes(damaged, &crate::storage::BaseSpare::default())
        .unwrap_err()
        .to_string()
        .contains("checksum"));
}

#[test]
fn corrupt_state_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, b"{not json").unwrap();
    let err = FileStateStore::new(&path).load().unwrap_err().to_string();
    assert!(err.contains("state.json"), "{err}");
}

/// What a newer release writes, as this one finds it after a rollback.
fn newer_states() -> Vec<(&'static str, Vec<u8>)> {
    let sealed = |text: &str| {
        let mut bytes = text.as_bytes().to_vec();
        close(&mut bytes, 0);
        bytes
    };
    vec![
        ("format 4", sealed("{\"format\":4,\"watermark\":5,\"session_velocity\":{}}\n")),
        ("format 4", b"{\"format\":4}".to_vec()),
        ("section #session_velocity", sealed("{\"format\":3}\n#session_velocity\n\"arn:aws:iam::1:user/a\"\t9\t[]\n")),
        ("unknown field `geo_velocity`", sealed("{\"format\":3,\"geo_velocity\":{\"seen\":1}}\n")),
        // Inside a detector's part, where serde would read past it and drop it.
        (
            "field repeated_failures.burst_memory",
            sealed("{\"format\":3,\"repeated_failures\":{\"burst_memory\":[1,2]}}\n"),
        ),
        ("field long_session.pruning.knob", sealed("{\"format\":3,\"long_session\":{\"pruning\":{\"knob\":1}}}\n")),
    ]
}

#[test]
fn state_a_newer_release_wrote_is_refused_as_newer_never_as_corrupt() {
    for (found, bytes) in newer_states() {
        let err = State::from_bytes(bytes).unwrap_err();
        assert!(err.is_newer(), "{found}: {err}");
        let text = err.to_string();
        assert!(text.contains(found) && text.contains(&format!("formats 1 to {STATE_FORMAT}")), "{text}");
    }
    let base = |text: &str| {
        let mut bytes = text.as_bytes().to_vec();
        close(&mut bytes, 0);
        StateBase::from_bytes(bytes, &BaseSpare::default()).map(|_| ()).unwrap_err()
    };
    let err = base("{\"rolewatch_state_base\":4}\n");
    assert!(err.is_newer() && err.to_string().contains("base format 4"), "{err}");
    let err = base("{\"rolewatch_state_base\":3}\n#session_velocity\n\"k\"\t1\t[]\n");
    assert!(err.is_newer() && err.to_string().contains("#session_velocity"), "{err}");
}

#[test]
fn damage_is_still_corrupt_not_newer() {
    // The same unknown field, but the checksum does not hold: not a release's output.
    let mut bytes = b"{\"format\":3,\"geo_velocity\":{}}\n".to_vec();
    close(&mut bytes, 0);
    let last = bytes.len() - 3;
    bytes[last] ^= 1;
    for bytes in [bytes, b"{\"format\":3,\"inputs\": [".to_vec(), b"{\"format\":0}".to_vec()] {
        let err = State::from_bytes(bytes).unwrap_err();
        assert!(!err.is_newer() && matches!(err, StateError::Corrupt { .. }), "{err}");
    }
}
