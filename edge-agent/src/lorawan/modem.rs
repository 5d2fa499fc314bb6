//! A serial LoRa modem as the radio input, instead of (or beside) a packet forwarder: a gateway
//! without a concentrator, a node-class radio (RN2483) on USB listening on one channel.
//!
//! The port is read line by line; what the lines mean is a [`LineProtocol`] (the modem's
//! command set), so another modem is another implementation. Frames go through the same
//! [`Pipeline`](super::Pipeline) as the forwarders' (gateway name `serial:<port>`).

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use super::semtech::RxPacket;

/// What a line from the modem means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A received frame (PHYPayload).
    Frame(Vec<u8>),
    /// Reception ended (a frame, a timeout, an error): send the start commands again.
    Rearm,
    /// Nothing to do (`ok`, echoes, banners).
    Ignore,
}

/// A modem's line protocol.
pub trait LineProtocol: Send {
    /// Commands (without line ending) that put the modem into reception.
    fn start(&self) -> Vec<String>;
    /// Commands that start reception again after it ended.
    fn rearm(&self) -> Vec<String> {
        self.start()
    }
    /// Reads one line.
    fn line(&mut self, line: &str) -> LineEvent;
}

/// The frame a line carries in hex (surrounding spaces ignored); `None` for an empty line or
/// anything but whole bytes of hex.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    neosens_protocol::hex::decode(text.trim(), "frame").ok().filter(|frame| !frame.is_empty())
}

/// Microchip RN2483/RN2903 in raw radio mode: `mac pause`, then `radio rx 0` (continuous); it
/// answers `ok`, the pause length, then `radio_rx  <hex>` for a frame or `radio_err`, after which
/// reception must be started again.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rn2483;

impl LineProtocol for Rn2483 {
    fn start(&self) -> Vec<String> {
        vec!["mac pause".into(), "radio rx 0".into()]
    }

    fn rearm(&self) -> Vec<String> {
        vec!["radio rx 0".into()]
    }

    fn line(&mut self, line: &str) -> LineEvent {
        let line = line.trim();
        if let Some(hex) = line.strip_prefix("radio_rx") {
            return match from_hex(hex) {
                Some(frame) => LineEvent::Frame(frame),
                None => LineEvent::Rearm,
            };
        }
        match line {
            "radio_err" | "busy" | "invalid_param" => LineEvent::Rearm,
            _ => LineEvent::Ignore,
        }
    }
}

/// One frame per line, in hex: bridges and firmware that print what they hear.
#[derive(Debug, Default, Clone, Copy)]
pub struct HexLines;

impl LineProtocol for HexLines {
    fn start(&self) -> Vec<String> {
        Vec::new()
    }

    fn line(&mut self, line: &str) -> LineEvent {
        from_hex(line).map_or(LineEvent::Ignore, LineEvent::Frame)
    }
}

/// The protocol named in the configuration (`rn2483`, `hex_lines`).
pub fn protocol(name: &str) -> Option<Box<dyn LineProtocol>> {
    match name {
        "rn2483" => Some(Box::new(Rn2483)),
        "hex_lines" => Some(Box::new(HexLines)),
        _ => None,
    }
}

/// Opens a serial port (8N1, no flow control) for the async runtime.
pub fn open(path: &std::path::Path, baud: u32) -> std::io::Result<tokio_serial::SerialStream> {
    use tokio_serial::SerialPortBuilderExt;
    tokio_serial::new(path.to_string_lossy(), baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(std::io::Error::other)
}

/// Longest line accepted (a 255-byte frame in hex plus a prefix).
const MAX_LINE: usize = 1024;

/// Reads the modem until `shutdown` or the end of the stream.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    port: S,
    mut protocol: Box<dyn LineProtocol>,
    pipeline: Arc<Pipeline>,
    name: String,
    shutdown: CancellationToken,
) {
    let (reader, mut writer) = tokio::io::split(port);
    let mut lines = BufReader::new(reader);
    let mut start = protocol.start();
    let mut buf = Vec::new();
    loop {
        for command in start.drain(..) {
            let mut bytes = command.into_bytes();
            bytes.extend_from_slice(b"\r\n");
            if let Err(e) = writer.write_all(&bytes).await {
                tracing::warn!(modem = %name, error = %e, "writing to the modem");
                return;
            }
        }
        let _ = writer.flush().await;
        buf.clear();
        // A line longer than any modem sends is cut (and then not understood), not buffered.
        let mut limited = (&mut lines).take(MAX_LINE as u64);
        let read = tokio::select! {
            () = shutdown.cancelled() => return,
            read = limited.read_until(b'\n', &mut buf) => read,
        };
        match read {
            Ok(0) => {
                tracing::warn!(modem = %name, "the modem closed the line");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(modem = %name, error = %e, "reading the modem");
                return;
            }
        }
        let text = String::from_utf8_lossy(&buf);
        match protocol.line(&text) {
            LineEvent::Frame(phy) => {
                let packet =
                    RxPacket { phy, rssi: None, snr: None, frequency: None, datarate: None, tmst: None };
                let p = Arc::clone(&pipeline);
                let gateway = name.clone();
                neosens_runtime::blocking::run(move || p.handle_frames(&gateway, vec![packet])).await;
                start = protocol.rearm();
            }
            LineEvent::Rearm => start = protocol.rearm(),
            LineEvent::Ignore => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rn2483_lines() {
        let mut p = Rn2483;
        assert_eq!(p.line("radio_rx  40F17DBE49\r\n"), LineEvent::Frame(vec![0x40, 0xf1, 0x7d, 0xbe, 0x49]));
        assert_eq!(p.line("radio_rx  4"), LineEvent::Rearm, "odd hex");
        assert_eq!(p.line("radio_err"), LineEvent::Rearm);
        assert_eq!(p.line("ok"), LineEvent::Ignore);
        assert_eq!(p.line("4294967245"), LineEvent::Ignore);
        assert_eq!(HexLines.line("zz"), LineEvent::Ignore);
        assert_eq!(HexLines.line("0102\n"), LineEvent::Frame(vec![1, 2]));
        assert!(protocol("rn2483").is_some() && protocol("nope").is_none());
    }
}
