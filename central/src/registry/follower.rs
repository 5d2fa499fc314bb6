//! One way to follow the registry's changes, for the tasks that keep something in step with it
//! (the monitor's watch list, the broker's dynamic security): wait for a new revision, then read
//! the change-log entries after the last one seen, on the blocking pool, a bounded number at a
//! time.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::watch;

use super::Registry;
use crate::model::EntityKind;
use crate::store::{ChangeEntry, StoreError};

/// Follows the change log from a revision on.
#[derive(Debug)]
pub struct ChangeFollower {
    registry: Arc<Registry>,
    revisions: watch::Receiver<u64>,
    seen: u64,
    limit: usize,
}

/// A run of change-log entries, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The entries.
    pub entries: Vec<ChangeEntry>,
}

impl Changes {
    /// Whether a record of one of `kinds` changed.
    pub fn touches(&self, kinds: &[EntityKind]) -> bool {
        self.entries.iter().any(|c| kinds.contains(&c.kind))
    }

    /// The keys of the records of `kinds` that changed.
    pub fn keys_of(&self, kinds: &[EntityKind]) -> HashSet<[u8; 16]> {
        self.entries.iter().filter(|c| kinds.contains(&c.kind)).map(|c| c.key).collect()
    }
}

impl ChangeFollower {
    /// Follows the changes after the current revision, reading at most `limit` entries at a time.
    pub fn new(registry: Arc<Registry>, limit: usize) -> Self {
        let mut revisions = registry.watch_revision();
        let seen = *revisions.borrow_and_update();
        ChangeFollower { registry, revisions, seen, limit: limit.max(1) }
    }

    /// The last revision read.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Whether revisions after the last one read exist.
    pub fn behind(&self) -> bool {
        *self.revisions.borrow() > self.seen
    }

    /// Waits until a revision after the last one read exists; `false` once the registry is gone.
    pub async fn changed(&mut self) -> bool {
        while !self.behind() {
            if self.revisions.changed().await.is_err() {
                return false;
            }
        }
        true
    }

    /// Forgets what was not read yet (the caller reconciled everything from the registry).
    pub fn skip_to_now(&mut self) {
        self.seen = *self.revisions.borrow_and_update();
    }

    /// The next entries after the last one read (at most `limit`; call again while
    /// [`behind`](Self::behind)). On an error nothing is marked read.
    pub async fn next(&mut self) -> Result<Changes, StoreError> {
        let (since, limit) = (self.seen, self.limit);
        let entries = self.registry.blocking(move |r| r.changes_since(since, limit)).await?;
        match entries.last() {
            Some(last) => self.seen = last.revision,
            // Nothing logged after `since` (the revision moved without a logged change).
            None => self.seen = self.seen.max(*self.revisions.borrow()),
        }
        Ok(Changes { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{NewBuilding, test_registry};

    #[tokio::test]
    async fn changes_are_read_once_in_order_a_bounded_number_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let (registry, _, _) = neosens_runtime::blocking::run(move || test_registry(&path, 0)).await;
        let mut follower = ChangeFollower::new(Arc::clone(&registry), 2);
        assert!(!follower.behind());
        let start = follower.seen();
        for name in ["A", "B", "C"] {
            let input = NewBuilding { site: None, name: name.into(), description: String::new() };
            registry.blocking(move |r| r.create_building(input)).await.unwrap();
        }
        assert!(follower.changed().await);
        let first = follower.next().await.unwrap();
        assert_eq!(first.entries.len(), 2, "at most the limit");
        assert!(first.touches(&[EntityKind::Building]) && !first.touches(&[EntityKind::Device]));
        assert!(follower.behind());
        let second = follower.next().await.unwrap();
        assert_eq!(second.keys_of(&[EntityKind::Building]).len(), 1);
        assert_eq!(follower.seen(), start + 3);
        assert!(!follower.behind());
        assert!(follower.next().await.unwrap().entries.is_empty(), "nothing is read twice");

        registry
            .blocking(|r| {
                r.create_building(NewBuilding { site: None, name: "D".into(), description: String::new() })
            })
            .await
            .unwrap();
        follower.skip_to_now();
        assert!(!follower.behind(), "a reconciliation skips what it covered");
    }
}
