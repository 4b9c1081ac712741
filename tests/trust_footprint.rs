//! What the trust store costs at scale: RSS and reset time of 2,000 https
//! probes that trust the system store (`SSL_CERT_FILE`, else the
//! distribution's bundle). Ignored: it measures, it asserts nothing.
//!
//! ```text
//! cargo test --release --test trust_footprint -- --ignored --nocapture
//! ```
//!
//! The probes point at a loopback port nothing listens on, once an hour;
//! their first runs (refused at once) happen at the reset. Prints one JSON
//! line: RSS (after `malloc_trim`) before the engine, after the first reset
//! and after a second one, and how long each reset took from the call to
//! its topology event (the engine reads and prepares every probe in
//! between).

#![allow(clippy::disallowed_methods)] // a measurement reads the clock

mod common;

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use probewheel::{Builder, Event};

const PROBES: usize = 2000;

fn topology_of(rx: &Receiver<Event>, g: u64) {
    loop {
        let e = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("no topology within a minute");
        if e.generation() == g && e.name() == "topologyDeclared" {
            return;
        }
    }
}

#[test]
#[ignore = "a measurement: run it with --release --ignored --nocapture"]
fn rss_and_reset_time_of_2000_https_probes_on_the_system_store() {
    let dir = common::TempDir::new("trust-footprint");
    let mut probes = serde_json::Map::new();
    for i in 0..PROBES {
        probes.insert(
            format!("https-{i:04}"),
            serde_json::json!({
                "kind": "http", "mode": "observe", "intervalSeconds": 3600,
                "url": format!("https://127.0.0.1:1/{i}"),
            }),
        );
    }
    let path = dir.write(
        "health-checks.json",
        &serde_json::Value::Object(probes).to_string(),
    );
    let rss_before = common::rss_bytes();
    let (engine, rx) = Builder::new().declarations_path(&path).build().unwrap();
    let mut reset_ms = Vec::new();
    let mut rss = Vec::new();
    for g in 1..=2u64 {
        let start = Instant::now();
        assert_eq!(engine.reset(&format!("r{g}")).unwrap(), g);
        topology_of(&rx, g);
        reset_ms.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(engine.stats().unwrap().probes, PROBES as u64);
        rss.push(common::rss_bytes());
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{}",
        serde_json::json!({
            "probes": PROBES,
            "trust": std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| "system default".into()),
            "rss_mib_before_engine": mib(rss_before),
            "rss_mib_after_reset_1": mib(rss[0]),
            "rss_mib_after_reset_2": mib(rss[1]),
            "reset_1_ms": reset_ms[0],
            "reset_2_ms": reset_ms[1],
        })
    );
    engine.shutdown().unwrap();
}
