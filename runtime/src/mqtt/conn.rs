//! One MQTT 3.1.1 connection of the acknowledged link ([`super::acked`]): TCP or TLS, CONNECT
//! with the link's credentials and last will, then packets written in batches and read in bulk.
//!
//! Why not rumqttc's event loop, as the shared link uses: it writes and flushes every publish on
//! its own (a system call each) and hands every PUBACK over as an event of its own. The gateway's
//! uplink sends its outbox in windows of up to [`super::acked::WINDOW`] messages: here a window
//! is one write (up to its byte bound), and on plain TCP, once the link has caught up, the
//! PUBACKs that answer it are one read ([`Conn::wake_after`]). The packets are rumqttc's
//! (`mqttbytes`), but for PUBLISH, encoded here straight from the outbox's bytes (a test checks
//! they are rumqttc's, byte for byte).

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rumqttc::mqttbytes::v4::{Connect, LastWill, Login, Packet, Subscribe};
use rumqttc::mqttbytes::{self, QoS};
use rumqttc::tokio_rustls::TlsConnector;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::LinkConfig;

/// How long connecting (TCP, TLS, CONNACK) and one write may take.
pub(crate) const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection could not be made or was lost.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The network failed (refused, reset, closed …).
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The broker took longer than [`NETWORK_TIMEOUT`].
    #[error("the broker did not answer in time")]
    Timeout,
    /// A packet could not be encoded or decoded (too large, malformed).
    #[error("MQTT packet: {0}")]
    Packet(#[from] mqttbytes::Error),
    /// The broker refused the connection.
    #[error("connection refused by the broker: {0:?}")]
    Refused(rumqttc::mqttbytes::v4::ConnectReturnCode),
    /// The broker sent something else than a CONNACK first.
    #[error("the broker did not acknowledge the connection")]
    NoConnAck,
    /// The broker stopped answering pings.
    #[error("the broker stopped answering (keep-alive)")]
    KeepAlive,
}

/// The byte stream (plain TCP or TLS).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An established connection: the stream, what was read and not parsed yet, what is to be
/// written.
pub(crate) struct Conn {
    io: Box<dyn Io>,
    read: BytesMut,
    /// Packets encoded, not written yet ([`Conn::flush`] writes them at once).
    pub(crate) out: BytesMut,
    max_incoming: usize,
    next_pkid: u16,
    /// The TCP socket, for its low-water mark; `None` over TLS (see [`Conn::wake_after`]).
    plain_socket: Option<std::os::fd::RawFd>,
    /// The socket's low-water mark as last set (`SO_RCVLOWAT`).
    low_water: usize,
}

/// The largest remaining length MQTT's four-byte encoding allows.
const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// The highest low-water mark asked for: a window's PUBACKs (1 KiB) with room to spare, far
/// under the socket's receive buffer.
const MAX_LOW_WATER: usize = 16 * 1024;

impl Conn {
    /// Connects to the link's broker and waits for its CONNACK.
    pub(crate) async fn open(config: &LinkConfig) -> Result<Self, ConnError> {
        let url = &config.url;
        let tcp = timeout(TcpStream::connect((url.host.as_str(), url.port))).await??;
        tcp.set_nodelay(true)?;
        let tls = url.tls_config();
        let plain_socket = tls.is_none().then(|| std::os::fd::AsRawFd::as_raw_fd(&tcp));
        let io: Box<dyn Io> = match tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                Box::new(timeout(TlsConnector::from(tls).connect(name, tcp)).await??)
            }
            None => Box::new(tcp),
        };
        let mut conn = Conn {
            io,
            read: BytesMut::with_capacity(4096),
            out: BytesMut::with_capacity(16 * 1024),
            max_incoming: config.max_incoming_packet,
            next_pkid: 0,
            plain_socket,
            low_water: 1,
        };
        let mut connect = Connect::new(config.client_id.as_str());
        connect.keep_alive = u16::try_from(config.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = true;
        if let Some((user, pass)) = &config.url.credentials {
            connect.login = Some(Login::new(user.as_str(), pass.as_str()));
        }
        if let Some(topic) = &config.state_topic {
            connect.last_will = Some(LastWill::new(topic.as_str(), super::OFFLINE, QoS::AtLeastOnce, true));
        }
        connect.write(&mut conn.out)?;
        timeout(conn.flush()).await??;
        match timeout(conn.next_packet()).await?? {
            Packet::ConnAck(ack) if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => {
                Ok(conn)
            }
            Packet::ConnAck(ack) => Err(ConnError::Refused(ack.code)),
            _ => Err(ConnError::NoConnAck),
        }
    }

    /// A packet id for the next publish or subscription, never 0. With at most a window of
    /// messages out, an id comes back only long after its packet was acknowledged.
    pub(crate) fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }

    /// Encodes a QoS 1 subscription to `filter` (written at the next [`Self::flush`]).
    pub(crate) fn subscribe(&mut self, filter: &str) -> Result<(), ConnError> {
        let mut subscribe = Subscribe::new(filter, QoS::AtLeastOnce);
        subscribe.pkid = self.pkid();
        subscribe.write(&mut self.out)?;
        Ok(())
    }

    /// Encodes a QoS 1 publish (written at the next [`Self::flush`]); returns its packet id.
    /// Encoded straight from the caller's bytes (no packet struct, no copy of the topic or
    /// payload but the one into the write buffer): the same bytes as rumqttc's `Publish::write`
    /// (a test compares them).
    pub(crate) fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> Result<u16, ConnError> {
        let topic_len = u16::try_from(topic.len()).map_err(|_| mqttbytes::Error::PayloadTooLong)?;
        // Topic (length-prefixed), packet id, payload.
        let remaining = 2 + topic.len() + 2 + payload.len();
        if remaining > MAX_REMAINING_LENGTH {
            return Err(mqttbytes::Error::PayloadTooLong.into());
        }
        let pkid = self.pkid();
        self.out.reserve(1 + 4 + remaining);
        // PUBLISH, QoS 1, not a duplicate (a clean session sends nothing twice).
        self.out.put_u8(0b0011_0010 | u8::from(retain));
        let mut left = remaining;
        loop {
            let byte = (left % 128) as u8;
            left /= 128;
            if left == 0 {
                self.out.put_u8(byte);
                break;
            }
            self.out.put_u8(byte | 0x80);
        }
        self.out.put_u16(topic_len);
        self.out.extend_from_slice(topic.as_bytes());
        self.out.put_u16(pkid);
        self.out.extend_from_slice(payload);
        Ok(pkid)
    }

    /// Writes what was encoded, in one go.
    pub(crate) async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = tokio::time::timeout(NETWORK_TIMEOUT, async {
            self.io.write_all(&self.out).await?;
            self.io.flush().await
        })
        .await;
        self.out.clear();
        written.map_err(|_| ConnError::Timeout)?.map_err(ConnError::from)
    }

    /// Has the kernel wake the reader only once `bytes` more are there (`SO_RCVLOWAT`, less
    /// what is already read of a packet): the caller knows at least that much is coming (four
    /// bytes per PUBACK it waits for), and the broker sends a window's PUBACKs in several
    /// pieces as it works through the write, each a wake-up, a read and a TCP ACK. A closed or
    /// reset connection wakes the reader whatever the mark. Over TLS the mark stays at one
    /// byte: part of a record may already sit in the TLS layer's buffer, so what the socket
    /// still gets can be less than the PUBACKs' size.
    pub(crate) fn wake_after(&mut self, bytes: usize) {
        let Some(fd) = self.plain_socket else { return };
        let bytes = bytes.saturating_sub(self.read.len()).clamp(1, MAX_LOW_WATER);
        if bytes == self.low_water {
            return;
        }
        match set_low_water(fd, bytes) {
            Ok(()) => self.low_water = bytes,
            Err(e) => {
                tracing::debug!(error = %e, "SO_RCVLOWAT not set: the broker's answers are read as they come");
                // Not left at an earlier, higher mark that nothing would lower any more.
                let _ = set_low_water(fd, 1);
                self.plain_socket = None;
            }
        }
    }

    /// Reads what the broker sent (at least one byte; cancel-safe) into the parse buffer.
    pub(crate) async fn fill(&mut self) -> Result<(), ConnError> {
        if self.io.read_buf(&mut self.read).await? == 0 {
            return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// The next complete packet already read, if any.
    pub(crate) fn parsed(&mut self) -> Result<Option<Packet>, ConnError> {
        match Packet::read(&mut self.read, self.max_incoming) {
            Ok(packet) => Ok(Some(packet)),
            Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads until a whole packet came.
    async fn next_packet(&mut self) -> Result<Packet, ConnError> {
        loop {
            if let Some(packet) = self.parsed()? {
                return Ok(packet);
            }
            self.fill().await?;
        }
    }
}

/// Sets `SO_RCVLOWAT` on `fd` (no safe wrapper in the crates at hand: `socket2` and `rustix`
/// have none for this option).
#[allow(unsafe_code)]
fn set_low_water(fd: std::os::fd::RawFd, bytes: usize) -> std::io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is the connection's socket, open as long as the `Conn` that owns its stream;
    // the kernel reads a `c_int` from a pointer valid for the duration of the call.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

async fn timeout<T>(f: impl std::future::Future<Output = T>) -> Result<T, ConnError> {
    tokio::time::timeout(NETWORK_TIMEOUT, f).await.map_err(|_| ConnError::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::BrokerUrl;
    use rumqttc::mqttbytes::v4::Publish;
    use tokio::net::TcpListener;

    /// A broker played by the test on a loopback port: takes one connection, reads what the
    /// client sends first (its CONNECT), answers `reply`, then keeps the line until the client
    /// hangs up; returns what it read first.
    async fn broker(reply: &'static [u8]) -> (LinkConfig, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut first = vec![0u8; 1024];
            let n = socket.read(&mut first).await.unwrap();
            first.truncate(n);
            socket.write_all(reply).await.unwrap();
            let mut rest = Vec::new();
            let _ = socket.read_to_end(&mut rest).await;
            first
        });
        let url: BrokerUrl = format!("mqtt://gw-login:secret@127.0.0.1:{port}").parse().unwrap();
        let mut config = LinkConfig::new(url, "gw-1");
        config.state_topic = Some("gateways/gw-1/state".into());
        config.max_incoming_packet = 1024;
        (config, task)
    }

    #[tokio::test]
    async fn connects_with_its_login_and_last_will() {
        let (config, broker) = broker(&[0x20, 0x02, 0x00, 0x00]).await;
        let mut conn = Conn::open(&config).await.expect("CONNACK accepted");
        assert_ne!(conn.pkid(), 0);
        drop(conn);
        let mut sent = BytesMut::from(&broker.await.unwrap()[..]);
        let Packet::Connect(connect) = Packet::read(&mut sent, 1024).unwrap() else {
            panic!("a CONNECT first")
        };
        assert_eq!(connect.client_id, "gw-1");
        assert!(connect.clean_session);
        assert_eq!(
            connect.login.map(|l| (l.username, l.password)),
            Some(("gw-login".into(), "secret".into()))
        );
        let will = connect.last_will.expect("the offline will");
        assert_eq!(
            (will.topic.as_str(), &will.message[..], will.retain),
            ("gateways/gw-1/state", &b"offline"[..], true)
        );
    }

    /// A publish encoded from borrowed bytes is byte for byte rumqttc's, across the remaining
    /// length's encoding steps; a topic or payload too long for MQTT is an error, not a
    /// truncated length field.
    #[tokio::test]
    async fn publishes_are_encoded_as_rumqttc_does() {
        let (config, _broker) = broker(&[0x20, 0x02, 0x00, 0x00]).await;
        let mut conn = Conn::open(&config).await.expect("CONNACK accepted");
        conn.out.clear();
        for (topic_len, payload_len) in
            [(1, 0), (10, 113), (10, 114), (20, 16_359), (20, 16_360), (3, 2_097_200)]
        {
            for retain in [false, true] {
                let topic = "t".repeat(topic_len);
                let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
                let pkid = conn.publish(&topic, &payload, retain).unwrap();
                let mut expected = Publish::new(topic.as_str(), QoS::AtLeastOnce, payload.clone());
                expected.retain = retain;
                expected.pkid = pkid;
                let mut bytes = BytesMut::new();
                expected.write(&mut bytes).unwrap();
                assert_eq!(&conn.out[..], &bytes[..], "topic {topic_len} B, payload {payload_len} B");
                let Packet::Publish(read) = Packet::read(&mut conn.out, usize::MAX).unwrap() else {
                    panic!("a PUBLISH")
                };
                assert_eq!(
                    (read.topic.as_str(), &read.payload[..], read.pkid),
                    (topic.as_str(), &payload[..], pkid)
                );
                conn.out.clear();
            }
        }
        let long_topic = "t".repeat(70_000);
        assert!(matches!(conn.publish(&long_topic, b"x", false), Err(ConnError::Packet(_))));
        assert!(conn.out.is_empty(), "nothing written for a refused publish");
    }

    /// What a broker (or anything listening on its port) may answer instead of an accepting
    /// CONNACK: each is an error naming it, never a panic nor a connection taken as up.
    #[tokio::test]
    async fn refusals_and_malformed_answers_are_errors() {
        let (config, _b) = broker(&[0x20, 0x02, 0x00, 0x05]).await;
        assert!(matches!(Conn::open(&config).await, Err(ConnError::Refused(_))), "not authorised");
        let (config, _b) = broker(&[0xd0, 0x00]).await;
        assert!(matches!(Conn::open(&config).await, Err(ConnError::NoConnAck)), "a PINGRESP first");
        let (config, _b) = broker(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).await;
        assert!(matches!(Conn::open(&config).await, Err(ConnError::Packet(_))), "garbage");
        // A PUBLISH announcing 2 MiB, over the 1 KiB accepted.
        let (config, _b) = broker(&[0x30, 0x80, 0x80, 0x80, 0x01]).await;
        assert!(matches!(Conn::open(&config).await, Err(ConnError::Packet(_))), "oversized");
        let (config, _b) = broker(&[0x20, 0x02]).await;
        let cut = tokio::time::timeout(Duration::from_secs(30), async {
            // The broker stays silent after half a CONNACK: the client waits, bounded.
            Conn::open(&config).await
        });
        assert!(matches!(cut.await, Ok(Err(ConnError::Timeout))), "half a CONNACK times out");
    }
}
