//! Test support (feature `testing`): run a real service binary and talk to it over real sockets.
//!
//! The binary is started with JSON logs and `127.0.0.1:0` listeners; [`ServiceProcess::spawn`]
//! reads its log until the "serving" line and takes the bound addresses from it, so tests never
//! guess a free port and never sleep: every wait polls a condition against a deadline.

pub mod api;
pub mod binary;
mod mqtt_witness;
pub mod postgres;
pub mod slapd;
mod tcp_link;
pub mod updater;

pub use mqtt_witness::MqttWitness;
pub use tcp_link::TcpLink;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a service may take to start or stop in tests before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// An in-memory log writer for a `tracing` subscriber (`.with_writer(move || buffer.clone())`):
/// the tests read what was written with [`LogBuffer::text`].
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<parking_lot::Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running service binary.
pub struct ServiceProcess {
    child: Child,
    /// Every log line so far, parsed.
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
    lines: mpsc::Receiver<serde_json::Value>,
    /// Fields of the "serving" log line (`http` → the bound address …).
    pub serving: serde_json::Map<String, serde_json::Value>,
}

impl ServiceProcess {
    /// Starts `binary` with `args` and `envs` (plus JSON logs), and waits for its log line whose
    /// message ends with "serving".
    pub fn spawn(binary: &Path, args: &[&str], envs: &HashMap<String, String>) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .envs(envs)
            .env("NEOSENS_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                sink.lock().expect("log sink").push(value.clone());
                let _ = tx.send(value);
            }
        });
        let mut process = ServiceProcess { child, logs, lines, serving: serde_json::Map::new() };
        let serving = process.wait_for_log(|l| message(l).is_some_and(|m| m.ends_with("serving")));
        process.serving = serving.as_object().cloned().unwrap_or_default();
        process
    }

    /// The address in field `field` of the "serving" line.
    pub fn addr(&self, field: &str) -> SocketAddr {
        self.serving
            .get(field)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no address in field {field:?} of {:?}", self.serving))
    }

    /// Waits for the next log line that satisfies `pred` (lines already seen are skipped).
    pub fn wait_for_log(&mut self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("log line not seen within {DEADLINE:?}; log so far: {:#?}", self.logs()),
            }
        }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs.lock().expect("log sink").clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `TERM`, `INT`, `KILL`) and waits for the process to exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} failed");
        self.wait()
    }

    /// Waits for the process to exit, at most [`DEADLINE`].
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                return status;
            }
            assert!(Instant::now() < deadline, "process did not exit within {DEADLINE:?}");
            // Polls the exit condition itself, a few milliseconds apart, until the deadline.
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `message` of a JSON log line.
pub fn message(line: &serde_json::Value) -> Option<&str> {
    line.get("message").and_then(|m| m.as_str())
}

/// An HTTP response read byte for byte.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header lines, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body after de-chunking.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as is on a new connection, the way the firmware does (one request per TCP
/// connection), and reads the whole response until the server closes or the body is complete.
pub fn raw_http(addr: SocketAddr, request: &[u8]) -> RawResponse {
    try_raw_http(addr, request).unwrap_or_else(|e| panic!("{e}"))
}

/// [`raw_http`] that reports failures (refused connection, reset, truncated answer) instead of
/// panicking: for tests that kill the server on purpose.
pub fn try_raw_http(addr: SocketAddr, request: &[u8]) -> Result<RawResponse, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_read_timeout(Some(DEADLINE)).map_err(|e| e.to_string())?;
    stream.write_all(request).map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(response) = parse_response(&buf) {
            return Ok(response);
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the response from {addr}: {e}")),
        }
    }
    parse_response(&buf).ok_or_else(|| format!("incomplete response: {:?}", String::from_utf8_lossy(&buf)))
}

/// `GET path` with `Connection: close`.
pub fn http_get(addr: SocketAddr, path: &str) -> RawResponse {
    raw_http(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// Polls `condition` until it holds, at most [`DEADLINE`]; panics naming `what` otherwise.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// A free TCP port on loopback (bound then released: the caller binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A real Mosquitto broker started by the test: its own config file, a free loopback port, no
/// persistence; stopped when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: std::path::PathBuf,
    extra: String,
}

impl Mosquitto {
    /// Starts `mosquitto` with `extra` configuration lines added to a loopback listener
    /// (`allow_anonymous true` unless `extra` says otherwise).
    pub fn start(extra: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("neosens-mosquitto-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("mosquitto dir");
        let mut m = Mosquitto { child: None, port: free_port(), dir, extra: extra.to_owned() };
        m.launch();
        m
    }

    fn launch(&mut self) {
        let anonymous = if self.extra.contains("allow_anonymous") { "" } else { "allow_anonymous true\n" };
        let conf = format!(
            "listener {} 127.0.0.1\n{anonymous}persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n{}\n",
            self.port, self.extra
        );
        let path = self.dir.join("mosquitto.conf");
        std::fs::write(&path, conf).expect("mosquitto.conf");
        let child = Command::new("mosquitto")
            .args(["-c", path.to_str().expect("utf-8 path")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting mosquitto (scripts/install-deps --test installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until(&format!("mosquitto listening on {port}"), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Its process id while it runs (benchmarks read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory of its config file, for files it needs (password files, plug-in state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the broker (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A JSON API call: `method path` with an optional bearer token and JSON body; returns the
/// status and the parsed body (`null` when empty).
pub fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    try_http_json(addr, method, path, token, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// [`http_json`] that reports transport failures instead of panicking.
pub fn try_http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Result<(u16, serde_json::Value), String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    try_raw_http(addr, request.as_bytes()).map(|r| json_of(method, path, &r))
}

fn json_of(method: &str, path: &str, response: &RawResponse) -> (u16, serde_json::Value) {
    let value = if response.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {}", response.text()))
    };
    (response.status, value)
}

/// Parses a complete response (headers and a body by `Content-Length` or chunked), or `None`.
fn parse_response(buf: &[u8]) -> Option<RawResponse> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &buf[head_end + 4..];
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else {
        let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    };
    Some(RawResponse { status, headers, body })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_complete_responses_only() {
        let full = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        let r = parse_response(full).unwrap();
        assert_eq!((r.status, r.body.len()), (403, 0));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nabc").is_none());
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body, b"abcde");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nab").is_none());
    }
}
