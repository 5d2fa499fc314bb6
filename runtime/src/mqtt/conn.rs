//! One MQTT 3.1.1 connection of the acknowledged link ([`super::acked`]): TCP or TLS, CONNECT
//! with the link's credentials and last will, then packets written in batches and read in bulk.
//!
//! Why not rumqttc's event loop, as the shared link uses: it writes and flushes every publish on
//! its own (a system call each) and hands every PUBACK over as an event of its own. The gateway's
//! uplink sends its outbox in windows of up to [`super::acked::WINDOW`] messages: here a window
//! is one write, and the PUBACKs that arrived together are one read. The packets themselves are
//! rumqttc's (`mqttbytes`), so the bytes on the wire are the same.

use std::time::Duration;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, LastWill, Login, Packet, Publish, Subscribe};
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
}

impl Conn {
    /// Connects to the link's broker and waits for its CONNACK.
    pub(crate) async fn open(config: &LinkConfig) -> Result<Self, ConnError> {
        let url = &config.url;
        let tcp = timeout(TcpStream::connect((url.host.as_str(), url.port))).await??;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match url.tls_config() {
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
        };
        let mut connect = Connect::new(config.client_id.as_str());
        connect.keep_alive = u16::try_from(config.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = true;
        if let Some((user, pass)) = &config.url.credentials {
            connect.login = Some(Login::new(user.as_str(), pass.as_str()));
        }
        if let Some(topic) = &config.state_topic {
            connect.last_will = Some(LastWill::new(topic.as_str(), "offline", QoS::AtLeastOnce, true));
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
    pub(crate) fn publish(
        &mut self,
        topic: impl Into<String>,
        payload: impl Into<Vec<u8>>,
        retain: bool,
    ) -> Result<u16, ConnError> {
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, payload);
        publish.retain = retain;
        publish.pkid = self.pkid();
        publish.write(&mut self.out)?;
        Ok(publish.pkid)
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

async fn timeout<T>(f: impl std::future::Future<Output = T>) -> Result<T, ConnError> {
    tokio::time::timeout(NETWORK_TIMEOUT, f).await.map_err(|_| ConnError::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::BrokerUrl;
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
