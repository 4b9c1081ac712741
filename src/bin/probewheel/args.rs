//! Command-line parsing (README, "Command line"), by hand: a handful of
//! flags do not need a parser crate.

use std::path::PathBuf;
use std::time::Duration;

use probewheel::engine::{
    DEFAULT_DECLARATIONS_PATH, DEFAULT_EVENTS_CAPACITY, DEFAULT_MIN_INTERVAL, DEFAULT_WORKERS,
};

/// The synopsis, printed after an argument error (then `--help` for the
/// rest).
pub(crate) const SYNOPSIS: &str = "\
usage:
  probewheel run   [--config PATH] [--rollout ID] [--workers N] [--min-interval-ms MS]
                   [--events-capacity N] [--metrics-file PATH] [--soak SECS]
                   [--deadline SECS] [--host-key PATH] [--hostname NAME]
  probewheel wait  [--config PATH] [--rollout ID] [--soak SECS] [--deadline SECS]
                   [--format text|json] [--workers N] [--min-interval-ms MS]
                   [--host-key PATH] [--hostname NAME]
  probewheel once  [--config PATH] [--format text|json] [--workers N]
                   [--host-key PATH] [--hostname NAME]
  probewheel check [--config PATH]";

/// What each command does and its exit statuses, after the synopsis in
/// `--help`.
pub(crate) const DETAILS: &str = "\
run: the service. Prints events as JSON Lines until SIGINT, SIGTERM, SIGQUIT or
     the `shutdown` command (exit 0); SIGHUP resets to the current rollout,
     SIGUSR1 prints stats. stdin commands, one per line: `reset <rollout-id>`,
     `stats`, `shutdown`. A missing --config file means no probes are declared.
     --soak and --deadline set the rules of the rolloutVerdict events it prints
     (default: no soak, no deadline); --metrics-file writes Prometheus text.
wait: the gate of a deployment script. Runs the probes on their schedule and
     exits at the first decided verdict of its rollout:
       0  healthy: every enforce probe passes, and has for the whole soak
       1  unhealthy: an enforce probe fails outside its startup grace, or the
          deadline (default 300 s) passed first
       2  the file is rejected or missing, or the arguments are wrong
       3  stdout was closed or full
       128+N  stopped by signal N before a verdict (130 SIGINT, 143 SIGTERM)
     --soak SECS: how long every enforce probe must keep passing (default 0).
once: runs every non-disabled probe once, all at the same time on the
     engine's --workers threads (each after its initialDelaySeconds); exit 0
     iff every enforce probe passed, 1 otherwise (also for a rejected file or
     an interrupt), 2 missing file or wrong arguments.
check: validates the file; exit 0 valid, 1 invalid probes, 2 file rejected or
     missing.
--format (wait, once): `text`, a live table of the probes (redrawn in place on
     a terminal, appended lines on changes otherwise) ending with one line
     that says the verdict and why; or `json`, the events as JSON Lines as run
     prints them. Default: text when stdout is a terminal, json otherwise.
--config defaults to /etc/nixfleet/agent/health-checks.json; --rollout to `local`.
A rollout id is 1-256 bytes of printable ASCII without spaces.
Exit 3 (any command): stdout was closed or full.";

/// Largest `--events-capacity`: the library's bound (the channel's slots
/// are reserved up front).
pub(crate) const MAX_EVENTS_CAPACITY: u64 = probewheel::engine::MAX_EVENTS_CAPACITY as u64;

/// `wait`'s deadline when `--deadline` is not given.
pub(crate) const DEFAULT_WAIT_DEADLINE: Duration = Duration::from_secs(300);

/// Longest `--soak` and `--deadline`: one day.
const MAX_VERDICT_SECS: u64 = 86_400;

/// How `wait` and `once` print what happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The probe table for a person.
    Text,
    /// The events as JSON Lines.
    Json,
}

#[derive(Debug)]
pub(crate) enum Cmd {
    Help,
    Run(Opts),
    Check(Opts),
    Once(Opts),
    Wait(Opts),
}

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) config: PathBuf,
    pub(crate) rollout: String,
    pub(crate) workers: usize,
    pub(crate) min_interval: Duration,
    pub(crate) events_capacity: usize,
    pub(crate) metrics_file: Option<PathBuf>,
    pub(crate) host_key: Option<PathBuf>,
    pub(crate) hostname: Option<String>,
    /// `--soak`: none given is no soak.
    pub(crate) soak: Option<Duration>,
    /// `--deadline`: none given is no deadline (`wait` applies its default).
    pub(crate) deadline: Option<Duration>,
    /// `--format`: none given is chosen by what stdout is.
    pub(crate) format: Option<Format>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            config: PathBuf::from(DEFAULT_DECLARATIONS_PATH),
            rollout: "local".to_owned(),
            workers: DEFAULT_WORKERS,
            min_interval: DEFAULT_MIN_INTERVAL,
            events_capacity: DEFAULT_EVENTS_CAPACITY,
            metrics_file: None,
            host_key: None,
            hostname: None,
            soak: None,
            deadline: None,
            format: None,
        }
    }
}

pub(crate) fn parse(argv: &[String]) -> Result<Cmd, String> {
    let Some((sub, rest)) = argv.split_first() else {
        return Err("missing command".into());
    };
    let allowed: &[&str] = match sub.as_str() {
        "-h" | "--help" | "help" => return Ok(Cmd::Help),
        "run" => &[
            "--config",
            "--rollout",
            "--workers",
            "--min-interval-ms",
            "--events-capacity",
            "--metrics-file",
            "--host-key",
            "--hostname",
            "--soak",
            "--deadline",
        ],
        "wait" => &[
            "--config",
            "--rollout",
            "--soak",
            "--deadline",
            "--format",
            "--workers",
            "--min-interval-ms",
            "--host-key",
            "--hostname",
        ],
        "check" => &["--config"],
        "once" => &[
            "--config",
            "--format",
            "--workers",
            "--host-key",
            "--hostname",
        ],
        other => return Err(format!("unknown command {other:?}")),
    };
    let mut opts = Opts::default();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Cmd::Help);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag.as_str(), None),
        };
        if !allowed.contains(&name) {
            return Err(format!("{sub}: unknown option {name:?}"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))?,
        };
        match name {
            "--config" => opts.config = PathBuf::from(value),
            "--rollout" => opts.rollout = rollout_id(&value).map_err(|e| format!("{name}: {e}"))?,
            "--workers" => opts.workers = number(name, &value, 1, 256)? as usize,
            "--min-interval-ms" => {
                opts.min_interval = Duration::from_millis(number(name, &value, 1, u32::MAX as u64)?)
            }
            "--events-capacity" => {
                opts.events_capacity = number(name, &value, 1, MAX_EVENTS_CAPACITY)? as usize
            }
            "--metrics-file" => opts.metrics_file = Some(PathBuf::from(value)),
            "--host-key" => opts.host_key = Some(PathBuf::from(value)),
            "--hostname" => opts.hostname = Some(non_empty(name, value)?),
            "--soak" => {
                opts.soak = Some(Duration::from_secs(number(
                    name,
                    &value,
                    0,
                    MAX_VERDICT_SECS,
                )?))
            }
            "--deadline" => {
                opts.deadline = Some(Duration::from_secs(number(
                    name,
                    &value,
                    1,
                    MAX_VERDICT_SECS,
                )?))
            }
            "--format" => {
                opts.format = Some(match value.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    _ => return Err(format!("{name} takes text or json, got {value:?}")),
                })
            }
            _ => unreachable!("checked against the allowed list"),
        }
    }
    Ok(match sub.as_str() {
        "run" => Cmd::Run(opts),
        "check" => Cmd::Check(opts),
        "wait" => Cmd::Wait(Opts {
            deadline: opts.deadline.or(Some(DEFAULT_WAIT_DEADLINE)),
            ..opts
        }),
        _ => Cmd::Once(opts),
    })
}

fn number(name: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "{name} takes an integer from {min} to {max}, got {value:?}"
        )),
    }
}

/// Checks a rollout id by the library's rule (the one `Engine::reset`
/// applies): 1-256 bytes of printable ASCII, no spaces.
pub(crate) fn rollout_id(id: &str) -> Result<String, String> {
    probewheel::engine::validate_rollout_id(id).map_err(|e| e.to_string())?;
    Ok(id.to_owned())
}

fn non_empty(name: &str, value: String) -> Result<String, String> {
    if value.trim().is_empty() {
        Err(format!("{name} must not be empty"))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn run_flags() {
        let Cmd::Run(o) = parse(&argv(
            "run --config /x.json --rollout r1 --workers 3 --min-interval-ms 250 --events-capacity=8",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.config, PathBuf::from("/x.json"));
        assert_eq!(o.rollout, "r1");
        assert_eq!(o.workers, 3);
        assert_eq!(o.min_interval, Duration::from_millis(250));
        assert_eq!(o.events_capacity, 8);
    }

    #[test]
    fn rollout_ids() {
        assert!(rollout_id("stable@abc-1.2_x").is_ok());
        for bad in ["", "a b", "a\tb", "é", "a\u{7f}"] {
            assert!(rollout_id(bad).is_err(), "{bad:?}");
        }
        assert!(rollout_id(&"x".repeat(5_000_000)).unwrap_err().len() < 300);
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(parse(&argv("run --workers 0")).is_err());
        assert!(parse(&argv("run --workers")).is_err());
        assert!(parse(&argv("check --rollout x")).is_err());
        assert!(parse(&argv("run --bogus 1")).is_err());
        assert!(parse(&argv("frob")).is_err());
        assert!(parse(&argv("run --events-capacity 65537")).is_err());
        assert!(parse(&argv("run --events-capacity 65536")).is_ok());
        assert!(parse(&argv("run --events-capacity 0")).is_err());
        assert!(parse(&argv("check --metrics-file x")).is_err());
        assert!(parse(&[String::from("run"), String::from("--rollout=a b")]).is_err());
        assert!(parse(&[String::from("run"), "--rollout".into(), "r".repeat(257)]).is_err());
        assert!(parse(&[String::from("run"), "--rollout".into(), "r".repeat(256)]).is_ok());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn wait_flags_and_defaults() {
        let Cmd::Wait(o) = parse(&argv(
            "wait --config /x.json --rollout r2 --soak 30 --deadline=60 --format json \
             --workers 1 --min-interval-ms 100 --host-key /k.pub --hostname h",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.config, PathBuf::from("/x.json"));
        assert_eq!(o.rollout, "r2");
        assert_eq!(o.soak, Some(Duration::from_secs(30)));
        assert_eq!(o.deadline, Some(Duration::from_secs(60)));
        assert_eq!(o.format, Some(Format::Json));
        assert_eq!(o.workers, 1);
        assert_eq!(o.min_interval, Duration::from_millis(100));
        assert_eq!(o.host_key, Some(PathBuf::from("/k.pub")));
        assert_eq!(o.hostname.as_deref(), Some("h"));

        let Cmd::Wait(o) = parse(&argv("wait")).unwrap() else {
            panic!()
        };
        assert_eq!(o.deadline, Some(DEFAULT_WAIT_DEADLINE));
        assert_eq!(o.soak, None);
        assert_eq!(o.format, None, "chosen by what stdout is");
        assert_eq!(o.rollout, "local");
    }

    #[test]
    fn soak_deadline_and_format_are_checked() {
        let Cmd::Run(o) = parse(&argv("run --soak 0 --deadline 86400")).unwrap() else {
            panic!()
        };
        assert_eq!(o.soak, Some(Duration::ZERO));
        assert_eq!(o.deadline, Some(Duration::from_secs(86_400)));
        let Cmd::Run(o) = parse(&argv("run")).unwrap() else {
            panic!()
        };
        assert_eq!(
            (o.soak, o.deadline),
            (None, None),
            "run has no default deadline"
        );
        let Cmd::Once(o) = parse(&argv("once --format text")).unwrap() else {
            panic!()
        };
        assert_eq!(o.format, Some(Format::Text));

        let err = parse(&argv("wait --deadline 0")).unwrap_err();
        assert!(
            err.contains("--deadline takes an integer from 1 to 86400"),
            "{err}"
        );
        let err = parse(&argv("wait --format yaml")).unwrap_err();
        assert_eq!(err, "--format takes text or json, got \"yaml\"");
        for bad in [
            "wait --soak -1",
            "wait --soak 86401",
            "wait --soak",
            "wait --deadline 1.5",
            "wait --events-capacity 8",
            "wait --metrics-file /m.prom",
            "once --soak 1",
            "once --rollout r",
            "check --format json",
            "run --format json",
        ] {
            assert!(parse(&argv(bad)).is_err(), "{bad}");
        }
    }
}
