//! What the engine thread shares with the threads that run its probes.

use std::sync::{Arc, Mutex};

use super::tasks::TaskTable;
use super::wake::EngineWake;
use crate::runner::CancelState;

pub(crate) struct Shared {
    pub(crate) cancel: CancelState,
    /// How commands and results wake the engine thread.
    pub(crate) wake: Arc<EngineWake>,
    /// The current generation's task table, published at each reset;
    /// workers keep their own copy until the generation moves.
    tasks: Mutex<TaskTable>,
}

impl Shared {
    pub(crate) fn new(wake: EngineWake) -> Shared {
        Shared {
            cancel: CancelState::default(),
            wake: Arc::new(wake),
            tasks: Mutex::new(TaskTable::default()),
        }
    }

    /// Makes `table` the current one (the engine, at a reset).
    pub(crate) fn publish(&self, table: TaskTable) {
        *self.tasks.lock().unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// The task table of `generation`, if it is still the current one.
    pub(crate) fn tasks_of(&self, generation: u64) -> Option<TaskTable> {
        let table = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        (table.generation == generation).then(|| table.clone())
    }
}
