//! probewheel: a health-probe engine for host agents without an async
//! runtime.
//!
//! An agent embeds the engine, points it at the host's declarations file
//! (`/etc/nixfleet/agent/health-checks.json` by default), resets it to a
//! rollout, and reads [`Event`]s from a `crossbeam_channel::Receiver` in its
//! own synchronous main loop. Inside: one engine thread (a mio poll loop
//! holding a hierarchical timer wheel of probe deadlines, sleeping on a
//! timerfd until the next one), a small fixed pool of worker threads that
//! run the probes, and the event channel. No async runtime.
//!
//! # An agent's main loop
//!
//! ```no_run
//! use std::time::Duration;
//! use crossbeam_channel::{select, tick};
//! use probewheel::{Builder, Event, Mode, Status};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let (engine, events) = Builder::new()
//!         .declarations_path("/etc/nixfleet/agent/health-checks.json")
//!         .workers(2)
//!         .build()?;
//!     // A new closure was activated: probe it, and only it.
//!     engine.reset("stable@abc123")?;
//!     let heartbeat = tick(Duration::from_secs(60));
//!     loop {
//!         select! {
//!             recv(events) -> event => match event? {
//!                 Event::TopologyDeclared(t) => {
//!                     println!("rollout {} declares {} probes", t.header.rollout_id, t.probes.len());
//!                 }
//!                 Event::DeclarationsRejected(r) => {
//!                     // No topology: a gate waiting for one holds.
//!                     eprintln!("declarations rejected: {}", r.reason);
//!                 }
//!                 Event::ProbeResult(r) if r.mode == Mode::Enforce && r.status == Status::Fail => {
//!                     eprintln!("{} gates the rollout: {:?}", r.probe_name, r.failure_reason);
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
//! # What the engine guarantees
//!
//! The contract is DESIGN.md §4 (G1–G12); in short: the topology (or a
//! rejection) is the first event of every generation; once an event of a
//! new generation is out, nothing of an older one follows, and runs in
//! flight are cancelled (their `exec` process groups killed and reaped);
//! lifecycle events come before the results they announce; disabled probes
//! never run; no two runs of a probe start closer than the minimum interval
//! (5 s by default); one run in flight per probe; slots are anchored at
//! `start + k * interval` and missed ones are skipped, never burst;
//! `runOnce` runs once per generation; the engine never waits on the event
//! channel; shutdown returns within a second and leaves no thread, child or
//! event behind; topology order is by probe name; an idle engine sleeps.
//!
//! # Decisions where the contract is silent
//!
//! - **Floor versus anchor.** When the previous run started late, the next
//!   slot may be less than the minimum interval after it. The run then
//!   waits for the floor, as long as that puts it at most 10 ms past its
//!   slot; beyond that the slot is skipped (counted in `skippedTicks`). So
//!   G5 holds exactly, and at an interval equal to the floor lateness
//!   builds up (by each start's jitter) to at most 10 ms, then one slot is
//!   skipped.
//! - **`skippedTicks`** on a result counts the slots between this run's
//!   slot and the previous run's slot; with coalesced results the folded
//!   results' skips are added in.
//! - **Consumer behind (G9).** Events wait inside the engine in order; a
//!   waiting result is replaced by the probe's next one (`coalesced` counts
//!   them); a probe keeps at most one unsent `probeFailureFirst` (its time
//!   is updated to the newest edge, matching the `failingSince` of the
//!   result after it). `seq` is assigned when the channel accepts an event,
//!   so it never has gaps. Events of an old generation still waiting at a
//!   reset are dropped and counted in [`Stats::dropped_at_reset`].
//! - **Receiver dropped.** Probes keep running; events are discarded and
//!   counted ([`Stats::dropped_no_receiver`]); one warning is logged.
//! - **Disabled beats invalid.** An invalid declaration whose mode is
//!   `disabled` is declared and never runs.
//! - **Huge intervals.** `intervalSeconds` above one year is an invalid
//!   declaration, not silently clamped.
//! - **Stuck custom checks.** Built-in runners return within 10 ms of a
//!   cancellation. A registered [`Check`] that ignores
//!   [`RunContext::is_cancelled`] cannot be interrupted: shutdown gives it
//!   800 ms, then leaves its worker thread behind (logged) so that shutdown
//!   still returns in time; its result is never sent.
//!
//! - **Early hand-over.** Runs due within the next 100 ms (at most a
//!   quarter of the minimum interval) are handed to the pool in one engine
//!   wake-up; the worker waits for the slot itself. So a busy schedule
//!   costs the engine one wake-up per window, not one per run, and the
//!   G6 and G5 decisions for a run are taken when it is handed over: a run
//!   still in flight at that point skips the next slot.
//! - **Bursts.** Runs that start at the same instant (every probe of a
//!   file without stagger) are handed over in chunks of 32 that the
//!   workers share; a worker stuck in a check holds up only its own run.
//!   Within a chunk, the clock reading that ends one run starts the next
//!   on the same worker (the time between is a fraction of a microsecond,
//!   the unit of `latenessUs`).
//! - **Results held briefly.** A finished run never wakes the engine at
//!   once: the engine takes it at its next wake-up, which the worker moves
//!   to at most the hand-over window (100 ms) after the run's end. A
//!   result event can be that much later than the run's end; in exchange a
//!   burst of results costs the engine one wake-up, and a busy schedule
//!   none beyond its hand-overs.
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
//!   not followed; only the first 64 KiB of a body are searched; `https://`
//!   fails naming the missing TLS support.
//! - **Evidence**: see [`runner::evidence`] (repeated keys refused, numbers
//!   as IEEE doubles per RFC 8785, files written less than 2 s ago are not
//!   cached).
//!
//! # Features
//!
//! - `cli` (default): the `probewheel` binary (adds `env_logger`).
//!   Embedders can use `default-features = false`.
//! - `evidence` (default): signed compliance evidence probes (adds
//!   `ed25519-dalek` and `base64`). Without it, `evidence` probes fail with
//!   a reason naming the feature.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

pub mod clock;
pub(crate) mod core;
pub mod decl;
pub mod engine;
pub mod event;
pub mod runner;
pub mod transport;

pub use crate::clock::Timestamp;
pub use crate::decl::{Declaration, Declarations, FieldError, Mode, Rejection};
pub use crate::engine::{Builder, Engine, EngineError, Stats};
pub use crate::event::Event;
pub use crate::runner::{Check, RunContext, Runner, RunnerOutcome, Status, SubResult};
