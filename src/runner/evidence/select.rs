//! Which controls a probe judges, in which mode: the declaration's
//! `framework`/`controlOverrides` or `controls`, turned into sub-result rows
//! and a verdict.

use std::collections::BTreeMap;

use serde_json::Value;

use super::document::{Evidence, short};
use crate::decl::{self, Mode};
use crate::decl::{Declaration, FieldError};
use crate::runner::{RunnerOutcome, Status, SubResult};

/// Framework name of the rows of a control that lists no framework.
pub(crate) const CUSTOM_FRAMEWORK: &str = "custom";

/// How many failing control ids a failure reason names before "and N more".
const LISTED_IDS: usize = 5;

/// A control's declared mode, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ControlMode {
    pub(crate) mode: Mode,
    pub(crate) reason: Option<String>,
}

/// What a probe selects from the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Every control that covers `name`, in the probe's mode unless
    /// overridden.
    Framework {
        name: String,
        overrides: BTreeMap<String, ControlMode>,
    },
    /// Only the listed controls, each in its own mode.
    Controls(BTreeMap<String, ControlMode>),
}

impl Selection {
    /// Reads `framework`, `controls` and `controlOverrides`.
    pub(crate) fn from_decl(d: &Declaration) -> Result<Selection, FieldError> {
        let framework = d.str_field("framework")?;
        let controls = control_modes(d, "controls")?;
        let overrides = control_modes(d, "controlOverrides")?;
        match framework {
            Some(_) if !controls.is_empty() => Err(FieldError::new(
                "controls",
                "set exactly one of `framework` and `controls`, not both",
            )),
            Some("") => Err(FieldError::new("framework", "must not be empty")),
            Some(name) => Ok(Selection::Framework {
                name: name.to_owned(),
                overrides,
            }),
            None if controls.is_empty() => Err(FieldError::new(
                "framework",
                "an evidence probe needs exactly one of `framework` (a string) or \
                 `controls` (a non-empty object of id -> {mode, reason})",
            )),
            // Silently ignoring overrides would judge controls in modes
            // nobody meant.
            None if !overrides.is_empty() => Err(FieldError::new(
                "controlOverrides",
                "applies only with `framework`; with `controls`, set each control's mode there",
            )),
            None => Ok(Selection::Controls(controls)),
        }
    }

    /// The sub-result rows for `evidence`, sorted by control id, framework,
    /// article; disabled controls are left out.
    pub(crate) fn rows(&self, probe_mode: Mode, evidence: &Evidence) -> Selected {
        let mut rows = Vec::new();
        let mut missing = Vec::new();
        match self {
            Selection::Framework { name, overrides } => {
                for (id, control) in &evidence.controls {
                    let Some(articles) = control.frameworks.get(name) else {
                        continue;
                    };
                    let (mode, reason) = match overrides.get(id) {
                        Some(o) => (o.mode, o.reason.clone()),
                        None => (probe_mode, None),
                    };
                    if mode == Mode::Disabled {
                        continue;
                    }
                    push_rows(&mut rows, id, control.passed, name, articles, mode, &reason);
                }
            }
            Selection::Controls(listed) => {
                for (id, want) in listed {
                    if want.mode == Mode::Disabled {
                        continue;
                    }
                    let Some(control) = evidence.controls.get(id) else {
                        if want.mode == Mode::Enforce {
                            missing.push(id.clone());
                        }
                        continue;
                    };
                    if control.frameworks.is_empty() {
                        push_rows(
                            &mut rows,
                            id,
                            control.passed,
                            CUSTOM_FRAMEWORK,
                            &[],
                            want.mode,
                            &want.reason,
                        );
                    }
                    for (framework, articles) in &control.frameworks {
                        push_rows(
                            &mut rows,
                            id,
                            control.passed,
                            framework,
                            articles,
                            want.mode,
                            &want.reason,
                        );
                    }
                }
            }
        }
        Selected {
            rows,
            missing_enforced: missing,
        }
    }

    /// What an empty selection means, for the failure reason.
    fn nothing_selected(&self) -> String {
        match self {
            Selection::Framework { name, .. } => format!(
                "no enabled control covers framework {:?} (check the collector's \
                 frameworkArticles or the probe's framework and controlOverrides)",
                short(name)
            ),
            Selection::Controls(_) => "none of the listed controls is enabled and present \
                                       (check the probe's controls against the collector's controlIds)"
                .to_owned(),
        }
    }
}

/// One (control, framework) pair as rows: one per article, or one without
/// an article when the list is empty.
fn push_rows(
    rows: &mut Vec<SubResult>,
    id: &str,
    passed: bool,
    framework: &str,
    articles: &[String],
    mode: Mode,
    reason: &Option<String>,
) {
    let row = |article: Option<&String>| SubResult {
        control_id: id.to_owned(),
        status: if passed { Status::Pass } else { Status::Fail },
        framework: framework.to_owned(),
        article: article.cloned(),
        effective_mode: mode,
        override_reason: reason.clone(),
    };
    if articles.is_empty() {
        rows.push(row(None));
    }
    rows.extend(articles.iter().map(|a| row(Some(a))));
}

/// The rows of one run, and the enforce controls the probe lists that the
/// evidence does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    pub(crate) rows: Vec<SubResult>,
    pub(crate) missing_enforced: Vec<String>,
}

impl Selected {
    /// Pass iff every enforce row passes, no listed enforce control is
    /// missing, and there is at least one row. `file` names the evidence
    /// file in reasons.
    pub(crate) fn verdict(self, selection: &Selection, file: &str) -> RunnerOutcome {
        let mut failing: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| r.effective_mode == Mode::Enforce && r.status == Status::Fail)
            .map(|r| r.control_id.as_str())
            .collect();
        failing.dedup(); // rows are sorted by control id
        let mut problems = Vec::new();
        if !failing.is_empty() {
            problems.push(format!(
                "enforce controls failing in {file}: {}",
                list_ids(&failing)
            ));
        }
        if !self.missing_enforced.is_empty() {
            let missing: Vec<&str> = self.missing_enforced.iter().map(String::as_str).collect();
            problems.push(format!(
                "enforce controls missing from {file}: {}",
                list_ids(&missing)
            ));
        }
        if problems.is_empty() && self.rows.is_empty() {
            problems.push(format!("{file}: {}", selection.nothing_selected()));
        }
        let outcome = if problems.is_empty() {
            RunnerOutcome::pass()
        } else {
            RunnerOutcome::fail(format!("evidence probe: {}", problems.join("; ")))
        };
        outcome.with_sub_results(self.rows)
    }
}

fn list_ids(ids: &[&str]) -> String {
    let mut s = ids
        .iter()
        .take(LISTED_IDS)
        .map(|id| short(id))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > LISTED_IDS {
        s.push_str(&format!(" and {} more", ids.len() - LISTED_IDS));
    }
    s
}

/// Reads an object of control id -> `{mode, reason}`; absent or `null` is
/// empty. Unknown mode strings mean enforce (fail closed).
fn control_modes(
    d: &Declaration,
    field: &str,
) -> Result<BTreeMap<String, ControlMode>, FieldError> {
    let mut out = BTreeMap::new();
    let Some(v) = d.get(field) else {
        return Ok(out);
    };
    let Value::Object(map) = v else {
        return Err(decl::expected(
            field,
            "an object of control id -> {mode, reason}",
            v,
        ));
    };
    for (id, entry) in map {
        let problem =
            |what: &str| FieldError::new(field, format!("control {:?}: {what}", short(id)));
        let Value::Object(entry) = entry else {
            return Err(problem("expected an object {mode, reason}"));
        };
        let mode = match entry.get("mode") {
            Some(Value::String(s)) => Mode::from_name(s).unwrap_or(Mode::Enforce),
            None | Some(Value::Null) => return Err(problem("`mode` is missing")),
            Some(_) => return Err(problem("`mode` must be a string")),
        };
        let reason = match entry.get("reason") {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(problem("`reason` must be a string")),
        };
        out.insert(id.clone(), ControlMode { mode, reason });
    }
    Ok(out)
}
