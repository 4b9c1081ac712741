//! Bad input: arbitrary bytes and arbitrary JSON as a declarations file,
//! arbitrary outcomes from a registered runner, and every field of
//! `docs/declarations.md` with a wrong type, a negative, huge or empty value (the exact
//! reason of each).
//!
//! Generated strings never name a real program, host or file: they start
//! with `#` (or are empty), so feeding a document through a real engine
//! runs nothing but `true`, `false` and connects to 127.0.0.1 / ::1.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use common::Guarantees;
use probewheel::decl::{self, SHARED_FIELDS};
use probewheel::runner::{FnRunner, PrepareError, Registry};
use probewheel::{Builder, Declaration, Event, RunContext, RunnerOutcome, Status};

const MARKER: &str = "...[truncated]";

// ---------------------------------------------------------------------------
// Strategies

/// Every field of `docs/declarations.md`: the shared ones and each built-in
/// kind's.
fn known_fields() -> Vec<&'static str> {
    let registry = Registry::builtin();
    let mut fields: Vec<&'static str> = SHARED_FIELDS.iter().map(|f| f.name).collect();
    for kind in registry.kinds() {
        fields.extend(registry.fields(kind).map(|f| f.name));
    }
    let mut seen = std::collections::BTreeSet::new();
    fields.retain(|f| seen.insert(*f));
    fields
}
// ---------------------------------------------------------------------------

/// A string that is never a program, host name or existing path.
fn safe_string() -> impl Strategy<Value = String> + Clone {
    prop_oneof![Just(String::new()), "#[ -~]{0,12}", "#\\PC{0,8}"]
}

fn arb_json() -> impl Strategy<Value = Value> + Clone {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        prop_oneof![Just(1e300), Just(-0.0), Just(0.5), Just(22.0)].prop_map(|f| json!(f)),
        safe_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(safe_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn one_of(values: Vec<Value>) -> BoxedStrategy<Value> {
    prop::sample::select(values).boxed()
}

/// Values a renderer could plausibly write for `field`, valid or nearly.
fn plausible(field: &'static str) -> BoxedStrategy<Value> {
    match field {
        "kind" => one_of(vec![
            json!("tcp"),
            json!("exec"),
            json!("http"),
            json!("evidence"),
            json!("file"),
            json!("systemd"),
            json!("icmp"),
            json!("gopher"),
        ]),
        "mode" => one_of(vec![
            json!("enforce"),
            json!("observe"),
            json!("disabled"),
            json!("enforec"),
        ]),
        "intervalSeconds" => prop_oneof![
            (0u64..100).prop_map(|n| json!(n)),
            Just(json!(decl::MAX_INTERVAL_SECS)),
            Just(json!(decl::MAX_INTERVAL_SECS + 1)),
        ]
        .boxed(),
        "runOnce" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        "url" => one_of(vec![
            json!("http://127.0.0.1:1/"),
            json!("http://[::1]:1/x?y#z"),
            json!("https://127.0.0.1/"),
            json!("ftp://127.0.0.1/"),
            json!("http://"),
            json!("http://127.0.0.1:0/"),
        ]),
        "expectStatus" => (0u64..700).prop_map(|n| json!(n)).boxed(),
        "bodyContains" | "bodyNotContains" | "body" => safe_string().prop_map(|s| json!(s)).boxed(),
        "method" => one_of(vec![
            json!("GET"),
            json!("HEAD"),
            json!("POST"),
            json!("GET /"),
            json!(""),
            json!(1),
        ]),
        "bodyFile" => one_of(vec![json!("/nonexistent/body"), json!("")]),
        "bodyJson" => one_of(vec![
            json!({"/status": "UP", "/checks/db": true}),
            json!({"": null, "/a~1b/~0": [1, 2]}),
            json!({"status": "UP"}),
            json!({"/a~2": 1}),
            json!(["/status"]),
        ]),
        "headersFromFiles" => one_of(vec![
            json!({"Authorization": "/nonexistent/token"}),
            json!({"X-Token": ""}),
            json!({"bad name": "/dev/null"}),
            json!({"X-Token": 1}),
            json!("/nonexistent/token"),
        ]),
        "maxResponseMs" => (0u64..100_000).prop_map(|n| json!(n)).boxed(),
        "followRedirects" => one_of(vec![
            json!(true),
            json!(false),
            json!("sameHost"),
            json!("other"),
        ]),
        "host" => one_of(vec![
            json!("127.0.0.1"),
            json!("::1"),
            json!("[::1]"),
            json!("127.0.0.1:22"),
            json!("not a host"),
            json!(""),
        ]),
        "port" => (0u64..70_000).prop_map(|n| json!(n)).boxed(),
        "connectTimeoutSecs" => (0u64..4000).prop_map(|n| json!(n)).boxed(),
        "ipFamily" => one_of(vec![
            json!("any"),
            json!("4"),
            json!("6"),
            json!(4),
            json!("ipv6"),
            json!(""),
        ]),
        "addresses" => one_of(vec![
            json!("any"),
            json!("first"),
            json!("all"),
            json!(null),
            json!(""),
        ]),
        "command" => one_of(vec![
            json!(["true"]),
            json!("true"),
            json!(["false", "x"]),
            json!("  "),
            json!([]),
            json!([""]),
            json!(["/nonexistent/probewheel-test"]),
            json!(["true", 1]),
        ]),
        "expectExitCode" => (-2i64..300).prop_map(|n| json!(n)).boxed(),
        "outputFormat" => one_of(vec![
            json!("exitCode"),
            json!("nagios"),
            json!("Nagios"),
            json!(""),
            json!(1),
        ]),
        "warningIs" => one_of(vec![json!("fail"), json!("pass"), json!("ok"), json!(true)]),
        "timeoutSecs" => (0u64..100_000).prop_map(|n| json!(n)).boxed(),
        "framework" => one_of(vec![json!("nis2"), json!("")]),
        "controls" | "controlOverrides" => one_of(vec![
            json!({}),
            json!({"c1": {"mode": "enforce"}}),
            json!({"c1": {"mode": "observe", "reason": "r"}, "c2": {"mode": "bogus"}}),
            json!({"c1": {}}),
            json!({"c1": {"mode": 1}}),
            json!({"c1": 5}),
        ]),
        "evidencePath" => one_of(vec![json!("/nonexistent/evidence.json"), json!("")]),
        "maxAgeSeconds" => (0u64..100).prop_map(|n| json!(n)).boxed(),
        "path" => one_of(vec![
            json!("/proc/version"),
            json!("/nonexistent/heartbeat"),
            json!("relative/heartbeat"),
            json!("/dev/null"),
            json!("a\u{0}b"),
            json!(""),
        ]),
        "contains" => one_of(vec![json!("Linux"), json!(""), json!("a".repeat(65_537))]),
        "expectExists" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        "failureThreshold" | "successThreshold" => (0u64..120).prop_map(|n| json!(n)).boxed(),
        "startupGraceSeconds" | "initialDelaySeconds" => {
            (0u64..100_000).prop_map(|n| json!(n)).boxed()
        }
        "headers" => one_of(vec![
            json!({}),
            json!({"X-A": "b", "Host": "h"}),
            json!({"X-A": "b\r\nc"}),
            json!({"X A": "b"}),
            json!({"X-A": 1}),
            json!(["X-A"]),
        ]),
        "tls" | "tlsSkipVerify" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        "caFile" => one_of(vec![json!("/nonexistent/ca.pem"), json!("")]),
        "tlsServerName" => one_of(vec![
            json!("localhost"),
            json!("::1"),
            json!("a b"),
            json!(""),
        ]),
        "minCertValidityDays" => (0u64..4000).prop_map(|n| json!(n)).boxed(),
        "clientCertFile" | "clientKeyFile" => one_of(vec![
            json!("/nonexistent/client.pem"),
            json!("/dev/null"),
            json!(""),
            json!(7),
        ]),
        "tlsMinVersion" => one_of(vec![json!("1.2"), json!("1.3"), json!("1.1"), json!(1.3)]),
        "send" | "expect" => one_of(vec![
            json!("PING\\r\\n"),
            json!("SSH-2.0-"),
            json!("\\x00\\xff"),
            json!(""),
            json!("\\q"),
            json!("a".repeat(4097)),
        ]),
        "unit" => one_of(vec![
            json!("nginx"),
            json!("probewheel-test.timer"),
            json!("-x"),
            json!("a/b"),
            json!("a\u{0}b"),
            json!(""),
        ]),
        "expectActive" => one_of(vec![
            json!("active"),
            json!("inactive"),
            json!("failed"),
            json!("running"),
            json!(""),
        ]),
        "maxRestarts" => prop_oneof![
            (0u64..10).prop_map(|n| json!(n)),
            Just(json!(u32::MAX)),
            Just(json!(u64::from(u32::MAX) + 1)),
        ]
        .boxed(),
        "noFailedUnits" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        "packets" => (0u64..25).prop_map(|n| json!(n)).boxed(),
        "maxLossPercent" => (0u64..110).prop_map(|n| json!(n)).boxed(),
        "maxRttMs" => prop_oneof![
            (0u64..2000).prop_map(|n| json!(n)),
            Just(json!(86_400_001u64)),
        ]
        .boxed(),
        "name" => one_of(vec![
            json!("example.com"),
            json!("example.com."),
            json!("."),
            json!("10.0.0.1"),
            json!("a..b"),
            json!(""),
        ]),
        "type" => one_of(vec![
            json!("A"),
            json!("aaaa"),
            json!("PTR"),
            json!("ANY"),
            json!(""),
        ]),
        "server" => one_of(vec![
            json!("127.0.0.1"),
            json!("127.0.0.1:1"),
            json!("[::1]:1"),
            json!("::1"),
            json!("localhost"),
            json!("127.0.0.1:0"),
        ]),
        "expectRcode" => one_of(vec![
            json!("NOERROR"),
            json!("nxdomain"),
            json!("BADVERS"),
            json!(0),
        ]),
        "expectAnswer" => safe_string().prop_map(|s| json!(s)).boxed(),
        "tcp" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        other => panic!("no strategy for {other}"),
    }
}

/// One probe entry: each field of `docs/declarations.md` present or not, with a
/// plausible value or any JSON value, sometimes an unknown field too.
fn probe_entry() -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = known_fields()
        .into_iter()
        .map(|f| {
            let p = if f == "kind" || f == "mode" { 0.9 } else { 0.3 };
            let value = prop_oneof![3 => plausible(f), 1 => arb_json()];
            prop::option::weighted(p, value)
                .prop_map(move |v| v.map(|v| (f.to_owned(), v)))
                .boxed()
        })
        .collect();
    (fields, prop::option::of(arb_json()))
        .prop_map(|(fields, unknown)| {
            let mut m: serde_json::Map<String, Value> = fields.into_iter().flatten().collect();
            if let Some(v) = unknown {
                m.insert("unknownField".into(), v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// A declarations document: usually an object of probes, sometimes any
/// JSON value.
fn document() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::collection::btree_map(
            "[a-z0-9-]{1,8}",
            prop_oneof![4 => probe_entry(), 1 => arb_json()],
            0..6,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => arb_json(),
    ]
}

/// The document as text, sometimes cut short (never valid then).
fn document_text() -> impl Strategy<Value = (String, bool)> {
    (
        document(),
        prop::option::weighted(0.2, any::<prop::sample::Index>()),
    )
        .prop_map(|(doc, cut)| {
            let text = doc.to_string();
            match cut {
                Some(i) if text.len() > 1 => {
                    let mut at = i.index(text.len() - 1).max(1);
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    (text[..at].to_owned(), true)
                }
                _ => (text, false),
            }
        })
}

// ---------------------------------------------------------------------------
// Declarations files
// ---------------------------------------------------------------------------

/// What a prepared declaration may be: runnable, invalid with a reason that
/// names a field (or the entry), or of an unknown kind.
fn check_prepared(d: &Declaration) -> Result<(), TestCaseError> {
    let registry = Registry::builtin();
    let Err(err) = registry.prepare(d) else {
        return Ok(());
    };
    let reason = err.to_string();
    if let Some(problem) = reason.strip_prefix("invalid declaration: ") {
        let names_field = known_fields()
            .iter()
            .any(|f| problem.starts_with(&format!("field `{f}`: ")))
            || problem.starts_with("expected an object, got ");
        prop_assert!(names_field, "{}: {reason}", d.name());
        prop_assert!(!problem.ends_with(": "), "{reason}");
    } else {
        prop_assert_eq!(&reason, &format!("unknown probe kind '{}'", d.kind()));
        prop_assert!(!registry.contains(d.kind()), "{}", reason);
        prop_assert!(
            matches!(&err, PrepareError::UnknownKind(k) if k == d.kind()),
            "{:?}",
            err
        );
    }
    if let PrepareError::Invalid(e) = &err {
        prop_assert!(reason.starts_with("invalid declaration: "), "{}", reason);
        prop_assert_eq!(&reason, &e.to_string());
    }
    // Deterministic: the same declaration, the same verdict.
    prop_assert_eq!(registry.prepare(d).err(), Some(err));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_are_parsed_or_rejected_with_a_reason(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            // Mostly JSON punctuation, to get past the first byte.
            prop::collection::vec(prop::sample::select(b"{}[]:,\"\\ 0123456789.eE-+truefalsnl\n\t\xc3\xa9".to_vec()), 0..256),
        ]
    ) {
        match decl::parse(&bytes) {
            Ok(decls) => {
                for d in decls.probes() {
                    check_prepared(d)?;
                }
            }
            Err(r) => prop_assert!(!r.reason().is_empty()),
        }
    }

    #[test]
    fn arbitrary_documents_are_accepted_or_rejected_and_each_probe_judged(
        (text, cut) in document_text()
    ) {
        let top_is_object = !cut && serde_json::from_str::<Value>(&text).unwrap().is_object();
        match decl::parse(text.as_bytes()) {
            Ok(decls) => {
                prop_assert!(top_is_object, "accepted: {}", text);
                let names: Vec<&str> = decls.probes().iter().map(|d| d.name()).collect();
                let mut sorted = names.clone();
                sorted.sort();
                prop_assert_eq!(&names, &sorted);
                for d in decls.probes() {
                    check_prepared(d)?;
                }
            }
            Err(r) => {
                prop_assert!(!top_is_object, "rejected {}: {}", text, r);
                prop_assert!(r.reason().starts_with("line "), "{}", r);
            }
        }
    }
}

/// Some documents through a real engine: the first event is the topology
/// (matching what `parse` says) or the rejection (with the same reason).
#[test]
fn arbitrary_documents_through_the_engine_open_with_topology_or_rejection() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(&document_text(), |(text, _)| {
            let parsed = decl::parse(text.as_bytes());
            let (engine, rx) = Builder::new()
                .declarations_json(text.clone())
                .workers(1)
                .build()
                .unwrap();
            engine.reset("prop").unwrap();
            let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            engine.shutdown().unwrap();
            prop_assert_eq!(first.seq(), 1);
            match (first, parsed) {
                (Event::TopologyDeclared(t), Ok(d)) => {
                    let got: Vec<(&str, probewheel::Mode)> =
                        t.probes.iter().map(|p| (&*p.probe_name, p.mode)).collect();
                    let want: Vec<(&str, probewheel::Mode)> =
                        d.probes().iter().map(|p| (p.name(), p.mode())).collect();
                    prop_assert_eq!(got, want);
                }
                (Event::DeclarationsRejected(r), Err(e)) => {
                    prop_assert_eq!(&r.reason, e.reason());
                    prop_assert_eq!(&r.path, "<inline>");
                }
                (first, parsed) => {
                    return Err(TestCaseError::fail(format!("{first:?} for {parsed:?}")));
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn oversized_and_deeply_nested_files_are_rejected_without_harm() {
    // One byte over the limit: rejected before parsing.
    let mut big = b"{\"a\": \"".to_vec();
    big.resize(decl::MAX_FILE_BYTES as usize - 1, b'x');
    big.extend_from_slice(b"\"}");
    assert_eq!(
        decl::parse(&big).unwrap_err().reason(),
        "file is larger than 1048576 bytes (1 MiB): 1048577 bytes"
    );
    // At the limit: fine.
    big.remove(10);
    assert_eq!(decl::parse(&big).unwrap().len(), 1);

    // Nesting far deeper than any stack, in one probe's unknown field: the
    // field is ignored (only an unreadable file is rejected),
    // through the engine too (its thread has a small stack).
    let deep = format!(
        "{{\"a\": {{\"kind\": \"tcp\", \"mode\": \"enforce\", \"x\": {}{}}}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let parsed = decl::parse(deep.as_bytes()).unwrap();
    assert_eq!(parsed.len(), 1);
    let (engine, rx) = Builder::new().declarations_json(deep).build().unwrap();
    engine.reset("deep").unwrap();
    match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
        Event::TopologyDeclared(t) => assert_eq!(t.probes.len(), 1),
        other => panic!("{other:?}"),
    }
    engine.shutdown().unwrap();

    // Many probes in one file just under the limit: all declared.
    let mut m = serde_json::Map::new();
    let mut i = 0;
    loop {
        m.insert(
            format!("p{i:05}"),
            json!({"kind": "exec", "mode": "disabled"}),
        );
        i += 1;
        if i % 1000 == 0 && Value::Object(m.clone()).to_string().len() > 900_000 {
            break;
        }
    }
    let n = m.len();
    let (engine, rx) = Builder::new()
        .declarations_json(Value::Object(m).to_string())
        .build()
        .unwrap();
    engine.reset("many").unwrap();
    match rx.recv_timeout(Duration::from_secs(5)).unwrap() {
        Event::TopologyDeclared(t) => assert_eq!(t.probes.len(), n),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.stats().unwrap().probes, n as u64);
    engine.shutdown().unwrap();
}

// ---------------------------------------------------------------------------
// Arbitrary runner outcomes
// ---------------------------------------------------------------------------

/// A reason: arbitrary unicode up to 4 KB, or right at the 512-byte edge
/// with multi-byte characters across it.
fn reason() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..1024).prop_map(|c| c.into_iter().collect()),
        "\\PC{0,700}",
        (
            505usize..515,
            prop::sample::select(vec!["é", "€", "😀", "x", "\u{0}"])
        )
            .prop_map(|(n, c)| format!("{}{}", "a".repeat(n), c.repeat(3))),
    ]
}

/// A kind whose runs return, in order, the outcomes the test sends.
fn queue_runner(rx: Receiver<RunnerOutcome>) -> FnRunner {
    FnRunner::new(move |ctx: &RunContext<'_>| {
        loop {
            if ctx.is_cancelled() {
                return RunnerOutcome::fail("cancelled");
            }
            if let Ok(o) = rx.recv_timeout(Duration::from_millis(10)) {
                return o;
            }
        }
    })
}

fn next_result(rx: &Receiver<Event>, g: &mut Guarantees) -> Result<Event, TestCaseError> {
    loop {
        let e = rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| TestCaseError::fail(format!("no result: {e}")))?;
        g.check(&e).map_err(TestCaseError::fail)?;
        if e.name() == "probeResult" {
            return Ok(e);
        }
    }
}

#[test]
fn arbitrary_outcomes_never_break_the_event_contract() {
    let (tx, queue): (Sender<RunnerOutcome>, _) = crossbeam_channel::unbounded();
    let floor = Duration::from_millis(1);
    let (engine, rx) = Builder::new()
        .declarations_json(r#"{"q": {"kind": "queue", "mode": "enforce", "intervalSeconds": 0}}"#)
        .min_interval(floor)
        .workers(1)
        .runner("queue", queue_runner(queue))
        .build()
        .unwrap();
    engine.reset("outcomes").unwrap();
    let mut g = Guarantees::new(floor);
    g.round_trip = true;
    let g = std::cell::RefCell::new(g);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    runner
        .run(
            &prop::collection::vec((any::<bool>(), reason()), 1..8),
            |outcomes| {
                for (pass, reason) in &outcomes {
                    let o = if *pass {
                        RunnerOutcome::pass()
                    } else {
                        RunnerOutcome::fail(reason.clone())
                    };
                    tx.send(o).unwrap();
                }
                for (pass, sent) in &outcomes {
                    let e = next_result(&rx, &mut g.borrow_mut())?;
                    let Event::ProbeResult(r) = &e else {
                        unreachable!()
                    };
                    prop_assert_eq!(r.status == Status::Pass, *pass);
                    prop_assert_eq!(r.failure_reason.is_none(), *pass);
                    let json = serde_json::to_string(&e).unwrap();
                    let v: Value = serde_json::from_str(&json).unwrap();
                    if *pass {
                        prop_assert!(v["failureReason"].is_null());
                        continue;
                    }
                    let got = r.failure_reason.as_deref().unwrap();
                    prop_assert_eq!(v["failureReason"].as_str(), Some(got));
                    if sent.len() <= 512 {
                        prop_assert_eq!(got, sent.as_str());
                    } else {
                        let body = got.strip_suffix(MARKER);
                        prop_assert!(body.is_some(), "no marker on a cut reason");
                        // The longest prefix of at most 512 bytes that ends
                        // on a char boundary.
                        let mut cut = 512;
                        while !sent.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        prop_assert_eq!(body.unwrap(), &sent[..cut]);
                    }
                }
                Ok(())
            },
        )
        .unwrap();
    engine.shutdown().unwrap();
    assert!(g.borrow().results >= 48);
}

#[test]
fn events_round_trip_through_json_to_equal_values() {
    let (engine, rx) = Builder::new()
        .declarations_json(r#"{"f": {"kind": "flip", "mode": "enforce", "intervalSeconds": 0}}"#)
        .min_interval(Duration::from_millis(5))
        .runner("flip", {
            let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
            FnRunner::new(move |_| {
                if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2 == 0 {
                    RunnerOutcome::pass()
                } else {
                    RunnerOutcome::fail("é".repeat(300))
                }
            })
        })
        .build()
        .unwrap();
    engine.reset("rt").unwrap();
    let events = common::collect_until(&rx, Duration::from_secs(10), |ev| {
        common::results(ev, None) >= 4
    });
    engine.shutdown().unwrap();
    for e in &events {
        let json = serde_json::to_string(e).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(&back, e, "{json}");
    }
}

// ---------------------------------------------------------------------------
// Every field of `docs/declarations.md`, wrong: the exact reason
// ---------------------------------------------------------------------------

fn bad(field: &str, problem: &str) -> Option<String> {
    Some(format!("invalid declaration: field `{field}`: {problem}"))
}

/// `base` with `changes` applied (a `null` in `changes` removes the field).
fn with(base: &Value, changes: Value) -> Value {
    let mut m = base.as_object().unwrap().clone();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            m.remove(k);
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m)
}

fn assert_table(rows: Vec<(Value, Option<String>)>) {
    let registry = Registry::builtin();
    let mut wrong = Vec::new();
    for (value, want) in rows {
        let d = Declaration::from_value("p", value.clone());
        let got = registry.prepare(&d).err().map(|e| e.to_string());
        if got != want {
            wrong.push(format!("{value}\n   want {want:?}\n    got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn shared_fields_wrong_give_exact_reasons() {
    let tcp = json!({"kind": "tcp", "mode": "enforce", "port": 22});
    let range = "expected an integer from 0 to 31536000, got";
    assert_table(vec![
        (tcp.clone(), None),
        // kind
        (
            with(&tcp, json!({"kind": null})),
            bad("kind", "required field is missing"),
        ),
        (
            with(&tcp, json!({"kind": 5})),
            bad("kind", "expected a string, got 5"),
        ),
        (
            with(&tcp, json!({"kind": ["tcp"]})),
            bad("kind", "expected a string, got an array"),
        ),
        (
            with(&tcp, json!({"kind": {}})),
            bad("kind", "expected a string, got an object"),
        ),
        (
            with(&tcp, json!({"kind": ""})),
            Some("unknown probe kind ''".into()),
        ),
        (
            with(&tcp, json!({"kind": "TCP"})),
            Some("unknown probe kind 'TCP'".into()),
        ),
        // mode (an unknown string is enforce: see below)
        (
            with(&tcp, json!({"mode": null})),
            bad("mode", "required field is missing"),
        ),
        (
            with(&tcp, json!({"mode": true})),
            bad("mode", "expected a string, got true"),
        ),
        (
            with(&tcp, json!({"mode": -1})),
            bad("mode", "expected a string, got -1"),
        ),
        (with(&tcp, json!({"mode": ""})), None),
        // intervalSeconds
        (with(&tcp, json!({"intervalSeconds": 0})), None),
        (with(&tcp, json!({"intervalSeconds": 31_536_000})), None),
        (
            with(&tcp, json!({"intervalSeconds": -1})),
            bad("intervalSeconds", &format!("{range} -1")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": 31_536_001})),
            bad("intervalSeconds", &format!("{range} 31536001")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": u64::MAX})),
            bad("intervalSeconds", &format!("{range} 18446744073709551615")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": 1.5})),
            bad("intervalSeconds", &format!("{range} 1.5")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": 30.0})),
            bad("intervalSeconds", &format!("{range} 30.0")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": 1e30})),
            bad("intervalSeconds", &format!("{range} 1e+30")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": "30"})),
            bad("intervalSeconds", &format!("{range} \"30\"")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": ""})),
            bad("intervalSeconds", &format!("{range} \"\"")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": "x".repeat(41)})),
            bad("intervalSeconds", &format!("{range} a long string")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": true})),
            bad("intervalSeconds", &format!("{range} true")),
        ),
        (
            with(&tcp, json!({"intervalSeconds": [30]})),
            bad("intervalSeconds", &format!("{range} an array")),
        ),
        // runOnce
        (with(&tcp, json!({"runOnce": true})), None),
        (
            with(&tcp, json!({"runOnce": "yes"})),
            bad("runOnce", "expected true or false, got \"yes\""),
        ),
        (
            with(&tcp, json!({"runOnce": 1})),
            bad("runOnce", "expected true or false, got 1"),
        ),
        (
            with(&tcp, json!({"runOnce": ""})),
            bad("runOnce", "expected true or false, got \"\""),
        ),
        (
            with(&tcp, json!({"runOnce": {}})),
            bad("runOnce", "expected true or false, got an object"),
        ),
        // The first problem, in field order kind, mode, intervalSeconds, runOnce.
        (
            json!({"mode": 1, "intervalSeconds": -1}),
            bad("kind", "required field is missing"),
        ),
        (
            json!({"kind": "tcp", "intervalSeconds": -1, "runOnce": 1}),
            bad("mode", "required field is missing"),
        ),
        (
            json!({"kind": "tcp", "mode": "observe", "runOnce": 1, "intervalSeconds": -1}),
            bad("intervalSeconds", &format!("{range} -1")),
        ),
        // Not an object at all.
        (
            json!([]),
            Some("invalid declaration: expected an object, got an array".into()),
        ),
        (
            json!("tcp"),
            Some("invalid declaration: expected an object, got a string".into()),
        ),
        (
            json!(null),
            Some("invalid declaration: expected an object, got null".into()),
        ),
        (
            json!(7),
            Some("invalid declaration: expected an object, got a number".into()),
        ),
    ]);
    // Unknown mode strings fail closed.
    let d = Declaration::from_value("p", with(&tcp, json!({"mode": "enforec"})));
    assert_eq!(d.mode(), probewheel::Mode::Enforce);
    assert_eq!(d.unknown_mode(), Some("enforec"));
}

#[test]
fn tcp_fields_wrong_give_exact_reasons() {
    let tcp = json!({"kind": "tcp", "mode": "enforce", "port": 22});
    let port = "expected an integer from 1 to 65535, got";
    let timeout = "expected an integer from 1 to 3600, got";
    let host = "expected a host name or an IP address, got";
    assert_table(vec![
        (
            with(&tcp, json!({"tls": "on"})),
            bad("tls", "expected true or false, got \"on\""),
        ),
        (
            with(&tcp, json!({"tls": true, "tlsSkipVerify": true})),
            if cfg!(feature = "tls") {
                None
            } else {
                bad(
                    "tls",
                    "TLS is not built into this probewheel (it was built without the cargo feature `tls`)",
                )
            },
        ),
        (
            with(&tcp, json!({"minCertValidityDays": 4000})),
            bad(
                "minCertValidityDays",
                "expected an integer from 0 to 3650, got 4000",
            ),
        ),
        (
            with(&tcp, json!({"port": null})),
            bad("port", "required field is missing"),
        ),
        (
            with(&tcp, json!({"port": 0})),
            bad("port", &format!("{port} 0")),
        ),
        (with(&tcp, json!({"port": 1})), None),
        (with(&tcp, json!({"port": 65535})), None),
        (
            with(&tcp, json!({"port": 65536})),
            bad("port", &format!("{port} 65536")),
        ),
        (
            with(&tcp, json!({"port": -22})),
            bad("port", &format!("{port} -22")),
        ),
        (
            with(&tcp, json!({"port": 22.0})),
            bad("port", &format!("{port} 22.0")),
        ),
        (
            with(&tcp, json!({"port": 1e3})),
            bad("port", &format!("{port} 1000.0")),
        ),
        (
            with(&tcp, json!({"port": "22"})),
            bad("port", &format!("{port} \"22\"")),
        ),
        (
            with(&tcp, json!({"port": ""})),
            bad("port", &format!("{port} \"\"")),
        ),
        (
            with(&tcp, json!({"port": [22]})),
            bad("port", &format!("{port} an array")),
        ),
        (with(&tcp, json!({"host": "::1"})), None),
        (with(&tcp, json!({"host": "[::1]"})), None),
        (with(&tcp, json!({"host": "localhost"})), None),
        (
            with(&tcp, json!({"host": 5})),
            bad("host", "expected a string, got 5"),
        ),
        (
            with(&tcp, json!({"host": ["::1"]})),
            bad("host", "expected a string, got an array"),
        ),
        (
            with(&tcp, json!({"host": ""})),
            bad("host", &format!("{host} \"\"")),
        ),
        (
            with(&tcp, json!({"host": "no such host"})),
            bad("host", &format!("{host} \"no such host\"")),
        ),
        (
            with(&tcp, json!({"host": "[::1"})),
            bad("host", &format!("{host} \"[::1\"")),
        ),
        (
            with(&tcp, json!({"host": "[127.0.0.1]"})),
            bad("host", &format!("{host} \"[127.0.0.1]\"")),
        ),
        (
            with(&tcp, json!({"host": "h".repeat(254)})),
            bad("host", &format!("{host} {:?}", "h".repeat(254))),
        ),
        (
            with(&tcp, json!({"host": "127.0.0.1:22"})),
            bad(
                "host",
                "expected a host name or an IP address (the port goes in `port`), got \"127.0.0.1:22\"",
            ),
        ),
        (
            with(&tcp, json!({"connectTimeoutSecs": 0})),
            bad("connectTimeoutSecs", &format!("{timeout} 0")),
        ),
        (with(&tcp, json!({"connectTimeoutSecs": 3600})), None),
        (
            with(&tcp, json!({"connectTimeoutSecs": 3601})),
            bad("connectTimeoutSecs", &format!("{timeout} 3601")),
        ),
        (
            with(&tcp, json!({"connectTimeoutSecs": -5})),
            bad("connectTimeoutSecs", &format!("{timeout} -5")),
        ),
        (
            with(&tcp, json!({"connectTimeoutSecs": "5"})),
            bad("connectTimeoutSecs", &format!("{timeout} \"5\"")),
        ),
        (
            with(&tcp, json!({"connectTimeoutSecs": 0.5})),
            bad("connectTimeoutSecs", &format!("{timeout} 0.5")),
        ),
        // Fields of other kinds are ignored.
        (
            with(&tcp, json!({"url": 5, "command": 5, "framework": 5})),
            None,
        ),
    ]);
}

#[test]
fn exec_fields_wrong_give_exact_reasons() {
    let exec = json!({"kind": "exec", "mode": "enforce", "command": ["true"]});
    let code = "expected an integer from 0 to 255, got";
    let timeout = "expected an integer from 1 to 86400, got";
    let empty = "expected a non-empty command, got an empty one";
    assert_table(vec![
        (exec.clone(), None),
        (with(&exec, json!({"command": "true --flag"})), None),
        (
            with(&exec, json!({"command": null})),
            bad("command", "required field is missing"),
        ),
        (with(&exec, json!({"command": []})), bad("command", empty)),
        (with(&exec, json!({"command": ""})), bad("command", empty)),
        (
            with(&exec, json!({"command": " \t\n"})),
            bad("command", empty),
        ),
        (
            with(&exec, json!({"command": 5})),
            bad("command", "expected an array of strings or a string, got 5"),
        ),
        (
            with(&exec, json!({"command": true})),
            bad(
                "command",
                "expected an array of strings or a string, got true",
            ),
        ),
        (
            with(&exec, json!({"command": {}})),
            bad(
                "command",
                "expected an array of strings or a string, got an object",
            ),
        ),
        (
            with(&exec, json!({"command": ["true", 5]})),
            bad("command", "expected an array of strings, element 1 is 5"),
        ),
        (
            with(&exec, json!({"command": [null]})),
            bad("command", "expected an array of strings, element 0 is null"),
        ),
        (
            with(&exec, json!({"command": [["true"]]})),
            bad(
                "command",
                "expected an array of strings, element 0 is [\"true\"]",
            ),
        ),
        (
            with(&exec, json!({"command": [""]})),
            bad("command", "the program (element 0) is empty"),
        ),
        (
            with(&exec, json!({"command": ["", "x"]})),
            bad("command", "the program (element 0) is empty"),
        ),
        (
            with(&exec, json!({"command": ["true", "a\u{0}b"]})),
            bad("command", "element 1 contains a NUL byte"),
        ),
        (with(&exec, json!({"expectExitCode": 0})), None),
        (with(&exec, json!({"expectExitCode": 255})), None),
        (
            with(&exec, json!({"expectExitCode": -1})),
            bad("expectExitCode", &format!("{code} -1")),
        ),
        (
            with(&exec, json!({"expectExitCode": 256})),
            bad("expectExitCode", &format!("{code} 256")),
        ),
        (
            with(&exec, json!({"expectExitCode": "0"})),
            bad("expectExitCode", &format!("{code} \"0\"")),
        ),
        (
            with(&exec, json!({"expectExitCode": 1.0})),
            bad("expectExitCode", &format!("{code} 1.0")),
        ),
        (
            with(&exec, json!({"timeoutSecs": 0})),
            bad("timeoutSecs", &format!("{timeout} 0")),
        ),
        (with(&exec, json!({"timeoutSecs": 86400})), None),
        (
            with(&exec, json!({"timeoutSecs": 86401})),
            bad("timeoutSecs", &format!("{timeout} 86401")),
        ),
        (
            with(&exec, json!({"timeoutSecs": -10})),
            bad("timeoutSecs", &format!("{timeout} -10")),
        ),
        (
            with(&exec, json!({"timeoutSecs": "10"})),
            bad("timeoutSecs", &format!("{timeout} \"10\"")),
        ),
        (
            with(&exec, json!({"timeoutSecs": 1e100})),
            bad("timeoutSecs", &format!("{timeout} 1e+100")),
        ),
    ]);
}

#[test]
fn http_fields_wrong_give_exact_reasons() {
    let http = json!({"kind": "http", "mode": "enforce", "url": "http://127.0.0.1/"});
    let status = "expected an integer from 100 to 599, got";
    let timeout = "expected an integer from 1 to 86400, got";
    assert_table(vec![
        (http.clone(), None),
        // https is accepted with TLS built in; without it, it can never pass.
        (
            with(&http, json!({"url": "https://127.0.0.1/"})),
            if cfg!(feature = "tls") {
                None
            } else {
                bad(
                    "url",
                    "https://127.0.0.1/ is https: TLS is not built into this probewheel (it was built without the cargo feature `tls`)",
                )
            },
        ),
        (
            with(&http, json!({"headers": {"X-A": "b\nc"}})),
            bad(
                "headers",
                "the value of \"X-A\" contains a line feed (LF), which is not allowed in a header value",
            ),
        ),
        (
            with(&http, json!({"url": null})),
            bad("url", "required field is missing"),
        ),
        (
            with(&http, json!({"url": 5})),
            bad("url", "expected a string, got 5"),
        ),
        (
            with(&http, json!({"url": ["http://x/"]})),
            bad("url", "expected a string, got an array"),
        ),
        (
            with(&http, json!({"url": ""})),
            bad("url", "not an http:// or https:// URL: \"\""),
        ),
        (
            with(&http, json!({"url": "127.0.0.1"})),
            bad("url", "not an http:// or https:// URL: \"127.0.0.1\""),
        ),
        (
            with(&http, json!({"url": "ftp://x/"})),
            bad("url", "not an http:// or https:// URL: \"ftp://x/\""),
        ),
        (
            with(&http, json!({"url": "http://"})),
            bad("url", "malformed URL \"http://\": empty host"),
        ),
        (
            with(&http, json!({"url": "http://h:0/"})),
            bad(
                "url",
                "malformed URL \"http://h:0/\": port must be 1 to 65535",
            ),
        ),
        (
            with(&http, json!({"url": "http://h:99999/"})),
            bad(
                "url",
                "malformed URL \"http://h:99999/\": port must be 1 to 65535",
            ),
        ),
        (
            with(&http, json!({"url": "http://h:-1/"})),
            bad(
                "url",
                "malformed URL \"http://h:-1/\": port must be 1 to 65535",
            ),
        ),
        (
            with(&http, json!({"url": "http://[::1/"})),
            bad(
                "url",
                "malformed URL \"http://[::1/\": unclosed '[' in the host",
            ),
        ),
        (
            with(&http, json!({"url": "http://a b/"})),
            bad(
                "url",
                "malformed URL \"http://a b/\": invalid character in the host",
            ),
        ),
        (
            with(&http, json!({"url": "http://h/\u{1}"})),
            bad(
                "url",
                "malformed URL \"http://h/\\u{1}\": control character in the URL",
            ),
        ),
        (with(&http, json!({"expectStatus": 100})), None),
        (with(&http, json!({"expectStatus": 599})), None),
        (
            with(&http, json!({"expectStatus": 99})),
            bad("expectStatus", &format!("{status} 99")),
        ),
        (
            with(&http, json!({"expectStatus": 600})),
            bad("expectStatus", &format!("{status} 600")),
        ),
        (
            with(&http, json!({"expectStatus": -200})),
            bad("expectStatus", &format!("{status} -200")),
        ),
        (
            with(&http, json!({"expectStatus": "200"})),
            bad("expectStatus", &format!("{status} \"200\"")),
        ),
        (
            with(&http, json!({"expectStatus": 200.0})),
            bad("expectStatus", &format!("{status} 200.0")),
        ),
        (with(&http, json!({"bodyContains": ""})), None),
        (
            with(&http, json!({"bodyContains": "x".repeat(65536)})),
            None,
        ),
        (
            with(&http, json!({"bodyContains": 5})),
            bad("bodyContains", "expected a string, got 5"),
        ),
        (
            with(&http, json!({"bodyContains": ["ok"]})),
            bad("bodyContains", "expected a string, got an array"),
        ),
        (
            with(&http, json!({"bodyContains": "x".repeat(65537)})),
            bad(
                "bodyContains",
                "65537 bytes is longer than the 64 KiB of body that is searched",
            ),
        ),
        (
            with(&http, json!({"timeoutSecs": 0})),
            bad("timeoutSecs", &format!("{timeout} 0")),
        ),
        (
            with(&http, json!({"timeoutSecs": 86401})),
            bad("timeoutSecs", &format!("{timeout} 86401")),
        ),
        (
            with(&http, json!({"timeoutSecs": -1})),
            bad("timeoutSecs", &format!("{timeout} -1")),
        ),
        (
            with(&http, json!({"timeoutSecs": "1"})),
            bad("timeoutSecs", &format!("{timeout} \"1\"")),
        ),
    ]);
}

#[cfg(feature = "evidence")]
#[test]
fn evidence_fields_wrong_give_exact_reasons() {
    let ev = json!({"kind": "evidence", "mode": "enforce", "framework": "nis2"});
    let ctl =
        json!({"kind": "evidence", "mode": "enforce", "controls": {"c1": {"mode": "enforce"}}});
    let neither = "an evidence probe needs exactly one of `framework` (a string) or `controls` \
                   (a non-empty object of id -> {mode, reason})";
    let object = "expected an object of control id -> {mode, reason}, got";
    let age = "expected an integer from 1 to 3153600000, got";
    assert_table(vec![
        (ev.clone(), None),
        (ctl.clone(), None),
        (
            with(&ev, json!({"framework": null})),
            bad("framework", neither),
        ),
        (
            with(&ctl, json!({"controls": {}})),
            bad("framework", neither),
        ),
        (
            with(&ev, json!({"framework": 5})),
            bad("framework", "expected a string, got 5"),
        ),
        (
            with(&ev, json!({"framework": ["nis2"]})),
            bad("framework", "expected a string, got an array"),
        ),
        (
            with(&ev, json!({"framework": ""})),
            bad("framework", "must not be empty"),
        ),
        (
            with(&ev, json!({"controls": {"c1": {"mode": "enforce"}}})),
            bad(
                "controls",
                "set exactly one of `framework` and `controls`, not both",
            ),
        ),
        (
            with(&ctl, json!({"controls": 5})),
            bad("controls", &format!("{object} 5")),
        ),
        (
            with(&ctl, json!({"controls": ["c1"]})),
            bad("controls", &format!("{object} an array")),
        ),
        (
            with(&ctl, json!({"controls": "c1"})),
            bad("controls", &format!("{object} \"c1\"")),
        ),
        (
            with(&ctl, json!({"controls": {"c1": 5}})),
            bad(
                "controls",
                "control \"c1\": expected an object {mode, reason}",
            ),
        ),
        (
            with(&ctl, json!({"controls": {"c1": {}}})),
            bad("controls", "control \"c1\": `mode` is missing"),
        ),
        (
            with(&ctl, json!({"controls": {"c1": {"mode": null}}})),
            bad("controls", "control \"c1\": `mode` is missing"),
        ),
        (
            with(&ctl, json!({"controls": {"c1": {"mode": 1}}})),
            bad("controls", "control \"c1\": `mode` must be a string"),
        ),
        (
            with(
                &ctl,
                json!({"controls": {"c1": {"mode": "enforce", "reason": 1}}}),
            ),
            bad("controls", "control \"c1\": `reason` must be a string"),
        ),
        (
            with(&ctl, json!({"controls": {"c1": {"mode": "bogus"}}})),
            None,
        ),
        (
            with(
                &ctl,
                json!({"controlOverrides": {"c2": {"mode": "observe"}}}),
            ),
            bad(
                "controlOverrides",
                "applies only with `framework`; with `controls`, set each control's mode there",
            ),
        ),
        (
            with(
                &ev,
                json!({"controlOverrides": {"c2": {"mode": "observe", "reason": "why"}}}),
            ),
            None,
        ),
        (
            with(&ev, json!({"controlOverrides": 5})),
            bad("controlOverrides", &format!("{object} 5")),
        ),
        (
            with(&ev, json!({"controlOverrides": {"c2": []}})),
            bad(
                "controlOverrides",
                "control \"c2\": expected an object {mode, reason}",
            ),
        ),
        (
            with(&ev, json!({"controlOverrides": {"c2": {"mode": false}}})),
            bad(
                "controlOverrides",
                "control \"c2\": `mode` must be a string",
            ),
        ),
        (
            with(&ev, json!({"evidencePath": ""})),
            bad("evidencePath", "must not be empty"),
        ),
        (
            with(&ev, json!({"evidencePath": 5})),
            bad("evidencePath", "expected a string, got 5"),
        ),
        (with(&ev, json!({"evidencePath": "/x/e.json"})), None),
        (
            with(&ev, json!({"maxAgeSeconds": 0})),
            bad("maxAgeSeconds", &format!("{age} 0")),
        ),
        (with(&ev, json!({"maxAgeSeconds": 1})), None),
        (with(&ev, json!({"maxAgeSeconds": 3_153_600_000u64})), None),
        (
            with(&ev, json!({"maxAgeSeconds": 3_153_600_001u64})),
            bad("maxAgeSeconds", &format!("{age} 3153600001")),
        ),
        (
            with(&ev, json!({"maxAgeSeconds": -60})),
            bad("maxAgeSeconds", &format!("{age} -60")),
        ),
        (
            with(&ev, json!({"maxAgeSeconds": "60"})),
            bad("maxAgeSeconds", &format!("{age} \"60\"")),
        ),
        (
            with(&ev, json!({"maxAgeSeconds": 60.5})),
            bad("maxAgeSeconds", &format!("{age} 60.5")),
        ),
    ]);
}

/// An invalid declaration is declared and fails at every tick with its
/// reason, through a real engine; the other probes are unaffected.
#[test]
fn invalid_declarations_fail_at_every_tick_with_their_reason() {
    let decls = json!({
        "bad-port": {"kind": "tcp", "mode": "observe", "intervalSeconds": 0, "port": "22"},
        "bad-kind": {"kind": "gopher", "mode": "enforce", "intervalSeconds": 0},
        "bad-cmd": {"kind": "exec", "mode": "enforce", "intervalSeconds": 0, "command": []},
        "ok": {"kind": "exec", "mode": "enforce", "intervalSeconds": 0, "command": ["true"]},
    });
    let floor = Duration::from_millis(10);
    let (engine, rx) = Builder::new()
        .declarations_json(decls.to_string())
        .min_interval(floor)
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    let events = common::collect_until(&rx, Duration::from_secs(10), |ev| {
        ["bad-port", "bad-kind", "bad-cmd", "ok"]
            .iter()
            .all(|p| common::results(ev, Some(p)) >= 3)
    });
    engine.shutdown().unwrap();
    let mut g = Guarantees::new(floor);
    for e in &events {
        g.check(e).unwrap();
    }
    for e in &events {
        let Event::ProbeResult(r) = e else { continue };
        let want = match &*r.probe_name {
            "bad-port" => bad("port", "expected an integer from 1 to 65535, got \"22\""),
            "bad-kind" => Some("unknown probe kind 'gopher'".into()),
            "bad-cmd" => bad("command", "expected a non-empty command, got an empty one"),
            _ => None,
        };
        assert_eq!(r.failure_reason, want, "{r:?}");
    }
}
