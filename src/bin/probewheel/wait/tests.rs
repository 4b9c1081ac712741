use probewheel::Timestamp;
use serde_json::json;

use super::*;
use crate::view::tests::{T0, ev, topology, verdict};

fn rule(soak: u64) -> WaitRule {
    WaitRule {
        generation: 2,
        soak: Duration::from_secs(soak),
        deadline: Duration::from_secs(300),
        deadline_at_us: us(T0) + 300_000_000,
    }
}

fn us(t: &str) -> i64 {
    Timestamp::parse_rfc3339(t).unwrap().unix_micros()
}

fn view() -> View {
    View::new(2, BTreeMap::new())
}

#[test]
fn wait_is_done_at_the_first_final_verdict_of_its_generation() {
    let mut r = rule(0);
    let v = view();
    let pending = verdict(
        2,
        "pending",
        false,
        "awaiting api (noResult)",
        &[],
        &[("api", "noResult")],
    );
    assert_eq!(r.observe(&pending, &v), None);
    // An older generation's verdict, even a final one, is not ours.
    assert_eq!(
        r.observe(&verdict(1, "healthy", true, "old", &[], &[]), &v),
        None
    );
    let healthy = verdict(
        2,
        "healthy",
        true,
        "3 enforce probes passing, soak 4 s done",
        &[],
        &[],
    );
    assert_eq!(
        r.observe(&healthy, &v),
        Some(Outcome {
            code: 0,
            line: "healthy: 3 enforce probes passing, soak 4 s done".into()
        })
    );
    let unhealthy = verdict(
        2,
        "unhealthy",
        true,
        "web: http probe: status 503, expected 200",
        &[("web", "http probe: status 503, expected 200")],
        &[],
    );
    assert_eq!(
        r.observe(&unhealthy, &v),
        Some(Outcome {
            code: 1,
            line: "unhealthy: web: http probe: status 503, expected 200".into()
        })
    );
    let rejected = verdict(
        2,
        "rejected",
        false,
        "line 1 column 2: expected value",
        &[],
        &[],
    );
    assert_eq!(r.observe(&rejected, &v).map(|o| o.code), Some(2));
}

#[test]
fn the_header_counts_down_the_deadline_and_the_soak() {
    let r = rule(30);
    let mut v = view();
    let now = us(T0) + 12_300_000;
    assert_eq!(
        r.header(&v, now),
        [
            "rollout ? (generation 2): pending, deadline in 288 s, soak 30 s not started",
            "waiting for the first verdict"
        ]
    );
    v.observe(&topology(2, &[("api", "enforce")]));
    v.observe(&ev(json!({"event": "rolloutVerdict", "seq": 4, "rolloutId": "stable@abc",
        "generation": 2, "verdict": "pending", "decided": false, "since": T0,
        "reason": "awaiting api (soak)", "failing": [], "awaiting": [{"probeName": "api", "why": "soak"}],
        "soakEndsAt": "2026-11-27T14:16:00.000000Z", "deadlineAt": "2026-11-27T14:16:12.000000Z"})));
    assert_eq!(
        r.header(&v, now),
        [
            "rollout stable@abc (generation 2): pending, deadline in 18 s, soak 6 s left",
            "awaiting api (soak)"
        ]
    );
    assert_eq!(
        r.header(&v, us(T0) + 31_000_000)[0],
        "rollout stable@abc (generation 2): pending, deadline of 300 s passed, soak 0 s left"
    );
    v.observe(&verdict(
        2,
        "healthy",
        true,
        "1 enforce probe passing, soak 30 s done",
        &[],
        &[],
    ));
    assert_eq!(
        r.header(&v, now)[0],
        "rollout stable@abc (generation 2): healthy, soak 30 s done"
    );
    assert_eq!(
        r.status(&v).as_deref(),
        Some("healthy: 1 enforce probe passing, soak 30 s done")
    );
}

#[test]
fn an_interrupt_says_what_was_pending() {
    let r = rule(0);
    let mut v = view();
    assert_eq!(
        r.interrupted(&v, libc::SIGINT),
        "interrupted by SIGINT before a final verdict (no verdict yet)"
    );
    v.observe(&verdict(
        2,
        "pending",
        false,
        "awaiting api (startupGrace)",
        &[],
        &[],
    ));
    assert_eq!(
        r.interrupted(&v, libc::SIGTERM),
        "interrupted by SIGTERM before a final verdict (pending: awaiting api (startupGrace))"
    );
}

#[test]
fn a_rejected_file_is_named_in_the_closing_line() {
    let mut r = rule(0);
    let mut v = view();
    v.observe(&ev(
        json!({"event": "declarationsRejected", "seq": 1, "rolloutId": "r",
        "generation": 2, "path": "/etc/x.json", "reason": "line 1 column 22: trailing comma"}),
    ));
    assert_eq!(
        r.header(&v, us(T0))[0],
        "rollout r (generation 2): rejected"
    );
    let out = r.observe(
        &verdict(
            2,
            "rejected",
            false,
            "declarations rejected: line 1 column 22: trailing comma",
            &[],
            &[],
        ),
        &v,
    );
    assert_eq!(
        out,
        Some(Outcome {
            code: 2,
            line: "rejected: /etc/x.json: line 1 column 22: trailing comma".into()
        })
    );
}
