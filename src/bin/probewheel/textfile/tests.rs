use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A fresh directory under the system's temporary one, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "probewheel-textfile-{tag}-{}-{}",
            std::process::id(),
            random_hex().unwrap()
        ));
        std::fs::create_dir(&p).unwrap();
        Dir(p)
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn replace_writes_through_no_planted_link() {
    let dir = Dir::new("planted");
    let prom = dir.0.join("m.prom");
    let victim = dir.0.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    for name in ["m.prom.tmp", ".m.prom.tmp", "m.prom.new", "m.prom~"] {
        std::os::unix::fs::symlink(&victim, dir.0.join(name)).unwrap();
    }
    // A link at PATH itself is replaced, not followed.
    std::os::unix::fs::symlink(&victim, &prom).unwrap();
    replace(&prom, "a 1\n").unwrap();
    replace(&prom, "a 2\n").unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(&prom).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&prom).unwrap(), "a 2\n");
    assert_eq!(
        dir.names(),
        [
            ".m.prom.tmp",
            "m.prom",
            "m.prom.new",
            "m.prom.tmp",
            "m.prom~",
            "victim"
        ]
    );
}

#[test]
fn a_failed_replace_leaves_no_temporary_file() {
    let dir = Dir::new("failed");
    // Renaming a file over a directory fails after the write.
    let prom = dir.0.join("m.prom");
    std::fs::create_dir(&prom).unwrap();
    assert!(replace(&prom, "a 1\n").is_err());
    assert_eq!(dir.names(), ["m.prom"]);
    assert!(replace(Path::new("/"), "a 1\n").is_err());
}

#[test]
fn temporary_names_are_random() {
    let a = random_hex().unwrap();
    let b = random_hex().unwrap();
    assert_eq!(a.len(), 24, "{a}");
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_ne!(a, b);
}

#[test]
fn a_blocked_write_holds_up_no_offer_and_the_latest_text_wins() {
    let (started_tx, started) = crossbeam_channel::unbounded::<String>();
    let (gate_tx, gate) = crossbeam_channel::bounded::<()>(0);
    // Each write reports its text, then blocks until the gate opens.
    let writer = Writer::spawn_with(move |text| {
        let _ = started_tx.send(text);
        let _ = gate.recv();
    })
    .unwrap();
    let limit = Duration::from_secs(5);
    writer.offer("1".into());
    assert_eq!(started.recv_timeout(limit).unwrap(), "1");
    // The thread is stuck in the write of "1": offers still return.
    let (done_tx, done) = crossbeam_channel::bounded(1);
    std::thread::scope(|s| {
        s.spawn(|| {
            for text in ["2", "3", "4"] {
                writer.offer(text.into());
            }
            done_tx.send(()).unwrap();
        });
        assert!(done.recv_timeout(limit).is_ok(), "offer waited for a write");
    });
    // Opened: the write of "1" ends and only the latest text follows.
    drop(gate_tx);
    assert_eq!(started.recv_timeout(limit).unwrap(), "4");
    drop(writer);
    assert_eq!(
        started.recv_timeout(limit),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    );
}
