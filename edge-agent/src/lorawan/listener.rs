//! The packet-forwarder listener: datagrams read in batches (a short linger, one durable commit
//! for all), answered once stored, and the batch's downlinks sent after the answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{Handled, Pipeline, semtech};

/// Most datagrams stored in one transaction.
const BATCH: usize = 64;

/// How long the listener keeps collecting datagrams after one arrived, before storing them in
/// one durable commit and acknowledging them. A commit (a disk sync) costs more than decoding a
/// datagram's frames: at 50 datagrams/s this halves the commits, at 500/s it divides them by
/// about fifteen. Well under the 100 ms a Semtech packet forwarder waits for its `PUSH_ACK`
/// (`push_timeout_ms`), with room for a slow SD card's sync. A `lora_pkt_fwd` waits for that
/// `PUSH_ACK` before its next datagram, so what the linger merges are several forwarders'
/// datagrams (its own next one carries the frames heard meanwhile).
pub const COMMIT_LINGER: Duration = Duration::from_millis(30);

/// Reads the datagrams waiting in `socket`, up to [`BATCH`] in `batch`.
fn drain(socket: &UdpSocket, buf: &mut [u8], batch: &mut Vec<(Vec<u8>, std::net::SocketAddr)>) {
    while batch.len() < BATCH {
        match socket.try_recv_from(buf) {
            Ok((n, from)) => batch.push((buf[..n].to_vec(), from)),
            Err(_) => break,
        }
    }
}

/// Serves the Semtech UDP protocol on `socket` until `shutdown`. The datagrams that arrive
/// within [`COMMIT_LINGER`] of a first one are handled with it, in one transaction; each is
/// acknowledged after it is stored.
pub async fn run(socket: UdpSocket, pipeline: Arc<Pipeline>, shutdown: CancellationToken) {
    // One byte more than accepted, to tell an oversized datagram from a full one.
    let mut buf = vec![0u8; semtech::MAX_DATAGRAM + 1];
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => (buf[..n].to_vec(), from),
                Err(e) => {
                    tracing::warn!(error = %e, "packet forwarder socket");
                    continue;
                }
            },
        };
        let mut batch = vec![first];
        drain(&socket, &mut buf, &mut batch);
        if batch.len() < BATCH {
            // The next ones wait in the socket's buffer meanwhile (a few kB at these rates), read
            // in one go after: one timer per batch, not a wake-up per datagram. A full batch
            // (a backlog) goes at once.
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(COMMIT_LINGER) => {}
            }
            drain(&socket, &mut buf, &mut batch);
        }
        let p = Arc::clone(&pipeline);
        let senders: Vec<SocketAddr> = batch.iter().map(|(_, from)| *from).collect();
        // Decoding and the batch's commit run on the blocking pool; a panic there (a bug, never
        // an input: the parsers are fuzzed) loses this batch's acks, not the listener.
        let handled = neosens_runtime::blocking::run(move || {
            let refs: Vec<(&[u8], Option<SocketAddr>)> =
                batch.iter().map(|(d, from)| (d.as_slice(), Some(*from))).collect();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.handle_datagrams(&refs)))
        })
        .await
        .unwrap_or_else(|_| {
            tracing::error!("handling a batch of datagrams panicked: not acknowledged");
            Handled::default()
        });
        for (from, ack) in senders.into_iter().zip(handled.answers) {
            if let Some(ack) = ack {
                if let Err(e) = socket.send_to(&ack, from).await {
                    tracing::debug!(error = %e, forwarder = %from, "acknowledging a datagram");
                }
            }
        }
        for out in handled.downlinks {
            if let Err(e) = socket.send_to(&out.datagram, out.to).await {
                tracing::warn!(error = %e, forwarder = %out.to, "sending a downlink");
            }
        }
    }
}
