//! The task table: a generation's probes as the threads that run them see
//! them, indexed like the scheduler's (a dispatch's `probe` is the index).

use std::sync::Arc;

use crate::runner::Prepared;

/// A probe of a generation.
pub(crate) struct Task {
    pub(crate) name: Arc<str>,
    /// How it runs; `None` for a disabled probe.
    pub(crate) prepared: Option<Prepared>,
}

/// A generation and its probes. Cheap to clone: the probes are shared.
#[derive(Clone, Default)]
pub(crate) struct TaskTable {
    pub(crate) generation: u64,
    tasks: Arc<Vec<Task>>,
}

impl TaskTable {
    pub(crate) fn new(generation: u64, tasks: Vec<Task>) -> TaskTable {
        TaskTable {
            generation,
            tasks: Arc::new(tasks),
        }
    }

    /// The task of probe `probe`.
    pub(crate) fn get(&self, probe: u32) -> Option<&Task> {
        self.tasks.get(probe as usize)
    }

    /// The same probes, as those of `generation`.
    pub(crate) fn renumbered(&self, generation: u64) -> TaskTable {
        let tasks = Arc::clone(&self.tasks);
        TaskTable { generation, tasks }
    }

    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}
