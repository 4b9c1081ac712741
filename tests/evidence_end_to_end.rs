//! Evidence probes through the engine and the binary, with a key and a
//! signature made in the test: `--host-key` and `--hostname` reach the
//! runner, sub-results arrive in the event, a wrong host fails.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock
#![cfg(feature = "evidence")]

mod common;

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{TempDir, collect_until};
use ed25519_dalek::{Signer, SigningKey};
use probewheel::{Builder, Event, Mode, Status};
use serde_json::{Value, json};

/// Writes `evidence.json` (pretty-printed), its `.sig` and `host.pub`.
/// With ASCII keys and integers only, serde_json's compact, key-sorted
/// output is the RFC 8785 canonical form, so the test can sign it directly.
fn signed_evidence(dir: &TempDir, hostname: &str) -> (String, String) {
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let evidence = json!({
        "schemaVersion": 1,
        "hostname": hostname,
        "collectedAt": "2026-11-27T14:15:42Z",
        "collectorVersion": "9.9 (a field probewheel does not know)",
        "controls": [
            {"controlId": "ssh-hardening", "passed": true,
             "frameworkArticles": {"nis2": ["21.2.j", "21.2.a"]}},
            {"controlId": "disk-encryption", "passed": false,
             "frameworkArticles": {"nis2": ["21.2.h"], "iso27001": ["A.8.24"]}}
        ]
    });
    let canonical = serde_json::to_vec(&evidence).unwrap();
    let sig = key.sign(&canonical);
    let b64 = base64::engine::general_purpose::STANDARD;
    let path = dir.write(
        "evidence.json",
        &serde_json::to_string_pretty(&evidence).unwrap(),
    );
    dir.write(
        "evidence.json.sig",
        &format!("{}\n", b64.encode(sig.to_bytes())),
    );
    let mut blob = Vec::new();
    for part in [
        b"ssh-ed25519".as_slice(),
        key.verifying_key().as_bytes().as_slice(),
    ] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    let host_key = dir.write(
        "host.pub",
        &format!("ssh-ed25519 {} root@test\n", b64.encode(&blob)),
    );
    (path.display().to_string(), host_key.display().to_string())
}

fn decls(evidence: &str) -> String {
    json!({
        "nis2": {"kind": "evidence", "mode": "enforce", "framework": "nis2", "evidencePath": evidence,
                 "controlOverrides": {"disk-encryption": {"mode": "observe", "reason": "rollout of LUKS pending"}}},
        "strict": {"kind": "evidence", "mode": "enforce", "framework": "iso27001", "evidencePath": evidence}
    })
    .to_string()
}

/// (control, article, status, effective mode, override reason)
type Row = (String, Option<String>, Status, Mode, Option<String>);

#[test]
fn engine_reports_sub_results_with_the_configured_key_and_host() {
    let dir = TempDir::new("evidence-engine");
    let (evidence, host_key) = signed_evidence(&dir, "web-1");
    let (engine, rx) = Builder::new()
        .declarations_json(decls(&evidence))
        .host_key(&host_key)
        .hostname("web-1")
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = collect_until(&rx, Duration::from_secs(10), |ev| {
        common::results(ev, None) == 2
    });
    engine.shutdown().unwrap();
    let result = |p: &str| {
        events
            .iter()
            .find_map(|e| match e {
                Event::ProbeResult(r) if &*r.probe_name == p => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    };
    let nis2 = result("nis2");
    assert_eq!(nis2.status, Status::Pass, "{nis2:?}");
    let rows: Vec<Row> = nis2
        .sub_results
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.control_id,
                r.article,
                r.status,
                r.effective_mode,
                r.override_reason,
            )
        })
        .collect();
    let reason = Some("rollout of LUKS pending".to_owned());
    assert_eq!(
        rows,
        [
            (
                "disk-encryption".into(),
                Some("21.2.h".into()),
                Status::Fail,
                Mode::Observe,
                reason
            ),
            (
                "ssh-hardening".into(),
                Some("21.2.a".into()),
                Status::Pass,
                Mode::Enforce,
                None
            ),
            (
                "ssh-hardening".into(),
                Some("21.2.j".into()),
                Status::Pass,
                Mode::Enforce,
                None
            ),
        ]
    );
    let strict = result("strict");
    assert_eq!(strict.status, Status::Fail);
    assert!(strict.failure_reason.unwrap().contains("disk-encryption"));
}

#[test]
fn once_with_another_hostname_fails_and_the_right_one_passes() {
    let dir = TempDir::new("evidence-cli");
    let (evidence, host_key) = signed_evidence(&dir, "web-1");
    let config = dir.write(
        "d.json",
        &json!({"nis2": {"kind": "evidence", "mode": "enforce", "framework": "nis2",
                         "evidencePath": evidence,
                         "controlOverrides": {"disk-encryption": {"mode": "disabled", "reason": null}}}})
        .to_string(),
    );
    let once = |hostname: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_probewheel"))
            .args([
                "once",
                "--config",
                config.to_str().unwrap(),
                "--host-key",
                &host_key,
                "--hostname",
                hostname,
            ])
            .output()
            .unwrap();
        let result: Value = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["event"] == "probeResult")
            .unwrap();
        (out.status.code(), result)
    };
    let (code, ok) = once("web-1");
    assert_eq!(code, Some(0), "{ok}");
    assert_eq!(ok["subResults"].as_array().unwrap().len(), 2);
    let (code, wrong) = once("db-1");
    assert_eq!(code, Some(1));
    let reason = wrong["failureReason"].as_str().unwrap();
    assert!(
        reason.contains("hostname \"web-1\" != \"db-1\""),
        "{reason}"
    );
}
