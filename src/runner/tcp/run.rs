//! A run of a `tcp` probe: the connect (`transport::connect`: resolve,
//! dial, TLS handshake and the server's verdict on it), then close; all
//! under `connectTimeoutSecs`.

use std::time::{Duration, Instant};

use super::{Probe, TcpCheck};
use crate::runner::RunnerOutcome;
use crate::runner::machine::{Cx, Machine, Run, Step};
use crate::transport::connect::{Connect, Then};

const CANCELLED: &str = "tcp probe: cancelled";

impl Machine for TcpCheck {
    fn start(&self, now: Instant) -> Box<dyn Run> {
        let p = &self.probe;
        let deadline = now + Duration::from_secs(p.timeout_secs);
        Box::new(TcpRun(Connect::new(
            p.target.clone(),
            p.then(),
            now,
            deadline,
        )))
    }
}

impl Probe {
    fn then(&self) -> Then {
        #[cfg(feature = "tls")]
        if let Some(setup) = &self.tls {
            let setup = setup.clone();
            return Then::Tls { setup, keep: false };
        }
        Then::Close
    }
}

/// One run of a `tcp` probe: its connect's deadline is the run's.
#[derive(Debug)]
struct TcpRun(Connect);

impl Run for TcpRun {
    fn advance(&mut self, cx: &mut Cx<'_>) -> Step {
        match self.0.advance(cx, cx.now()) {
            Ok(None) => Step::Wait(self.0.deadline()),
            // Connected (the connection is closed by now): all it asks.
            Ok(Some(_)) => Step::Done(RunnerOutcome::pass()),
            Err(e) => Step::Done(RunnerOutcome::fail(format!("tcp probe: {e}"))),
        }
    }

    fn cancel(&mut self, _cx: &mut Cx<'_>) -> Step {
        // Dropping the run closes the socket and abandons the lookup.
        Step::Done(RunnerOutcome::fail(CANCELLED))
    }
}
