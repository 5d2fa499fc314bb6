//! When the acknowledged link writes what is stored while its window is empty: at once after a
//! quiet spell, else at the end of a [`PUBLISH_GAP`] after its last write.

use super::acked::PUBLISH_GAP;

/// When the link writes messages that arrive while its window is empty ([`PUBLISH_GAP`]).
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// When the last write from an empty window was made, if it took everything stored then.
    caught_up_at: Option<tokio::time::Instant>,
}

impl Pace {
    /// Until when a window that is empty stays so: `None` when messages may go now (the window
    /// is not empty; the last write from an empty window was a gap ago, or left a backlog).
    /// During a gap the link waits for its end, not for the store's notifications: the batches
    /// stored meanwhile wake nothing.
    pub(super) fn hold(&self, idle: bool, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        let until = self.caught_up_at? + PUBLISH_GAP;
        (idle && now < until).then_some(until)
    }

    /// The link wrote messages at `now`, from an empty window or not, leaving nothing behind
    /// (`caught_up`) or not.
    pub(super) fn filled(&mut self, from_idle: bool, caught_up: bool, now: tokio::time::Instant) {
        if !caught_up {
            self.caught_up_at = None;
        } else if from_idle {
            self.caught_up_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// Messages are written at once from an idle link; within a gap of the last write that
    /// caught up, an empty window waits for the gap's end; a write that left a backlog lets the
    /// next go at once (the gap never caps throughput).
    #[test]
    fn the_gap_holds_only_a_caught_up_idle_link() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        assert_eq!(pace.hold(true, t0), None, "a link idle for long writes at once");
        pace.filled(true, true, t0);
        let soon = t0 + PUBLISH_GAP / 4;
        assert_eq!(pace.hold(true, soon), Some(t0 + PUBLISH_GAP), "idle again within the gap");
        assert_eq!(pace.hold(false, soon), None, "messages out: the PUBACKs drive the writes");
        assert_eq!(pace.hold(true, t0 + PUBLISH_GAP), None, "the gap is over");
        // A write that is not from an empty window does not move the gap.
        pace.filled(false, true, soon);
        assert_eq!(pace.hold(true, soon), Some(t0 + PUBLISH_GAP));
        // A write that left messages behind: the next goes as soon as the window empties.
        pace.filled(true, false, soon);
        assert_eq!(pace.hold(true, soon), None);
        pace.filled(false, true, soon);
        assert_eq!(pace.hold(true, soon), None, "caught up again, but not from an empty window");
    }
}
