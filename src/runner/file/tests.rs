//! The `file` kind on real files: age, content, absence, and what it refuses.

use std::fs::File;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::*;
use crate::file::tests::{TempDir, mkfifo};

/// A file at `dir/name` holding `text`, last modified at `mtime`.
fn touch(dir: &TempDir, name: &str, text: &str, mtime: SystemTime) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, text).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    path
}

fn decl(fields: Value) -> Declaration {
    let mut v = json!({"kind": "file", "mode": "enforce"});
    for (k, f) in fields.as_object().unwrap() {
        v[k] = f.clone();
    }
    Declaration::from_value("beat", v)
}

fn check(fields: Value) -> FileCheck {
    FileCheck::from_decl(&decl(fields)).unwrap()
}

fn refusal(fields: Value) -> String {
    FileCheck::from_decl(&decl(fields)).unwrap_err().to_string()
}

/// The wall clock of the tests: a fixed instant, files aged against it.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn a_fresh_file_passes_and_a_stale_one_fails_with_its_age() {
    let dir = TempDir::new();
    let fresh = touch(&dir, "fresh", "", now() - Duration::from_secs(3600));
    let stale = touch(&dir, "stale", "", now() - Duration::from_millis(3_612_900));
    let probe = |p: &Path| check(json!({"path": p, "maxAgeSeconds": 3600}));
    assert_eq!(probe(&fresh).judge(now()), Ok(()));
    assert_eq!(
        probe(&stale).judge(now()),
        Err(format!(
            "file probe: {} is 3,612 s old, older than maxAgeSeconds 3600",
            stale.display()
        ))
    );
}

#[test]
fn a_modification_time_in_the_future_counts_as_age_zero() {
    let dir = TempDir::new();
    let ahead = touch(&dir, "ahead", "", now() + Duration::from_secs(86_400));
    let probe = check(json!({"path": ahead, "maxAgeSeconds": 1}));
    assert_eq!(probe.judge(now()), Ok(()));
}

#[test]
fn contains_searches_the_first_64_kib_only() {
    let dir = TempDir::new();
    let mut text = "x".repeat(HEAD as usize - 2);
    text.push_str("ok");
    text.push_str("late");
    let path = touch(&dir, "big", &text, now());
    let probe = |needle: &str| check(json!({"path": path, "contains": needle})).judge(now());
    assert_eq!(probe("ok"), Ok(()));
    assert_eq!(
        probe("late"),
        Err(format!(
            "file probe: {} does not contain \"late\" in its first 64 KiB",
            path.display()
        ))
    );
    // An empty string checks nothing.
    assert_eq!(probe(""), Ok(()));
}

#[test]
fn a_missing_file_fails_unless_absence_is_expected() {
    let dir = TempDir::new();
    let missing = dir.0.join("missing");
    assert_eq!(
        check(json!({"path": missing})).judge(now()),
        Err(format!("file probe: {}: no such file", missing.display()))
    );
    let absent = check(json!({"path": missing, "expectExists": false}));
    assert_eq!(absent.judge(now()), Ok(()));
    let present = touch(&dir, "missing", "", now());
    assert_eq!(
        absent.judge(now()),
        Err(format!(
            "file probe: {} exists, expected it not to",
            present.display()
        ))
    );
}

#[test]
fn a_fifo_or_a_directory_fails_at_once_without_blocking() {
    let dir = TempDir::new();
    let fifo = dir.0.join("fifo");
    mkfifo(&fifo);
    assert_eq!(
        check(json!({"path": fifo, "contains": "ok"})).judge(now()),
        Err(format!(
            "file probe: {}: not a regular file (a FIFO)",
            fifo.display()
        ))
    );
    assert_eq!(
        check(json!({"path": dir.0})).judge(now()),
        Err(format!(
            "file probe: {}: not a regular file (a directory)",
            dir.0.display()
        ))
    );
    // Absence is a stat: a FIFO exists.
    let absent = check(json!({"path": fifo, "expectExists": false}));
    assert!(
        absent
            .judge(now())
            .unwrap_err()
            .ends_with("exists, expected it not to")
    );
}

#[test]
fn the_fields_are_checked_at_prepare() {
    assert_eq!(
        refusal(json!({})),
        "invalid declaration: field `path`: required field is missing"
    );
    assert_eq!(
        refusal(json!({"path": "run/beat"})),
        "invalid declaration: field `path`: \"run/beat\" is not an absolute path"
    );
    assert!(refusal(json!({"path": "/a\u{0}b"})).ends_with("`path`: contains a NUL byte"));
    assert!(refusal(json!({"path": "/a", "maxAgeSeconds": 0})).contains("maxAgeSeconds"));
    let long = "x".repeat(HEAD as usize + 1);
    assert!(refusal(json!({"path": "/a", "contains": long})).contains("`contains`: longer"));
    assert!(refusal(json!({"path": "/a", "expectExists": "no"})).contains("expectExists"));
}

fn warnings(fields: Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    FileKind.lint(&decl(fields), &mut |field, problem| {
        out.push((field, problem))
    });
    out
}

#[test]
fn lint_warns_of_an_age_shorter_than_the_interval_and_of_ignored_fields() {
    let short = warnings(json!({"path": "/a", "maxAgeSeconds": 30, "intervalSeconds": 60}));
    assert_eq!(short.len(), 1, "{short:?}");
    assert_eq!(short[0].0, "maxAgeSeconds");
    assert!(
        short[0]
            .1
            .starts_with("30 is shorter than intervalSeconds 60"),
        "{short:?}"
    );
    assert!(warnings(json!({"path": "/a", "maxAgeSeconds": 60, "intervalSeconds": 60})).is_empty());
    assert!(
        warnings(
            json!({"path": "/a", "maxAgeSeconds": 30, "intervalSeconds": 60, "runOnce": true})
        )
        .is_empty()
    );
    let ignored = warnings(json!({"path": "/a", "expectExists": false, "contains": "ok"}));
    assert_eq!(
        ignored.iter().map(|w| w.0).collect::<Vec<_>>(),
        ["contains"]
    );
}

#[test]
fn ages_are_grouped_by_thousands() {
    let cases = [
        (0, "0"),
        (999, "999"),
        (1000, "1,000"),
        (3612, "3,612"),
        (1_234_567, "1,234,567"),
    ];
    for (n, text) in cases {
        assert_eq!(grouped(n), text);
    }
}
