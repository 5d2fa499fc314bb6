//! A disk for the tests: redb's in-memory backend whose syncs fail (an I/O error, as a full or
//! dying SD card gives) or take long (a tired one) while told to; counts the syncs in progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The switches and counters of a [`TestDisk`], kept by the test.
#[derive(Debug, Default, Clone)]
pub(crate) struct DiskControl {
    /// Every sync fails while set.
    pub(crate) failing: Arc<AtomicBool>,
    /// Each sync takes this long first.
    pub(crate) delay_ms: Arc<AtomicU64>,
    /// Syncs in progress.
    pub(crate) syncing: Arc<AtomicU64>,
}

/// The backend to give `Cache::open_on`.
#[derive(Debug, Default)]
pub(crate) struct TestDisk {
    inner: redb::backends::InMemoryBackend,
    control: DiskControl,
}

impl TestDisk {
    /// A disk and its switches.
    pub(crate) fn new() -> (Self, DiskControl) {
        let control = DiskControl::default();
        (TestDisk { inner: redb::backends::InMemoryBackend::new(), control: control.clone() }, control)
    }
}

impl redb::StorageBackend for TestDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        let c = &self.control;
        c.syncing.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(c.delay_ms.load(Ordering::SeqCst)));
        let out = if c.failing.load(Ordering::SeqCst) {
            Err(std::io::Error::other("simulated I/O error"))
        } else {
            self.inner.sync_data()
        };
        c.syncing.fetch_sub(1, Ordering::SeqCst);
        out
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }
}
