//! The outbox's write-ahead journal: one small file that makes an uplink batch durable with one
//! write and one `fdatasync`, where a durable redb commit rewrites a dozen B-tree and allocator
//! pages before its sync (on this project's 2-core reference machine, ~190 µs of CPU against
//! ~60 µs; the uplink benchmark's single-datagram path is mostly that difference).
//!
//! The protocol (see [`crate::outbox`] for the redb side):
//! 1. under the journal's lock, the batch (messages with their ids, frame counters) is written
//!    here and synced: from then on it survives a crash, and it is acknowledged;
//! 2. the batch then waits in memory, in the outbox's [tail](super::tail): the link publishes
//!    it from there, and the broker's acknowledgements are noted there;
//! 3. once [`CHECKPOINT_RECORDS`] records or [`CHECKPOINT_BYTES`] bytes are written (or the
//!    broker acknowledged the whole tail and no batch came in for a while: a quiet gateway,
//!    [`super::Outbox::settle`]), one durable redb commit writes what is still
//!    unacknowledged and the newest counters, with the last journal sequence number (`jseq`),
//!    and the journal starts over at offset 0; if that commit fails, the batch that wanted it
//!    fails too (the file and the tail stay bounded).
//!
//! At start, the batches whose `jseq` is above the one redb holds durably are applied again, in
//! order, with the same ids (central recognises a message sent twice by its `msg_id`; those the
//! broker had acknowledged are sent again). Any other durable commit of the outbox (an append
//! of another kind) writes the tail first, as a checkpoint does; the `jseq` it records tells
//! replay to skip what it holds. A number handed out and not stored (a batch whose sync
//! failed, or one left out at replay) never leaves a hole replay would wait on: checkpoints and
//! the start record the highest one written.
//!
//! Record layout: `"NSJ1"`, body length (u32 LE), CRC-32 of the body (u32 LE), body (postcard of
//! [`Entry`]). Reading stops at the first record that does not check (a torn write at a crash,
//! the stale bytes after a rewind, or the zeros written ahead of the records at open): records
//! are written one at a time, each synced before the next. Stale records that do check (old ones
//! aligned behind new ones after a rewind) carry a `jseq` redb already holds durably, and replay
//! skips them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The journal's file name, in the agent's data directory.
pub const FILE: &str = "outbox.journal";
const MAGIC: [u8; 4] = *b"NSJ1";
const HEADER: usize = 12;
/// Largest body written or read: a longer batch commits to redb directly, and a longer length
/// field read back is damage.
pub(super) const MAX_RECORD: usize = 8 << 20;
/// Records kept before a checkpoint: the bound of the batches held in memory (the outbox's
/// tail) and of what a crash replays. Each checkpoint is one durable redb commit that writes
/// the frame counters of every node heard since the last: at 32 records that was one a second
/// at 50 datagrams/s, about a twentieth of the agent's CPU. A quiet link checkpoints sooner
/// ([`super::Outbox::settle`]), and the byte bound below usually comes first at high rates.
pub const CHECKPOINT_RECORDS: u32 = 256;
/// Bytes kept before a checkpoint: with one more record of at most [`MAX_RECORD`], the file's
/// bound (12 MiB).
pub(super) const CHECKPOINT_BYTES: u64 = 4 << 20;
/// The file's length made at open, written as zeros and synced, ahead of the records: the
/// checkpoint's bytes and room for the record that crosses them (a batch of a busy gateway).
///
/// Why: a record that lengthens the file makes its `fdatasync` write the inode (the new size;
/// on a journaled ext4, a journal commit) and the allocation of its blocks besides the record's
/// own blocks; over bytes already written it does not. On this project's reference VM (ext4
/// without a journal) a sync went from three writes and a flush to two and a flush (the inode is
/// still written once, for its modification time). PostgreSQL zero-fills its WAL segments for the
/// same reason (`wal_init_zero`). Done at open, never in a batch's path: 4 MiB and a sync on an
/// SD card would overrun a `PUSH_ACK`'s deadline. Best effort: a disk too full for it leaves
/// the file as it was (records then lengthen it, as they did before). The zeros end a reading
/// as a damaged record would (no magic).
pub const PREFILLED: u64 = CHECKPOINT_BYTES + (256 << 10);

/// A frame counter in a journal record: (device id, session fingerprint, counter).
pub(super) type CounterEntry = ([u8; 16], u64, u32);

/// One batch: what one outbox write transaction stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Entry {
    /// The outbox's epoch: a journal left behind by a database since recreated is not replayed
    /// into the new one.
    pub(super) epoch: u64,
    /// The journal sequence number (increasing, never reused).
    pub(super) jseq: u64,
    /// When the messages were appended, ms since the epoch.
    pub created_ms: u64,
    /// The id of the first message; the others follow.
    pub first_id: u64,
    /// (topic, payload) as stored, stamps included.
    pub messages: Vec<(String, Vec<u8>)>,
    /// Uplink frame counters accepted with them.
    pub up: Vec<CounterEntry>,
    /// Downlink frame counters used by the answers they trigger.
    pub down: Vec<CounterEntry>,
}

/// The open journal file and where the next record goes.
#[derive(Debug)]
pub(super) struct Journal {
    file: File,
    end: u64,
    records: u32,
    /// The last record's buffer, kept for the next (a batch's record is kilobytes: allocating
    /// it afresh each time had the allocator tidy its free lists once per batch).
    buffer: Vec<u8>,
    /// The last batch's list of messages, emptied, for the next ([`super::tail::Tail::push`]
    /// hands it back): a list of kilobytes allocated afresh per batch had glibc's allocator
    /// tidy all the small blocks freed since the last one.
    pub(super) spare_messages: Vec<(String, Vec<u8>)>,
    /// The list the tail lends a batch its buffers in ([`super::tail::Tail::lend`]): empty
    /// between batches (each takes what it was lent), kept for its room.
    pub(super) spare_buffers: Vec<super::tail::Buffers>,
    /// The highest sequence number and message id written by this process: a record whose
    /// redb commit failed stays in the file (it may come back at the next start, like a batch
    /// stored just before a crash and never acknowledged), so the next ones number after it.
    pub(super) last_jseq: u64,
    pub(super) last_id: u64,
}

impl Journal {
    /// Opens (or creates) the journal; returns it with the records it holds, in order.
    pub(super) fn open(path: &Path) -> io::Result<(Self, Vec<Entry>)> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        // The file's name durable too (a new file's first records must survive a power cut).
        if let Some(dir) = path.parent() {
            File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?.sync_all()?;
        }
        let entries = read_all(&file)?;
        prefill(&file);
        Ok((
            Journal {
                file,
                end: 0,
                records: 0,
                buffer: Vec::new(),
                spare_messages: Vec::new(),
                spare_buffers: Vec::new(),
                last_jseq: 0,
                last_id: 0,
            },
            entries,
        ))
    }

    /// Writes one record of `body` after the last and syncs it; returns where it starts.
    #[cfg(test)]
    pub(super) fn append(&mut self, body: &[u8]) -> io::Result<u64> {
        let mut record = vec![0; HEADER];
        record.extend_from_slice(body);
        seal(&mut record)?;
        self.append_record(&record)
    }

    /// Writes `entry` as a record after the last and syncs it; returns where it starts, or
    /// `None` (nothing written) when its body is over [`MAX_RECORD`].
    pub(super) fn append_entry(&mut self, entry: &Entry) -> io::Result<Option<u64>> {
        let Some(record) = encode(entry, std::mem::take(&mut self.buffer))? else { return Ok(None) };
        let written = self.append_record(&record);
        // A buffer grown by an unusually big batch is not kept.
        if record.capacity() <= KEPT_BUFFER {
            self.buffer = record;
        }
        written.map(Some)
    }

    /// Writes a record made by [`encode`] after the last and syncs it; returns where it starts.
    pub(super) fn append_record(&mut self, record: &[u8]) -> io::Result<u64> {
        let start = self.end;
        self.file.write_all_at(record, start)?;
        self.file.sync_data()?;
        self.end += record.len() as u64;
        self.records += 1;
        Ok(start)
    }

    /// Starts again at offset 0: everything written so far is durable in redb.
    pub(super) fn rewind(&mut self) {
        self.end = 0;
        self.records = 0;
    }

    /// Whether a checkpoint is due.
    pub(super) fn due(&self) -> bool {
        self.records >= CHECKPOINT_RECORDS || self.end >= CHECKPOINT_BYTES
    }
}

/// Makes `file` [`PREFILLED`] long with zeros after what it holds, synced; on a failure (a full
/// disk), puts its length back.
fn prefill(file: &File) {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let Ok(len) = file.metadata().map(|m| m.len()) else { return };
    let mut at = len;
    let written = (|| {
        while at < PREFILLED {
            let n = (PREFILLED - at).min(ZEROS.len() as u64) as usize;
            file.write_all_at(&ZEROS[..n], at)?;
            at += n as u64;
        }
        file.sync_all()
    })();
    if let Err(e) = written {
        tracing::warn!(error = %e, "journal: could not write its zeros ahead (each batch's sync will write the file's size too)");
        let _ = file.set_len(len);
    }
}

/// The largest record buffer kept from one batch to the next.
const KEPT_BUFFER: usize = 256 << 10;

/// `entry` as a record, header included, encoded once into `buffer` (emptied, then made room
/// for it); `None` when its body is over [`MAX_RECORD`].
fn encode(entry: &Entry, mut buffer: Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let messages: usize = entry.messages.iter().map(|(t, p)| t.len() + p.len() + 6).sum();
    let estimate = HEADER + 32 + messages + 32 * (entry.up.len() + entry.down.len());
    buffer.clear();
    buffer.reserve(estimate);
    let mut record = buffer;
    record.extend_from_slice(&[0; HEADER]);
    let mut record = postcard::to_extend(entry, record).map_err(io::Error::other)?;
    if record.len() - HEADER > MAX_RECORD {
        return Ok(None);
    }
    seal(&mut record)?;
    Ok(Some(record))
}

/// Writes the header of a record whose body follows its first [`HEADER`] bytes.
fn seal(record: &mut [u8]) -> io::Result<()> {
    let len =
        u32::try_from(record.len() - HEADER).map_err(|_| io::Error::other("journal record too long"))?;
    let crc = crc32(&record[HEADER..]);
    record[..4].copy_from_slice(&MAGIC);
    record[4..8].copy_from_slice(&len.to_le_bytes());
    record[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The records from the start of the file up to the first that does not check.
fn read_all(file: &File) -> io::Result<Vec<Entry>> {
    let size = file.metadata()?.len();
    let mut entries = Vec::new();
    let mut at = 0u64;
    let mut header = [0u8; HEADER];
    while at + HEADER as u64 <= size {
        file.read_exact_at(&mut header, at)?;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if header[..4] != MAGIC || len > MAX_RECORD || at + (HEADER + len) as u64 > size {
            break;
        }
        let mut body = vec![0u8; len];
        file.read_exact_at(&mut body, at + HEADER as u64)?;
        if crc32(&body) != crc {
            break;
        }
        let Ok(entry) = postcard::from_bytes::<Entry>(&body) else { break };
        entries.push(entry);
        at += (HEADER + len) as u64;
    }
    Ok(entries)
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): detects a torn or stale record.
/// Eight bytes a step through eight tables ("slicing-by-8"): a batch's record is tens of kB at
/// a busy gateway, and a byte at a time cost a few percent of the agent's CPU per uplink.
pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let low = crc ^ u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let high = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        crc = CRC_TABLES[7][(low & 0xff) as usize]
            ^ CRC_TABLES[6][((low >> 8) & 0xff) as usize]
            ^ CRC_TABLES[5][((low >> 16) & 0xff) as usize]
            ^ CRC_TABLES[4][(low >> 24) as usize]
            ^ CRC_TABLES[3][(high & 0xff) as usize]
            ^ CRC_TABLES[2][((high >> 8) & 0xff) as usize]
            ^ CRC_TABLES[1][((high >> 16) & 0xff) as usize]
            ^ CRC_TABLES[0][(high >> 24) as usize];
    }
    for &byte in chunks.remainder() {
        crc = CRC_TABLES[0][((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// `CRC_TABLES[0]` is the byte-at-a-time table; `CRC_TABLES[k][b]` is the CRC of byte `b`
/// followed by `k` zero bytes.
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let previous = tables[t - 1][i];
            tables[t][i] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
};

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(jseq: u64) -> Entry {
        Entry {
            epoch: 5,
            jseq,
            created_ms: 1_000,
            first_id: jseq * 10,
            messages: vec![("u4/302/temperature".into(), format!("{{\"msg_id\":{jseq}}}").into_bytes())],
            up: vec![([jseq as u8; 16], 7, jseq as u32)],
            down: vec![],
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Eight bytes a step, the rest one by one: the same as a byte at a time, whatever the
        // length and alignment.
        let bytewise = |data: &[u8]| {
            let mut crc = !0u32;
            for &byte in data {
                crc = CRC_TABLES[0][((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
            }
            !crc
        };
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(crc32(&data[start..end]), bytewise(&data[start..end]), "{start}..{end}");
            }
        }
    }

    /// Records come back in order; after a rewind the new records overwrite the old from the
    /// start and reading stops where they end (the stale tail does not check).
    #[test]
    fn records_come_back_in_order_and_a_rewind_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let (mut j, old) = Journal::open(&path).unwrap();
        assert!(old.is_empty());
        for jseq in 1..=3 {
            j.append(&postcard::to_allocvec(&entry(jseq)).unwrap()).unwrap();
        }
        let (mut j, read) = Journal::open(&path).unwrap();
        assert_eq!(read, [entry(1), entry(2), entry(3)]);
        j.rewind();
        // A shorter first record: the next header read falls inside stale bytes.
        let mut short = entry(4);
        short.messages.clear();
        j.append(&postcard::to_allocvec(&short).unwrap()).unwrap();
        let (_, read) = Journal::open(&path).unwrap();
        assert_eq!(read, [short]);
    }

    /// The file is made [`PREFILLED`] long with zeros at open, once; records within it leave
    /// its length alone, the zeros end a reading, and a record past it lengthens the file by
    /// itself only (no zeros written in a batch's path).
    #[test]
    fn zeros_are_written_ahead_of_the_records_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let len = || std::fs::metadata(&path).unwrap().len();
        let (mut j, _) = Journal::open(&path).unwrap();
        assert_eq!(len(), PREFILLED);
        j.append(&postcard::to_allocvec(&entry(1)).unwrap()).unwrap();
        j.append(&postcard::to_allocvec(&entry(2)).unwrap()).unwrap();
        assert_eq!(len(), PREFILLED, "records within the zeros leave the length alone");
        let (mut j, read) = Journal::open(&path).unwrap();
        assert_eq!(read, [entry(1), entry(2)], "the zeros end the reading");
        assert_eq!(len(), PREFILLED, "an open finds them written");
        let past = j.append(&vec![7; PREFILLED as usize]).unwrap();
        let end = past + (HEADER as u64) + PREFILLED;
        assert_eq!(len(), end, "a record past them: its own bytes only");
        j.rewind();
        j.append(&postcard::to_allocvec(&entry(3)).unwrap()).unwrap();
        assert_eq!(len(), end);
        assert_eq!(Journal::open(&path).unwrap().1, [entry(3)]);
    }

    /// Two records, and where the second starts.
    fn two_records(path: &Path) -> u64 {
        let _ = std::fs::remove_file(path);
        let (mut j, _) = Journal::open(path).unwrap();
        j.append(&postcard::to_allocvec(&entry(1)).unwrap()).unwrap();
        j.append(&postcard::to_allocvec(&entry(2)).unwrap()).unwrap()
    }

    /// A torn last record, a flipped bit, a length past the file end, a zeroed magic,
    /// garbage or an undecodable body end the reading there, never with an error or a panic.
    #[test]
    fn damaged_records_end_the_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let open = |path: &Path| OpenOptions::new().write(true).open(path).unwrap();
        let second = two_records(&path);
        assert_eq!(Journal::open(&path).unwrap().1, [entry(1), entry(2)]);
        let end = second + (HEADER + postcard::to_allocvec(&entry(2)).unwrap().len()) as u64;
        open(&path).write_all_at(&[0; 3], end - 3).unwrap();
        assert_eq!(Journal::open(&path).unwrap().1, [entry(1)], "torn");
        two_records(&path);
        open(&path).write_all_at(&[0xff], second + HEADER as u64).unwrap();
        assert_eq!(Journal::open(&path).unwrap().1, [entry(1)], "bit flip");
        two_records(&path);
        open(&path).write_all_at(&u32::MAX.to_le_bytes(), second + 4).unwrap();
        assert_eq!(Journal::open(&path).unwrap().1, [entry(1)], "huge length");
        two_records(&path);
        two_records(&path);
        open(&path).write_all_at(&[0; 4], second).unwrap();
        assert_eq!(Journal::open(&path).unwrap().1, [entry(1)], "magic zeroed");
        std::fs::write(&path, b"NSJ1garbage that is not a record").unwrap();
        assert!(Journal::open(&path).unwrap().1.is_empty(), "garbage");
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&3u32.to_le_bytes());
        record.extend_from_slice(&crc32(&[0xff; 3]).to_le_bytes());
        record.extend_from_slice(&[0xff; 3]);
        std::fs::write(&path, record).unwrap();
        assert!(Journal::open(&path).unwrap().1.is_empty(), "undecodable");
    }

    #[test]
    fn a_checkpoint_is_due_by_records_or_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(&dir.path().join(FILE)).unwrap();
        for _ in 0..CHECKPOINT_RECORDS - 1 {
            j.append(b"x").unwrap();
        }
        assert!(!j.due());
        j.append(b"x").unwrap();
        assert!(j.due());
        j.rewind();
        assert!(!j.due());
        j.append(&vec![0; CHECKPOINT_BYTES as usize]).unwrap();
        assert!(j.due());
    }
}
