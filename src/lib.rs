//! probewheel: a health-probe engine for host agents without an async
//! runtime.
//!
//! An agent embeds the engine, points it at the host's declarations file
//! (`/etc/nixfleet/agent/health-checks.json` by default), resets it to a
//! rollout, and reads [`Event`]s from a `crossbeam_channel::Receiver` in its
//! own synchronous main loop. The engine also judges the rollout: each
//! generation gets a [`RolloutVerdict`] (pending, healthy, unhealthy or
//! rejected) from its `enforce` probes. Inside: one engine thread (a mio
//! poll loop holding a hierarchical timer wheel of probe deadlines,
//! sleeping on a timerfd until the next one), a small fixed pool of worker
//! threads that run the probes, and the event channel. No async runtime.
//!
//! This documentation is the manual: the declaration fields of every
//! built-in kind with their defaults are in the [`decl`] module; the
//! events, the rollout verdict and the guarantees (G1 to G14) follow
//! below.
//!
//! # An agent's main loop
//!
//! The complete, runnable version is `examples/agent.rs`
//! (`cargo run --example agent`); a probe kind of your own is
//! `examples/custom_kind.rs`.
//!
//! A reset returns the generation it starts. Act only on that
//! generation's verdict: events of the previous rollout may still be in
//! the channel right after the reset.
//!
//! ```no_run
//! use std::time::Duration;
//! use crossbeam_channel::{select, tick};
//! use probewheel::event::Verdict;
//! use probewheel::{Builder, Event};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (engine, events) = Builder::new()
//!         .declarations_path("/etc/nixfleet/agent/health-checks.json")
//!         .workers(2)
//!         .deadline(Duration::from_secs(300))
//!         .build()?;
//!     // A new closure was activated: probe it, and only it.
//!     let generation = engine.reset("stable@abc123")?;
//!     let heartbeat = tick(Duration::from_secs(60));
//!     loop {
//!         select! {
//!             recv(events) -> event => match event? {
//!                 Event::RolloutVerdict(v) if v.header.generation == generation => {
//!                     match v.verdict {
//!                         Verdict::Healthy => { /* the rollout may proceed */ }
//!                         Verdict::Unhealthy => eprintln!("rollout unhealthy: {}", v.reason),
//!                         // No topology: nothing can pass.
//!                         Verdict::Rejected => eprintln!("declarations rejected: {}", v.reason),
//!                         _ => { /* pending: `v.awaiting` says what for */ }
//!                     }
//!                 }
//!                 other => println!("{}", serde_json::to_string(&other)?),
//!             },
//!             recv(heartbeat) -> _ => {
//!                 let stats = engine.stats()?;
//!                 println!("p99 lateness {} us", stats.lateness_p99_us);
//!             }
//!         }
//!     }
//! }
//! ```
//!
//! An agent that only needs the answer blocks on it instead:
//!
//! ```no_run
//! use std::time::Duration;
//! use probewheel::event::Verdict;
//! use probewheel::{Builder, WaitError};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (engine, _events) = Builder::new().deadline(Duration::from_secs(300)).build()?;
//! let generation = engine.reset("stable@abc123")?;
//! match engine.wait_verdict(generation, Duration::from_secs(310)) {
//!     Ok(v) if v.verdict == Verdict::Healthy => println!("healthy: {}", v.reason),
//!     Ok(v) => eprintln!("{}: {}", v.verdict, v.reason), // unhealthy or rejected
//!     Err(WaitError::TimedOut(latest)) => eprintln!("no answer yet: {latest:?}"),
//!     Err(e) => eprintln!("{e}"), // superseded by a later reset, or stopped
//! }
//! # Ok(())
//! # }
//! ```
//!
#![doc = include_str!("../docs/events.md")]
//!
#![doc = include_str!("../docs/guarantees.md")]
//!
//! # How a run waits (G13)
//!
//! Each worker is itself a poll loop (mio, with a timerfd of its own for
//! exact starts). A built-in run (`tcp`, `http`, `exec`, `dns`, `icmp`,
//! `systemd`) is a state machine over non-blocking descriptors: a socket, a
//! pipe, a process descriptor (pidfd). The worker starts it at its slot, calls it again when one of
//! its descriptors is ready or its deadline comes, and in between it costs
//! a descriptor and a timer entry, never a thread. So one worker carries
//! any number of runs that wait, and a server that never answers, a child
//! that never exits or a name that never resolves delays no other probe.
//!
//! What holds a thread, and for how long:
//! - the engine thread and the workers ([`Builder::workers`], 2 by
//!   default), for the engine's life;
//! - name lookups (`getaddrinfo` cannot be interrupted): a resolver pool
//!   shared by every probe, at most four threads, started on demand and
//!   gone after 10 s idle; a probe stops waiting at its own deadline (for
//!   `tcp`, `connectTimeoutSecs`) and a lookup nobody waits for any more is
//!   skipped. [`Builder::resolver`] replaces `getaddrinfo`.
//! - a registered custom [`Check`]: its `run` may block, so by default
//!   ([`Placement::Blocking`]) each run in flight gets a thread of its own
//!   (at most [`engine::MAX_BLOCKING_THREADS`], started on demand, gone
//!   after [`engine::BLOCKING_IDLE`] idle), and a check that hangs holds
//!   only that thread. A check that never waits may say
//!   [`Placement::Inline`] (or be built with
//!   [`runner::FnRunner::inline`]) to run on a worker without a hand-off;
//!   `evidence` probes (local files, one signature check) run that way.
//!
//! # Decisions worth knowing
//!
//! - **Floor versus anchor.** The minimum interval floors the *period*: a
//!   probe's slots are `max(intervalSeconds, minimum interval)` apart,
//!   anchored at `start + k * period` (G7), and each run starts at its
//!   slot, never before. A late start does not move the next slot, so the
//!   next run may start less than the floor after a late one, and lateness
//!   never carries over: at an interval equal to the floor each run is as
//!   late as its own wake-up. (An earlier rule measured the floor from the
//!   previous *actual* start, so lateness built up tick after tick.)
//! - **`skippedTicks`** on a result counts the slots between this run's
//!   slot and the previous run's slot; with coalesced results the folded
//!   results' skips are added in.
//! - **Consumer behind (G9).** Events wait inside the engine in order; a
//!   waiting result is replaced by the probe's next one (`coalesced` counts
//!   them); a probe keeps at most one unsent `probeFailureFirst` (its time
//!   is updated to the newest edge, matching the `failingSince` of the
//!   result after it). `seq` is assigned when the channel accepts an event,
//!   so it never has gaps. Events of an old generation still waiting at a
//!   reset are dropped and counted in [`Stats::dropped_at_reset`]. A
//!   generation's first `rolloutVerdict` waits like a lifecycle event,
//!   right behind its topology; a later waiting verdict is replaced by the
//!   newest, which moves behind the results queued before it.
//! - **Receiver dropped.** Probes keep running; events are discarded and
//!   counted ([`Stats::dropped_no_receiver`]); one warning is logged.
//! - **Disabled beats invalid.** An invalid declaration whose mode is
//!   `disabled` is declared and never runs.
//! - **Huge intervals.** `intervalSeconds` above one year is an invalid
//!   declaration, not silently clamped.
//! - **Stuck custom checks.** Built-in runs are cancelled on their
//!   worker's next loop turn after a reset or shutdown (their sockets
//!   closed, their exec groups killed and reaped). A registered [`Check`]
//!   that ignores [`RunContext::is_cancelled`] cannot be interrupted: its
//!   result is recorded at its deadline (next point) and its probe's slots
//!   are skipped until it returns; shutdown gives it 800 ms, then leaves
//!   its thread behind (logged) so that shutdown still returns in time;
//!   what it returns is never sent.
//! - **Run deadlines (`timeoutSecs`).** A run of a registered kind (and of
//!   `evidence`) is bounded by its probe's `timeoutSecs` (default 10 s, 1
//!   to 86400), counted from its slot ([`RunContext::deadline`]). The
//!   engine thread keeps the deadline, next to the schedule, rather than
//!   the thread that runs the check: a check that hangs holds that thread
//!   (or, inline, its worker), and only the engine is sure to be awake. At
//!   the deadline the run's context reports it cancelled and the engine
//!   records the failed result `timed out after N s` at once (its
//!   `durationUs` is the timeout and its `latenessUs` 0: the engine does
//!   not see when a hung run really started). A check that has not
//!   returned keeps its probe's next slots skipped (G6, counted in
//!   `skippedTicks`) until it returns; what it returns then is discarded.
//!   `tcp`, `http` and `exec` bound their own runs (`connectTimeoutSecs`,
//!   `timeoutSecs`) and report their own timeouts; the engine adds no
//!   second bound to them.
//!
//! - **Early hand-over.** Runs due within the next 100 ms (at most a
//!   quarter of the minimum interval) are handed to the workers in one
//!   engine wake-up (one batch and at most one wake-up per worker; each
//!   probe always goes to the same worker); the worker starts each at its
//!   slot from its own timer. So a busy schedule
//!   costs the engine one wake-up per window, not one per run, and the
//!   G6 decision for a run is taken when it is handed over: a run still in
//!   flight at that point skips the next slot.
//! - **Bursts.** Runs that start at the same instant (every probe of a
//!   file without stagger) are started one after another by their worker,
//!   each with its own clock reading; a burst's tail is its length.
//! - **Results held briefly.** A finished run never wakes the engine at
//!   once: the engine takes it at its next wake-up, which the worker moves
//!   to at most the hand-over window (100 ms) after the run's end. A
//!   result event can be that much later than the run's end; in exchange a
//!   burst of results costs the engine one wake-up, and a busy schedule
//!   none beyond its hand-overs.
//! - **A passing `tcp` probe closes with a reset** (`SO_LINGER` 0) rather
//!   than the FIN exchange: no `TIME_WAIT` socket per run on the host, and
//!   less kernel work per probe.
//! - **Exec children** are killed as a whole process group at the end of
//!   every run (also after a normal exit), inherit no descriptor above
//!   stderr and no blocked signal, and with [`Builder::child_subreaper`]
//!   (on in the binary) even their killed grandchildren are reaped before
//!   the run returns. A run waits on its child through a pidfd and a
//!   non-blocking stderr pipe, not a thread. A file without `#!` fails
//!   (`Exec format error`); it is never handed to `/bin/sh`. The leader
//!   is killed if probewheel dies (`PR_SET_PDEATHSIG`, which fires when
//!   the worker thread that started it exits; workers live as long as the
//!   engine); its own children are not.
//! - **HTTP**: when `expectStatus` is itself a redirect code, redirects are
//!   not followed; only the first 64 KiB of a body are searched; `headers`
//!   replace the defaults of the same name (`Host` included).
//! - **TLS** (https, `tcp` with `tls: true`): trust is `caFile`, else the
//!   system bundle (`SSL_CERT_FILE`, then the usual paths), read once per
//!   reset; a `caFile` that cannot be used makes the declaration invalid;
//!   `connectTimeoutSecs` covers the handshake; no session resumption.
//! - **Evidence**: see the `runner::evidence` module (feature `evidence`;
//!   repeated keys refused, numbers as IEEE doubles per RFC 8785, files
//!   written less than 2 s ago are not cached).
//!
//! # Public surface
//!
//! The crate root holds the concepts: [`Builder`] and [`Engine`], the
//! [`Event`]s with the [`RolloutVerdict`], the runner traits
//! ([`Runner`], [`Check`], [`RunContext`], [`RunnerOutcome`]) and the
//! declarations as read-only values ([`Declaration`], [`Declarations`]).
//! Everything else public is in its module: [`runner::Registry`] (with the typed
//! [`runner::PrepareError`]), [`check`] (what `probewheel check`
//! reports), the engine's defaults in [`engine`]. The built-in kinds
//! ([`runner::Registry::builtin`] lists them) are reached only through
//! their kind names in a declarations file; their runners, defaults and
//! limits are not part of the API. Types that will grow (events, [`Stats`], errors, findings) are
//! `#[non_exhaustive]`: match them with a `_` arm.
//!
//! `serde_json` 1 is part of the public API in two places, on purpose:
//! [`Declaration::from_value`] takes a `serde_json::Value` and
//! [`Declaration::get`] returns one. A custom kind may read fields of any
//! shape (objects, arrays) and the declarations file is JSON, so a JSON
//! value is the honest type there; a wrapper of our own would only copy
//! serde_json's. The map a declaration keeps its fields in is not exposed
//! ([`Declaration::field_names`] lists them), and events expose only
//! serde's `Serialize` and `Deserialize`, no serde_json type. A
//! serde_json 2 would be a major version of probewheel.
//!
//! # Features
//!
//! - `cli` (default): the `probewheel` binary (adds `env_logger`).
//!   Embedders can use `default-features = false`.
//! - `evidence` (default): signed compliance evidence probes (adds
//!   `ed25519-dalek` and `base64`). Without it, `evidence` probes fail with
//!   a reason naming the feature.
//! - `tls` (default): https and `tcp` probes with `tls: true` (adds
//!   `rustls` with the `ring` provider). Without it, such declarations are
//!   invalid with a reason naming the feature.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
// Every OS call that needs `unsafe` is in `sys`; the one other place is the
// `pre_exec` child of exec probes, which must stay async-signal-safe.
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod check;
pub mod clock;
pub(crate) mod core;
pub mod decl;
pub mod engine;
pub mod event;
mod file;
pub mod runner;
mod sys;
mod text;
pub mod transport;
mod util;
mod vocab;

pub use crate::clock::Timestamp;
pub use crate::decl::{Declaration, Declarations, FieldError, Mode, Rejection};
pub use crate::engine::{Builder, Engine, EngineError, Stats, WaitError};
pub use crate::event::{Event, RolloutVerdict, Verdict};
pub use crate::runner::{
    Check, PerfUnit, Perfdata, Placement, RunContext, Runner, RunnerOutcome, Status, SubResult,
};
