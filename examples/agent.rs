//! A host agent's main loop: synchronous, one `select!` over the engine's
//! events, a rollout channel, a heartbeat and a deadline.
//!
//! The agent resets the engine to a rollout and reports the engine's
//! `rolloutVerdict` events of the generation that reset started (the
//! engine sends one whenever the verdict or the probes holding it change).
//! A second rollout arrives after `--rollout-after` seconds (in a real
//! agent: a new closure was activated); the reset starts a new generation,
//! and verdicts of the old one still in the channel are skipped. A
//! heartbeat prints the engine's counters.
//!
//! ```sh
//! cargo run --example agent -- [--config PATH] [--seconds N] [--rollout-after S] [--heartbeat-ms MS]
//! ```
//!
//! Defaults: `examples/health-checks.json`, run until killed, a second
//! rollout after 5 s, a heartbeat every 10 s. Output: one line per
//! verdict change, reset and heartbeat, on stdout.

use std::error::Error;
use std::time::Duration;

use crossbeam_channel::{after, never, select, tick};
use probewheel::engine::ErrorKind;
use probewheel::{Builder, Event};

struct Opts {
    config: String,
    seconds: Option<u64>,
    rollout_after: u64,
    heartbeat: Duration,
}

fn parse_args() -> Result<Opts, String> {
    let mut opts = Opts {
        config: concat!(env!("CARGO_MANIFEST_DIR"), "/examples/health-checks.json").into(),
        seconds: None,
        rollout_after: 5,
        heartbeat: Duration::from_secs(10),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: expected a whole number, got {v:?}"))
        };
        match flag.as_str() {
            "--config" => opts.config = value()?,
            "--seconds" => opts.seconds = Some(number(value()?)?),
            "--rollout-after" => opts.rollout_after = number(value()?)?,
            "--heartbeat-ms" => opts.heartbeat = Duration::from_millis(number(value()?)?.max(1)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn main() -> Result<(), Box<dyn Error>> {
    let opts = parse_args().unwrap_or_else(|e| {
        eprintln!("agent: {e}\nusage: agent [--config PATH] [--seconds N] [--rollout-after S] [--heartbeat-ms MS]");
        std::process::exit(2)
    });
    let (engine, events) = Builder::new()
        .declarations_path(&opts.config)
        .workers(2)
        .build()?;

    let mut rollout = 1;
    let mut generation = engine.reset(&format!("demo@{rollout}"))?;
    println!("agent: reset to rollout demo@{rollout}");

    // Where a real agent learns of a new activation; here, a timer.
    let next_rollout = after(Duration::from_secs(opts.rollout_after));
    let heartbeat = tick(opts.heartbeat);
    let deadline = opts
        .seconds
        .map_or_else(never, |s| after(Duration::from_secs(s)));

    loop {
        select! {
            recv(events) -> event => {
                let event: Event = event?;
                match &event {
                    Event::ProbeResult(r) => {
                        let reason = r.failure_reason.as_deref().unwrap_or("");
                        println!("agent: result {} {} {} {reason}", r.probe_name, r.mode, r.status);
                    }
                    // Only the verdict of the generation our latest reset
                    // started; an older rollout's straggler is skipped.
                    Event::RolloutVerdict(v) if v.header.generation == generation => {
                        println!(
                            "agent: verdict rollout={} generation={generation}: {}: {}",
                            v.header.rollout_id, v.verdict, v.reason
                        );
                    }
                    _ => {}
                }
            },
            recv(next_rollout) -> _ => {
                rollout += 1;
                generation = engine.reset(&format!("demo@{rollout}"))?;
                println!("agent: reset to rollout demo@{rollout}");
            },
            recv(heartbeat) -> _ => match engine.stats() {
                Ok(s) => println!(
                    "agent: heartbeat generation={} probes={} results={} events={} p99_lateness_us={}",
                    s.generation, s.probes, s.results, s.events_sent, s.lateness_p99_us
                ),
                // Running, but slow to answer (a long reset): skip a beat.
                Err(e) if e.kind() == ErrorKind::Busy => println!("agent: heartbeat skipped: {e}"),
                Err(e) => return Err(e.into()),
            },
            recv(deadline) -> _ => break,
        }
    }
    let last = engine
        .verdict(generation)
        .map_or_else(|| "none yet".to_owned(), |v| v.verdict.to_string());
    engine.shutdown()?;
    println!("agent: stopped; generation={generation} verdict: {last}");
    Ok(())
}
