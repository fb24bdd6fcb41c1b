//! Three `rgrid serve --conformance` processes on loopback ports, `rgrid call` against each
//! of them (every conformance handler, single and stream, with the exit codes of DESIGN.md
//! §4), one node killed and restarted, calls working again, and a clean exit on SIGTERM.
//!
//! A second test runs two servers and a caller over https (certificates generated with rcgen
//! into a temporary directory): the round trip works, and a caller with the wrong CA or
//! without one is refused.
//!
//! Every wait is bounded: a process that does not answer in time is killed and the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rgrid::proto::should_dial;

const TOKEN: &str = "multi-process-secret";
const BIN: &str = env!("CARGO_BIN_EXE_rgrid");

/// A free loopback port (released again; the next bind takes it almost surely).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Grid {
    servers: Vec<String>,
    caller: String,
    hosts: String,
    logs: PathBuf,
    /// TLS flags given to every process (empty for http).
    tls: Vec<String>,
}

impl Grid {
    fn new() -> Grid {
        Grid::with("http", 3, "multi", Vec::new())
    }

    /// `n` servers and a caller with URLs `scheme://127.0.0.1:port`, every process run with
    /// `tls` flags; logs (and whatever else the test puts there) under a fresh directory.
    fn with(scheme: &str, n: usize, name: &str, tls: Vec<String>) -> Grid {
        let servers: Vec<String> = (0..n)
            .map(|_| format!("{scheme}://127.0.0.1:{}", free_port()))
            .collect();
        // A caller URL that dials every server, so a call never waits for a server's redial
        // backoff (both directions of the rule are exercised by the servers among themselves).
        let caller = (0..1000)
            .map(|_| format!("{scheme}://127.0.0.1:{}", free_port()))
            .find(|c| servers.iter().all(|s| should_dial(c, s)))
            .unwrap();
        let mut all = servers.clone();
        all.push(caller.clone());
        let logs = std::env::temp_dir().join(format!("rgrid-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&logs).unwrap();
        Grid {
            hosts: all.join(","),
            servers,
            caller,
            logs,
            tls,
        }
    }

    /// Starts server `i` and waits for its `ready <url>` line.
    fn serve(&self, i: usize, generation: usize) -> Server {
        self.serve_with(i, generation, &[])
    }

    /// Starts server `i` with `extra` flags and waits for its `ready <url>` line.
    fn serve_with(&self, i: usize, generation: usize, extra: &[&str]) -> Server {
        let log = self.logs.join(format!("server{i}-{generation}.log"));
        let mut child = Command::new(BIN)
            .args(["serve", "--local", &self.servers[i], "--hosts", &self.hosts])
            .args(["--token", TOKEN, "--conformance"])
            .args(&self.tls)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server { child, log };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(line)) => assert_eq!(line, format!("ready {}", self.servers[i])),
            other => {
                server.kill();
                panic!("server {i} did not print its ready line: {other:?}");
            }
        }
        server
    }

    /// Runs `rgrid call --to server[to] <extra>`; returns (exit code, stdout, stderr).
    fn call(&self, to: usize, extra: &[&str]) -> (i32, Vec<u8>, String) {
        self.call_to(&self.servers[to], extra)
    }

    /// Runs `rgrid call --to <url> <extra>`; returns (exit code, stdout, stderr).
    fn call_to(&self, to: &str, extra: &[&str]) -> (i32, Vec<u8>, String) {
        self.call_as(TOKEN, to, extra)
    }

    /// Runs `rgrid call --token <token> --to <url> <extra>`.
    fn call_as(&self, token: &str, to: &str, extra: &[&str]) -> (i32, Vec<u8>, String) {
        self.call_with(token, to, &self.tls, extra)
    }

    /// Runs `rgrid call` with these TLS flags instead of the grid's.
    fn call_with(
        &self,
        token: &str,
        to: &str,
        tls: &[String],
        extra: &[&str],
    ) -> (i32, Vec<u8>, String) {
        let child = Command::new(BIN)
            .args(["call", "--local", &self.caller, "--hosts", &self.hosts])
            .args(["--token", token, "--to", to])
            .args(tls)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!("rgrid call {extra:?} did not finish within 30 s");
            }
        };
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Grid {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status within 10 s.
    fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > end {
                self.kill();
                panic!("server did not exit within 10 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Waits (up to 20 s) until server `i` has logged at least `times` connections to `url`.
fn wait_connected_logged(servers: &[Server], i: usize, url: &str, times: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let log = servers[i].log();
        let n = log
            .lines()
            .filter(|l| l.contains("grid connected") && l.contains(&format!("remote={url}")))
            .count();
        if n >= times {
            return;
        }
        assert!(
            Instant::now() < end,
            "server {i} logged {n} connections to {url}, want {times}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(stdout: &[u8]) -> Vec<Vec<u8>> {
    stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Every conformance behaviour against server `to`.
fn check_conformance(grid: &Grid, to: usize) {
    let (code, out, err) = grid.call(to, &["--handler", "78", "--payload", "hello grid"]);
    assert_eq!((code, out.as_slice()), (0, &b"hello grid\n"[..]), "{err}");

    let (code, out, err) = grid.call(to, &["--handler", "79", "--payload", "it broke"]);
    assert_eq!(code, 3, "remote error exits with 3: {err}");
    assert!(out.is_empty());
    assert!(err.contains("it broke"), "{err}");

    let (code, out, err) = grid.call(
        to,
        &[
            "--handler",
            "78",
            "--subroute",
            "echo",
            "--stream",
            "--send",
            "one",
            "--send",
            "two",
            "--send",
            "three",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out), [&b"one"[..], b"two", b"three"]);

    let (code, out, err) = grid.call(
        to,
        &[
            "--handler",
            "78",
            "--subroute",
            "count",
            "--stream",
            "--payload",
            "xy",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let want: Vec<Vec<u8>> = (0u8..10).map(|i| vec![i, b'x', b'y']).collect();
    // Byte 10 is '\n', so split by position instead of by newline: 10 lines of 4 bytes.
    let got: Vec<Vec<u8>> = out.chunks(4).map(|c| c[..3].to_vec()).collect();
    assert_eq!(out.len(), 40);
    assert_eq!(got, want);

    let (code, out, err) = grid.call(
        to,
        &[
            "--handler",
            "79",
            "--subroute",
            "error",
            "--stream",
            "--payload",
            "stream failed",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("stream failed"), "{err}");
}

#[test]
fn three_serve_processes_answer_rgrid_call_and_survive_a_restart() {
    let grid = Grid::new();
    let mut servers: Vec<Server> = (0..3).map(|i| grid.serve(i, 0)).collect();
    // The servers mesh: each logs a connection to both others (logs name the remote URL).
    for i in 0..3 {
        for j in (0..3).filter(|&j| j != i) {
            wait_connected_logged(&servers, i, &grid.servers[j], 1);
        }
    }
    for to in 0..3 {
        check_conformance(&grid, to);
    }

    // Local errors exit with 2: a handler id out of range, an unknown flag, a node that is
    // not in the grid.
    let (code, _, err) = grid.call(0, &["--handler", "200"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = grid.call(0, &["--handler", "78", "--no-such-flag"]);
    assert_eq!(code, 2);
    let (code, _, err) = grid.call_to("http://127.0.0.1:1", &["--handler", "78"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("must be one of --hosts"), "{err}");
    // A wrong token: the server refuses it in the handshake and the caller says why.
    let (code, _, err) = grid.call_as(
        "not-the-secret",
        &grid.servers[0],
        &["--handler", "78", "--timeout", "1"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("token"), "the refusal names the token: {err}");
    // Sending to a stream that takes no input is refused before anything is sent.
    let (code, out, err) = grid.call(
        0,
        &[
            "--handler",
            "78",
            "--subroute",
            "count",
            "--stream",
            "--send",
            "x",
        ],
    );
    assert_eq!((code, out.len()), (2, 0), "{err}");
    // The remote refuses a subroute nobody registered: a remote error.
    let (code, _, err) = grid.call(0, &["--handler", "78", "--subroute", "nope"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Invalid Handler"), "{err}");

    // Kill node 2: a call to it fails locally; restarted on the same port, it answers again
    // and the other servers reconnect to it.
    servers[1].kill();
    let (code, _, err) = grid.call(1, &["--handler", "78", "--timeout", "1"]);
    assert_eq!(code, 2, "a dead node is a local error: {err}");
    assert!(err.contains("no connection"), "{err}");
    servers[1] = grid.serve(1, 1);
    check_conformance(&grid, 1);
    for i in [0, 2] {
        wait_connected_logged(&servers, i, &grid.servers[1], 2);
    }
    // And the restarted server is connected to both others.
    for j in [0, 2] {
        wait_connected_logged(&servers, 1, &grid.servers[j], 1);
    }

    for s in servers {
        assert_eq!(s.terminate(), 0, "clean exit on SIGTERM");
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`; returns the
/// paths of the CA, the certificate and the key.
fn write_pki(dir: &std::path::Path, name: &str) -> [String; 3] {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = [
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-node.pem")),
        dir.join(format!("{name}-node.key")),
    ];
    for (path, pem) in paths
        .iter()
        .zip([ca.pem(), cert.pem(), key.serialize_pem()])
    {
        std::fs::write(path, pem).unwrap();
    }
    paths.map(|p| p.to_string_lossy().into_owned())
}

fn tls_flags([ca, cert, key]: &[String; 3]) -> Vec<String> {
    ["--ca", ca, "--tls-cert", cert, "--tls-key", key]
        .map(str::to_owned)
        .to_vec()
}

#[test]
fn https_serve_and_call_round_trip() {
    let dir = std::env::temp_dir().join(format!("rgrid-tls-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = write_pki(&dir, "grid");
    let foreign = write_pki(&dir, "foreign");
    let grid = Grid::with("https", 2, "tls", tls_flags(&pki));
    let servers: Vec<Server> = (0..2).map(|i| grid.serve(i, 0)).collect();
    wait_connected_logged(&servers, 0, &grid.servers[1], 1);
    wait_connected_logged(&servers, 1, &grid.servers[0], 1);

    for to in 0..2 {
        let (code, out, err) = grid.call(to, &["--handler", "78", "--payload", "over tls"]);
        assert_eq!((code, out.as_slice()), (0, &b"over tls\n"[..]), "{err}");
    }
    let (code, out, err) = grid.call(
        1,
        &[
            "--handler",
            "78",
            "--subroute",
            "echo",
            "--stream",
            "--send",
            "one",
            "--send",
            "two",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out), [&b"one"[..], b"two"]);
    let (code, _, err) = grid.call(0, &["--handler", "79", "--payload", "tls error"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("tls error"), "{err}");

    // A caller that trusts another CA never connects, and its log says TLS refused it.
    let (code, out, err) = grid.call_with(
        TOKEN,
        &grid.servers[0],
        &tls_flags(&[foreign[0].clone(), pki[1].clone(), pki[2].clone()]),
        &["--handler", "78", "--timeout", "3"],
    );
    assert_eq!((code, out.len()), (2, 0), "{err}");
    assert!(err.contains("no connection"), "{err}");
    assert!(err.contains("tls: "), "the dial error names TLS: {err}");
    // https hosts without --ca, or a certificate that does not exist: refused before dialing.
    let (code, _, err) = grid.call_with(
        TOKEN,
        &grid.servers[0],
        &["--tls-cert", &pki[1], "--tls-key", &pki[2]].map(str::to_owned),
        &["--handler", "78"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--ca"), "{err}");
    let (code, _, err) = grid.call_with(
        TOKEN,
        &grid.servers[0],
        &tls_flags(&[pki[0].clone(), "/no/such/cert.pem".into(), pki[2].clone()]),
        &["--handler", "78"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");

    for s in servers {
        assert_eq!(s.terminate(), 0, "clean exit on SIGTERM");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// One HTTP GET of `/metrics` on loopback `port`; the response body, or `None` if nothing
/// listens there yet.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// `serve --metrics ADDR` serves Prometheus text that counts the calls the node served, by
/// route and outcome.
#[test]
fn serve_exports_prometheus_metrics() {
    let grid = Grid::with("http", 1, "metrics", Vec::new());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = grid.serve_with(0, 0, &["--metrics", &addr]);
    let (code, out, err) = grid.call(0, &["--handler", "78", "--payload", "hello"]);
    assert_eq!((code, out), (0, b"hello\n".to_vec()), "{err}");
    let (code, _, err) = grid.call(0, &["--handler", "79", "--payload", "boom"]);
    assert_eq!(code, 3, "{err}");
    // The counters are there once the listener is up (bounded wait).
    let started = Instant::now();
    let body = loop {
        if let Some(b) = scrape(port)
            && b.contains("rgrid_calls_total")
        {
            break b;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no metrics on {addr}; server log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let has = |labels: &[&str], value: &str| {
        body.lines().any(|l| {
            l.starts_with("rgrid_calls_total{")
                && labels.iter().all(|x| l.contains(x))
                && l.ends_with(&format!(" {value}"))
        })
    };
    assert!(
        has(&["side=\"serve\"", "route=\"Test\"", "outcome=\"ok\""], "1"),
        "{body}"
    );
    assert!(
        has(
            &["side=\"serve\"", "route=\"Test2\"", "outcome=\"remote\""],
            "1"
        ),
        "{body}"
    );
    assert!(body.contains("rgrid_call_seconds"), "{body}");
    assert_eq!(server.terminate(), 0);
}
