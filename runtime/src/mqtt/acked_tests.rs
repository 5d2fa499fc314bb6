//! The acknowledged link against a broker played by the test.

use super::*;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A store in memory.
#[derive(Clone, Default)]
struct Memory {
    messages: Arc<parking_lot::Mutex<Vec<Stored>>>,
    ready: Arc<Notify>,
}

impl AckedStore for Memory {
    type Error = std::convert::Infallible;
    fn read_each(
        &self,
        after: u64,
        limit: usize,
        each: &mut dyn FnMut(u64, &str, &[u8]) -> bool,
    ) -> Result<(), Self::Error> {
        for m in self.messages.lock().iter().filter(|m| m.id > after).take(limit) {
            if !each(m.id, &m.topic, &m.payload) {
                break;
            }
        }
        Ok(())
    }
    fn remove(&self, ids: &[u64]) -> Result<(), Self::Error> {
        self.messages.lock().retain(|m| !ids.contains(&m.id));
        Ok(())
    }
    fn last_id(&self) -> u64 {
        self.messages.lock().iter().map(|m| m.id).max().unwrap_or(0)
    }
    fn stored(&self) -> &Notify {
        &self.ready
    }
}

/// A broker that holds back its PUBACKs must not hold back what it sends after them: with
/// the socket's low-water mark raised for three PUBACKs (12 bytes), an order of 5 bytes is
/// read once the link's patience is over, long before the keep-alive would have ended the
/// connection.
#[tokio::test]
async fn an_order_behind_withheld_pubacks_is_read_within_the_patience() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut read = BytesMut::new();
        let mut publishes = 0;
        let mut connected = false;
        while publishes < 3 {
            match Packet::read(&mut read, 1 << 20) {
                Ok(Packet::Connect(_)) => {
                    socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
                    connected = true;
                }
                Ok(Packet::Publish(_)) => publishes += 1,
                Ok(_) => {}
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                    assert_ne!(socket.read_buf(&mut read).await.unwrap(), 0, "the link hung up");
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(connected);
        // No PUBACK: an order, QoS 0, topic "o", no payload (5 bytes).
        socket.write_all(&[0x30, 0x03, 0x00, 0x01, b'o']).await.unwrap();
        // The line stays open until the link hangs up.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
    });
    let store = Memory::default();
    store.messages.lock().extend((1..=3).map(|id| Stored { id, topic: "t".into(), payload: vec![b'x'] }));
    let url: super::super::BrokerUrl = format!("mqtt://127.0.0.1:{port}").parse().unwrap();
    let mut config = LinkConfig::new(url, "gw-1");
    config.keep_alive = Duration::from_secs(30);
    let (inbound, mut orders) = mpsc::channel(4);
    let (_more, more_subscriptions) = mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let link = tokio::spawn(run(
        config,
        Vec::new(),
        store,
        Arc::new(AckedStats::default()),
        inbound,
        more_subscriptions,
        shutdown.clone(),
    ));
    let order = tokio::time::timeout(Duration::from_secs(10), orders.recv())
        .await
        .expect("the order is read within the patience, not at the keep-alive")
        .expect("an order");
    assert_eq!(order.topic, "o");
    shutdown.cancel();
    link.await.unwrap();
    broker.await.unwrap();
}
