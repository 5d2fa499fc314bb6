//! The status LED: one look at the gateway tells whether it reaches central and the broker.
//!
//! | link | pattern |
//! |---|---|
//! | central and broker up | steady on |
//! | broker down (outbox filling) | slow blink, 1 s on / 1 s off |
//! | central down (answering devices from its cache) | fast blink, 0.2 s |
//! | both down | double flash every 1.6 s |
//! | not enrolled yet | short heartbeat every 2 s |

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::OutputPin;

/// What the gateway reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No gateway credentials: `neosens-edge enroll` has not been run.
    NotEnrolled,
    /// Whether central answered recently and the broker connection is up.
    Enrolled {
        /// Central reachable.
        central: bool,
        /// Broker connected.
        broker: bool,
    },
}

/// One cycle of the pattern: `(on, how long)` steps.
pub fn pattern(state: LinkState) -> &'static [(bool, u64)] {
    match state {
        LinkState::NotEnrolled => &[(true, 100), (false, 1900)],
        LinkState::Enrolled { central: true, broker: true } => &[(true, 2000)],
        LinkState::Enrolled { central: true, broker: false } => &[(true, 1000), (false, 1000)],
        LinkState::Enrolled { central: false, broker: true } => &[(true, 200), (false, 200)],
        LinkState::Enrolled { central: false, broker: false } => {
            &[(true, 150), (false, 150), (true, 150), (false, 1150)]
        }
    }
}

/// Drives `pin` with the pattern of `state()` (read again at each cycle) until `shutdown`, then
/// turns it off. A failing pin is reported once and retried each cycle.
pub async fn run(mut pin: impl OutputPin, state: impl Fn() -> LinkState + Send, shutdown: CancellationToken) {
    let mut failing = false;
    let mut last: Option<bool> = None;
    'outer: loop {
        for &(on, ms) in pattern(state()) {
            if last != Some(on) {
                match pin.set(on) {
                    Ok(()) => {
                        if failing {
                            tracing::info!("status LED works again");
                        }
                        failing = false;
                        last = Some(on);
                    }
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "status LED");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break 'outer,
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            }
        }
    }
    let _ = pin.set(false);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::hal::fake::RecordingPin;

    fn levels(pin: &RecordingPin) -> Vec<(u64, bool)> {
        pin.entries().into_iter().map(|(t, on)| (t.as_millis() as u64, on)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_pattern_follows_the_link_state() {
        let state = Arc::new(Mutex::new(LinkState::Enrolled { central: true, broker: true }));
        let pin = RecordingPin::new();
        let shutdown = CancellationToken::new();
        let s = Arc::clone(&state);
        let task = tokio::spawn(run(pin.clone(), move || *s.lock().unwrap(), shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(4100)).await;
        assert_eq!(levels(&pin), [(0, true)], "steady on: set once");
        *state.lock().unwrap() = LinkState::Enrolled { central: true, broker: false };
        tokio::time::sleep(Duration::from_millis(4000)).await;
        // The new pattern starts at the next cycle (t = 6000 ms): 1 s on (already on), 1 s off.
        assert_eq!(levels(&pin), [(0, true), (7000, false), (8000, true)]);
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(pin.entries().last().map(|e| e.1), Some(false), "off at shutdown");
    }

    #[test]
    fn every_state_has_its_own_pattern() {
        let states = [
            LinkState::NotEnrolled,
            LinkState::Enrolled { central: true, broker: true },
            LinkState::Enrolled { central: true, broker: false },
            LinkState::Enrolled { central: false, broker: true },
            LinkState::Enrolled { central: false, broker: false },
        ];
        for (i, a) in states.iter().enumerate() {
            for b in &states[i + 1..] {
                assert_ne!(pattern(*a), pattern(*b), "{a:?} and {b:?}");
            }
        }
    }
}
