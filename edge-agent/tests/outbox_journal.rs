//! The outbox's write-ahead journal across a power cut: batches acknowledged through it are
//! there after the restart, with their ids and frame counters, exactly once; the journal stays
//! bounded. A power cut is what the disk holds while the agent runs: a copy of the data
//! directory taken with the outbox open (redb's commits without a disk sync are not in it).

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;

use neosens_edge::cache::{Cache, SessionCounter};
use neosens_edge::outbox::{
    JOURNAL_CHECKPOINT_RECORDS, JOURNAL_FILE, JOURNAL_PREFILLED, Limits, Outbox, OutboxRecord, Pending,
};
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
    // The batches wait in the tail, counters included, until a checkpoint writes them in redb.
    let newest = outbox.pending_counter(true, node(2), outbox.tail_generation());
    assert_eq!(newest, Pending::Newer(SessionCounter { session: 9, f_cnt: 5 }));
    assert_eq!(cache.f_cnt(node(2)).unwrap(), None);

    // Without its journal, the copy has only the durable append: the cut is real.
    let bare = power_cut(dir.path());
    let (bare_cache, bare_outbox) = open(bare.path(), false);
    assert_eq!(stored(&bare_outbox).len(), 1, "redb alone lost the batches");
    assert_eq!(bare_cache.f_cnt(node(2)).unwrap(), None);

    let cut = power_cut(dir.path());
    let (cache2, outbox2) = open(cut.path(), true);
    assert_eq!(stored(&outbox2), before, "every message back, with its id");
    assert_eq!(outbox2.last_id(), 11);
    assert_eq!(outbox2.stats.journal_replayed.load(Ordering::Relaxed), 10);
    assert_eq!(cache2.f_cnt(node(1)).unwrap(), Some(SessionCounter { session: 9, f_cnt: 5 }));
    assert_eq!(cache2.f_cnt_down(node(1)).unwrap(), Some(SessionCounter { session: 9, f_cnt: 2 }));
    assert_eq!(batch(&outbox2, 6), [12, 13], "ids go on after the replayed ones");
    drop((cache2, outbox2));

    // The last batch was still in the tail when the outbox was dropped: stored from the
    // journal at the next start, once; the replayed ones are durable now.
    let (_, outbox3) = open(cut.path(), true);
    assert_eq!(stored(&outbox3).len(), 13, "nothing twice");
    assert_eq!(outbox3.stats.journal_replayed.load(Ordering::Relaxed), 2);
    outbox3.checkpoint().unwrap();
    drop(outbox3);
    let (_, outbox4) = open(cut.path(), true);
    assert_eq!(stored(&outbox4).len(), 13);
    assert_eq!(
        outbox4.stats.journal_replayed.load(Ordering::Relaxed),
        0,
        "a checkpoint leaves nothing to replay"
    );
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
    assert_eq!(outbox2.stats.journal_replayed.load(Ordering::Relaxed), 2);
}

/// Where the journal's written bytes end: past the last byte that is not a zero (the file holds
/// zeros ahead of its records).
fn written_end(journal: &Path) -> u64 {
    let bytes = std::fs::read(journal).unwrap();
    bytes.iter().rposition(|b| *b != 0).map_or(0, |last| last as u64 + 1)
}

/// Thousands of batches: the journal starts over at each checkpoint, so its records stay within
/// one checkpoint's worth (256, or 4 MiB of big batches), and its file within the zeros written
/// ahead of them; after a checkpoint there is nothing to replay.
#[test]
fn the_journal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    let journal = dir.path().join(JOURNAL_FILE);
    batch(&outbox, 1);
    let one = written_end(&journal);
    for f_cnt in 2..=2_000 {
        batch(&outbox, f_cnt);
    }
    let checkpoints = || outbox.stats.journal_checkpoints.load(Ordering::Relaxed);
    // One before every 257th batch: the journal holds 256 records at most.
    let records = u64::from(JOURNAL_CHECKPOINT_RECORDS);
    assert_eq!(checkpoints(), (2_000 - 1) / records);
    let written = written_end(&journal);
    assert!(written <= records * (one + 32), "{written} bytes for records of about {one}");
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), JOURNAL_PREFILLED);
    // Batches of 128 messages of 1 kB: the byte bound comes first.
    let payload = vec![b'x'; 1_000];
    for _ in 0..100 {
        let build = |i: usize, _| (format!("u4/302/co2/{i}"), payload.clone());
        outbox.append_journaled(128, 1_000, build, &[], &[]).unwrap();
    }
    let size = std::fs::metadata(&journal).unwrap().len();
    let written = written_end(&journal);
    assert!(written <= (4 << 20) + 140_000, "{written} bytes written");
    assert!(size <= JOURNAL_PREFILLED.max(written), "{size} bytes");
    // About 32 records of 130 kB fill 4 MiB: at least three more checkpoints.
    assert!(checkpoints() >= (2_000 - 1) / records + 3, "{} checkpoints", checkpoints());
    outbox.checkpoint().unwrap();
    let cut = power_cut(dir.path());
    let (_, outbox2) = open(cut.path(), true);
    assert_eq!(outbox2.depth(1_000).unwrap().0, 4_000 + 12_800);
    assert_eq!(outbox2.stats.journal_replayed.load(Ordering::Relaxed), 0);
}

/// Tears the journal's last record: its last byte zeroed, as a cut during its write leaves it.
fn tear_last_record(journal: &Path) {
    let mut bytes = std::fs::read(journal).unwrap();
    let last = bytes.iter().rposition(|b| *b != 0).unwrap();
    bytes[last] = 0;
    std::fs::write(journal, bytes).unwrap();
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
    tear_last_record(&journal);
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

/// A batch bigger than the journal takes (more than 2,048 messages) commits to redb durably:
/// it is on disk without the journal's help.
#[test]
fn a_big_batch_commits_to_redb_directly() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    let build =
        |i: usize, id: u64| (format!("u4/302/humidity/{i}"), format!("{{\"msg_id\":{id}}}").into_bytes());
    let ids = outbox.append_journaled(2_100, 1_000, build, &[], &[]).unwrap();
    assert_eq!(ids.len(), 2_100);
    let cut = power_cut(dir.path());
    let (_, bare) = open(cut.path(), false);
    assert_eq!(stored(&bare).len(), 2_100);
}

/// A batch whose redb commit was lost, and whose ids a durable commit of another kind used since
/// (as after a failed store, never acknowledged): left out at the next start, never written over
/// the messages that hold its ids now.
#[test]
fn a_batch_whose_ids_were_reused_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    batch(&outbox, 1);
    let cut = power_cut(dir.path());
    {
        let (_, bare) = open(cut.path(), false);
        assert_eq!(bare.append(&[("u4/302/device".into(), b"kept".to_vec())], 2_000).unwrap(), [1]);
    }
    let (_, outbox2) = open(cut.path(), true);
    let kept: Vec<(u64, Vec<u8>)> = stored(&outbox2).into_iter().map(|(id, r)| (id, r.payload)).collect();
    assert_eq!(kept, [(1, b"kept".to_vec())]);
    assert_eq!(outbox2.stats.journal_replayed.load(Ordering::Relaxed), 0);
    assert_eq!(batch(&outbox2, 2), [3, 4], "the next ids follow both, the left-out batch's too");
    // That batch's number was settled at the start: the next cut brings the new batch back.
    let cut2 = power_cut(cut.path());
    let (_, outbox3) = open(cut2.path(), true);
    let ids: Vec<u64> = stored(&outbox3).iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 3, 4]);
}

/// A journal left behind by a database since recreated (a new outbox epoch) is not replayed
/// into the new one, where its ids would mean other messages.
#[test]
fn a_journal_of_another_database_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    batch(&outbox, 1);
    let cut = power_cut(dir.path());
    for entry in std::fs::read_dir(cut.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != JOURNAL_FILE {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (_, fresh) = open(cut.path(), true);
    assert!(stored(&fresh).is_empty());
    assert_eq!(fresh.stats.journal_replayed.load(Ordering::Relaxed), 0);
    assert_eq!(batch(&fresh, 1), [1, 2]);
}

/// While the disk fails its syncs, the checkpoint a full journal needs fails, and so do the
/// batches (not acknowledged): the journal never grows past its bound. (redb then wants the
/// database reopened, as after any failed sync.)
#[test]
fn a_failing_checkpoint_stops_the_batches_not_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, control) = common::disk::TestDisk::new();
    let cache = Cache::open_on(disk).unwrap();
    let journal = dir.path().join(JOURNAL_FILE);
    let outbox = Outbox::open(cache.database(), LIMITS).unwrap().with_journal(&journal).unwrap();
    // Twice the journal's records: a checkpoint before the first of the second half, and a full
    // journal since.
    for f_cnt in 1..=2 * JOURNAL_CHECKPOINT_RECORDS {
        batch(&outbox, f_cnt);
    }
    control.failing.store(true, Ordering::SeqCst);
    let full = std::fs::read(&journal).unwrap();
    let up = [(node(1), SessionCounter { session: 9, f_cnt: 2 * JOURNAL_CHECKPOINT_RECORDS + 1 })];
    let build = |_: usize, id: u64| ("u4/302/co2".to_owned(), id.to_string().into_bytes());
    for _ in 0..10 {
        assert!(outbox.append_journaled(1, 1_000, build, &up, &[]).is_err(), "no checkpoint, no batch");
    }
    assert!(std::fs::read(&journal).unwrap() == full, "not a byte written");
    assert_eq!(outbox.stats.journal_checkpoints.load(Ordering::Relaxed), 1);
}

fn ids_of(outbox: &Outbox) -> Vec<u64> {
    stored(outbox).iter().map(|(id, _)| *id).collect()
}

/// Journalled batches wait in memory until a checkpoint: what the broker acknowledged there
/// never reaches redb; a checkpoint writes the rest and the newest counters; once the link
/// acknowledged everything, settling checkpoints; an append of another kind writes the tail
/// first, so ids stay in order.
#[test]
fn the_tail_holds_batches_until_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    let checkpoints = || outbox.stats.journal_checkpoints.load(Ordering::Relaxed);
    let counter = |f_cnt| SessionCounter { session: 9, f_cnt };
    let ids: Vec<u64> = (1..=3).flat_map(|f_cnt| batch(&outbox, f_cnt)).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    let mut acked = vec![1, 2, 3];
    outbox.acknowledge_in_memory(&mut acked);
    assert!(acked.is_empty(), "the tail held them all");
    assert_eq!(ids_of(&outbox), [4, 5, 6]);
    assert_eq!(outbox.peek(4, 10).unwrap().iter().map(|(id, _)| *id).collect::<Vec<_>>(), [5, 6]);
    assert_eq!(outbox.depth(1_000).unwrap().0, 3);
    assert!(outbox.settle().unwrap());
    assert_eq!(checkpoints(), 0, "messages still out: no checkpoint");

    outbox.checkpoint().unwrap();
    let cut = power_cut(dir.path());
    let (bare_cache, bare) = open(cut.path(), false);
    assert_eq!(ids_of(&bare), [4, 5, 6], "only the unacknowledged went into redb");
    assert_eq!(bare_cache.f_cnt(node(2)).unwrap(), Some(counter(3)));
    assert_eq!(bare_cache.f_cnt_down(node(1)).unwrap(), Some(counter(1)));
    let generation = outbox.tail_generation();
    assert_eq!(outbox.pending_counter(true, node(2), generation), Pending::None);
    assert_eq!(outbox.pending_counter(true, node(2), generation - 1), Pending::Stale);
    assert_eq!(ids_of(&outbox), [4, 5, 6], "the same messages, read from redb now");

    assert_eq!(batch(&outbox, 4), [7, 8]);
    let mut acked = vec![4, 5, 6, 7, 8];
    outbox.acknowledge_in_memory(&mut acked);
    assert_eq!(acked, [4, 5, 6], "in redb since the checkpoint: removed there");
    outbox.acknowledge(&acked).unwrap();
    assert_eq!(outbox.depth(1_000).unwrap().0, 0);
    assert_eq!(outbox.stats.acknowledged.load(Ordering::Relaxed), 8);
    // The first call that finds everything acknowledged only notes the journal's last record;
    // a batch before the next call defers the checkpoint again.
    assert!(!outbox.settle().unwrap(), "not quiet yet: asked again later");
    assert_eq!(checkpoints(), 1);
    assert_eq!(batch(&outbox, 5), [9, 10]);
    let mut acked = vec![9, 10];
    outbox.acknowledge_in_memory(&mut acked);
    assert!(!outbox.settle().unwrap(), "a batch came in since the last settling");
    assert_eq!(checkpoints(), 1);
    assert!(outbox.settle().unwrap());
    assert_eq!(checkpoints(), 2, "everything acknowledged, the link quiet: settled with a checkpoint");
    let cut = power_cut(dir.path());
    let (bare_cache, bare) = open(cut.path(), false);
    assert!(ids_of(&bare).is_empty(), "nothing to send again after a crash");
    assert_eq!(bare_cache.f_cnt(node(2)).unwrap(), Some(counter(5)));

    assert_eq!(batch(&outbox, 6), [11, 12]);
    assert_eq!(outbox.append(&[("u4/302/device".into(), b"{}".to_vec())], 1_000).unwrap(), [13]);
    let cut = power_cut(dir.path());
    let (bare_cache, bare) = open(cut.path(), false);
    assert_eq!(ids_of(&bare), [11, 12, 13], "the tail went first, in the same commit");
    assert_eq!(bare_cache.f_cnt(node(2)).unwrap(), Some(counter(6)));
}

/// A batch's messages written into acknowledged messages' buffers (longer ones) read back
/// exactly: nothing of the earlier messages shows through, from memory or after a power cut,
/// and the earlier messages' own journal record is untouched.
#[test]
fn recycled_buffers_carry_only_their_new_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_cache, outbox) = open(dir.path(), true);
    let long = |i: usize, id: u64| {
        let payload = format!("{{\"msg_id\":{id},\"pad\":\"{}\"}}", "x".repeat(100));
        (format!("u4/302/a-longer-topic-name/{i}"), payload.into_bytes())
    };
    let mut acked = outbox.append_journaled(4, 1_000, long, &[], &[]).unwrap();
    outbox.acknowledge_in_memory(&mut acked);
    assert!(acked.is_empty());
    let reused = std::sync::atomic::AtomicUsize::new(0);
    let short = |i: usize, id: u64, topic: &mut String, payload: &mut Vec<u8>| {
        assert!(topic.is_empty() && payload.is_empty(), "handed over empty");
        if topic.capacity() >= "u4/302/a-longer-topic-name/0".len() && payload.capacity() > 100 {
            reused.fetch_add(1, Ordering::Relaxed);
        }
        topic.push_str(&format!("t/{i}"));
        payload.extend_from_slice(format!("{{\"msg_id\":{id}}}").as_bytes());
    };
    assert_eq!(outbox.append_journaled_into(4, 1_000, short, &[], &[]).unwrap(), [5, 6, 7, 8]);
    assert_eq!(reused.load(Ordering::Relaxed), 4, "the acknowledged messages' buffers");
    let expected: Vec<(String, Vec<u8>)> =
        (0..4).map(|i| (format!("t/{i}"), format!("{{\"msg_id\":{}}}", 5 + i).into_bytes())).collect();
    let read = |o: &Outbox| -> Vec<(String, Vec<u8>)> {
        stored(o).into_iter().map(|(_, r)| (r.topic, r.payload)).collect()
    };
    assert_eq!(read(&outbox), expected);
    // A power cut replays both records, the first (acknowledged) one as it was written.
    let cut = power_cut(dir.path());
    let (_, replayed) = open(cut.path(), true);
    let mut both: Vec<(String, Vec<u8>)> = (0..4).map(|i| long(i, i as u64 + 1)).collect();
    both.extend(expected);
    assert_eq!(read(&replayed), both);
}
