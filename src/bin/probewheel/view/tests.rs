use probewheel::Event;
use serde_json::json;

use super::*;

pub(crate) const T0: &str = "2026-11-27T14:15:42.000000Z";

/// An event from its JSON form (the event types are not built by hand
/// outside the library).
pub(crate) fn ev(v: serde_json::Value) -> Event {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

pub(crate) fn topology(generation: u64, probes: &[(&str, &str)]) -> Event {
    let probes: Vec<_> = probes
        .iter()
        .map(|(n, m)| json!({"probeName": n, "kind": "exec", "mode": m}))
        .collect();
    ev(
        json!({"event": "topologyDeclared", "seq": 1, "rolloutId": "stable@abc",
              "generation": generation, "declaredAt": T0, "probes": probes}),
    )
}

pub(crate) fn result(
    generation: u64,
    probe: &str,
    mode: &str,
    reason: Option<&str>,
    consecutive: u64,
) -> Event {
    ev(
        json!({"event": "probeResult", "seq": 2, "rolloutId": "stable@abc",
              "generation": generation, "probeName": probe, "kind": "exec", "mode": mode,
              "status": if reason.is_some() { "fail" } else { "pass" },
              "observedAt": T0, "failureReason": reason, "subResults": null, "tick": 0,
              "scheduledAt": T0, "latenessUs": 0, "durationUs": 1, "skippedTicks": 0,
              "coalesced": 0, "consecutive": consecutive}),
    )
}

/// A verdict; `failing` is `(probe, reason)`, `awaiting` is `(probe, why)`.
pub(crate) fn verdict(
    generation: u64,
    verdict: &str,
    decided: bool,
    reason: &str,
    failing: &[(&str, &str)],
    awaiting: &[(&str, &str)],
) -> Event {
    let failing: Vec<_> = failing
        .iter()
        .map(|(p, r)| json!({"probeName": p, "failureReason": r, "consecutive": 1}))
        .collect();
    let awaiting: Vec<_> = awaiting
        .iter()
        .map(|(p, w)| json!({"probeName": p, "why": w}))
        .collect();
    ev(
        json!({"event": "rolloutVerdict", "seq": 3, "rolloutId": "stable@abc",
              "generation": generation, "verdict": verdict, "decided": decided, "since": T0,
              "reason": reason, "failing": failing, "awaiting": awaiting}),
    )
}

fn header() -> Vec<String> {
    vec!["title".into()]
}

#[test]
fn the_table_says_why_each_enforce_probe_holds_or_fails_the_verdict() {
    let mut v = View::new(1, BTreeMap::from([("db".to_owned(), 3)]));
    for e in [
        topology(
            1,
            &[
                ("api", "enforce"),
                ("db", "enforce"),
                ("old", "disabled"),
                ("ssh", "observe"),
                ("web", "enforce"),
                ("new", "enforce"),
            ],
        ),
        result(
            1,
            "api",
            "enforce",
            Some("tcp probe: connect 127.0.0.1:9: refused"),
            2,
        ),
        result(1, "db", "enforce", None, 1),
        result(1, "ssh", "observe", Some("exit code 1"), 4),
        result(
            1,
            "web",
            "enforce",
            Some("http probe: status 503, expected 200"),
            3,
        ),
        verdict(
            1,
            "unhealthy",
            true,
            "web: http probe: status 503, expected 200",
            &[("web", "http probe: status 503, expected 200")],
            &[
                ("api", "startupGrace"),
                ("db", "successThreshold"),
                ("new", "noResult"),
            ],
        ),
    ] {
        assert!(v.observe(&e));
    }
    assert_eq!(
        v.frame(&header(), 200, 50),
        [
            "title",
            "PROBE  MODE      STATUS  IN-A-ROW  DETAIL",
            "api    enforce   fail    2         startup grace: tcp probe: connect 127.0.0.1:9: refused",
            "db     enforce   pass    1         awaiting 3 passes in a row (1 so far)",
            "new    enforce   -       -         awaiting its first result",
            "old    disabled  -       -         disabled: never runs",
            "ssh    observe   fail    4         exit code 1",
            "web    enforce   fail    3         failing: http probe: status 503, expected 200",
        ]
    );
}

#[test]
fn lines_are_cut_to_the_terminal_width_and_stay_one_line() {
    let mut v = View::new(1, BTreeMap::new());
    v.observe(&topology(1, &[("we\nb", "enforce")]));
    let long = format!("http probe: {}", "x".repeat(300));
    v.observe(&result(1, "we\nb", "enforce", Some(&long), 1));
    let frame = v.frame(&["t".repeat(100)], 60, 50);
    assert_eq!(frame.len(), 3);
    for line in &frame {
        assert!(line.chars().count() <= 60, "{line:?}");
        assert!(!line.contains('\n'), "{line:?}");
    }
    assert!(frame[2].starts_with("we\\nb  enforce  fail    1         http probe: xxx"));
    assert!(frame[2].ends_with("x..."), "{}", frame[2]);
    assert!(frame[0].ends_with("t..."));
}

#[test]
fn a_short_screen_shows_the_probes_that_gate_first() {
    let mut v = View::new(1, BTreeMap::new());
    let names: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let probes: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "enforce")).collect();
    v.observe(&topology(1, &probes));
    for n in &names {
        v.observe(&result(1, n, "enforce", None, 1));
    }
    v.observe(&result(1, "p7", "enforce", Some("down"), 1));
    v.observe(&verdict(
        1,
        "unhealthy",
        true,
        "p7: down",
        &[("p7", "down")],
        &[("p9", "soak")],
    ));
    // 1 header + titles + 4 rows + the "more" line.
    let frame = v.frame(&header(), 80, 7);
    assert_eq!(frame.len(), 7, "{frame:#?}");
    let shown: Vec<&str> = frame[2..6].iter().map(|l| &l[..2]).collect();
    assert_eq!(shown, ["p0", "p1", "p7", "p9"], "{frame:#?}");
    assert_eq!(frame[6], "... 6 more probes not shown");
}

#[test]
fn events_of_another_generation_are_not_shown() {
    let mut v = View::new(2, BTreeMap::new());
    assert!(!v.observe(&topology(1, &[("old", "enforce")])));
    assert!(!v.observe(&verdict(1, "healthy", true, "old", &[], &[])));
    assert!(v.verdict().is_none());
    assert_eq!(v.frame(&header(), 80, 24), ["title"]);
    assert!(v.observe(&topology(2, &[("new", "enforce")])));
    assert_eq!(v.rollout(), Some("stable@abc"));
}

#[test]
fn plain_rows_leave_out_the_count_so_a_steady_probe_prints_once() {
    let mut v = View::new(1, BTreeMap::new());
    v.observe(&topology(1, &[("a", "enforce")]));
    v.observe(&result(1, "a", "enforce", None, 1));
    let first = v.plain_rows();
    v.observe(&result(1, "a", "enforce", None, 2));
    assert_eq!(v.plain_rows(), first);
    assert_eq!(first[0].1, "a      enforce  pass");
    v.observe(&result(1, "a", "enforce", Some("boom"), 1));
    assert_eq!(v.plain_rows()[0].1, "a      enforce  fail    boom");
}

#[test]
fn cut_and_countdown_helpers() {
    assert_eq!(cut("abcdef", 6), "abcdef");
    assert_eq!(cut("abcdefg", 6), "abc...");
    assert_eq!(cut("ééééé", 3), "ééé");
    assert_eq!(secs_left(0), 0);
    assert_eq!(secs_left(-5), 0);
    assert_eq!(secs_left(1), 1);
    assert_eq!(secs_left(2_000_000), 2);
    assert_eq!(secs_left(2_000_001), 3);
    assert_eq!(one_line("a\r\nb"), "a\\r\\nb");
}
