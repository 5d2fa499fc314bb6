//! The local broker's files, rendered from the registry copy: `mosquitto.conf` (listener,
//! persistence, queue bounds, the bridge to central's broker), `passwd` (one `$7$` line per
//! enabled device, made by central) and `acl` (each device's topics, the rights central's
//! broker gives it). Lines are rendered here; a [`Staged`] file is written beside its final
//! name, hashed as it goes, and renamed over it only when it changed — one device at a time, so
//! 10,000 accounts never sit in the agent's memory together.

use std::fmt::Write as _;
use std::hash::Hasher as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::cache::BrokerUser;

use super::LocalBrokerConfig;

/// The bridge's far end: central's broker, with the gateway's own login.
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS (`mqtts://`): checked against the system's CA certificates.
    pub tls: bool,
    /// Login (`gw-<id>`).
    pub username: String,
    /// Password (never logged).
    pub password: String,
}

impl Upstream {
    /// Refuses a login or password that cannot be one word of `mosquitto.conf` (it would
    /// otherwise write lines of its own into it).
    pub fn check(&self) -> Result<(), String> {
        let word =
            |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '#');
        if !word(&self.username) || !word(&self.password) || !word(&self.host) {
            return Err("the bridge's host, login or password has spaces, control characters or '#'".into());
        }
        Ok(())
    }

    /// The bridge's client id on the local broker: derived from the gateway's password, so a
    /// device cannot guess it and take the bridge's session over.
    fn local_client_id(&self) -> String {
        let mut h = std::hash::DefaultHasher::new();
        h.write(b"neosens local bridge/");
        h.write(self.password.as_bytes());
        format!("neosens-bridge-{:016x}", h.finish())
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{} (tls: {})", self.username, self.host, self.port, self.tls)
    }
}

/// Whether `s` can go on a line of Mosquitto's files as one word: no spaces, no line breaks,
/// no `:` (the password file's separator), no `#` or `+` (wildcards), not empty.
fn one_word(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(|c: char| c.is_whitespace() || c.is_control() || matches!(c, ':' | '#' | '+'))
}

/// Whether a base topic can be written in the ACL and the bridge (topic levels only, one word).
fn plain_topic(t: &str) -> bool {
    one_word(t) && !t.starts_with('$') && !t.split('/').any(str::is_empty)
}

/// Whether a hash is a Mosquitto `$7$` hash (nothing else goes in the file).
fn mosquitto_hash(h: &str) -> bool {
    h.starts_with("$7$")
        && h.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'$' | b'+' | b'/' | b'='))
}

/// A device's `passwd` line (`login:$7$…`), or `None` when it cannot be read back as one
/// account (a login with a space or `:`, a hash that is not Mosquitto's).
pub(super) fn password_line(u: &BrokerUser) -> Option<String> {
    (one_word(&u.login) && mosquitto_hash(&u.password_hash))
        .then(|| format!("{}:{}\n", u.login, u.password_hash))
}

/// A device's `acl` entry: publishing one level under each of its rooms' base topics and
/// reading their `…/<module>/command` topics — what central's broker allows it.
pub(super) fn acl_entry(u: &BrokerUser) -> Option<String> {
    if !one_word(&u.login) {
        return None;
    }
    let mut out = format!("\nuser {}\n", u.login);
    for base in u.topics.iter().filter(|t| plain_topic(t)) {
        let _ = writeln!(out, "topic write {base}/+\ntopic read {base}/+/command");
    }
    Some(out)
}

/// The first line of `acl`.
pub(super) const ACL_HEADER: &str = "# Written by neosens-edge from central's registry: do not edit.\n";

/// `mosquitto.conf`, with its files in `dir`; the bridge when there is an upstream broker.
pub(super) fn mosquitto_conf(
    dir: &Path,
    config: &LocalBrokerConfig,
    upstream: Option<&Upstream>,
    topics: &[String],
) -> String {
    let dir = dir.display();
    let mut out = format!(
        "# Written by neosens-edge (local-broker mode) at each change: set [local_broker] in the\n\
         # agent's configuration instead of editing it.\n\
         per_listener_settings false\n\
         allow_anonymous false\n\
         password_file {dir}/passwd\n\
         acl_file {dir}/acl\n\
         pid_file {dir}/mosquitto.pid\n\
         persistence true\n\
         persistence_location {dir}/db/\n\
         autosave_interval {autosave}\n\
         # The bridge's queue while central's broker is out of reach: past either bound, Mosquitto\n\
         # drops the newest messages (docs/edge.md, \"Remote sites\").\n\
         max_queued_messages {messages}\n\
         max_queued_bytes {bytes}\n\
         # Devices publish at QoS 0: queued for the bridge all the same, and sent upstream at\n\
         # the bridge's QoS.\n\
         queue_qos0_messages true\n\
         upgrade_outgoing_qos true\n\
         # Devices never retain (spec: retain false); a status is far below 64 KiB.\n\
         retain_available false\n\
         max_packet_size 65536\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         log_type notice\n\
         log_timestamp false\n\
         listener {port} {ip}\n{user}",
        autosave = config.autosave_interval_s.max(1),
        messages = config.max_queued_messages,
        bytes = config.max_queued_bytes,
        port = config.listen.port(),
        ip = config.listen.ip(),
        // Started by root, Mosquitto would switch to the `mosquitto` user and could no longer
        // write its files here; as any other user it keeps the agent's.
        user = if rustix::process::geteuid().is_root() { "user root\n" } else { "" },
    );
    let topics: Vec<&String> = topics.iter().filter(|t| plain_topic(t)).collect();
    // Mosquitto refuses a bridge without topics: none until the scope has a room.
    if let Some(up) = upstream.filter(|_| !topics.is_empty()) {
        push_bridge(&mut out, up, &topics);
    }
    out
}

/// The bridge section of `mosquitto.conf`.
fn push_bridge(out: &mut String, up: &Upstream, topics: &[&String]) {
    let _ = write!(
        out,
        "\n# The bridge to central's broker, with the gateway's login: the scope's topics only.\n\
         connection neosens-central\n\
         address {host}:{port}\n\
         bridge_protocol_version mqttv311\n\
         remote_clientid {user}-bridge\n\
         remote_username {user}\n\
         remote_password {password}\n\
         local_clientid {local_id}\n\
         cleansession false\n\
         try_private false\n\
         notifications false\n\
         keepalive_interval 60\n\
         restart_timeout 2 60\n",
        host = up.host,
        port = up.port,
        user = up.username,
        password = up.password,
        local_id = up.local_client_id(),
    );
    if up.tls {
        out.push_str("bridge_capath /etc/ssl/certs\n");
    }
    // QoS 1 both ways. Not 2: after a reconnection, Mosquitto 2.0's bridge sends its whole
    // queue at once, and a Mosquitto on the far end refuses QoS 2 messages past its
    // `max_inflight_messages` (PUBREC "quota exceeded", which an MQTT 3.1.1 bridge cannot see):
    // they would be lost. QoS 1 may send again the one message in flight when the link drops;
    // central drops such a repeat (byte for byte the device's previous status).
    for base in topics {
        let _ = writeln!(out, "topic {base}/+ out 1\ntopic {base}/+/command in 1");
    }
}

/// A file being written beside its final name (`<name>.tmp`, mode 0600: the configuration
/// holds the bridge's password), hashed as it is written.
pub(super) struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hasher: std::hash::DefaultHasher,
}

impl Staged {
    /// Starts writing `path`. Blocking, as every method: call them on the blocking pool.
    pub(super) fn create(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let tmp = path.with_extension("tmp");
        let file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        Ok(Staged {
            tmp,
            path: path.to_owned(),
            file: std::io::BufWriter::new(file),
            hasher: std::hash::DefaultHasher::new(),
        })
    }

    /// Appends text.
    pub(super) fn push(&mut self, text: &str) -> std::io::Result<()> {
        self.hasher.write(text.as_bytes());
        self.file.write_all(text.as_bytes())
    }

    /// Puts the file in place (synced, then renamed: Mosquitto never reads half a file) unless
    /// its content hashes to `previous` (then the old file stays). Returns the hash and whether
    /// the file changed.
    pub(super) fn finish(self, previous: Option<u64>) -> std::io::Result<(u64, bool)> {
        let hash = self.hasher.finish();
        let file = self.file.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        if previous == Some(hash) && self.path.exists() {
            drop(file);
            std::fs::remove_file(&self.tmp)?;
            return Ok((hash, false));
        }
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        Ok((hash, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, topics: &[&str]) -> BrokerUser {
        BrokerUser {
            login: login.into(),
            password_hash: "$7$101$O+sn+vmP80lJFuc4$jCqSRT0HUCmizTZtRpRFYZzEfDzozWUJtDTSjowWmfTrOIHt/bOPCQ=="
                .into(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn accounts_and_rights_follow_the_registry() {
        let good = user("senso_0a0b0c0d0e0f", &["u4/302", "u4/303"]);
        assert_eq!(password_line(&good), Some(format!("senso_0a0b0c0d0e0f:{}\n", good.password_hash)));
        assert_eq!(
            acl_entry(&good).unwrap(),
            "\nuser senso_0a0b0c0d0e0f\ntopic write u4/302/+\ntopic read u4/302/+/command\n\
             topic write u4/303/+\ntopic read u4/303/+/command\n"
        );
        let bad = user("bad login", &["u4/302"]);
        assert_eq!((password_line(&bad), acl_entry(&bad)), (None, None));
    }

    #[test]
    fn hostile_values_never_reach_the_files() {
        let mut u = user("senso_1", &["u4/#", "u4 302", "$SYS/x", "u4//x", "u4/ok"]);
        u.password_hash = "$7$1$a$b\nintruder:$7$1$a$b".into();
        assert_eq!(password_line(&u), None);
        let acl = acl_entry(&u).unwrap();
        assert_eq!(acl.matches("topic write").count(), 1, "{acl}");
        let up = Upstream {
            host: "central".into(),
            port: 1883,
            tls: false,
            username: "gw-1".into(),
            password: "p".into(),
        };
        let conf = mosquitto_conf(Path::new("/d"), &LocalBrokerConfig::default(), Some(&up), &u.topics);
        assert_eq!(conf.matches("\ntopic ").count(), 2, "{conf}");
        assert!(conf.contains("topic u4/ok/+ out 1\ntopic u4/ok/+/command in 1\n"));
    }

    #[test]
    fn no_upstream_no_bridge() {
        let conf = mosquitto_conf(Path::new("/d"), &LocalBrokerConfig::default(), None, &["u4/1".into()]);
        assert!(!conf.contains("connection"));
        let up = Upstream {
            host: "c".into(),
            port: 1883,
            tls: false,
            username: "gw-1".into(),
            password: "p".into(),
        };
        let no_rooms = mosquitto_conf(Path::new("/d"), &LocalBrokerConfig::default(), Some(&up), &[]);
        assert!(!no_rooms.contains("connection"), "Mosquitto refuses a bridge without topics");
        let bridged =
            mosquitto_conf(Path::new("/d"), &LocalBrokerConfig::default(), Some(&up), &["u4/1".into()]);
        assert!(
            bridged.contains("local_clientid neosens-bridge-")
                && !bridged.contains("local_clientid neosens-bridge\n")
        );
        for bad in ["p w", "p\nlog_dest file /etc/x", "p#"] {
            assert!(Upstream { password: bad.into(), ..up.clone() }.check().is_err(), "{bad:?}");
        }
        assert!(up.check().is_ok());
        assert!(conf.contains("listener 1883 0.0.0.0\n"));
        assert!(conf.contains("persistence_location /d/db/\n"));
    }

    #[test]
    fn files_are_replaced_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acl");
        let write = |text: &str, previous| {
            let mut f = Staged::create(&path).unwrap();
            f.push(text).unwrap();
            f.finish(previous).unwrap()
        };
        let (a, changed) = write("a", None);
        assert!(changed);
        assert_eq!(write("a", Some(a)), (a, false));
        assert!(!dir.path().join("acl.tmp").exists());
        let (b, changed) = write("b", Some(a));
        assert!(changed && b != a);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
