//! The `systemd` kind: a unit's state and restarts, and the host's failed
//! units, as `systemctl` reports them.
//!
//! A run is the exec kind's [`ExecRun`](crate::runner::exec::ExecRun) of
//! `systemctl show` (then, with `noFailedUnits`, of `systemctl list-units
//! --state=failed`), so it waits on a pidfd and a pipe, never a thread
//! (G13), and inherits the process-group kill, the timeout and the cancel
//! of an `exec` probe. `systemctl` rather than the manager's D-Bus
//! interface: no bus client in the binary, any systemd version, and the
//! machinery is the one `exec` probes already prove; the price is a
//! fork and exec per run.
//!
//! The restarts a probe counts are the ones since the reset: the engine
//! prepares every probe again at each reset, and the prepared probe keeps
//! what the previous run saw ([`restarts::Restarts`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::decl::{Declaration, Field, FieldError, expected};
use crate::runner::machine::{Machine, Run};
use crate::runner::{HostFacts, Kind, Prepared};

mod restarts;
mod run;
#[cfg(test)]
mod tests;

use restarts::Restarts;

/// The `systemd` kind.
pub(crate) struct SystemdKind;

impl Kind for SystemdKind {
    fn fields(&self) -> &'static [&'static [Field]] {
        &[FIELDS]
    }

    fn lint(&self, decl: &Declaration, warn: &mut dyn FnMut(&'static str, String)) {
        if decl.get("unit").is_none() {
            for field in ["expectActive", "maxRestarts"] {
                if decl.get(field).is_some() {
                    warn(
                        field,
                        "ignored without unit: the probe only looks for failed units".to_owned(),
                    );
                }
            }
        }
    }

    fn prepare(&self, decl: &Declaration, host: &HostFacts) -> Result<Prepared, FieldError> {
        Ok(Prepared::Machine(Arc::new(SystemdProbe::from_decl(
            decl, host,
        )?)))
    }
}

/// Its own fields, as `docs/declarations.md` lists them.
#[rustfmt::skip]
const FIELDS: &[Field] = &[
    Field::new("unit", "string: a unit name", "required unless `noFailedUnits`", "The unit to look at."),
    Field::new("expectActive", "string: `active`, `inactive`, `failed`, `activating`, `deactivating`, `reloading`, `maintenance` or `refreshing`", "`\"active\"`", "The `ActiveState` that passes."),
    Field::new("maxRestarts", "integer, 0 to 4294967295", "0", "How many times the unit may restart since the reset."),
    Field::new("noFailedUnits", "boolean", "false", "Also fail while any unit of the host is `failed`."),
];

/// The values of a unit's `ActiveState`.
const ACTIVE_STATES: &[&str] = &[
    "active",
    "inactive",
    "failed",
    "activating",
    "deactivating",
    "reloading",
    "maintenance",
    "refreshing",
];

/// The unit types; a name without one of them as its suffix is a service.
const UNIT_TYPES: &[&str] = &[
    "service",
    "socket",
    "target",
    "device",
    "mount",
    "automount",
    "swap",
    "timer",
    "path",
    "slice",
    "scope",
];

/// The longest unit name systemd accepts.
const MAX_UNIT_NAME: usize = 255;

/// What `systemctl show` is asked for.
const PROPERTIES: &str = "LoadState,ActiveState,SubState,Result,NRestarts,InvocationID";

/// How much of `systemctl`'s stdout a run keeps.
const STDOUT_BYTES: usize = 16 * 1024;

const PREFIX: &str = "systemd probe: ";
const CANCELLED: &str = "systemd probe: cancelled";

/// A prepared `systemd` probe: a [`Machine`] whose runs wait on the poll.
#[derive(Debug)]
struct SystemdProbe {
    spec: Arc<Spec>,
}

/// What a declaration says, and what the probe has seen since the reset.
#[derive(Debug)]
struct Spec {
    /// `systemctl`, or the path the embedding program set.
    program: String,
    /// The unit, suffix added, with its `systemctl show` argv.
    unit: Option<(String, Arc<[String]>)>,
    expect_active: String,
    max_restarts: u64,
    /// The `systemctl list-units --state=failed` argv, with `noFailedUnits`.
    failed: Option<Arc<[String]>>,
    timeout: Duration,
    /// Only runs of this probe (one at a time) take it.
    restarts: Mutex<Restarts>,
}

impl SystemdProbe {
    fn from_decl(decl: &Declaration, host: &HostFacts) -> Result<SystemdProbe, FieldError> {
        let no_failed_units = decl.bool_field("noFailedUnits")?.unwrap_or(false);
        let unit = match decl.str_field("unit")? {
            Some(unit) => Some(unit_name(unit)?),
            None if no_failed_units => None,
            None => {
                return Err(FieldError::new(
                    "unit",
                    "required field is missing (unless noFailedUnits is true)",
                ));
            }
        };
        let expect_active = match decl.get("expectActive") {
            None => "active",
            Some(Value::String(s)) if ACTIVE_STATES.contains(&s.as_str()) => s,
            Some(other) => {
                return Err(expected(
                    "expectActive",
                    "one of active, inactive, failed, activating, deactivating, reloading, \
                     maintenance, refreshing",
                    other,
                ));
            }
        };
        let max_restarts = decl
            .u64_in("maxRestarts", 0, u64::from(u32::MAX))?
            .unwrap_or(0);
        let timeout = Duration::from_secs(crate::runner::timeout_secs(decl)?);
        let program = host.systemctl().to_string_lossy().into_owned();
        let argv = |args: &[&str]| -> Arc<[String]> {
            std::iter::once(program.clone())
                .chain(args.iter().map(|a| (*a).to_owned()))
                .collect()
        };
        let property = format!("--property={PROPERTIES}");
        let unit = unit.map(|u| {
            let show = argv(&["show", "--no-pager", &property, &u]);
            (u, show)
        });
        let failed = no_failed_units.then(|| {
            argv(&[
                "list-units",
                "--state=failed",
                "--plain",
                "--no-legend",
                "--no-pager",
                "--full",
            ])
        });
        Ok(SystemdProbe {
            spec: Arc::new(Spec {
                program,
                unit,
                expect_active: expect_active.to_owned(),
                max_restarts,
                failed,
                timeout,
                restarts: Mutex::new(Restarts::default()),
            }),
        })
    }
}

impl Machine for SystemdProbe {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        Box::new(run::SystemdRun::new(Arc::clone(&self.spec), now))
    }
}

/// `unit`, checked, with `.service` added when it names no unit type
/// (systemctl's own rule: `nginx` is `nginx.service`).
fn unit_name(unit: &str) -> Result<String, FieldError> {
    let bad = |problem: &str| Err(FieldError::new("unit", problem));
    if unit.is_empty() {
        return bad("an empty unit name");
    }
    if unit.contains('\0') {
        return bad("contains a NUL byte");
    }
    if unit.contains('/') {
        return bad("contains a `/`: write the unit's name, not a path");
    }
    if unit.starts_with('-') {
        return bad("starts with `-`, which systemctl would read as an option");
    }
    if unit.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains white space or a control character");
    }
    if unit.contains(['*', '?', '[']) {
        return bad("contains a glob character (`*`, `?`, `[`): name one unit");
    }
    let typed = unit
        .rsplit_once('.')
        .is_some_and(|(name, ty)| !name.is_empty() && UNIT_TYPES.contains(&ty));
    let name = if typed {
        unit.to_owned()
    } else {
        format!("{unit}.service")
    };
    if name.len() > MAX_UNIT_NAME {
        return bad("longer than 255 bytes (with its suffix)");
    }
    Ok(name)
}
