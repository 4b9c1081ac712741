use std::time::Duration;

use crate::view::tests::{result, topology, verdict};
use crate::wait::WaitRule;

use super::*;

fn watch(style: Style) -> Watch<WaitRule> {
    let rule = WaitRule {
        generation: 1,
        soak: Duration::ZERO,
        deadline: Duration::from_secs(300),
        deadline_at_us: crate::clock::wall_now_us() + 300_000_000,
    };
    Watch::new(View::new(1, BTreeMap::new()), rule, style)
}

/// Runs the thread's loop over `events` (the channel then closes): how it
/// ended and what it wrote. Either every event comes on its own (a
/// zero-capacity channel: the loop finds nothing more after each), or all
/// of them wait in the channel as one burst.
fn pump(style: Style, events: &[Event]) -> (Ended, String) {
    pump_as(style, events, false)
}

fn pump_as(style: Style, events: &[Event], burst: bool) -> (Ended, String) {
    let (tx, rx) = if burst {
        crossbeam_channel::unbounded()
    } else {
        crossbeam_channel::bounded(0)
    };
    let events = events.to_vec();
    let mut sender = Some(std::thread::spawn(move || {
        for e in events {
            if tx.send(e).is_err() {
                break;
            }
        }
    }));
    if burst {
        sender.take().unwrap().join().unwrap();
    }
    let (_stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    let mut out = Vec::new();
    let end = watch(style).pump(&mut out, &rx, &stop_rx).unwrap();
    // The sender stops at the first event nobody takes any more.
    drop(rx);
    if let Some(s) = sender {
        s.join().unwrap();
    }
    (end, String::from_utf8(out).unwrap())
}

fn story() -> Vec<Event> {
    vec![
        topology(1, &[("api", "enforce"), ("web", "enforce")]),
        verdict(
            1,
            "pending",
            false,
            "awaiting api (noResult), web (noResult)",
            &[],
            &[("api", "noResult"), ("web", "noResult")],
        ),
        result(1, "api", "enforce", None, 1),
        result(1, "web", "enforce", Some("status 503"), 1),
        verdict(
            1,
            "pending",
            false,
            "awaiting web (startupGrace)",
            &[],
            &[("web", "startupGrace")],
        ),
        result(1, "api", "enforce", None, 2),
        result(1, "web", "enforce", Some("status 503"), 2),
        verdict(
            1,
            "unhealthy",
            true,
            "web: status 503",
            &[("web", "status 503")],
            &[],
        ),
        // After the final verdict: never read.
        result(1, "api", "enforce", None, 3),
    ]
}

#[test]
fn plain_text_appends_only_what_changed_and_ends_with_the_verdict() {
    let (end, out) = pump(Style::Plain, &story());
    let Ended::Done(o) = end else {
        panic!("{end:?}")
    };
    assert_eq!(o.code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("rollout stable@abc (generation 1): pending, deadline in "));
    assert_eq!(
        lines[1..],
        [
            "  api    enforce  -       no result yet",
            "  web    enforce  -       no result yet",
            "  api    enforce  -       awaiting its first result",
            "  web    enforce  -       awaiting its first result",
            "pending: awaiting api (noResult), web (noResult)",
            "  api    enforce  pass",
            "  web    enforce  fail    status 503",
            "  web    enforce  fail    startup grace: status 503",
            "pending: awaiting web (startupGrace)",
            "  web    enforce  fail    failing: status 503",
            "unhealthy: web: status 503",
        ]
    );
    assert!(!out.contains('\x1b'));

    // A burst is one change: only its outcome is shown.
    let (_, out) = pump_as(Style::Plain, &story(), true);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1..],
        [
            "  api    enforce  pass",
            "  web    enforce  fail    failing: status 503",
            "unhealthy: web: status 503",
        ]
    );
}

#[test]
fn json_prints_every_event_up_to_the_deciding_verdict() {
    let events = story();
    let (end, out) = pump(Style::Json, &events);
    assert!(
        matches!(end, Ended::Done(Outcome { code: 1, .. })),
        "{end:?}"
    );
    let printed: Vec<Event> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed, events[..events.len() - 1]);
}

#[test]
fn the_live_table_is_redrawn_over_itself() {
    let mut w = watch(Style::Live);
    for e in &story()[..4] {
        w.view.observe(e);
    }
    let mut out = Vec::new();
    w.draw(&mut out).unwrap();
    let first = String::from_utf8(std::mem::take(&mut out)).unwrap();
    assert!(!first.contains("\x1b[4F"), "nothing to move over yet");
    assert_eq!(first.matches("\x1b[K\n").count(), 5, "{first:?}");
    assert!(first.ends_with("\x1b[J"));
    w.draw(&mut out).unwrap();
    let second = String::from_utf8(out).unwrap();
    assert!(second.starts_with("\x1b[5F"), "{second:?}");
    assert_eq!(w.drawn, 5);

    // The closing line goes below the last table.
    let (end, out) = pump(Style::Live, &story());
    assert!(matches!(end, Ended::Done(_)), "{end:?}");
    assert!(
        out.ends_with("\x1b[Junhealthy: web: status 503\n"),
        "{out:?}"
    );
}

#[test]
fn a_stop_signal_writes_the_closing_line_and_the_engine_going_away_is_reported() {
    let (tx, rx) = crossbeam_channel::unbounded();
    tx.send(topology(1, &[("api", "enforce")])).unwrap();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
    stop_tx.send(libc::SIGTERM).unwrap();
    let mut out = Vec::new();
    let end = watch(Style::Plain).pump(&mut out, &rx, &stop_rx).unwrap();
    assert!(matches!(end, Ended::Interrupted), "{end:?}");
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.ends_with("interrupted by SIGTERM before a final verdict (no verdict yet)\n"),
        "{out}"
    );

    drop(tx);
    let (end, _) = pump(Style::Plain, &[topology(1, &[("api", "enforce")])]);
    assert!(matches!(end, Ended::EngineGone), "{end:?}");
}
