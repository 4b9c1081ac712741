//! The hand-off of finished runs to the engine thread: per sender a
//! channel and a [`ResultFlag`] of its own (no shared cache line), paired
//! with the engine's wake-up (`wake.rs`).

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::wake::{EngineWake, ResultFlag};
use crate::core::Finished;

/// Results handed to the engine in one send at most: a burst of thousands
/// of starts sends a few batches, each a small allocation.
const RESULT_BATCH: usize = 256;

/// The engine thread's half: every sender's channel.
#[derive(Default)]
pub(crate) struct Results {
    channels: Vec<(Receiver<Vec<Finished>>, Arc<ResultFlag>)>,
}

impl Results {
    /// A new sender, with a channel and a flag of its own.
    pub(crate) fn sender(&mut self, wake: &Arc<EngineWake>) -> ResultSender {
        let (tx, rx) = crossbeam_channel::unbounded();
        let flag = Arc::new(ResultFlag::default());
        self.channels.push((rx, Arc::clone(&flag)));
        ResultSender {
            tx,
            flag,
            wake: Arc::clone(wake),
            batch: Vec::new(),
            unannounced: None,
        }
    }

    /// Hands every finished run that has arrived to `handle`.
    pub(crate) fn drain(&self, mut handle: impl FnMut(Finished)) {
        // Cleared before draining: see `EngineWake::take_results`.
        for (_, flag) in &self.channels {
            EngineWake::take_results(flag);
        }
        for (rx, _) in &self.channels {
            for batch in rx.try_iter() {
                batch.into_iter().for_each(&mut handle);
            }
        }
    }

    /// Whether a finished run is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.channels.iter().all(|(rx, _)| rx.is_empty())
    }
}

/// A sending half: gathers results into batches and makes sure the engine
/// wakes for them.
pub(crate) struct ResultSender {
    tx: Sender<Vec<Finished>>,
    flag: Arc<ResultFlag>,
    wake: Arc<EngineWake>,
    /// Results not sent yet: one send per loop turn, not one each.
    batch: Vec<Finished>,
    /// The earliest finish since the engine was last told.
    unannounced: Option<Instant>,
}

impl ResultSender {
    /// Adds a finished run to the batch (sent when full); the engine is
    /// told at the next [`ResultSender::flush`].
    pub(crate) fn push(&mut self, finished: Finished) {
        let at = finished.finished;
        self.unannounced = Some(self.unannounced.map_or(at, |t| t.min(at)));
        self.batch.push(finished);
        if self.batch.len() >= RESULT_BATCH {
            self.send_batch();
        }
    }

    /// Sends what was gathered and makes sure the engine wakes for it.
    pub(crate) fn flush(&mut self) {
        self.send_batch();
        if let Some(at) = self.unannounced.take() {
            self.wake.result(&self.flag, at);
        }
    }

    /// Sends one result and tells the engine at once: for a thread with
    /// no loop to gather results over.
    pub(crate) fn send(&self, finished: Finished) {
        let at = finished.finished;
        if self.tx.send(vec![finished]).is_ok() {
            self.wake.result(&self.flag, at);
        }
    }

    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        if self.tx.send(batch).is_err() {
            self.unannounced = None; // the engine is gone
        }
    }
}

#[cfg(test)]
mod tests;
