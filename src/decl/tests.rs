use std::fs::File;
use std::io::Write;

use super::*;

fn one(json: &str) -> Declaration {
    let d = parse(json.as_bytes()).expect("parses");
    assert_eq!(d.len(), 1);
    d.probes()[0].clone()
}

fn invalid_reason(json: &str) -> String {
    one(json)
        .invalid()
        .expect("declaration is invalid")
        .to_string()
}

#[test]
fn shared_fields_and_defaults() {
    let d = one(r#"{"ssh": {"kind": "ping", "mode": "observe", "port": 22}}"#);
    assert_eq!(d.name(), "ssh");
    assert_eq!(d.kind(), "ping");
    assert_eq!(d.mode(), Mode::Observe);
    assert_eq!(d.interval_secs(), 30);
    assert!(!d.run_once());
    assert!(d.invalid().is_none());
}

#[test]
fn nulls_mean_defaults() {
    let d = one(
        r#"{"p": {"kind": "ping", "mode": "enforce", "intervalSeconds": null,
                  "runOnce": null, "url": null, "port": null}}"#,
    );
    assert_eq!(d.interval_secs(), 30);
    assert!(!d.run_once());
    assert!(d.get("port").is_none());
    assert!(d.invalid().is_none());
}

#[test]
fn unknown_mode_fails_closed() {
    let d = one(r#"{"p": {"kind": "ping", "mode": "obsrve", "port": 1}}"#);
    assert_eq!(d.mode(), Mode::Enforce);
    assert_eq!(d.unknown_mode(), Some("obsrve"));
    assert!(d.invalid().is_none());
}

#[test]
fn exact_reasons_for_invalid_shared_fields() {
    let cases = [
        (
            r#"{"p": {"mode": "enforce"}}"#,
            "invalid declaration: field `kind`: required field is missing",
        ),
        (
            r#"{"p": {"kind": 7, "mode": "enforce"}}"#,
            "invalid declaration: field `kind`: expected a string, got 7",
        ),
        (
            r#"{"p": {"kind": "ping"}}"#,
            "invalid declaration: field `mode`: required field is missing",
        ),
        (
            r#"{"p": {"kind": "ping", "mode": ["enforce"]}}"#,
            "invalid declaration: field `mode`: expected a string, got an array",
        ),
        (
            r#"{"p": {"kind": "ping", "mode": "enforce", "intervalSeconds": -1}}"#,
            "invalid declaration: field `intervalSeconds`: expected an integer from 0 to 31536000, got -1",
        ),
        (
            r#"{"p": {"kind": "ping", "mode": "enforce", "intervalSeconds": 1.5}}"#,
            "invalid declaration: field `intervalSeconds`: expected an integer from 0 to 31536000, got 1.5",
        ),
        (
            r#"{"p": {"kind": "ping", "mode": "enforce", "intervalSeconds": "30"}}"#,
            "invalid declaration: field `intervalSeconds`: expected an integer from 0 to 31536000, got \"30\"",
        ),
        (
            r#"{"p": {"kind": "ping", "mode": "enforce", "intervalSeconds": 99999999999999999999}}"#,
            "invalid declaration: field `intervalSeconds`: expected an integer from 0 to 31536000, got 1e+20",
        ),
        (
            r#"{"p": {"kind": "ping", "mode": "enforce", "runOnce": "yes"}}"#,
            "invalid declaration: field `runOnce`: expected true or false, got \"yes\"",
        ),
        (
            r#"{"p": 42}"#,
            "invalid declaration: expected an object, got a number",
        ),
        (
            r#"{"p": null}"#,
            "invalid declaration: expected an object, got null",
        ),
    ];
    for (json, want) in cases {
        assert_eq!(invalid_reason(json), want, "{json}");
    }
}

#[test]
fn invalid_declaration_keeps_mode_as_written_and_default_interval() {
    let d = one(r#"{"p": {"kind": "ping", "mode": "observe", "intervalSeconds": "x"}}"#);
    assert_eq!(d.mode(), Mode::Observe);
    assert_eq!(d.interval_secs(), 30);
    let d = one(r#"{"p": {"kind": "ping", "mode": 3, "intervalSeconds": 60}}"#);
    assert_eq!(d.mode(), Mode::Enforce);
    assert_eq!(d.interval_secs(), 60);
}

#[test]
fn one_bad_entry_does_not_take_the_others_down() {
    let d = parse(
        br#"{"good": {"kind": "ping", "mode": "enforce", "port": 22},
             "bad": {"kind": "ping", "mode": "enforce", "runOnce": 1}}"#,
    )
    .unwrap();
    assert_eq!(d.len(), 2);
    assert!(d.probes()[0].invalid().is_some()); // "bad" sorts first
    assert!(d.probes()[1].invalid().is_none());
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = parse(b"{\n  \"a\": {\n    \"kind\" \"tcp\"\n  }\n}").unwrap_err();
    assert_eq!(err.reason(), "line 3 column 12: expected `:`");
    let err = parse(b"").unwrap_err();
    assert_eq!(err.reason(), "line 1 column 0: EOF while parsing a value");
}

#[test]
fn whole_file_rejections() {
    let err = parse(b"[1, 2]").unwrap_err();
    assert!(
        err.reason()
            .contains("expected a JSON object mapping probe names to declarations"),
        "{err}"
    );
    let err = parse(br#"{"a": {}, "b": {}, "a": {}}"#).unwrap_err();
    assert!(
        err.reason().contains(r#"duplicate probe name "a""#),
        "{err}"
    );
    assert!(err.reason().starts_with("line 1 column "), "{err}");
    let big = vec![b' '; (MAX_FILE_BYTES + 1) as usize];
    let err = parse(&big).unwrap_err();
    assert!(
        err.reason()
            .starts_with("file is larger than 1048576 bytes"),
        "{err}"
    );
}

#[test]
fn probes_are_sorted_by_name() {
    let d = parse(br#"{"b": {}, "a": {}, "C": {}}"#).unwrap();
    let names: Vec<&str> = d.probes().iter().map(Declaration::name).collect();
    assert_eq!(names, ["C", "a", "b"]);
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "probewheel-decl-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_missing_file_is_empty() {
    let dir = TempDir::new("missing");
    let d = load(&dir.0.join("nope.json")).unwrap();
    assert!(d.is_empty());
}

#[test]
fn load_rejects_special_and_large_files() {
    let err = load(Path::new("/dev/zero")).unwrap_err();
    assert!(err.reason().starts_with("not a regular file"), "{err}");
    let dir = TempDir::new("special");
    let err = load(&dir.0).unwrap_err();
    assert!(err.reason().starts_with("not a regular file"), "{err}");
    let big = dir.0.join("big.json");
    let mut f = File::create(&big).unwrap();
    f.write_all(&vec![b' '; (MAX_FILE_BYTES + 10) as usize])
        .unwrap();
    drop(f);
    let err = load(&big).unwrap_err();
    assert_eq!(
        err.reason(),
        "file is larger than 1048576 bytes (1 MiB): 1048586 bytes"
    );
    // A symlink to a large file is followed and rejected the same way.
    let link = dir.0.join("link.json");
    std::os::unix::fs::symlink(&big, &link).unwrap();
    assert_eq!(load(&link).unwrap_err(), err);
}

#[test]
fn load_unreadable_file_is_rejected() {
    let dir = TempDir::new("unreadable");
    // A path through a regular file cannot be opened (ENOTDIR), even as root.
    let file = dir.0.join("f");
    std::fs::write(&file, b"{}").unwrap();
    let err = load(&file.join("x.json")).unwrap_err();
    assert!(err.reason().starts_with("cannot read file: "), "{err}");
}

#[test]
fn a_field_repeated_inside_a_declaration_invalidates_it_and_only_it() {
    let d = parse(
        br#"{"a": {"kind": "ping", "mode": "observe", "port": 22, "port": 23},
             "b": {"kind": "ping", "mode": "observe", "port": 22}}"#,
    )
    .unwrap();
    let a = &d.probes()[0];
    assert_eq!(
        a.invalid().unwrap().to_string(),
        "invalid declaration: field `port`: appears more than once in this declaration"
    );
    // Mode as written, for the topology.
    assert_eq!(a.mode(), Mode::Observe);
    assert!(d.probes()[1].invalid().is_none());
}

#[test]
fn a_field_nested_too_deeply_is_kept_aside_and_a_shared_one_invalidates_one_probe() {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let text = format!(
        r#"{{"a": {{"kind": "ping", "mode": "observe", "port": 22, "x": {}}},
             "b": {{"kind": "ping", "mode": "observe", "port": 22, "y": {}}},
             "c": {{"kind": "ping", "mode": "observe", "runOnce": {}}}}}"#,
        nest(127),
        nest(100_000),
        nest(100_000)
    );
    let d = parse(text.as_bytes()).unwrap();
    assert!(d.probes()[0].invalid().is_none());
    assert_eq!(d.probes()[0].too_deep().count(), 0);
    // Whether `y` matters is for its kind to say.
    assert!(d.probes()[1].invalid().is_none());
    assert!(d.probes()[1].field_names().any(|f| f == "y"));
    assert_eq!(d.probes()[1].too_deep().collect::<Vec<_>>(), ["y"]);
    assert_eq!(
        d.probes()[2].invalid().unwrap().to_string(),
        "invalid declaration: field `runOnce`: nested too deeply to read"
    );
}

#[test]
fn other_encodings_are_rejected_naming_the_encoding() {
    let json = r#"{"a": {"kind": "ping", "mode": "observe", "port": 22}}"#;
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(json.as_bytes());
    assert!(
        parse(&bom)
            .unwrap_err()
            .reason()
            .contains("byte order mark"),
        "{:?}",
        parse(&bom)
    );
    let le: Vec<u8> = json.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = json.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let mut le_bom = vec![0xFF, 0xFE];
    le_bom.extend_from_slice(&le);
    for (bytes, want) in [
        (&le, "UTF-16 (little-endian)"),
        (&be, "UTF-16 (big-endian)"),
        (&le_bom, "UTF-16 (little-endian, with a byte order mark)"),
    ] {
        let reason = parse(bytes).unwrap_err().reason().to_owned();
        assert!(reason.starts_with(&format!("file is {want}")), "{reason}");
    }
    let latin1 = b"{\n  \"caf\xe9\": {}}";
    assert_eq!(
        parse(latin1).unwrap_err().reason(),
        "line 2 column 7: file is not valid UTF-8 (byte 0xE9 at offset 8)"
    );
}

#[test]
fn str_array_reads_an_array_of_strings_and_names_the_field_otherwise() {
    let d = one(
        r#"{"p": {"kind": "k", "mode": "observe", "argv": ["a", "", "é"], "empty": [],
            "nothing": null, "text": "a b", "mixed": ["a", false], "nested": ["a", ["true"]],
            "obj": {"a": 1}}}"#,
    );
    assert_eq!(d.str_array("argv"), Ok(Some(vec!["a", "", "é"])));
    assert_eq!(d.str_array("empty"), Ok(Some(vec![])));
    assert_eq!(d.str_array("nothing"), Ok(None));
    assert_eq!(d.str_array("absent"), Ok(None));
    let problem = |field: &str| {
        let e = d.str_array(field).unwrap_err();
        assert_eq!(e.field(), field);
        e.problem().to_owned()
    };
    assert_eq!(
        problem("text"),
        r#"expected an array of strings, got "a b""#
    );
    assert_eq!(
        problem("obj"),
        "expected an array of strings, got an object"
    );
    assert_eq!(
        problem("mixed"),
        "expected an array of strings, element 1 is false"
    );
    assert_eq!(
        problem("nested"),
        r#"expected an array of strings, element 1 is ["true"]"#
    );
    assert_eq!(
        d.str_array("mixed").unwrap_err().to_string(),
        "invalid declaration: field `mixed`: expected an array of strings, element 1 is false"
    );
}
