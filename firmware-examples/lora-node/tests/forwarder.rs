//! The node against a UDP socket standing in for the agent: datagrams arrive as PUSH_DATA with
//! rising counters, and the answers it gets are counted.

use std::net::UdpSocket;
use std::time::Duration;

use neosens_lora_node::{Session, run};

#[test]
fn pushes_uplinks_and_counts_the_acks() {
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let addr = agent.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut counters = Vec::new();
        for _ in 0..3 {
            let (n, from) = agent.recv_from(&mut buf).unwrap();
            let d = &buf[..n];
            assert_eq!((d[0], d[3]), (2, 0x00), "PUSH_DATA v2");
            let json: serde_json::Value = serde_json::from_slice(&d[12..]).unwrap();
            let data = json["rxpk"][0]["data"].as_str().unwrap().to_owned();
            use base64::Engine;
            let phy = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
            counters.push(u16::from_le_bytes([phy[6], phy[7]]));
            agent.send_to(&[2, d[1], d[2], 0x01], from).unwrap();
        }
        counters
    });
    let session = Session { dev_addr: 0x2600_0001, nwk_s_key: [1; 16], app_s_key: [2; 16] };
    let report = run(&session, addr, [0xaa; 8], 7, 3, Duration::ZERO, Duration::from_secs(5)).unwrap();
    assert_eq!((report.sent, report.acknowledged), (3, 3));
    assert_eq!(server.join().unwrap(), [7, 8, 9]);
}
