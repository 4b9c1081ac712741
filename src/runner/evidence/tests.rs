//! Evidence probes: signature, key, freshness, mode resolution, sub-result
//! order, caching; JCS against RFC 8785's examples; the strict reader.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};

use super::*;
use crate::runner::{CancelState, Status, SubResult};

// ---------------------------------------------------------------------------
// Fixtures

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("probewheel-evidence-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const HOST: &str = "web-1";
const COLLECTED_AT: &str = "2026-11-27T10:00:00Z";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The SSH wire blob of an ed25519 public key.
fn wire_blob(key_type: &str, key: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    blob.extend_from_slice(&(key_type.len() as u32).to_be_bytes());
    blob.extend_from_slice(key_type.as_bytes());
    blob.extend_from_slice(&(key.len() as u32).to_be_bytes());
    blob.extend_from_slice(key);
    blob
}

fn openssh_line(k: &SigningKey) -> String {
    let blob = wire_blob("ssh-ed25519", k.verifying_key().as_bytes());
    format!("ssh-ed25519 {} root@{HOST}\n", STANDARD.encode(blob))
}

/// The `.sig` text for `text` (signed over its canonical form).
fn sign(text: &str, k: &SigningKey) -> String {
    let value = json::parse(text.as_bytes()).unwrap();
    let canonical = jcs::canonicalize(&value).unwrap();
    format!(
        "{}\n",
        STANDARD.encode(k.sign(canonical.as_bytes()).to_bytes())
    )
}

fn collected_at() -> SystemTime {
    Timestamp::parse_rfc3339(COLLECTED_AT)
        .unwrap()
        .system_time()
}

/// `secs` after `collectedAt`.
fn at(secs: u64) -> SystemTime {
    collected_at() + Duration::from_secs(secs)
}

/// A wall time late enough that files written now are not "racy".
fn later() -> SystemTime {
    clock::wall_now() + Duration::from_secs(60)
}

fn doc(controls: Value) -> Value {
    json!({
        "schemaVersion": 1,
        "hostname": HOST,
        "collectedAt": COLLECTED_AT,
        "controls": controls,
    })
}

fn control(id: &str, passed: bool, frameworks: Value) -> Value {
    json!({"controlId": id, "passed": passed, "frameworkArticles": frameworks})
}

/// Two nis2 controls and one iso27001-only control.
fn standard_doc() -> Value {
    doc(json!([
        control(
            "ssh-hardening",
            true,
            json!({"nis2": ["21.2.a"], "iso27001": ["A.8.5"]})
        ),
        control("disk-encryption", false, json!({"nis2": ["21.2.h"]})),
        control("backup", true, json!({"iso27001": ["A.8.13"]})),
    ]))
}

struct Fixture {
    _dir: TempDir,
    key_path: PathBuf,
    evidence: PathBuf,
    sig: PathBuf,
    signer: SigningKey,
}

impl Fixture {
    /// A host key of seed 7 and no evidence yet.
    fn new() -> Fixture {
        let dir = TempDir::new();
        let key_path = dir.0.join("ssh_host_ed25519_key.pub");
        let signer = key(7);
        fs::write(&key_path, openssh_line(&signer)).unwrap();
        Fixture {
            evidence: dir.0.join("evidence.json"),
            sig: dir.0.join("evidence.json.sig"),
            key_path,
            signer,
            _dir: dir,
        }
    }

    /// Writes `value` pretty-printed, and its signature.
    fn write(&self, value: &Value) {
        self.write_text(&serde_json::to_string_pretty(value).unwrap());
    }

    /// Writes `text` as the evidence file, and its signature.
    fn write_text(&self, text: &str) {
        fs::write(&self.evidence, text).unwrap();
        fs::write(&self.sig, sign(text, &self.signer)).unwrap();
    }

    fn decl(&self, fields: Value) -> Declaration {
        let mut all = json!({
            "kind": "evidence",
            "mode": "enforce",
            "evidencePath": self.evidence.to_str().unwrap(),
        });
        for (k, v) in fields.as_object().unwrap() {
            all[k] = v.clone();
        }
        Declaration::from_value("compliance", all)
    }

    fn check(&self, fields: Value) -> EvidenceCheck {
        EvidenceCheck::from_decl(&self.decl(fields), self.key_path.clone(), HOST).unwrap()
    }

    /// Sets every file's mtime to `t`, so that runs after it may cache.
    fn backdate(&self, t: SystemTime) {
        for p in [&self.evidence, &self.sig, &self.key_path] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
    }

    fn file(&self) -> String {
        self.evidence.display().to_string()
    }
}

fn nis2() -> Value {
    json!({"framework": "nis2"})
}

fn reason(outcome: &RunnerOutcome) -> &str {
    assert_eq!(outcome.status(), Status::Fail, "{outcome:?}");
    let r = outcome.reason().unwrap();
    assert!(r.starts_with("evidence probe: "), "{r}");
    r
}

fn rows(outcome: &RunnerOutcome) -> Vec<SubResult> {
    outcome.sub_results().expect("sub-results").to_vec()
}

fn row(
    id: &str,
    status: Status,
    framework: &str,
    article: Option<&str>,
    mode: Mode,
    reason: Option<&str>,
) -> SubResult {
    SubResult {
        control_id: id.to_owned(),
        status,
        framework: framework.to_owned(),
        article: article.map(str::to_owned),
        effective_mode: mode,
        override_reason: reason.map(str::to_owned),
    }
}

use Mode::{Enforce, Observe};
use Status::{Fail, Pass};

// ---------------------------------------------------------------------------
// Signature and key

#[test]
fn valid_evidence_passes() {
    let f = Fixture::new();
    f.write(&doc(json!([control(
        "ssh-hardening",
        true,
        json!({"nis2": ["21.2.a", "21.2.j"]})
    ),])));
    let check = f.check(nis2());
    let cancel = CancelState::default();
    let outcome = check.run(&RunContext::new("t", 0, clock::mono_now(), None, &cancel));
    assert_eq!(outcome.status(), Pass, "{outcome:?}");
    assert_eq!(
        rows(&outcome),
        vec![
            row("ssh-hardening", Pass, "nis2", Some("21.2.a"), Enforce, None),
            row("ssh-hardening", Pass, "nis2", Some("21.2.j"), Enforce, None),
        ]
    );
}

#[test]
fn tampered_content_fails_the_signature() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let mut forged = standard_doc();
    forged["controls"][1]["passed"] = json!(true);
    fs::write(&f.evidence, serde_json::to_string_pretty(&forged).unwrap()).unwrap();
    let out = f.check(nis2()).run_at(at(10));
    let r = reason(&out);
    assert!(r.starts_with("evidence probe: bad signature: "), "{r}");
    assert!(
        r.contains(&f.file()) && r.contains("evidence.json.sig"),
        "{r}"
    );
    assert!(out.sub_results().is_none());
}

#[test]
fn tampered_signature_fails() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let mut sig = STANDARD
        .decode(fs::read_to_string(&f.sig).unwrap().trim())
        .unwrap();
    sig[10] ^= 1;
    fs::write(&f.sig, STANDARD.encode(&sig)).unwrap();
    let out = f.check(nis2()).run_at(at(10));
    assert!(reason(&out).contains("bad signature"), "{out:?}");
}

#[test]
fn malformed_signature_files_are_named() {
    let f = Fixture::new();
    f.write(&standard_doc());
    for (sig, want) in [
        ("not base64 at all!\n", "is not one line of standard base64"),
        ("AAAA\n", "decodes to 3 bytes; an ed25519 signature is 64"),
        ("", "decodes to 0 bytes"),
    ] {
        fs::write(&f.sig, sig).unwrap();
        let out = f.check(nis2()).run_at(at(10));
        let r = reason(&out);
        assert!(r.contains(want) && r.contains("evidence.json.sig"), "{r}");
    }
}

#[test]
fn signature_line_may_have_surrounding_whitespace() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let sig = fs::read_to_string(&f.sig).unwrap();
    fs::write(&f.sig, format!("  {}  \r\n\n", sig.trim())).unwrap();
    let out = f.check(json!({"framework": "iso27001"})).run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
}

#[test]
fn wrong_key_fails_the_signature() {
    let f = Fixture::new();
    f.write(&standard_doc());
    fs::write(&f.key_path, openssh_line(&key(8))).unwrap();
    let out = f.check(nis2()).run_at(at(10));
    let r = reason(&out);
    assert!(
        r.contains("bad signature") && r.contains("ssh_host_ed25519_key.pub"),
        "{r}"
    );
}

#[test]
fn non_ed25519_key_is_refused() {
    let f = Fixture::new();
    f.write(&standard_doc());
    fs::write(
        &f.key_path,
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA root@web-1\n",
    )
    .unwrap();
    let out = f.check(nis2()).run_at(at(10));
    let r = reason(&out);
    assert!(
        r.contains("ssh_host_ed25519_key.pub: key type \"ssh-rsa\" is not supported"),
        "{r}"
    );
}

#[test]
fn malformed_key_lines_are_refused() {
    let good = STANDARD.encode(wire_blob("ssh-ed25519", key(7).verifying_key().as_bytes()));
    let cases = [
        (String::new(), "the file is empty"),
        ("ssh-ed25519\n".to_owned(), "no base64 key"),
        ("ssh-ed25519 %%%%\n".to_owned(), "base64"),
        (
            format!(
                "ssh-ed25519 {}\n",
                STANDARD.encode(wire_blob("ssh-ed25519", &[1; 31]))
            ),
            "ed25519 key is 31 bytes, expected 32",
        ),
        (
            format!(
                "ssh-ed25519 {}\n",
                STANDARD.encode(wire_blob("ssh-rsa", &[1; 32]))
            ),
            "key blob is of type \"ssh-rsa\"",
        ),
        (
            format!(
                "ssh-ed25519 {}\n",
                STANDARD.encode(&wire_blob("ssh-ed25519", &[1; 32])[..20])
            ),
            "key blob is truncated",
        ),
        (
            format!(
                "ssh-ed25519 {}\n",
                STANDARD.encode([wire_blob("ssh-ed25519", &[1; 32]), vec![0]].concat())
            ),
            "1 trailing bytes",
        ),
        (
            format!("ssh-ed25519 {good} a\nssh-ed25519 {good} b\n"),
            "exactly one key line",
        ),
    ];
    for (text, want) in cases {
        let err = host_key::parse(&text).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }
    // Accepted: no comment, extra whitespace, a comment with spaces.
    for text in [
        format!("ssh-ed25519 {good}"),
        format!("  ssh-ed25519   {good}   root@host with spaces  \n\n"),
    ] {
        assert!(host_key::parse(&text).is_ok(), "{text:?}");
    }

    let f = Fixture::new();
    f.write(&standard_doc());
    fs::write(&f.key_path, "ssh-ed25519 AAAA\n").unwrap();
    let r = f.check(nis2()).run_at(at(10));
    assert!(reason(&r).contains("malformed OpenSSH public key"), "{r:?}");
}

#[test]
fn the_builders_host_key_and_hostname_are_in_its_registry_at_once() {
    // `Builder::registry` is what the engine runs (and `check` lints
    // with), so the evidence settings must be in it before `build`.
    use crate::Builder;
    use crate::runner::{FnRunner, Prepared};

    let f = Fixture::new();
    f.write(&doc(json!([control(
        "ssh-hardening",
        true,
        json!({"nis2": ["21.2.a"]})
    )])));
    let cancel = CancelState::default();
    let run = |b: Builder| match b.registry().prepare_task(&f.decl(nis2())) {
        Ok((Prepared::Inline(check) | Prepared::Blocking(check), _)) => {
            check.run(&RunContext::new("t", 0, clock::mono_now(), None, &cancel))
        }
        _ => panic!("not a check"),
    };
    // Either order: the second setter keeps what the first one set.
    for b in [
        Builder::new().host_key(&f.key_path).hostname(HOST),
        Builder::new().hostname(HOST).host_key(&f.key_path),
    ] {
        let outcome = run(b);
        assert_eq!(outcome.status(), Pass, "{outcome:?}");
    }
    let elsewhere = run(Builder::new().host_key(&f.key_path).hostname("web-2"));
    assert!(
        reason(&elsewhere).contains(r#"!= "web-2" (this host)"#),
        "{elsewhere:?}"
    );
    // The last registration of the kind wins.
    let replaced = run(Builder::new()
        .host_key(&f.key_path)
        .runner("evidence", FnRunner::new(|_| RunnerOutcome::fail("mine"))));
    assert_eq!(replaced.reason(), Some("mine"));
}

// ---------------------------------------------------------------------------
// Content

#[test]
fn unknown_fields_stay_signed_and_valid() {
    let f = Fixture::new();
    let mut d = standard_doc();
    d["collectorVersion"] = json!("2.3.1");
    d["extra"] = json!({"nested": [1, 2.5, 1e21, "é😀", null], "z": {"a": true}});
    d["controls"][0]["details"] = json!({"sshd": {"PermitRootLogin": "no"}, "score": 0.95});
    d["controls"][0]["schema"] = json!("ssh/v1");
    d["controls"][0]["futureField"] = json!([{"x": 333333333.3333333}]);
    f.write(&d);
    let out = f.check(json!({"framework": "iso27001"})).run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
}

#[test]
fn pretty_and_compact_files_share_one_signature() {
    let f = Fixture::new();
    let d = standard_doc();
    f.write(&d);
    let check = f.check(json!({"framework": "iso27001"}));
    assert_eq!(check.run_at(at(10)).status(), Pass);
    // Same value, compact and with members in another order: same signature.
    let compact = r#"{"controls":[{"passed":true,"controlId":"ssh-hardening","frameworkArticles":{"iso27001":["A.8.5"],"nis2":["21.2.a"]}},{"frameworkArticles":{"nis2":["21.2.h"]},"controlId":"disk-encryption","passed":false},{"controlId":"backup","passed":true,"frameworkArticles":{"iso27001":["A.8.13"]}}],"collectedAt":"2026-11-27T10:00:00Z","hostname":"web-1","schemaVersion":1.0}"#;
    assert_ne!(fs::read_to_string(&f.evidence).unwrap(), compact);
    let sig_before = fs::read(&f.sig).unwrap();
    fs::write(&f.evidence, compact).unwrap();
    assert_eq!(fs::read(&f.sig).unwrap(), sig_before);
    let out = check.run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
}

#[test]
fn stale_evidence_fails_with_its_age() {
    let f = Fixture::new();
    f.write(&standard_doc());
    f.backdate(collected_at() - Duration::from_secs(3600));
    let check = f.check(json!({"framework": "iso27001", "maxAgeSeconds": 60}));
    assert_eq!(check.run_at(at(60)).status(), Pass);
    let out = check.run_at(at(100));
    assert_eq!(
        reason(&out),
        format!(
            "evidence probe: {} is stale by 40 s: collectedAt 2026-11-27T10:00:00.000000Z is \
             100 s old, maxAgeSeconds is 60; is the collector running?",
            f.file()
        )
    );
    assert!(out.sub_results().is_none());
    // Freshness is judged at every run, cache or not.
    assert_eq!(check.run_at(at(30)).status(), Pass);
    assert_eq!(check.verifications(), 1);
}

#[test]
fn wrong_hostname_fails() {
    let f = Fixture::new();
    let mut d = standard_doc();
    d["hostname"] = json!("db-1");
    f.write(&d);
    let out = f.check(nis2()).run_at(at(10));
    let r = reason(&out);
    assert!(
        r.contains(&format!(
            "{}: hostname \"db-1\" != \"web-1\" (this host)",
            f.file()
        )),
        "{r}"
    );
}

#[test]
fn schema_version_2_asks_for_an_upgrade() {
    let f = Fixture::new();
    let mut d = standard_doc();
    d["schemaVersion"] = json!(2);
    f.write(&d);
    let out = f.check(nis2()).run_at(at(10));
    assert_eq!(
        reason(&out),
        format!(
            "evidence probe: {}: evidence schemaVersion 2 is not supported by probewheel {}; \
             upgrade probewheel or pin the collector to schemaVersion 1",
            f.file(),
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn schema_version_is_only_trusted_after_the_signature() {
    let f = Fixture::new();
    let mut d = standard_doc();
    d["schemaVersion"] = json!(2);
    fs::write(&f.evidence, serde_json::to_string(&d).unwrap()).unwrap();
    fs::write(
        &f.sig,
        sign(&serde_json::to_string(&standard_doc()).unwrap(), &f.signer),
    )
    .unwrap();
    let out = f.check(nis2()).run_at(at(10));
    assert!(reason(&out).contains("bad signature"), "{out:?}");
}

#[test]
fn malformed_documents_are_named() {
    let f = Fixture::new();
    let cases = [
        (json!([1]), "expected a JSON object, got an array"),
        (json!({"schemaVersion": 1}), "field \"hostname\" is missing"),
        (
            json!({"schemaVersion": 1, "hostname": HOST, "collectedAt": "yesterday", "controls": []}),
            "field \"collectedAt\": not an RFC 3339 timestamp",
        ),
        (
            doc(json!([{"controlId": "a", "passed": "yes"}])),
            "field \"controls[0].passed\": expected true or false, got \"yes\"",
        ),
        (
            doc(json!([{"controlId": "a", "passed": true, "frameworkArticles": {"nis2": "1"}}])),
            "field \"controls[0].frameworkArticles.nis2\": expected an array of strings",
        ),
        (
            doc(json!([
                control("a", true, json!({})),
                control("a", false, json!({}))
            ])),
            "controlId \"a\" appears more than once",
        ),
        (
            json!({"hostname": HOST}),
            "field \"schemaVersion\" is missing",
        ),
    ];
    for (d, want) in cases {
        f.write(&d);
        let out = f.check(nis2()).run_at(at(10));
        let r = reason(&out);
        assert!(
            r.starts_with(&format!("evidence probe: {}: ", f.file())),
            "{r}"
        );
        assert!(r.contains(want), "{r}");
    }
}

#[test]
fn duplicate_keys_are_refused() {
    let f = Fixture::new();
    // The signer saw `passed: false`; serde_json would keep the last value.
    let text = r#"{"schemaVersion":1,"hostname":"web-1","collectedAt":"2026-11-27T10:00:00Z",
        "controls":[{"controlId":"a","passed":false,"passed":true,"frameworkArticles":{"nis2":[]}}]}"#;
    fs::write(&f.evidence, text).unwrap();
    fs::write(&f.sig, "AAAA").unwrap();
    let out = f.check(nis2()).run_at(at(10));
    let r = reason(&out);
    assert!(
        r.contains("is not valid JSON: line 2 column 53: duplicate key \"passed\""),
        "{r}"
    );
}

#[test]
fn missing_files_are_named() {
    let f = Fixture::new();
    let check = f.check(nis2());
    let r = check.run_at(at(10));
    assert_eq!(
        reason(&r),
        format!(
            "evidence probe: evidence file {} is missing; has the compliance collector run on \
             this host?",
            f.file()
        )
    );
    f.write(&standard_doc());
    fs::remove_file(&f.sig).unwrap();
    let r = check.run_at(at(10));
    assert_eq!(
        reason(&r),
        format!(
            "evidence probe: signature file {}.sig is missing; the collector writes it next to \
             the evidence file",
            f.file()
        )
    );
    f.write(&standard_doc());
    fs::remove_file(&f.key_path).unwrap();
    let r = check.run_at(at(10));
    assert_eq!(
        reason(&r),
        format!(
            "evidence probe: host key {} is missing",
            f.key_path.display()
        )
    );
}

#[test]
fn a_fifo_or_device_in_place_of_a_file_is_named_without_blocking() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let check = f.check(nis2());
    // Each file in turn becomes a FIFO with no writer (opening it for
    // reading would block the worker), then the others are restored.
    let cases = [
        (&f.evidence, "evidence file"),
        (&f.sig, "signature file"),
        (&f.key_path, "host key"),
    ];
    for (path, what) in cases {
        let saved = fs::read(path).unwrap();
        fs::remove_file(path).unwrap();
        crate::file::tests::mkfifo(path);
        let r = check.run_at(at(10));
        assert_eq!(
            reason(&r),
            format!(
                "evidence probe: {what} {} is not a regular file (a FIFO)",
                path.display()
            )
        );
        fs::remove_file(path).unwrap();
        fs::write(path, saved).unwrap();
    }
    // A symlink to a device is refused the same way, by what it is.
    fs::remove_file(&f.sig).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &f.sig).unwrap();
    let r = check.run_at(at(10));
    assert_eq!(
        reason(&r),
        format!(
            "evidence probe: signature file {} is not a regular file (a character device)",
            f.sig.display()
        )
    );
}

// ---------------------------------------------------------------------------
// Mode resolution and rows

#[test]
fn framework_override_sets_mode_and_reason() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f
        .check(json!({
            "framework": "nis2",
            "controlOverrides": {"disk-encryption": {"mode": "observe", "reason": "TICKET-12: new disks in March"}},
        }))
        .run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
    assert_eq!(
        rows(&out),
        vec![
            row(
                "disk-encryption",
                Fail,
                "nis2",
                Some("21.2.h"),
                Observe,
                Some("TICKET-12: new disks in March")
            ),
            row("ssh-hardening", Pass, "nis2", Some("21.2.a"), Enforce, None),
        ]
    );
}

#[test]
fn framework_with_disabled_override_drops_the_control() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f
        .check(json!({
            "framework": "nis2",
            "controlOverrides": {"disk-encryption": {"mode": "disabled", "reason": null}},
        }))
        .run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
    assert_eq!(
        rows(&out),
        vec![row(
            "ssh-hardening",
            Pass,
            "nis2",
            Some("21.2.a"),
            Enforce,
            None
        )]
    );
}

#[test]
fn framework_rows_take_the_probe_mode_and_fail_on_enforce() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f.check(nis2()).run_at(at(10));
    assert_eq!(
        reason(&out),
        format!(
            "evidence probe: enforce controls failing in {}: disk-encryption",
            f.file()
        )
    );
    assert_eq!(rows(&out).len(), 2);

    let observe = f
        .check(json!({"framework": "nis2", "mode": "observe"}))
        .run_at(at(10));
    assert_eq!(observe.status(), Pass, "{observe:?}");
    assert!(rows(&observe).iter().all(|r| r.effective_mode == Observe));
}

#[test]
fn unknown_override_mode_means_enforce() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f
        .check(json!({
            "framework": "nis2",
            "mode": "observe",
            "controlOverrides": {"disk-encryption": {"mode": "enforec", "reason": "typo"}},
        }))
        .run_at(at(10));
    assert!(reason(&out).ends_with("disk-encryption"), "{out:?}");
    assert_eq!(rows(&out)[0].effective_mode, Enforce);
}

#[test]
fn controls_list_drops_unlisted_controls() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f
        .check(json!({"controls": {"ssh-hardening": {"mode": "enforce", "reason": "baseline"}}}))
        .run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
    assert_eq!(
        rows(&out),
        vec![
            row(
                "ssh-hardening",
                Pass,
                "iso27001",
                Some("A.8.5"),
                Enforce,
                Some("baseline")
            ),
            row(
                "ssh-hardening",
                Pass,
                "nis2",
                Some("21.2.a"),
                Enforce,
                Some("baseline")
            ),
        ]
    );
}

#[test]
fn controls_list_drops_disabled_controls() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f
        .check(json!({"controls": {
            "disk-encryption": {"mode": "disabled"},
            "backup": {"mode": "enforce"},
        }}))
        .run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
    assert_eq!(
        rows(&out),
        vec![row(
            "backup",
            Pass,
            "iso27001",
            Some("A.8.13"),
            Enforce,
            None
        )]
    );
}

#[test]
fn failing_observe_rows_do_not_fail_the_probe() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f
        .check(json!({"controls": {
            "disk-encryption": {"mode": "observe", "reason": "rollout"},
            "ssh-hardening": {"mode": "enforce"},
        }}))
        .run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
    assert_eq!(
        rows(&out)[0],
        row(
            "disk-encryption",
            Fail,
            "nis2",
            Some("21.2.h"),
            Observe,
            Some("rollout")
        )
    );
}

#[test]
fn listed_enforce_control_missing_from_evidence_fails() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f
        .check(json!({"controls": {
            "ssh-hardening": {"mode": "enforce"},
            "firewall": {"mode": "enforce"},
            "auditd": {"mode": "observe"},
        }}))
        .run_at(at(10));
    assert_eq!(
        reason(&out),
        format!(
            "evidence probe: enforce controls missing from {}: firewall",
            f.file()
        )
    );
    assert_eq!(rows(&out).len(), 2);
}

#[test]
fn failure_reason_lists_a_few_controls() {
    let f = Fixture::new();
    let controls: Vec<Value> = (0..8)
        .map(|i| control(&format!("c{i}"), false, json!({"nis2": ["1"]})))
        .collect();
    f.write(&doc(Value::Array(controls)));
    let out = f.check(nis2()).run_at(at(10));
    assert!(
        reason(&out).ends_with(": c0, c1, c2, c3, c4 and 3 more"),
        "{out:?}"
    );
}

#[test]
fn sub_results_are_sorted_whatever_the_file_order() {
    let f = Fixture::new();
    f.write(&doc(json!([
        control(
            "zeta",
            true,
            json!({"nis2": ["b", "a", "b"], "iso27001": ["9"]})
        ),
        control("alpha", false, json!({"soc2": [], "nis2": ["c"]})),
        control("mid", true, json!({"nis2": ["10", "9"]})),
    ])));
    let out = f.check(nis2()).run_at(at(10));
    let got: Vec<_> = rows(&out)
        .into_iter()
        .map(|r| (r.control_id, r.article))
        .collect();
    let want: Vec<(String, Option<String>)> = [
        ("alpha", "c"),
        ("mid", "10"),
        ("mid", "9"),
        ("zeta", "a"),
        ("zeta", "b"),
    ]
    .iter()
    .map(|(c, a)| (c.to_string(), Some(a.to_string())))
    .collect();
    assert_eq!(got, want);

    let listed = f
        .check(json!({"controls": {"zeta": {"mode": "observe"}, "alpha": {"mode": "observe"}}}))
        .run_at(at(10));
    let got: Vec<_> = rows(&listed)
        .into_iter()
        .map(|r| {
            let article = r.article.unwrap_or_default();
            format!("{}/{}/{article}", r.control_id, r.framework)
        })
        .collect();
    assert_eq!(
        got,
        [
            "alpha/nis2/c",
            "alpha/soc2/",
            "zeta/iso27001/9",
            "zeta/nis2/a",
            "zeta/nis2/b"
        ]
    );
}

#[test]
fn no_rows_is_a_failure() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let out = f.check(json!({"framework": "pci-dss"})).run_at(at(10));
    let r = reason(&out);
    assert!(
        r.starts_with(&format!(
            "evidence probe: {}: no enabled control covers framework \"pci-dss\"",
            f.file()
        )),
        "{r}"
    );
    assert_eq!(out.sub_results(), Some(&[][..]));

    let out = f
        .check(json!({"controls": {"backup": {"mode": "disabled"}}}))
        .run_at(at(10));
    assert!(
        reason(&out).contains("none of the listed controls is enabled and present"),
        "{out:?}"
    );
}

#[test]
fn empty_article_list_gives_one_row_without_article() {
    let f = Fixture::new();
    f.write(&doc(json!([control("ntp", true, json!({"nis2": []}))])));
    let out = f.check(nis2()).run_at(at(10));
    assert_eq!(
        rows(&out),
        vec![row("ntp", Pass, "nis2", None, Enforce, None)]
    );
}

#[test]
fn control_without_frameworks_is_custom_under_controls() {
    let f = Fixture::new();
    f.write(&doc(json!([
        {"controlId": "site-policy", "passed": true},
        control("null-frameworks", true, Value::Null),
        control("empty-frameworks", false, json!({})),
    ])));
    let out = f
        .check(json!({"controls": {
            "site-policy": {"mode": "enforce"},
            "null-frameworks": {"mode": "enforce"},
            "empty-frameworks": {"mode": "observe"},
        }}))
        .run_at(at(10));
    assert_eq!(out.status(), Pass, "{out:?}");
    assert_eq!(
        rows(&out),
        vec![
            row("empty-frameworks", Fail, "custom", None, Observe, None),
            row("null-frameworks", Pass, "custom", None, Enforce, None),
            row("site-policy", Pass, "custom", None, Enforce, None),
        ]
    );
    // Under `framework` they cover nothing.
    let out = f.check(json!({"framework": "custom"})).run_at(at(10));
    assert!(
        reason(&out).contains("no enabled control covers"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------
// Declaration fields

#[test]
fn declaration_errors_are_field_errors() {
    let f = Fixture::new();
    let prepare = |d: &Declaration| EvidenceCheck::from_decl(d, f.key_path.clone(), HOST);
    let cases = [
        (
            json!({}),
            "invalid declaration: field `framework`: an evidence probe needs exactly one of",
        ),
        (
            json!({"framework": null, "controls": {}}),
            "field `framework`: an evidence probe needs",
        ),
        (
            json!({"framework": "nis2", "controls": {"a": {"mode": "enforce"}}}),
            "field `controls`: set exactly one of `framework` and `controls`",
        ),
        (
            json!({"framework": ""}),
            "field `framework`: must not be empty",
        ),
        (
            json!({"framework": 3}),
            "field `framework`: expected a string, got 3",
        ),
        (
            json!({"controls": {"a": {"mode": "enforce"}}, "controlOverrides": {"a": {"mode": "observe"}}}),
            "field `controlOverrides`: applies only with `framework`",
        ),
        (
            json!({"controls": {"a": "enforce"}}),
            "field `controls`: control \"a\": expected an object",
        ),
        (
            json!({"controls": {"a": {"reason": "x"}}}),
            "control \"a\": `mode` is missing",
        ),
        (
            json!({"controls": {"a": {"mode": 1}}}),
            "control \"a\": `mode` must be a string",
        ),
        (
            json!({"controls": [1]}),
            "field `controls`: expected an object of control id",
        ),
        (
            json!({"framework": "nis2", "maxAgeSeconds": 0}),
            "field `maxAgeSeconds`: expected an integer from 1",
        ),
        (
            json!({"framework": "nis2", "maxAgeSeconds": 1.5}),
            "field `maxAgeSeconds`",
        ),
        (
            json!({"framework": "nis2", "evidencePath": ""}),
            "field `evidencePath`: must not be empty",
        ),
        (
            json!({"framework": "nis2", "evidencePath": 7}),
            "field `evidencePath`: expected a string",
        ),
    ];
    for (fields, want) in cases {
        let err = prepare(&f.decl(fields.clone()))
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_else(|| panic!("{fields} was accepted"));
        assert!(err.contains(want), "{fields}: {err}");
    }
    // Renderers write every field, with null or {} where unset.
    let ok = json!({"framework": "nis2", "controls": {}, "controlOverrides": null,
                    "maxAgeSeconds": null});
    assert!(prepare(&f.decl(ok)).is_ok());
    let check = prepare(&f.decl(json!({"framework": "nis2"}))).unwrap();
    assert_eq!(check.signature, f.sig);
    let default = prepare(&Declaration::from_value(
        "c",
        json!({"kind": "evidence", "mode": "enforce", "framework": "nis2"}),
    ))
    .unwrap();
    assert_eq!(default.evidence, Path::new(DEFAULT_EVIDENCE_PATH));
}

// ---------------------------------------------------------------------------
// Cache

#[test]
fn unchanged_files_are_not_verified_again() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let check = f.check(json!({"framework": "iso27001"}));
    let first = check.run_at(later());
    let second = check.run_at(later());
    assert_eq!(first, second);
    assert_eq!(first.status(), Pass);
    assert_eq!(check.verifications(), 1);
}

#[test]
fn failures_are_cached_too() {
    let f = Fixture::new();
    f.write(&standard_doc());
    fs::write(&f.key_path, openssh_line(&key(8))).unwrap();
    let check = f.check(nis2());
    let a = check.run_at(later());
    let b = check.run_at(later());
    assert!(reason(&a).contains("bad signature"));
    assert_eq!(a, b);
    assert_eq!(check.verifications(), 1);
    // Fixing the key is seen at the next run.
    fs::write(&f.key_path, format!("{}\n", openssh_line(&f.signer))).unwrap();
    assert!(reason(&check.run_at(later())).contains("disk-encryption"));
    assert_eq!(check.verifications(), 2);
}

#[test]
fn a_rewritten_file_is_verified_again() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let check = f.check(json!({"framework": "iso27001"}));
    assert_eq!(check.run_at(later()).status(), Pass);

    // New content of another size, signed again.
    let mut d = standard_doc();
    d["controls"][2]["passed"] = json!(false);
    d["collectorVersion"] = json!("2");
    f.write(&d);
    assert!(reason(&check.run_at(later())).contains("backup"));
    assert_eq!(check.verifications(), 2);

    // Same bytes, only the mtime moves.
    let text = fs::read(&f.evidence).unwrap();
    fs::write(&f.evidence, &text).unwrap();
    File::options()
        .write(true)
        .open(&f.evidence)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    check.run_at(later());
    assert_eq!(check.verifications(), 3);
    check.run_at(later());
    assert_eq!(check.verifications(), 3);

    // A changed signature file alone also counts.
    fs::write(
        &f.sig,
        sign(std::str::from_utf8(&text).unwrap(), &f.signer).trim(),
    )
    .unwrap();
    check.run_at(later());
    assert_eq!(check.verifications(), 4);
}

#[test]
fn just_written_files_are_not_cached() {
    let f = Fixture::new();
    f.write(&standard_doc());
    let check = f.check(json!({"framework": "iso27001"}));
    let now = clock::wall_now();
    check.run_at(now);
    check.run_at(now);
    assert_eq!(check.verifications(), 2);
    check.run_at(later());
    check.run_at(later());
    assert_eq!(check.verifications(), 3);
}

// ---------------------------------------------------------------------------
// JCS (RFC 8785)

fn canonical(text: &str) -> String {
    jcs::canonicalize(&json::parse(text.as_bytes()).unwrap()).unwrap()
}

#[test]
fn jcs_rfc_8785_example() {
    // RFC 8785 §3.2.2 / §3.2.3 input and output.
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    let want = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
                \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
    assert_eq!(canonical(input), want);
}

#[test]
fn jcs_sorts_keys_by_utf16_code_units() {
    // RFC 8785 §3.2.3: U+1F600 (D83D DE00) sorts before U+FB33 in UTF-16,
    // after it in UTF-8 and code points (serde_json's BTreeMap order).
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let want = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
    assert_eq!(canonical(input), want);
    assert_eq!(
        jcs::utf16_cmp("\u{1f600}", "\u{fb33}"),
        std::cmp::Ordering::Less
    );
}

#[test]
fn jcs_numbers_follow_ecmascript() {
    for (text, want) in [
        ("1e21", "1e+21"),
        ("1e-7", "1e-7"),
        ("0.000001", "0.000001"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("333333333.33333329", "333333333.3333333"),
        ("1E30", "1e+30"),
        ("4.50", "4.5"),
        ("2e-3", "0.002"),
        ("0.000000000000000000000000001", "1e-27"),
        ("100000000000000000000", "100000000000000000000"),
        ("1000000000000000000000", "1e+21"),
        ("9007199254740993", "9007199254740992"),
        ("18446744073709551615", "18446744073709552000"),
        ("-9223372036854775808", "-9223372036854776000"),
        ("123456789012345678901234567890", "1.2345678901234568e+29"),
        ("1424953923781206.25", "1424953923781206.2"),
        ("5", "5"),
        ("-1.5", "-1.5"),
        ("1.0", "1"),
        ("123e-20", "1.23e-18"),
    ] {
        assert_eq!(canonical(text), want, "{text}");
    }
}

#[test]
fn jcs_rfc_8785_appendix_b_number_samples() {
    for (bits, want) in [
        (0x0000000000000000_u64, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ] {
        let x = f64::from_bits(bits);
        assert_eq!(jcs::es_number(x).as_deref(), Some(want), "{bits:016x}");
        // And the printed form reads back as the same double.
        if x != 0.0 {
            assert_eq!(want.parse::<f64>().unwrap(), x, "{bits:016x}");
        }
    }
    assert_eq!(jcs::es_number(f64::NAN), None);
    assert_eq!(jcs::es_number(f64::INFINITY), None);
    assert_eq!(jcs::es_number(f64::NEG_INFINITY), None);
}

#[test]
fn jcs_escapes_only_what_json_requires() {
    let s: String = (0u32..0x80)
        .filter_map(char::from_u32)
        .chain([
            '\u{7f}', '\u{80}', '\u{2028}', '\u{2029}', '\u{feff}', 'é', '😀',
        ])
        .collect();
    let out = jcs::canonicalize(&Value::String(s)).unwrap();
    let want = concat!(
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r",
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018",
        "\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f",
        " !\\\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`",
        "abcdefghijklmnopqrstuvwxyz{|}~\u{7f}\u{7f}\u{80}\u{2028}\u{2029}\u{feff}é😀\""
    );
    assert_eq!(out, want);
}

#[test]
fn jcs_nests_without_whitespace() {
    assert_eq!(
        canonical(" { \"b\" : [ 1 , { \"d\" : {}, \"c\" : [] } ] , \"a\" : \"\" } "),
        r#"{"a":"","b":[1,{"c":[],"d":{}}]}"#
    );
}

// ---------------------------------------------------------------------------
// The strict reader

#[test]
fn reader_rounds_numbers_correctly() {
    let v = json::parse(b"[333333333.33333329, 5.357830195732913e-76, 4.4251604027143375e284]")
        .unwrap();
    let got: Vec<f64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_f64().unwrap())
        .collect();
    assert_eq!(
        got,
        // The nearest doubles, as `f64::from_str` (correctly rounded) reads them.
        [
            "333333333.33333329".parse::<f64>().unwrap(),
            5.357830195732913e-76,
            4.4251604027143375e284
        ]
    );
    assert_eq!(
        json::parse(b"18446744073709551615").unwrap(),
        json!(u64::MAX)
    );
    assert_eq!(
        json::parse(b"-9223372036854775808").unwrap(),
        json!(i64::MIN)
    );
    assert_eq!(
        json::parse(b"18446744073709551616").unwrap(),
        json!(18446744073709551616.0)
    );
}

#[test]
fn reader_rejects_what_json_does_not_allow() {
    for (text, want) in [
        ("", "line 1 column 0: EOF while parsing a value"),
        ("{\"a\":1,}", "line 1 column 8: trailing comma"),
        ("[1,]", "line 1 column 4: trailing comma"),
        (
            "{\"a\":1,\n \"a\":2}",
            "line 2 column 2: duplicate key \"a\"",
        ),
        (
            "{\"x\":{\"a\":1,\"a\":1}}",
            "line 1 column 13: duplicate key \"a\"",
        ),
        ("01", "invalid number"),
        ("1.", "EOF while parsing a value"),
        ("1e", "EOF while parsing a value"),
        ("-", "EOF while parsing a value"),
        ("+1", "expected value"),
        ("NaN", "expected value"),
        ("1e400", "number out of range"),
        ("\"\\ud800\"", "unexpected end of hex escape"),
        ("\"\\udc00\"", "lone leading surrogate"),
        ("\"\\ud800\\u0041\"", "lone leading surrogate"),
        ("\"a\tb\"", "control character"),
        ("\"\\x\"", "invalid escape"),
        ("\"\\u12\"", "EOF while parsing a string"),
        ("\"abc", "EOF while parsing a string"),
        ("tru", "EOF while parsing a value"),
        ("{} {}", "trailing characters"),
        ("\u{feff}{}", "expected value"),
        ("[1 2]", "expected `,` or `]`"),
        ("{\"a\" 1}", "expected `:`"),
    ] {
        let err = json::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
    assert_eq!(
        json::parse(b"[\n \"\xff\"]").unwrap_err(),
        "line 2 column 3: file is not valid UTF-8 (byte 0xFF at offset 4)"
    );
    // serde_json's recursion limit: 127 levels read, 128 do not.
    let deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
    assert!(
        json::parse(deep.as_bytes())
            .unwrap_err()
            .contains("recursion limit exceeded")
    );
    let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
    assert!(json::parse(ok.as_bytes()).is_ok());
    assert_eq!(
        json::parse(br#" {"s": "\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"} "#).unwrap(),
        json!({"s": "\"\\/\u{8}\u{c}\n\r\té😀"})
    );
}

mod props {
    use proptest::prelude::*;
    use serde_json::{Map, Number, Value};

    use super::super::{jcs, json};

    const MAX_SAFE: i64 = (1 << 53) - 1;

    fn leaf(floats: bool) -> BoxedStrategy<Value> {
        let mut options = vec![
            Just(Value::Null).boxed(),
            any::<bool>().prop_map(Value::Bool).boxed(),
            (-MAX_SAFE..=MAX_SAFE)
                .prop_map(|i| Value::Number(i.into()))
                .boxed(),
            any::<String>().prop_map(Value::String).boxed(),
        ];
        if floats {
            options.push(
                any::<f64>()
                    .prop_filter_map("finite", Number::from_f64)
                    .prop_map(Value::Number)
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options).boxed()
    }

    fn value(floats: bool) -> impl Strategy<Value = Value> {
        leaf(floats).prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    /// Equal as JCS sees values: numbers compared as doubles.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn jcs_output_parses_back_to_the_same_value(v in value(false)) {
            let text = jcs::canonicalize(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(json::parse(text.as_bytes()).unwrap(), v);
        }

        #[test]
        fn jcs_with_floats_round_trips_and_is_idempotent(v in value(true)) {
            let text = jcs::canonicalize(&v).unwrap();
            let back = json::parse(text.as_bytes()).unwrap();
            prop_assert!(same(&back, &v), "{} vs {:?}", text, v);
            prop_assert_eq!(jcs::canonicalize(&back).unwrap(), text);
        }

        #[test]
        fn reader_agrees_with_serde_json(v in value(false), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            prop_assert_eq!(json::parse(text.as_bytes()).unwrap(), v);
        }

        #[test]
        fn reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = json::parse(&bytes);
        }

        #[test]
        fn reader_never_panics_on_json_like_text(s in r#"[\[\]{}",:0-9eE.+\-\\u a-ftnrl]{0,40}"#) {
            let _ = json::parse(s.as_bytes());
        }
    }
}
