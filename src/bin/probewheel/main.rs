//! `probewheel`: run, check, try or wait for the probes of a declarations
//! file.
//!
//! Events go to stdout as JSON Lines (written whenever the engine has no
//! more waiting, so a burst costs a few writes), logs to stderr (`RUST_LOG`).

#![deny(unsafe_code)]

mod args;
mod clock;
mod metrics;
mod once;
mod output;
mod run;
mod service;
mod signals;
mod stdin;
#[allow(unsafe_code)]
mod sys;
mod textfile;
mod view;
mod wait;
mod watch;

use std::process::ExitCode;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args::parse(&argv) {
        Ok(cmd) => cmd,
        Err(msg) => {
            eprintln!(
                "probewheel: {msg}\n\n{}\n(`probewheel --help` says more)",
                args::SYNOPSIS
            );
            return ExitCode::from(2);
        }
    };
    match cmd {
        args::Cmd::Help => {
            println!("{}\n\n{}", args::SYNOPSIS, args::DETAILS);
            ExitCode::SUCCESS
        }
        args::Cmd::Run(opts) => run::run(opts),
        args::Cmd::Check(opts) => run::check(opts),
        args::Cmd::Once(opts) => once::once(opts),
        args::Cmd::Wait(opts) => wait::wait(opts),
    }
}
