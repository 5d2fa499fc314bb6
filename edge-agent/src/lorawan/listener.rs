//! The packet-forwarder listener: datagrams read in batches (a short linger, one durable commit
//! for all), answered once stored, and the batch's downlinks sent after the answers.
//!
//! It runs on a thread of its own that owns the socket and the batch's journal commit, not on
//! the async runtime: a batch's work is a disk sync and CPU (decoding, MIC checks), and going
//! through the runtime cost more than the work itself at a gateway's rates (a wake-up of the
//! runtime for the datagram, another for the linger's timer, a hand-off to the blocking pool
//! and one back: `cargo bench -p neosens-edge --bench uplink_e2e` measured that path at about a
//! fifth of the agent's CPU per uplink). The async side only starts the thread and stops it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Handled, Pipeline, semtech};

/// Most datagrams stored in one transaction.
const BATCH: usize = 64;

/// How soon after a batch's first `PUSH_DATA` its `PUSH_ACK`s go out, at the latest when the
/// disk is fast. A Semtech packet forwarder waits for its `PUSH_ACK` in two reads of 50 ms
/// (`push_timeout_ms` 100), and a late `PUSH_ACK` still in its socket uses up the first read of
/// the next wait: after one stall, every `PUSH_ACK` slower than 50 ms would be counted missing
/// in its statistics from then on. 45 ms leaves 5 ms for the way back and the scheduler.
pub const ACK_BUDGET: Duration = Duration::from_millis(45);

/// The shortest linger, however slow the disk has been lately.
const MIN_LINGER: Duration = Duration::from_millis(5);

/// What a batch's handling is taken to cost before one was measured.
const FIRST_HANDLING: Duration = Duration::from_millis(10);

/// How long the listener keeps collecting datagrams after a `PUSH_DATA` arrived, before storing
/// them in one durable commit and acknowledging them: what [`ACK_BUDGET`] leaves once twice the
/// recent batches' handling time (decoding and the sync, a decaying maximum over the batches
/// that stored something: a keep-alive's quick answer says nothing of the disk) is set aside. A
/// commit (a disk sync) and the wake-ups around a batch cost more than decoding a datagram's
/// frames: merging datagrams is most of what the agent saves at low rates. On this project's
/// x86-64 machine the linger is about 43 ms: at 50 datagrams/s a batch takes three datagrams
/// where a fixed 30 ms took two (`cargo bench -p neosens-edge --bench uplink_e2e`); on an SD card
/// whose syncs take 15 ms it shrinks to 15 ms. A `lora_pkt_fwd` waits for its `PUSH_ACK` before
/// its next datagram, so what the linger merges are several forwarders' datagrams (its own next
/// one carries the frames heard meanwhile).
#[derive(Debug)]
struct Linger {
    /// The recent batches' handling time: the longest, decaying by an eighth per batch.
    recent: Duration,
}

impl Default for Linger {
    fn default() -> Self {
        Linger { recent: FIRST_HANDLING }
    }
}

impl Linger {
    fn get(&self) -> Duration {
        ACK_BUDGET.saturating_sub(self.recent * 2).max(MIN_LINGER)
    }

    fn handled(&mut self, took: Duration) {
        self.recent = took.max(self.recent - self.recent / 8);
    }
}

/// How long the thread waits for a datagram before it looks at its stop flag again: a backstop
/// for a wake-up datagram that cannot reach the socket (no loopback route to its address, a
/// firewall). A dozen wake-ups a minute when idle, no measurable CPU.
const STOP_CHECK: Duration = Duration::from_secs(5);

/// A batch's datagrams, back to back in one buffer kept from batch to batch: no allocation per
/// datagram. The buffer holds at most [`BATCH`] datagrams and room for one more (bounded by
/// [`semtech::MAX_DATAGRAM`]).
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    used: usize,
    /// (start, length, sender) of each datagram.
    items: Vec<(usize, usize, SocketAddr)>,
}

impl Batch {
    fn clear(&mut self) {
        self.used = 0;
        self.items.clear();
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    /// Receives one datagram into the buffer, waiting for it (up to the socket's read
    /// timeout).
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<()> {
        let end = self.room();
        let (n, from) = socket.recv_from(&mut self.bytes[self.used..end])?;
        self.items.push((self.used, n, from));
        self.used += n;
        Ok(())
    }

    /// Room for one more datagram: one byte more than accepted, to tell an oversized datagram
    /// from a full one. Returns where that room ends.
    fn room(&mut self) -> usize {
        let end = self.used + semtech::MAX_DATAGRAM + 1;
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        end
    }

    /// Reads the datagrams waiting in `socket`, up to [`BATCH`], without waiting: each read
    /// says so itself (`MSG_DONTWAIT`), where switching the socket to non-blocking and back
    /// cost two more system calls per read-out.
    fn drain(&mut self, socket: &UdpSocket) {
        while self.len() < BATCH {
            let end = self.room();
            let Ok((n, _, Some(from))) = rustix::net::recvfrom(
                socket,
                &mut self.bytes[self.used..end],
                rustix::net::RecvFlags::DONTWAIT,
            ) else {
                return;
            };
            let Ok(from) = std::net::SocketAddr::try_from(from) else { continue };
            self.items.push((self.used, n, from));
            self.used += n;
        }
    }

    /// Whether a datagram carries frames (`PUSH_DATA`): only those are worth a linger; a
    /// keep-alive (`PULL_DATA`) or a `TX_ACK` is answered at once.
    fn has_push(&self) -> bool {
        self.items.iter().any(|(start, n, _)| *n >= 4 && self.bytes[start + 3] == semtech::PUSH_DATA)
    }

    /// Each datagram with its sender.
    fn datagrams(&self) -> Vec<(&[u8], Option<SocketAddr>)> {
        self.items.iter().map(|(start, n, from)| (&self.bytes[*start..start + n], Some(*from))).collect()
    }
}

/// Serves the Semtech UDP protocol on `socket` until `shutdown`. The datagrams that arrive
/// within the [linger](Linger) of a first `PUSH_DATA` are handled with it, in one transaction;
/// each is acknowledged after it is stored (a keep-alive alone is answered at once). Returns
/// when the listener's thread ended (at `shutdown`, or if it could not start).
pub async fn run(socket: tokio::net::UdpSocket, pipeline: Arc<Pipeline>, shutdown: CancellationToken) {
    let blocking = |s: UdpSocket| {
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(STOP_CHECK))?;
        Ok(s)
    };
    let socket = match socket.into_std().and_then(blocking) {
        Ok(socket) => socket,
        Err(e) => {
            tracing::error!(error = %e, "packet forwarder socket");
            return;
        }
    };
    let wake_at = socket.local_addr().ok().map(loopback);
    let stop = Arc::new(AtomicBool::new(false));
    let (ended, has_ended) = tokio::sync::oneshot::channel::<()>();
    let s = Arc::clone(&stop);
    let started = std::thread::Builder::new().name("lorawan-udp".into()).spawn(move || {
        serve(&socket, &pipeline, &s);
        drop(ended);
    });
    if let Err(e) = started {
        tracing::error!(error = %e, "starting the packet forwarder listener's thread");
        return;
    }
    let mut has_ended = has_ended;
    tokio::select! {
        () = shutdown.cancelled() => {}
        // The thread ended by itself (it does not, short of a bug): the supervisor hears of it.
        _ = &mut has_ended => return,
    }
    stop.store(true, Ordering::Release);
    // The thread waits in `recv_from`: an empty datagram wakes it to see the flag.
    if let Some(to) = wake_at {
        if let Ok(waker) = UdpSocket::bind(if to.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }) {
            let _ = waker.send_to(&[], to);
        }
    }
    let _ = has_ended.await;
}

/// Where a datagram to the socket bound at `addr` can be sent from this host.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, addr.port())
}

/// The listener's thread: batches until `stop`.
fn serve(socket: &UdpSocket, pipeline: &Pipeline, stop: &AtomicBool) {
    let mut batch = Batch::default();
    let mut linger = Linger::default();
    // The flag is read before each wait too: the wake-up datagram may have been read with a
    // batch.
    while !stop.load(Ordering::Acquire) {
        batch.clear();
        let first = batch.receive(socket);
        if stop.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = first {
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                // Nothing within STOP_CHECK: the flag is looked at again.
                continue;
            }
            tracing::warn!(error = %e, "packet forwarder socket");
            // An error that repeats (none is expected from a bound UDP socket) is not a busy
            // loop.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let first_at = Instant::now();
        batch.drain(socket);
        if batch.len() < BATCH && batch.has_push() {
            // The next ones wait in the socket's buffer meanwhile (a few kB at these rates), read
            // in one go after: one wake-up per batch, not one per datagram. A full batch (a
            // backlog) goes at once.
            std::thread::sleep((first_at + linger.get()).saturating_duration_since(Instant::now()));
            batch.drain(socket);
        }
        let handling = Instant::now();
        let handled = handle(pipeline, &batch.datagrams());
        if handled.stored {
            linger.handled(handling.elapsed());
        }
        for ((_, _, from), ack) in batch.items.iter().zip(handled.answers) {
            if let Some(ack) = ack {
                if let Err(e) = socket.send_to(&ack, from) {
                    tracing::debug!(error = %e, forwarder = %from, "acknowledging a datagram");
                }
            }
        }
        for out in handled.downlinks {
            if let Err(e) = socket.send_to(&out.datagram, out.to) {
                tracing::warn!(error = %e, forwarder = %out.to, "sending a downlink");
            }
        }
    }
}

/// Decodes and stores a batch. A panic there (a bug, never an input: the parsers are fuzzed)
/// loses this batch's acks, not the listener.
fn handle(pipeline: &Pipeline, datagrams: &[(&[u8], Option<SocketAddr>)]) -> Handled {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipeline.handle_datagrams(datagrams)))
        .unwrap_or_else(|_| {
            tracing::error!("handling a batch of datagrams panicked: not acknowledged");
            Handled::default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The linger leaves the `PUSH_ACK` inside the forwarder's first 50 ms read: it shrinks
    /// with a slow batch at once, grows back as the disk recovers, and never goes below its
    /// floor.
    #[test]
    fn the_linger_follows_the_batches_handling_time() {
        let mut linger = Linger::default();
        assert_eq!(linger.get(), Duration::from_millis(25), "before a first batch: a cautious guess");
        for _ in 0..40 {
            linger.handled(Duration::from_millis(1));
        }
        assert_eq!(linger.get(), Duration::from_millis(43), "quick batches: most of the budget");
        linger.handled(Duration::from_millis(15));
        assert_eq!(linger.get(), Duration::from_millis(15), "a slow sync counts at once");
        for _ in 0..40 {
            linger.handled(Duration::from_millis(1));
        }
        assert_eq!(linger.get(), Duration::from_millis(43), "and fades as batches are quick again");
        linger.handled(Duration::from_secs(2));
        assert_eq!(linger.get(), MIN_LINGER);
    }
}
