//! `Builder::pin_workers`: each worker runs on one CPU of the process's
//! set, a different one per worker while there are enough; unpinned
//! workers keep the whole set.

#![cfg(target_os = "linux")]
#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::time::Duration;

use common::{Fake, collect_until, results};
use probewheel::Builder;

/// `Cpus_allowed_list` of each of this process's threads whose name starts
/// with `prefix`, as (name, CPUs).
fn affinity_of(prefix: &str) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_owned();
        out.push((comm.trim().to_owned(), parse_cpu_list(&list)));
    }
    out.sort();
    out
}

/// "0-2,4" -> [0, 1, 2, 4]
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

fn run_engine(name: &str, pin: bool) -> Vec<(String, Vec<usize>)> {
    let (engine, rx) = Builder::new()
        .declarations_json(r#"{"p": {"kind": "fake", "mode": "enforce", "intervalSeconds": 0}}"#)
        .workers(3)
        .min_interval(Duration::from_millis(20))
        .thread_name(name)
        .pin_workers(pin)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    engine.reset("r").unwrap();
    // Workers pin themselves as they start; a result means they are up.
    collect_until(&rx, Duration::from_secs(10), |ev| {
        results(ev, Some("p")) >= 3
    });
    let seen = affinity_of(&format!("{name}-worker"));
    engine.shutdown().unwrap();
    seen
}

#[test]
fn pinned_workers_each_run_on_a_cpu_of_their_own() {
    // The process's set, as the test thread inherited it.
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let all = parse_cpu_list(
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim(),
    );

    let pinned = run_engine("pin-on", true);
    assert_eq!(pinned.len(), 3, "{pinned:?}");
    for (name, cpus) in &pinned {
        assert_eq!(cpus.len(), 1, "{name} pinned to {cpus:?}");
        assert!(
            all.contains(&cpus[0]),
            "{name} on {cpus:?}, allowed {all:?}"
        );
    }
    let distinct: std::collections::BTreeSet<usize> = pinned.iter().map(|t| t.1[0]).collect();
    assert_eq!(distinct.len(), pinned.len().min(all.len()), "{pinned:?}");

    let free = run_engine("pin-off", false);
    assert_eq!(free.len(), 3, "{free:?}");
    for (name, cpus) in &free {
        assert_eq!(cpus, &all, "{name} unpinned");
    }
}
