//! A real `etcd` (Debian `etcd-server`) for tests: loopback, random ports, a temporary data
//! directory; plain, or with TLS and client-certificate authentication using certificates made
//! by the `openssl` CLI. Skips loudly without the binaries, fails under CI=true. Killed and its
//! files removed on drop; [`Etcd::stop`] and [`Etcd::start`] restart it on the same data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Daemon, TempDir, require_binary, wait_for};

/// A free TCP port on 127.0.0.1 (free when asked).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// A running (or stopped) etcd.
#[derive(Debug)]
pub struct Etcd {
    daemon: Option<Daemon>,
    dir: TempDir,
    bin: PathBuf,
    client: u16,
    peer: u16,
    tls: bool,
    /// `http://127.0.0.1:PORT`, or `https://…` with TLS.
    pub endpoint: String,
}

/// Certificates made with the `openssl` CLI: a CA, etcd's server certificate for 127.0.0.1
/// signed by it, a client certificate signed by it, and a second, unrelated CA.
#[derive(Debug)]
pub struct Certs {
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// A client certificate etcd accepts, and its key.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing etcd uses.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(test: &str, dir: &Path) -> Option<Certs> {
    require_binary(test, "openssl")?;
    let key = |name: &str| {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
            ],
        )
    };
    key("ca");
    key("other-ca");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("write server.ext: {e}"));
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .unwrap_or_else(|e| panic!("write client.ext: {e}"));
    for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN=tern-{name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext,
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }
    Some(Certs {
        ca: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        other_ca: dir.join("other-ca.pem"),
    })
}

impl Etcd {
    /// Starts a plain etcd; `None` (after a loud skip) without the binary.
    pub fn plain(test: &str) -> Option<Etcd> {
        start_etcd_with(test, false).map(|(e, _)| e)
    }

    /// Starts etcd with TLS and `--client-cert-auth`, and returns the certificates to reach it.
    pub fn tls(test: &str) -> Option<(Etcd, Certs)> {
        match start_etcd_with(test, true)? {
            (e, Some(c)) => Some((e, c)),
            (_, None) => None,
        }
    }

    /// Starts (again) on the same ports and data, and waits until it accepts connections.
    pub fn start(&mut self) {
        let client_url = self.endpoint.clone();
        let peer_url = format!("http://127.0.0.1:{}", self.peer);
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--name", "tern-test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("tern-test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.tls {
            // Client-certificate authentication: only certificates signed by our CA.
            let d = self.dir.path();
            cmd.arg("--cert-file")
                .arg(d.join("server.pem"))
                .arg("--key-file")
                .arg(d.join("server.key"))
                .arg("--trusted-ca-file")
                .arg(d.join("ca.pem"))
                .arg("--client-cert-auth");
        }
        self.daemon = Some(Daemon::spawn(cmd));
        let port = self.client;
        wait_for(
            "etcd to accept connections",
            Duration::from_secs(20),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        );
    }

    /// Kills etcd (SIGKILL) and waits until its port is closed.
    pub fn stop(&mut self) {
        self.daemon = None;
        let port = self.client;
        wait_for("etcd to stop", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .is_err()
                .then_some(())
        });
    }
}

fn start_etcd_with(test: &str, tls: bool) -> Option<(Etcd, Option<Certs>)> {
    let bin = require_binary(test, "etcd")?;
    let dir = TempDir::new("etd");
    let certs = if tls {
        Some(make_certs(test, dir.path())?)
    } else {
        None
    };
    let (client, peer) = (free_port(), free_port());
    let scheme = if tls { "https" } else { "http" };
    let mut etcd = Etcd {
        daemon: None,
        dir,
        bin,
        client,
        peer,
        tls,
        endpoint: format!("{scheme}://127.0.0.1:{client}"),
    };
    etcd.start();
    Some((etcd, certs))
}
