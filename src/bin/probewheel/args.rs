//! Command-line parsing (README, "Command line"), by hand: a handful of flags do not
//! need a parser crate.

use std::path::PathBuf;
use std::time::Duration;

use probewheel::engine::{
    DEFAULT_DECLARATIONS_PATH, DEFAULT_EVENTS_CAPACITY, DEFAULT_MIN_INTERVAL, DEFAULT_WORKERS,
};

pub(crate) const USAGE: &str = "\
usage:
  probewheel run   [--config PATH] [--rollout ID] [--workers N] [--min-interval-ms MS]
                   [--events-capacity N] [--metrics-file PATH]
                   [--host-key PATH] [--hostname NAME]
  probewheel check [--config PATH]
  probewheel once  [--config PATH] [--workers N] [--host-key PATH] [--hostname NAME]

run: prints events as JSON Lines until SIGINT, SIGTERM, SIGQUIT or the `shutdown`
     command; SIGHUP resets to the current rollout, SIGUSR1 prints stats.
     stdin commands, one per line: `reset <rollout-id>`, `stats`, `shutdown`.
     A rollout id is 1-256 bytes of printable ASCII without spaces.
check: validates the file; exit 0 valid, 1 invalid probes, 2 file rejected.
once: runs every non-disabled probe once; exit 0 iff every enforce probe passed.
Exit 3 (any command): stdout was closed or full.";

/// Largest `--events-capacity`: the channel's slots are reserved up front.
pub(crate) const MAX_EVENTS_CAPACITY: u64 = 65536;

#[derive(Debug)]
pub(crate) enum Cmd {
    Help,
    Run(Opts),
    Check(Opts),
    Once(Opts),
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
        ],
        "check" => &["--config"],
        "once" => &["--config", "--workers", "--host-key", "--hostname"],
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
            _ => unreachable!("checked against the allowed list"),
        }
    }
    Ok(match sub.as_str() {
        "run" => Cmd::Run(opts),
        "check" => Cmd::Check(opts),
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
}
