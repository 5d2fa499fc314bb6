//! A real OpenLDAP server started by a test: its own `slapd.conf`, a directory loaded with
//! `slapadd` from the test's LDIF, a certificate authority and a server certificate for
//! `localhost` made with `openssl`, plain LDAP (for StartTLS) and LDAPS on free loopback ports;
//! stopped when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, wait_until};

/// The suffix every test directory uses.
pub const SUFFIX: &str = "dc=example,dc=org";
/// Its root account (can write anything).
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
/// The root account's password.
pub const ROOT_PASSWORD: &str = "slapd-root-password";

/// A running `slapd`.
pub struct Slapd {
    child: Option<Child>,
    dir: PathBuf,
    /// Port of `ldap://` (StartTLS offered).
    pub ldap_port: u16,
    /// Port of `ldaps://`.
    pub ldaps_port: u16,
}

fn run(what: &str, command: &mut Command) {
    let out =
        command.output().unwrap_or_else(|e| panic!("{what}: {e} (scripts/install-deps --test installs it)"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes `ca.pem` and a `localhost` certificate signed by it (`cert.pem`, `key.pem`) in `dir`.
pub(super) fn certificates(dir: &Path) {
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    run(
        "openssl (CA)",
        Command::new("openssl").args(["req", "-x509"]).args(ec).args([
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=neosens test CA",
        ]),
    );
    run(
        "openssl (request)",
        Command::new("openssl").arg("req").args(ec).args([
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("cert.csr"),
            "-subj",
            "/CN=localhost",
        ]),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    run(
        "openssl (sign)",
        Command::new("openssl").args([
            "x509",
            "-req",
            "-in",
            &p("cert.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("cert.pem"),
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
        ]),
    );
}

impl Slapd {
    /// Starts `slapd` on a directory holding `ldif` (entries under [`SUFFIX`], its root entry
    /// included).
    pub fn start(ldif: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("neosens-slapd-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(dir.join("db")).expect("slapd dir");
        certificates(&dir);
        let d = dir.to_string_lossy();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
             pidfile {d}/slapd.pid\nargsfile {d}/slapd.args\n\
             TLSCACertificateFile {d}/ca.pem\nTLSCertificateFile {d}/cert.pem\nTLSCertificateKeyFile {d}/key.pem\n\
             database mdb\nmaxsize 16777216\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PASSWORD}\n\
             directory {d}/db\n\
             access to attrs=userPassword by anonymous auth by self write by * none\n\
             access to * by * read\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf).expect("slapd.conf");
        std::fs::write(dir.join("data.ldif"), ldif).expect("data.ldif");
        let conf = dir.join("slapd.conf");
        run(
            "slapadd",
            Command::new("slapadd").args([
                "-f",
                &conf.to_string_lossy(),
                "-l",
                &dir.join("data.ldif").to_string_lossy(),
            ]),
        );
        let mut s = Slapd { child: None, dir, ldap_port: free_port(), ldaps_port: free_port() };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let urls = format!("ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/", self.ldap_port, self.ldaps_port);
        let log = std::fs::File::create(self.dir.join("slapd.log")).expect("slapd.log");
        // `-d 0`: in the foreground (a child the test can stop), no debug output.
        let child = Command::new("slapd")
            .args(["-d", "0", "-f", &self.dir.join("slapd.conf").to_string_lossy(), "-h", &urls])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting slapd (scripts/install-deps --test installs it)");
        self.child = Some(child);
        for port in [self.ldap_port, self.ldaps_port] {
            wait_until(&format!("slapd listening on {port}"), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
    }

    /// `ldap://localhost:<port>` (the certificate's name), for StartTLS.
    pub fn ldap_url(&self) -> String {
        format!("ldap://localhost:{}", self.ldap_port)
    }

    /// `ldaps://localhost:<port>`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://localhost:{}", self.ldaps_port)
    }

    /// The CA that signed the server's certificate (PEM file).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Stops the server (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
