use std::collections::BTreeMap;

use super::*;
use crate::view::tests::{ev, result, topology, verdict};

fn run(tally: &mut Tally, events: &[Event]) -> Option<Outcome> {
    let view = View::new(1, BTreeMap::new());
    let mut out = None;
    for e in events {
        assert!(out.is_none(), "done before {e:?}");
        out = tally.observe(e, &view);
    }
    out
}

#[test]
fn once_passes_when_every_enforce_probe_passed_its_one_run() {
    let mut t = Tally::new(1);
    let probes = [("a", "enforce"), ("b", "observe"), ("off", "disabled")];
    assert_eq!(
        run(
            &mut t,
            &[
                topology(1, &probes),
                result(1, "a", "enforce", None, 1),
                // Verdicts are not once's rule.
                verdict(1, "unhealthy", true, "x", &[], &[]),
            ]
        ),
        None,
        "b has not run yet; the disabled probe is never waited for"
    );
    assert_eq!(
        t.observe(
            &result(1, "b", "observe", Some("down"), 1),
            &View::new(1, BTreeMap::new())
        ),
        Some(Outcome {
            code: 0,
            line: "pass: 1 enforce probe passed (1 observe probe failed)".into()
        })
    );
}

#[test]
fn once_fails_on_an_enforce_failure_and_a_rejected_file() {
    let mut t = Tally::new(1);
    let out = run(
        &mut t,
        &[
            topology(1, &[("a", "enforce"), ("b", "enforce"), ("c", "enforce")]),
            result(1, "b", "enforce", Some("exit code 1, expected 0"), 1),
            result(1, "a", "enforce", None, 1),
            result(1, "c", "enforce", Some("timed out after 10 s"), 1),
        ],
    );
    assert_eq!(
        out,
        Some(Outcome {
            code: 1,
            line: "fail: b: exit code 1, expected 0 (and 1 more failing enforce probe)".into()
        })
    );

    let mut t = Tally::new(1);
    let rejected = ev(
        serde_json::json!({"event": "declarationsRejected", "seq": 1,
        "rolloutId": "r", "generation": 1, "path": "/x.json", "reason": "line 1 column 1: expected value"}),
    );
    assert_eq!(
        run(&mut t, &[rejected]),
        Some(Outcome {
            code: 1,
            line: "rejected: /x.json: line 1 column 1: expected value".into()
        })
    );

    // Nothing to run: done at the topology.
    let mut t = Tally::new(1);
    assert_eq!(
        run(&mut t, &[topology(1, &[("off", "disabled")])]).map(|o| o.line),
        Some("pass: no enforce probe declared".into())
    );
}

#[test]
fn once_counts_the_first_result_of_its_own_generation_only() {
    let mut t = Tally::new(2);
    assert_eq!(run(&mut t, &[topology(1, &[("a", "enforce")])]), None);
    assert_eq!(
        run(
            &mut t,
            &[
                topology(2, &[("a", "enforce"), ("b", "enforce")]),
                result(2, "a", "enforce", None, 1),
                result(2, "a", "enforce", Some("second run"), 1),
                result(1, "b", "enforce", None, 1),
            ]
        ),
        None
    );
    let out = t.observe(
        &result(2, "b", "enforce", None, 1),
        &View::new(2, BTreeMap::new()),
    );
    assert_eq!(out.map(|o| o.code), Some(0), "a's first run passed");
}
