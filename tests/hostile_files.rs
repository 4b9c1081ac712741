//! The declarations file changes under the engine between resets: edited,
//! removed, replaced by a symlink to a huge file, to a device, to a FIFO
//! (which must not hang the engine), by a directory, by garbage. Each reset
//! gives a topology or a rejection with a reason, the engine keeps running,
//! and a valid file works again afterwards.

#![allow(clippy::disallowed_methods)] // end-to-end tests wait on the real clock

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Fake, FifoRelease, Guarantees, TempDir, mkfifo, wait_until};
use crossbeam_channel::Receiver;
use probewheel::{Builder, Engine, Event};

const FLOOR: Duration = Duration::from_millis(10);

/// Reads events until the first one of generation `g` and returns it; every
/// event on the way goes through the checker.
fn opening(rx: &Receiver<Event>, g: u64, check: &mut Guarantees) -> Event {
    loop {
        let e = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("no event of generation {g}: the engine is stuck"));
        check.check(&e).unwrap();
        if e.generation() == g {
            return e;
        }
    }
}

fn topology_names(e: &Event) -> Vec<String> {
    match e {
        Event::TopologyDeclared(t) => t.probes.iter().map(|p| p.probe_name.to_string()).collect(),
        other => panic!("expected a topology, got {other:?}"),
    }
}

fn rejection(e: &Event) -> &str {
    match e {
        Event::DeclarationsRejected(r) => &r.reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn valid(names: &[&str]) -> String {
    let mut m = serde_json::Map::new();
    for n in names {
        m.insert(
            (*n).to_owned(),
            serde_json::json!({"kind": "fake", "mode": "observe", "intervalSeconds": 0}),
        );
    }
    serde_json::Value::Object(m).to_string()
}

/// Replaces whatever is at `path` (file, symlink, FIFO, directory).
fn clear(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).unwrap(),
        Ok(_) => std::fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

struct Harness {
    engine: Engine,
    rx: Receiver<Event>,
    check: Guarantees,
    generation: u64,
}

impl Harness {
    fn reset(&mut self) -> Event {
        self.generation += 1;
        self.engine.reset(&format!("r{}", self.generation)).unwrap();
        let e = opening(&self.rx, self.generation, &mut self.check);
        // The engine is alive and answering.
        let s = self.engine.stats().unwrap();
        assert_eq!(s.generation, self.generation);
        e
    }

    /// After a good file, its probes produce results again.
    fn results_flow(&mut self, probe: &str) {
        let mut n = 0;
        while n < 3 {
            let e = self.rx.recv_timeout(Duration::from_secs(5)).unwrap();
            self.check.check(&e).unwrap();
            if e.name() == "probeResult" && e.probe_name() == Some(probe) {
                n += 1;
            }
        }
    }
}

fn harness(path: &Path) -> Harness {
    let (engine, rx) = Builder::new()
        .declarations_path(path)
        .min_interval(FLOOR)
        .runner("fake", Fake::default())
        .build()
        .unwrap();
    Harness {
        engine,
        rx,
        check: Guarantees::new(FLOOR),
        generation: 0,
    }
}

#[test]
fn the_file_changes_disappears_and_turns_hostile_between_resets() {
    let dir = TempDir::new("files");
    let path = dir.path("health-checks.json");
    let mut h = harness(&path);

    std::fs::write(&path, valid(&["a", "b"])).unwrap();
    assert_eq!(topology_names(&h.reset()), ["a", "b"]);
    h.results_flow("a");

    // Edited.
    std::fs::write(&path, valid(&["a", "b", "c"])).unwrap();
    assert_eq!(topology_names(&h.reset()), ["a", "b", "c"]);
    h.results_flow("c");

    // Removed: the host declares no probes.
    clear(&path);
    assert!(topology_names(&h.reset()).is_empty());
    assert_eq!(h.engine.stats().unwrap().probes, 0);

    // A symlink to a 2 MiB file, and a sparse 10 GiB one: not read at all.
    let big = dir.path("big.json");
    std::fs::write(&big, vec![b' '; 2 * 1024 * 1024]).unwrap();
    std::os::unix::fs::symlink(&big, &path).unwrap();
    assert_eq!(
        rejection(&h.reset()),
        "file is larger than 1048576 bytes (1 MiB): 2097152 bytes"
    );
    let sparse = dir.path("sparse.json");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    clear(&path);
    std::os::unix::fs::symlink(&sparse, &path).unwrap();
    assert_eq!(
        rejection(&h.reset()),
        "file is larger than 1048576 bytes (1 MiB): 10737418240 bytes"
    );

    // A symlink to /dev/zero: endless, so never read.
    clear(&path);
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    assert_eq!(
        rejection(&h.reset()),
        "not a regular file (a character device)"
    );

    // A directory.
    clear(&path);
    std::fs::create_dir(&path).unwrap();
    assert_eq!(rejection(&h.reset()), "not a regular file (a directory)");

    // A dangling symlink counts as a missing file.
    clear(&path);
    std::os::unix::fs::symlink(dir.path("nowhere.json"), &path).unwrap();
    assert!(topology_names(&h.reset()).is_empty());

    // Garbage, and a half-written file.
    clear(&path);
    std::fs::write(&path, b"\x00\xff garbage").unwrap();
    let reason = rejection(&h.reset()).to_owned();
    assert!(reason.starts_with("line 1 column 1: "), "{reason}");
    std::fs::write(&path, &valid(&["a", "b"])[..10]).unwrap();
    let reason = rejection(&h.reset()).to_owned();
    assert!(reason.starts_with("line 1 column 10: "), "{reason}");

    // A valid file again: everything works as before.
    std::fs::write(&path, valid(&["z"])).unwrap();
    assert_eq!(topology_names(&h.reset()), ["z"]);
    h.results_flow("z");
    assert!(
        wait_until(Duration::from_secs(5), || h.engine.stats().unwrap().probes
            == 1),
        "{:?}",
        h.engine.stats()
    );
    h.engine.shutdown().unwrap();
}

#[test]
fn a_fifo_in_place_of_the_file_does_not_hang_the_engine() {
    let dir = TempDir::new("files-fifo");
    let path = dir.path("health-checks.json");
    let mut h = harness(&path);
    std::fs::write(&path, valid(&["a"])).unwrap();
    assert_eq!(topology_names(&h.reset()), ["a"]);

    // A FIFO with no writer, directly and through a symlink: opening it
    // for reading would block the engine thread forever.
    let fifo = dir.path("fifo");
    mkfifo(&fifo);
    let _release = FifoRelease(&fifo);
    clear(&path);
    std::os::unix::fs::symlink(&fifo, &path).unwrap();
    assert_eq!(rejection(&h.reset()), "not a regular file (a FIFO)");
    clear(&path);
    mkfifo(&path);
    let _release_direct = FifoRelease(&path);
    assert_eq!(rejection(&h.reset()), "not a regular file (a FIFO)");

    // The engine still answers, and a valid file works again.
    clear(&path);
    std::fs::write(&path, valid(&["b"])).unwrap();
    assert_eq!(topology_names(&h.reset()), ["b"]);
    h.results_flow("b");
    h.engine.shutdown().unwrap();
}
