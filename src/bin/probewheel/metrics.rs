//! `--metrics-file`: Prometheus text exposition for node_exporter's
//! textfile collector (README, "Running as a service").
//!
//! The output thread folds every event into [`Metrics`]; the main loop
//! renders it with the engine's counters, at most once a second when
//! something changed, and hands the text to the metrics writer
//! ([`crate::textfile`]), which replaces the file atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use probewheel::event::Verdict;
use probewheel::{Event, Mode, Perfdata, Stats, Status};

/// The last run of one declared probe.
#[derive(Debug, Clone, Copy)]
struct LastRun {
    pass: bool,
    duration_us: u64,
    lateness_us: u64,
    observed_at_us: i64,
}

#[derive(Debug)]
struct Row {
    kind: Arc<str>,
    mode: Mode,
    last: Option<LastRun>,
    /// The last run's perfdata (labels unique), replaced by every result.
    perfdata: Vec<Perfdata>,
}

/// A per-probe metric: name, help text, value of a last run.
type PerProbe = (&'static str, &'static str, fn(&LastRun) -> String);

/// Per-probe values, as the events told them.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    probes: BTreeMap<Arc<str>, Row>,
    rejected: bool,
    /// The current generation's latest verdict and whether it is decided
    /// (none yet: pending, or rejected with a rejected file).
    verdict: Option<(Verdict, bool)>,
}

/// Every value of `probewheel_verdict`'s label, in the order written.
const VERDICTS: [Verdict; 4] = [
    Verdict::Pending,
    Verdict::Healthy,
    Verdict::Unhealthy,
    Verdict::Rejected,
];

impl Metrics {
    /// Folds one event in.
    pub(crate) fn observe(&mut self, ev: &Event) {
        match ev {
            Event::TopologyDeclared(t) => {
                let mut old = std::mem::take(&mut self.probes);
                for p in &t.probes {
                    // A probe that stays keeps its last run until it has a new one.
                    let (last, perfdata) = old
                        .remove(&p.probe_name)
                        .map_or((None, Vec::new()), |r| (r.last, r.perfdata));
                    self.probes.insert(
                        p.probe_name.clone(),
                        Row {
                            kind: p.kind.clone(),
                            mode: p.mode,
                            last,
                            perfdata,
                        },
                    );
                }
                self.rejected = false;
                self.verdict = None;
            }
            Event::DeclarationsRejected(_) => {
                self.probes.clear();
                self.rejected = true;
                self.verdict = None;
            }
            Event::RolloutVerdict(v) => self.verdict = Some((v.verdict, v.decided)),
            Event::ProbeResult(r) => {
                if let Some(row) = self.probes.get_mut(&r.probe_name) {
                    row.last = Some(LastRun {
                        pass: r.status == Status::Pass,
                        duration_us: r.duration_us,
                        lateness_us: r.lateness_us,
                        observed_at_us: r.observed_at.unix_micros(),
                    });
                    row.perfdata.clone_from(&r.perfdata);
                }
            }
            _ => {}
        }
    }

    /// The exposition text, with the engine-wide counters of `stats`.
    pub(crate) fn render(&self, stats: &Stats) -> String {
        let mut out = String::with_capacity(256 + self.probes.len() * 400);
        let per_probe: [PerProbe; 4] = [
            (
                "probewheel_probe_success",
                "1 if the probe's last run passed, 0 if it failed.",
                |l| u8::from(l.pass).to_string(),
            ),
            (
                "probewheel_probe_duration_seconds",
                "How long the probe's last run took.",
                |l| seconds(l.duration_us as i64),
            ),
            (
                "probewheel_probe_lateness_seconds",
                "How late the probe's last run started after its slot.",
                |l| seconds(l.lateness_us as i64),
            ),
            (
                "probewheel_probe_last_run_timestamp_seconds",
                "Wall time the probe's last run started (Unix seconds).",
                |l| seconds(l.observed_at_us),
            ),
        ];
        for (name, help, value) in per_probe {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (probe, row) in &self.probes {
                if let Some(last) = &row.last {
                    let _ = writeln!(
                        out,
                        "{name}{{probe=\"{}\",kind=\"{}\",mode=\"{}\"}} {}",
                        label(probe),
                        label(&row.kind),
                        row.mode,
                        value(last)
                    );
                }
            }
        }
        self.render_perfdata(&mut out);
        let gauges = [
            (
                "probewheel_generation",
                "Current generation (one more at every reset).",
                stats.generation,
            ),
            (
                "probewheel_probes",
                "Probes declared in the current generation.",
                self.probes.len() as u64,
            ),
            (
                "probewheel_declarations_rejected",
                "1 if the current generation's declarations file was rejected.",
                u64::from(self.rejected),
            ),
            (
                "probewheel_events_backlog",
                "Events waiting inside the engine for the consumer.",
                stats.backlog,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let (current, decided) = self.verdict.unwrap_or(if self.rejected {
            (Verdict::Rejected, false)
        } else {
            (Verdict::Pending, false)
        });
        let name = "probewheel_verdict";
        let _ = writeln!(
            out,
            "# HELP {name} The current generation's rollout verdict: 1 for the current one, 0 for the others.\n\
             # TYPE {name} gauge"
        );
        for v in VERDICTS {
            let _ = writeln!(out, "{name}{{verdict=\"{v}\"}} {}", u8::from(v == current));
        }
        let name = "probewheel_verdict_decided";
        let _ = writeln!(
            out,
            "# HELP {name} 1 once the current generation has had a healthy or unhealthy verdict \
             (it stays 1 for the generation).\n# TYPE {name} gauge\n{name} {}",
            u8::from(decided)
        );
        let counters = [
            (
                "probewheel_events_sent_total",
                "Events accepted by the event channel.",
                stats.events_sent,
            ),
            (
                "probewheel_events_coalesced_total",
                "Results folded into later ones while the consumer was behind.",
                stats.coalesced,
            ),
            (
                "probewheel_skipped_ticks_total",
                "Probe slots skipped (run in flight, late wake-up, or the floor).",
                stats.skipped_ticks,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let name = "probewheel_events_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Events dropped: of an older generation still waiting at a reset, \
             or with no receiver.\n# TYPE {name} counter\n\
             {name}{{reason=\"reset\"}} {}\n{name}{{reason=\"no_receiver\"}} {}",
            stats.dropped_at_reset, stats.dropped_no_receiver
        );
        out
    }
}

impl Metrics {
    /// `probewheel_probe_perfdata`, when a probe's last run had any.
    fn render_perfdata(&self, out: &mut String) {
        if self.probes.values().all(|r| r.perfdata.is_empty()) {
            return;
        }
        let name = "probewheel_probe_perfdata";
        let _ = writeln!(
            out,
            "# HELP {name} Each perfdata value of the probe's last run (exec outputFormat \"nagios\"), \
             in its unit's base unit: seconds, bytes, percent, counter or a plain number.\n\
             # TYPE {name} gauge"
        );
        for (probe, row) in &self.probes {
            for p in &row.perfdata {
                let _ = writeln!(
                    out,
                    "{name}{{probe=\"{}\",label=\"{}\"}} {}",
                    label(probe),
                    label(&p.label),
                    p.value
                );
            }
        }
    }
}

fn seconds(us: i64) -> String {
    format!(
        "{}.{:06}",
        us.div_euclid(1_000_000),
        us.rem_euclid(1_000_000)
    )
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_keep_microseconds() {
        assert_eq!(seconds(312), "0.000312");
        assert_eq!(seconds(1_764_684_000_123_456), "1764684000.123456");
    }

    fn verdict_lines(m: &Metrics) -> Vec<String> {
        m.render(&Stats::default())
            .lines()
            .filter(|l| l.contains("probewheel_verdict"))
            .map(String::from)
            .collect()
    }

    fn event(v: serde_json::Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    fn verdict(generation: u64, verdict: &str, decided: bool) -> Event {
        event(
            serde_json::json!({"event": "rolloutVerdict", "seq": 2, "rolloutId": "r",
            "generation": generation, "verdict": verdict, "decided": decided,
            "since": "2026-11-27T14:15:42.000000Z", "reason": "x", "failing": [], "awaiting": []}),
        )
    }

    #[test]
    fn the_verdict_is_one_gauge_per_value_and_a_decided_flag() {
        let mut m = Metrics::default();
        let gauges = |m: &Metrics| -> Vec<String> {
            verdict_lines(m)
                .into_iter()
                .filter(|l| !l.starts_with('#'))
                .collect()
        };
        assert_eq!(
            gauges(&m),
            [
                "probewheel_verdict{verdict=\"pending\"} 1",
                "probewheel_verdict{verdict=\"healthy\"} 0",
                "probewheel_verdict{verdict=\"unhealthy\"} 0",
                "probewheel_verdict{verdict=\"rejected\"} 0",
                "probewheel_verdict_decided 0",
            ]
        );
        let help = verdict_lines(&m);
        assert!(
            help.contains(&"# TYPE probewheel_verdict gauge".to_owned()),
            "{help:#?}"
        );
        assert!(
            help.contains(&"# TYPE probewheel_verdict_decided gauge".to_owned()),
            "{help:#?}"
        );
        assert_eq!(help.iter().filter(|l| l.starts_with("# HELP")).count(), 2);

        m.observe(&verdict(1, "healthy", true));
        m.observe(&verdict(1, "unhealthy", true));
        assert_eq!(
            gauges(&m)[1..],
            [
                "probewheel_verdict{verdict=\"healthy\"} 0",
                "probewheel_verdict{verdict=\"unhealthy\"} 1",
                "probewheel_verdict{verdict=\"rejected\"} 0",
                "probewheel_verdict_decided 1",
            ]
        );
        // A new generation starts undecided; a rejected file is rejected.
        m.observe(&event(
            serde_json::json!({"event": "declarationsRejected", "seq": 3,
            "rolloutId": "r", "generation": 2, "path": "/x", "reason": "bad"}),
        ));
        let g = gauges(&m);
        assert_eq!(g[3], "probewheel_verdict{verdict=\"rejected\"} 1");
        assert_eq!(g[4], "probewheel_verdict_decided 0");
    }

    fn result(probe: &str, perfdata: serde_json::Value) -> Event {
        event(
            serde_json::json!({"event": "probeResult", "seq": 3, "rolloutId": "r",
            "generation": 1, "probeName": probe, "kind": "exec", "mode": "enforce",
            "status": "pass", "observedAt": "2026-11-27T14:15:42.000000Z",
            "failureReason": null, "subResults": null, "perfdata": perfdata, "tick": 0,
            "scheduledAt": "2026-11-27T14:15:42.000000Z", "latenessUs": 0,
            "durationUs": 0, "skippedTicks": 0, "coalesced": 0, "consecutive": 1}),
        )
    }

    fn perfdata_lines(m: &Metrics) -> Vec<String> {
        m.render(&Stats::default())
            .lines()
            .filter(|l| l.contains("probewheel_probe_perfdata"))
            .map(String::from)
            .collect()
    }

    #[test]
    fn perfdata_follows_each_probes_last_result() {
        let mut m = Metrics::default();
        m.observe(&event(
            serde_json::json!({"event": "topologyDeclared", "seq": 1,
            "rolloutId": "r", "generation": 1, "declaredAt": "2026-11-27T14:15:42.000000Z",
            "probes": [{"probeName": "disk", "kind": "exec", "mode": "enforce"},
                       {"probeName": "up", "kind": "exec", "mode": "enforce"}]}),
        ));
        m.observe(&result("up", serde_json::json!([])));
        // No perfdata anywhere: no family at all.
        assert!(perfdata_lines(&m).is_empty());
        m.observe(&result(
            "disk",
            serde_json::json!([{"label": "/", "value": 46725595136.0, "unit": "B"},
                {"label": "it's \"x\"\\y", "value": 0.000123, "unit": "s"},
                {"label": "load", "value": -0.5}]),
        ));
        let lines = perfdata_lines(&m);
        assert_eq!(lines[1], "# TYPE probewheel_probe_perfdata gauge");
        assert_eq!(
            lines[2..],
            [
                "probewheel_probe_perfdata{probe=\"disk\",label=\"/\"} 46725595136",
                "probewheel_probe_perfdata{probe=\"disk\",label=\"it's \\\"x\\\"\\\\y\"} 0.000123",
                "probewheel_probe_perfdata{probe=\"disk\",label=\"load\"} -0.5",
            ]
        );
        // The next result replaces them: a label that is gone is gone.
        m.observe(&result(
            "disk",
            serde_json::json!([{"label": "load", "value": 2.0}]),
        ));
        assert_eq!(
            perfdata_lines(&m)[2..],
            ["probewheel_probe_perfdata{probe=\"disk\",label=\"load\"} 2"]
        );
        m.observe(&result("disk", serde_json::json!([])));
        assert!(perfdata_lines(&m).is_empty());
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
