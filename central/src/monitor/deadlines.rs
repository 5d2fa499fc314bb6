//! A sorted index of deadlines: the next one in O(log n), the expired ones in order, so 100k
//! devices are watched without scanning them every second.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Deadlines (milliseconds) of keys.
#[derive(Debug)]
pub struct DeadlineIndex<K: Ord + Hash + Copy> {
    sorted: BTreeSet<(i64, K)>,
    of: HashMap<K, i64>,
}

impl<K: Ord + Hash + Copy> Default for DeadlineIndex<K> {
    fn default() -> Self {
        DeadlineIndex { sorted: BTreeSet::new(), of: HashMap::new() }
    }
}

impl<K: Ord + Hash + Copy> DeadlineIndex<K> {
    /// Sets (or moves) the deadline of `key`.
    pub fn set(&mut self, key: K, deadline: i64) {
        if let Some(old) = self.of.insert(key, deadline) {
            self.sorted.remove(&(old, key));
        }
        self.sorted.insert((deadline, key));
    }

    /// Removes `key`'s deadline.
    pub fn remove(&mut self, key: K) {
        if let Some(old) = self.of.remove(&key) {
            self.sorted.remove(&(old, key));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<i64> {
        self.sorted.first().map(|(d, _)| *d)
    }

    /// Removes and returns the keys whose deadline is at or before `now`, earliest first.
    pub fn expire(&mut self, now: i64) -> Vec<K> {
        let mut out = Vec::new();
        while let Some(&(deadline, key)) = self.sorted.first() {
            if deadline > now {
                break;
            }
            self.sorted.pop_first();
            self.of.remove(&key);
            out.push(key);
        }
        out
    }

    /// Number of keys with a deadline.
    pub fn len(&self) -> usize {
        self.of.len()
    }

    /// Whether no key has a deadline.
    pub fn is_empty(&self) -> bool {
        self.of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_deadlines_sorted_and_moves_them() {
        let mut idx = DeadlineIndex::default();
        idx.set(1u32, 100);
        idx.set(2, 50);
        idx.set(3, 150);
        assert_eq!(idx.next(), Some(50));
        idx.set(2, 200); // seen again: its deadline moves
        assert_eq!(idx.next(), Some(100));
        assert_eq!(idx.expire(99), Vec::<u32>::new());
        assert_eq!(idx.expire(150), vec![1, 3]);
        assert_eq!(idx.len(), 1);
        idx.remove(2);
        assert!(idx.is_empty());
        assert_eq!(idx.next(), None);
        idx.remove(9); // absent: no-op
    }
}
