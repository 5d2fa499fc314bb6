//! A real PostgreSQL server started by a test: `initdb` into a temporary directory, `postgres`
//! as a child process on a free loopback port (TLS on, with a certificate made for
//! `localhost`), trust authentication for one superuser; stopped and removed when dropped.
//!
//! PostgreSQL refuses to run as root: when the test runs as root (CI does), its programs run
//! under the `postgres` account Debian's package creates (uid and gid set on the child, no
//! wrapper process: signals reach the server itself).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, wait_until};

/// The superuser every test database belongs to.
pub const USER: &str = "neosens";

/// A running PostgreSQL server.
pub struct Postgres {
    child: Option<Child>,
    dir: PathBuf,
    bin: PathBuf,
    /// Killed by the kernel when the thread that started it ends ([`shared`]'s server lives as
    /// long as the test process, and no destructor runs for it).
    tied: bool,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// One server for the whole test process, started on first use (a test binary whose tests
/// each need a database creates one per test: [`Postgres::database`]). It is started from a
/// thread that lives as long as the process, and dies with it; the directories that earlier
/// processes left are removed here.
pub fn shared() -> &'static Postgres {
    static SHARED: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        remove_stale_directories();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || {
                let _ = tx.send(Postgres::start_as(true));
                loop {
                    std::thread::park();
                }
            })
            .expect("a thread for the test server");
        rx.recv().expect("the test server started")
    })
}

/// The environment that puts a `neosens-central` started on data directory `data` on the
/// store the test suite runs against: `NEOSENS_TEST_STORE=postgres` runs every test on
/// PostgreSQL ([`shared`] server, one database per data directory, so a restart on the same
/// directory finds its database again); unset (or `redb`), the embedded file, nothing to add.
/// Every test that starts central passes it: one suite, two stores.
pub fn central_store_env(data: &Path) -> Vec<(String, String)> {
    match std::env::var("NEOSENS_TEST_STORE").as_deref() {
        Ok("postgres") => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            data.hash(&mut hasher);
            let url = shared().ensure_database(&format!("t{:016x}", hasher.finish()));
            vec![("NEOSENS_DATABASE_URL".to_owned(), format!("{url}?sslmode=disable"))]
        }
        Ok("redb" | "") | Err(_) => Vec::new(),
        Ok(other) => panic!("NEOSENS_TEST_STORE={other}: expected postgres or redb"),
    }
}

/// Removes the data directories of test processes that are gone (their servers died with
/// them, see [`shared`]).
fn remove_stale_directories() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("neosens-postgres-").and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Debian keeps the server's programs out of `PATH`: the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    found.pop().expect(
        "PostgreSQL's programs in /usr/lib/postgresql/*/bin (scripts/install-deps --test installs them)",
    )
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| {
        panic!(
            "id {args:?}: {} (the postgresql package creates the account)",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn running_as_root() -> bool {
    id(&["-u"]) == 0
}

/// `program` from `bin`, as the `postgres` account when we are root.
fn command(bin: &Path, program: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(bin.join(program));
    if running_as_root() {
        c.uid(id(&["-u", "postgres"])).gid(id(&["-g", "postgres"]));
    }
    c
}

/// The child gets SIGKILL when the thread that starts it ends.
#[allow(unsafe_code)] // pre_exec; the closure only calls prctl, which is async-signal-safe
fn die_with_thread(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the child between fork and exec and only calls prctl (after the uid
    // change, which would otherwise clear the setting).
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

fn run(what: &str, command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// `initdb`, then starts the server and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_as(false)
    }

    fn start_as(tied: bool) -> Self {
        let dir =
            std::env::temp_dir().join(format!("neosens-postgres-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("postgres dir");
        super::slapd::certificates(&dir);
        if running_as_root() {
            run("chown", Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir));
        }
        let bin = bin_dir();
        run(
            "initdb",
            command(&bin, "initdb")
                .args(["--auth=trust", "--username", USER, "--encoding=UTF8", "--no-sync", "--pgdata"])
                .arg(dir.join("data")),
        );
        let mut pg = Postgres { child: None, dir, bin, tied, port: free_port() };
        pg.launch();
        pg
    }

    /// Starts the server on its data directory (again after [`Postgres::stop`]).
    pub fn launch(&mut self) {
        let d = self.dir.to_string_lossy().into_owned();
        let log = std::fs::File::create(self.dir.join("postgres.log")).expect("postgres.log");
        let mut postgres = command(&self.bin, "postgres");
        if self.tied {
            die_with_thread(&mut postgres);
        }
        let child = postgres
            .args(["-D", &format!("{d}/data"), "-p", &self.port.to_string(), "-k", &d])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "ssl=on"])
            .args(["-c", &format!("ssl_cert_file={d}/cert.pem"), "-c", &format!("ssl_key_file={d}/key.pem")])
            // The tests' databases are thrown away: no fsync of the server's files (commits
            // still wait for the server, which is what the store's guarantees are about).
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        let (bin, port) = (self.bin.clone(), self.port.to_string());
        wait_until(&format!("postgres accepting connections on {port}"), || {
            Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port])
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    /// Creates database `name` and gives its URL.
    pub fn database(&self, name: &str) -> String {
        run(
            "createdb",
            Command::new(self.bin.join("createdb")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                name,
            ]),
        );
        self.url(name)
    }

    /// Database `name`, created unless it exists; gives its URL.
    pub fn ensure_database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER, name])
            .output()
            .expect("createdb");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() || stderr.contains("already exists"), "createdb {name}: {stderr}");
        self.url(name)
    }

    /// `postgres://neosens@localhost:<port>/<name>` (the name its certificate is issued for).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@localhost:{}/{name}", self.port)
    }

    /// The certificate authority of the server's certificate (issued for `localhost`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
