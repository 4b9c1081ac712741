//! What `wait` and `once` show a person with `--format text`: the probes of
//! one generation as a table (probe, mode, status, results in a row, and why
//! an enforce probe holds the verdict or fails it), under header lines the
//! command supplies.
//!
//! The view is pure: it folds events in and returns lines; the output
//! thread (`watch`) decides when to draw them and how (in place on a
//! terminal, appended otherwise). Every line it returns is one line: names
//! and reasons have their control characters escaped.

use std::collections::BTreeMap;
use std::sync::Arc;

use probewheel::event::{Awaiting, RolloutVerdict};
use probewheel::{Event, Mode, Status};

/// One probe as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    mode: Mode,
    status: Option<Status>,
    consecutive: u64,
    reason: Option<String>,
}

/// The probes and the latest verdict of one generation.
#[derive(Debug)]
pub(crate) struct View {
    generation: u64,
    rollout: Option<Arc<str>>,
    probes: BTreeMap<Arc<str>, Row>,
    /// `(path, reason)` when the file was rejected.
    rejected: Option<(String, String)>,
    verdict: Option<RolloutVerdict>,
    /// `successThreshold` by probe, from the declarations read beside the
    /// engine (only to say how many passes a probe still needs).
    success_thresholds: BTreeMap<String, u32>,
}

/// Column titles; the probe column is as wide as the longest name.
const TITLES: [&str; 5] = ["PROBE", "MODE", "STATUS", "IN-A-ROW", "DETAIL"];

/// The probe column is never wider than this (longer names are cut).
const MAX_NAME: usize = 40;

impl View {
    /// A view of `generation` (events of other generations are ignored).
    pub(crate) fn new(generation: u64, success_thresholds: BTreeMap<String, u32>) -> View {
        View {
            generation,
            rollout: None,
            probes: BTreeMap::new(),
            rejected: None,
            verdict: None,
            success_thresholds,
        }
    }

    /// Folds one event in; true when something shown changed.
    pub(crate) fn observe(&mut self, ev: &Event) -> bool {
        if ev.generation() != self.generation {
            return false;
        }
        match ev {
            Event::TopologyDeclared(t) => {
                self.rollout = Some(t.header.rollout_id.clone());
                for p in &t.probes {
                    self.probes.entry(p.probe_name.clone()).or_insert(Row {
                        mode: p.mode,
                        status: None,
                        consecutive: 0,
                        reason: None,
                    });
                }
            }
            Event::DeclarationsRejected(r) => {
                self.rollout = Some(r.header.rollout_id.clone());
                self.rejected = Some((r.path.clone(), r.reason.clone()));
            }
            Event::ProbeResult(r) => {
                let row = self.probes.entry(r.probe_name.clone()).or_insert(Row {
                    mode: r.mode,
                    status: None,
                    consecutive: 0,
                    reason: None,
                });
                row.status = Some(r.status);
                row.consecutive = r.consecutive;
                row.reason = r.failure_reason.clone();
            }
            Event::RolloutVerdict(v) => self.verdict = Some(v.clone()),
            _ => return false,
        }
        true
    }

    /// The latest verdict of the generation, if one came.
    pub(crate) fn verdict(&self) -> Option<&RolloutVerdict> {
        self.verdict.as_ref()
    }

    /// `(path, reason)` when the file was rejected.
    pub(crate) fn rejected(&self) -> Option<&(String, String)> {
        self.rejected.as_ref()
    }

    /// The rollout id, once the generation's first event came.
    pub(crate) fn rollout(&self) -> Option<&str> {
        self.rollout.as_deref()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Why a probe is shown the way it is: failing or awaited (from the
    /// verdict), else its last failure reason.
    fn detail(&self, name: &str, row: &Row) -> String {
        if row.mode == Mode::Disabled {
            return "disabled: never runs".into();
        }
        if let Some(v) = &self.verdict {
            if let Some(f) = v.failing.iter().find(|f| &*f.probe_name == name) {
                return format!("failing: {}", f.failure_reason);
            }
            // A result newer than the verdict outdates its "no result".
            let awaited = v.awaiting.iter().find(|a| {
                &*a.probe_name == name && !(a.why == Awaiting::NoResult && row.status.is_some())
            });
            if let Some(a) = awaited {
                return match a.why {
                    Awaiting::NoResult => "awaiting its first result".into(),
                    Awaiting::StartupGrace => match &row.reason {
                        Some(r) => format!("startup grace: {r}"),
                        None => "in its startup grace".into(),
                    },
                    Awaiting::SuccessThreshold => match self.success_thresholds.get(name) {
                        Some(&k) if row.status == Some(Status::Pass) => {
                            format!("awaiting {k} passes in a row ({} so far)", row.consecutive)
                        }
                        Some(&k) => format!("awaiting {k} passes in a row"),
                        None => "awaiting its successThreshold".into(),
                    },
                    Awaiting::Soak => "soaking".into(),
                    other => format!("awaiting {}", other.as_str()),
                };
            }
        }
        match (&row.status, &row.reason) {
            (Some(Status::Fail), Some(r)) => r.clone(),
            (None, _) => "no result yet".into(),
            _ => String::new(),
        }
    }

    /// The table, one row per probe sorted by name: each row's cells.
    fn rows(&self) -> Vec<([String; 4], String)> {
        self.probes
            .iter()
            .map(|(name, row)| {
                let status = match row.status {
                    Some(Status::Pass) => "pass",
                    Some(Status::Fail) => "fail",
                    None => "-",
                };
                let consecutive = match row.status {
                    Some(_) => row.consecutive.to_string(),
                    None => "-".into(),
                };
                (
                    [
                        one_line(name),
                        row.mode.to_string(),
                        status.to_owned(),
                        consecutive,
                    ],
                    one_line(&self.detail(name, row)),
                )
            })
            .collect()
    }

    /// Widths of the first four columns.
    fn widths(rows: &[([String; 4], String)]) -> [usize; 4] {
        let mut w = [0; 4];
        for (i, title) in TITLES[..4].iter().enumerate() {
            w[i] = title.len();
        }
        for (cells, _) in rows {
            for (i, c) in cells.iter().enumerate() {
                w[i] = w[i].max(c.chars().count());
            }
        }
        w[0] = w[0].min(MAX_NAME);
        w
    }

    fn line(widths: &[usize], cells: &[String], detail: &str) -> String {
        let mut out = String::new();
        for (w, c) in widths.iter().zip(cells) {
            let c = cut(c, *w);
            out.push_str(&c);
            out.push_str(&" ".repeat(w - c.chars().count() + 2));
        }
        out.push_str(detail);
        out.trim_end().to_owned()
    }

    /// The whole screen: `header`, the column titles and the rows, each
    /// line cut to `width` columns, at most `height` lines. When the rows
    /// do not fit, failing and awaited probes are shown first and the last
    /// line says how many are left out.
    pub(crate) fn frame(&self, header: &[String], width: usize, height: usize) -> Vec<String> {
        let width = width.max(20);
        let mut out: Vec<String> = header.iter().map(|h| cut(h, width)).collect();
        if self.probes.is_empty() {
            return out;
        }
        let rows = self.rows();
        let widths = Self::widths(&rows);
        let titles: [String; 4] = std::array::from_fn(|i| TITLES[i].to_owned());
        out.push(cut(&Self::line(&widths, &titles, TITLES[4]), width));
        let room = height.saturating_sub(out.len()).max(1);
        let gating = |name: &str| {
            self.verdict.as_ref().is_some_and(|v| {
                v.failing.iter().any(|f| &*f.probe_name == name)
                    || v.awaiting.iter().any(|a| &*a.probe_name == name)
            })
        };
        let shown: Vec<&([String; 4], String)> = if rows.len() <= room {
            rows.iter().collect()
        } else {
            let names: Vec<&Arc<str>> = self.probes.keys().collect();
            let mut order: Vec<usize> = (0..rows.len()).collect();
            // Stable: name order within each group.
            order.sort_by_key(|&i| !gating(names[i]));
            let mut keep: Vec<usize> = order.into_iter().take(room - 1).collect();
            keep.sort_unstable();
            keep.iter().map(|&i| &rows[i]).collect()
        };
        for (cells, detail) in &shown {
            out.push(cut(&Self::line(&widths, cells, detail), width));
        }
        if shown.len() < rows.len() {
            out.push(cut(
                &format!("... {} more probes not shown", rows.len() - shown.len()),
                width,
            ));
        }
        out
    }

    /// Each probe's row as one line (not cut), by name: what the appended
    /// output compares to print only the rows that changed. The
    /// results-in-a-row column is left out, so a probe that keeps passing
    /// prints nothing more.
    pub(crate) fn plain_rows(&self) -> Vec<(Arc<str>, String)> {
        let rows = self.rows();
        let widths = Self::widths(&rows);
        self.probes
            .keys()
            .zip(rows)
            .map(|(name, (cells, detail))| {
                (name.clone(), Self::line(&widths[..3], &cells[..3], &detail))
            })
            .collect()
    }
}

/// `s` with its control characters escaped, so it prints as one line.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` cut to `width` characters, ending in `...` when it was cut.
pub(crate) fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    if width < 4 {
        return s.chars().take(width).collect();
    }
    let mut out: String = s.chars().take(width - 3).collect();
    out.push_str("...");
    out
}

/// Whole seconds, rounded up (a countdown shows 1 s until it is over).
pub(crate) fn secs_left(us: i64) -> u64 {
    if us <= 0 {
        0
    } else {
        (us as u64).div_ceil(1_000_000)
    }
}

#[cfg(test)]
pub(crate) mod tests;
