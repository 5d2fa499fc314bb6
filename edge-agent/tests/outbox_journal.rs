//! The outbox's write-ahead journal across a power cut: batches acknowledged through it are
//! there after the restart, with their ids and frame counters, exactly once; the journal stays
//! bounded. A power cut is what the disk holds while the agent runs: a copy of the data
//! directory taken with the outbox open (redb's commits without a disk sync are not in it).

use std::path::Path;

use neosens_edge::cache::{Cache, SessionCounter};
use neosens_edge::outbox::{JOURNAL_FILE, Limits, Outbox, OutboxRecord};
use neosens_protocol::ids::DeviceId;

const LIMITS: Limits = Limits { max_messages: 100_000, max_age_ms: u64::MAX / 2 };

fn open(dir: &Path, journal: bool) -> (Cache, Outbox) {
    let cache = Cache::open(dir).unwrap();
    let outbox = Outbox::open(cache.database(), LIMITS).unwrap();
    let outbox = if journal { outbox.with_journal(&dir.join(JOURNAL_FILE)).unwrap() } else { outbox };
    (cache, outbox)
}

/// What a power cut leaves: the files as they are on disk now.
fn power_cut(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        }
    }
    to
}

fn node(n: u8) -> DeviceId {
    DeviceId::from_bytes([n; 16])
}

/// One batch: a reading per node, with the node's counter.
fn batch(outbox: &Outbox, f_cnt: u32) -> Vec<u64> {
    let up =
        [(node(1), SessionCounter { session: 9, f_cnt }), (node(2), SessionCounter { session: 9, f_cnt })];
    let down = [(node(1), SessionCounter { session: 9, f_cnt: f_cnt / 2 })];
    let build = |i: usize, id: u64| {
        (format!("u4/302/temperature/{i}"), format!("{{\"msg_id\":{id},\"f_cnt\":{f_cnt}}}").into_bytes())
    };
    outbox.append_journaled(2, 1_000, build, &up, &down).unwrap()
}

fn stored(outbox: &Outbox) -> Vec<(u64, OutboxRecord)> {
    outbox.peek(0, 10_000).unwrap()
}

/// Acknowledged batches whose redb commits a power cut lost come back from the journal: the
/// same ids and payloads, the counters that let them through, once; a second start replays
/// nothing.
#[test]
fn journalled_batches_survive_a_power_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, outbox) = open(dir.path(), true);
    outbox.append(&[("u4/302/device".into(), b"{\"msg_id\":1}".to_vec())], 1_000).unwrap();
    let ids: Vec<u64> = (1..=5).flat_map(|f_cnt| batch(&outbox, f_cnt)).collect();
    assert_eq!(ids, (2..=11).collect::<Vec<_>>());
    let before = stored(&outbox);
    assert_eq!(cache.f_cnt(node(2)).unwrap(), Some(SessionCounter { session: 9, f_cnt: 5 }));

    // Without its journal, the copy has only the durable append: the cut is real.
    let bare = power_cut(dir.path());
    let (bare_cache, bare_outbox) = open(bare.path(), false);
    assert_eq!(stored(&bare_outbox).len(), 1, "redb alone lost the batches");
    assert_eq!(bare_cache.f_cnt(node(2)).unwrap(), None);

    let cut = power_cut(dir.path());
    let (cache2, outbox2) = open(cut.path(), true);
    assert_eq!(stored(&outbox2), before, "every message back, with its id");
    assert_eq!(outbox2.last_id(), 11);
    assert_eq!(outbox2.stats.journal_replayed.load(std::sync::atomic::Ordering::Relaxed), 10);
    assert_eq!(cache2.f_cnt(node(1)).unwrap(), Some(SessionCounter { session: 9, f_cnt: 5 }));
    assert_eq!(cache2.f_cnt_down(node(1)).unwrap(), Some(SessionCounter { session: 9, f_cnt: 2 }));
    assert_eq!(batch(&outbox2, 6), [12, 13], "ids go on after the replayed ones");
    drop((cache2, outbox2));

    let (_, outbox3) = open(cut.path(), true);
    assert_eq!(stored(&outbox3).len(), 13, "nothing twice");
    assert_eq!(outbox3.stats.journal_replayed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A durable commit of another kind made the earlier batches durable: only the later one is
/// replayed, and a message the broker acknowledged after it is sent again (its id makes that
/// harmless), never lost.
#[test]
fn batches_made_durable_by_another_commit_are_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    batch(&outbox, 1);
    batch(&outbox, 2);
    outbox.append(&[("u4/302/device".into(), b"{}".to_vec())], 1_000).unwrap();
    batch(&outbox, 3);
    outbox.acknowledge(&[1]).unwrap();
    let cut = power_cut(dir.path());
    let (_, outbox2) = open(cut.path(), true);
    let ids: Vec<u64> = stored(&outbox2).iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(outbox2.stats.journal_replayed.load(std::sync::atomic::Ordering::Relaxed), 2);
}

/// Thousands of batches: the journal starts over at each checkpoint, so its file stays within
/// one checkpoint's worth of records; a checkpoint at shutdown leaves nothing to replay.
#[test]
fn the_journal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    let journal = dir.path().join(JOURNAL_FILE);
    batch(&outbox, 1);
    let one = std::fs::metadata(&journal).unwrap().len();
    for f_cnt in 2..=2_000 {
        batch(&outbox, f_cnt);
    }
    let checkpoints = outbox.stats.journal_checkpoints.load(std::sync::atomic::Ordering::Relaxed);
    // One before every 33rd batch: the journal holds 32 records at most.
    assert_eq!(checkpoints, (2_000 - 1) / 32);
    let size = std::fs::metadata(&journal).unwrap().len();
    assert!(size <= 32 * (one + 32), "{size} bytes for records of about {one}");
    outbox.checkpoint().unwrap();
    let cut = power_cut(dir.path());
    let (_, outbox2) = open(cut.path(), true);
    assert_eq!(stored(&outbox2).len(), 4_000);
    assert_eq!(outbox2.stats.journal_replayed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// A damaged journal (a torn last record, garbage) costs at most the damaged record, never the
/// start.
#[test]
fn a_damaged_journal_does_not_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    batch(&outbox, 1);
    batch(&outbox, 2);
    let cut = power_cut(dir.path());
    let journal = cut.path().join(JOURNAL_FILE);
    let size = std::fs::metadata(&journal).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&journal).unwrap().set_len(size - 1).unwrap();
    let (_, outbox2) = open(cut.path(), true);
    assert_eq!(
        stored(&outbox2).iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2],
        "the torn batch was never acknowledged"
    );
    drop(outbox2);
    std::fs::write(&journal, vec![0xa5; 10_000]).unwrap();
    let (_, outbox3) = open(cut.path(), true);
    assert_eq!(stored(&outbox3).len(), 2);
}

/// A batch too big for the journal to pay (more than 128 messages) commits to redb durably:
/// it is on disk without the journal's help.
#[test]
fn a_big_batch_commits_to_redb_directly() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    let build =
        |i: usize, id: u64| (format!("u4/302/humidity/{i}"), format!("{{\"msg_id\":{id}}}").into_bytes());
    let ids = outbox.append_journaled(200, 1_000, build, &[], &[]).unwrap();
    assert_eq!(ids.len(), 200);
    let cut = power_cut(dir.path());
    let (_, bare) = open(cut.path(), false);
    assert_eq!(stored(&bare).len(), 200);
}
