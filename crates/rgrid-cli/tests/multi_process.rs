//! Three `rgrid serve --conformance` processes on loopback ports, `rgrid call` against each
//! of them (every conformance handler, single and stream, with the exit codes of DESIGN.md
//! §4), one node killed and restarted, calls working again, and a clean exit on SIGTERM.
//!
//! A second test runs two servers and a caller over https (certificates generated with rcgen
//! into a temporary directory): the round trip works, and a caller with the wrong CA or
//! without one is refused.
//!
//! Authentication: servers on `--jwt-secret` (the flag, the variable, a file) and on MinIO's
//! root credentials answer callers with the same credentials; a caller with the wrong ones
//! exits 2 with the server's reason on its last line; no secret appears in any output (logs
//! at debug level); two sources of credentials, or none, are refused.
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

/// The variables that set authentication flags: removed from every process started here
/// (each test says what it sets), so that the environment of the test run cannot add a
/// second source.
const AUTH_ENV: [&str; 4] = [
    "RGRID_JWT_SECRET",
    "RGRID_MINIO_ACCESS_KEY",
    "RGRID_MINIO_SECRET_KEY",
    "RGRID_TOKEN",
];

/// `rgrid ARGS` with no authentication variables but `env`; stdin closed.
fn rgrid(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for var in AUTH_ENV {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs `cmd` to its end, killing it (and failing) after 30 s: (exit code, stdout, stderr).
fn run_bounded(mut cmd: Command) -> (i32, Vec<u8>, String) {
    let child = cmd
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
            panic!("{cmd:?} did not finish within 30 s");
        }
    };
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The last non-empty line of `text`.
fn last_line(text: &str) -> &str {
    text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
}

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
    /// Authentication flags of the servers (`--token TOKEN` unless a test sets others).
    auth: Vec<String>,
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
            auth: ["--token", TOKEN].map(str::to_owned).to_vec(),
        }
    }

    /// Starts server `i` and waits for its `ready <url>` line.
    fn serve(&self, i: usize, generation: usize) -> Server {
        self.serve_with(i, generation, &[])
    }

    /// Starts server `i` with `extra` flags and waits for its `ready <url>` line.
    fn serve_with(&self, i: usize, generation: usize, extra: &[&str]) -> Server {
        self.serve_env(i, generation, extra, &[("RUST_LOG", "info")])
    }

    /// Starts server `i` with `extra` flags and the variables `env` (and the grid's
    /// authentication flags) and waits for its `ready <url>` line.
    fn serve_env(
        &self,
        i: usize,
        generation: usize,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let log = self.logs.join(format!("server{i}-{generation}.log"));
        let mut child = rgrid(
            &["serve", "--local", &self.servers[i], "--hosts", &self.hosts],
            env,
        )
        .args(&self.auth)
        .arg("--conformance")
        .args(&self.tls)
        .args(extra)
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
        let mut args = vec!["--token", token, "--to", to];
        args.extend(tls.iter().map(String::as_str));
        args.extend(extra);
        self.call_env(&args, &[])
    }

    /// Runs `rgrid call --local <caller> --hosts <hosts> ARGS` (no flag added) with the
    /// variables `env`.
    fn call_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<u8>, String) {
        let mut cmd = rgrid(
            &["call", "--local", &self.caller, "--hosts", &self.hosts],
            env,
        );
        cmd.args(args);
        run_bounded(cmd)
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

/// `serve --metrics ADDR` serves Prometheus text that counts the calls and streams the node
/// served, by route and outcome, their messages and their bytes.
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
    let stream = [
        "--handler",
        "78",
        "--subroute",
        "echo",
        "--stream",
        "--send",
        "one",
        "--send",
        "two",
    ];
    let (code, out, err) = grid.call(0, &stream);
    assert_eq!((code, out), (0, b"one\ntwo\n".to_vec()), "{err}");
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
    let has = |name: &str, labels: &[&str], value: &str| {
        body.lines().any(|l| {
            l.strip_prefix(name).is_some_and(|l| l.starts_with('{'))
                && labels.iter().all(|x| l.contains(x))
                && l.ends_with(&format!(" {value}"))
        })
    };
    let calls = "rgrid_calls_total";
    assert!(
        has(
            calls,
            &["side=\"serve\"", "route=\"Test\"", "outcome=\"ok\""],
            "1"
        ),
        "{body}"
    );
    assert!(
        has(
            calls,
            &["side=\"serve\"", "route=\"Test2\"", "outcome=\"remote\""],
            "1"
        ),
        "{body}"
    );
    assert!(body.contains("rgrid_call_seconds"), "{body}");
    // "hello" in and out of the single call; the stream's two messages each way.
    let serve_test = ["side=\"serve\"", "route=\"Test\""];
    assert!(
        has(
            "rgrid_bytes_total",
            &[serve_test[0], serve_test[1], "direction=\"received\""],
            "5"
        ),
        "{body}"
    );
    let serve_echo = ["side=\"serve\"", "route=\"echo\""];
    for direction in ["direction=\"received\"", "direction=\"sent\""] {
        assert!(
            has(
                "rgrid_stream_messages_total",
                &[serve_echo[0], serve_echo[1], direction],
                "2"
            ),
            "{body}"
        );
    }
    // The handler's side counts the end before it sends it: there once the caller has it.
    assert!(
        has(
            "rgrid_streams_total",
            &[serve_echo[0], serve_echo[1], "outcome=\"ok\""],
            "1"
        ),
        "{body}"
    );
    assert_eq!(server.terminate(), 0);
}

const JWT_SECRET: &str = "jwt-secret-of-the-test-grid-5f2c";
const WRONG_SECRET: &str = "not-the-grid-secret-9a41";

/// Waits (up to 20 s) until server `s`'s log contains every one of `parts`; returns the log.
fn wait_logged(s: &Server, parts: &[&str]) -> String {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let log = s.log();
        if parts.iter().all(|p| log.contains(p)) {
            return log;
        }
        assert!(Instant::now() < end, "no {parts:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails if a secret shows in `output` (named `what`).
fn assert_no_secret(what: &str, output: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!output.contains(secret), "{what} shows a secret:\n{output}");
    }
}

/// Two servers on `--jwt-secret`, one through the flag and one through `RGRID_JWT_SECRET`,
/// connect to each other; a caller with the secret in a file gets answers. A caller with
/// another secret is refused: exit code 2 and the server's reason on its last line, which the
/// server logs too. Every process logs at debug level, and no secret shows in any output.
#[test]
fn jwt_secret_nodes_interoperate_and_a_wrong_secret_is_refused_with_the_reason() {
    let mut grid = Grid::with("http", 2, "jwt", Vec::new());
    grid.auth = Vec::new();
    let debug = ("RUST_LOG", "debug");
    let s0 = grid.serve_env(0, 0, &["--jwt-secret", JWT_SECRET], &[debug]);
    let s1 = grid.serve_env(1, 0, &[], &[debug, ("RGRID_JWT_SECRET", JWT_SECRET)]);
    let servers = [s0, s1];
    wait_connected_logged(&servers, 0, &grid.servers[1], 1);
    wait_connected_logged(&servers, 1, &grid.servers[0], 1);

    let secret_file = grid.logs.join("jwt-secret");
    std::fs::write(&secret_file, format!("{JWT_SECRET}\n")).unwrap();
    let secret_file = secret_file.to_string_lossy().into_owned();
    let mut outputs = Vec::new();
    for to in &grid.servers {
        let (code, out, err) = grid.call_env(
            &[
                "--jwt-secret-file",
                &secret_file,
                "--to",
                to,
                "--handler",
                "78",
                "--payload",
                "signed",
            ],
            &[debug],
        );
        assert_eq!((code, out.as_slice()), (0, &b"signed\n"[..]), "{err}");
        outputs.push(err);
    }
    let (code, out, err) = grid.call_env(
        &[
            "--to",
            &grid.servers[1],
            "--handler",
            "78",
            "--timeout",
            "2",
        ],
        &[debug, ("RGRID_JWT_SECRET", JWT_SECRET)],
    );
    assert_eq!((code, out.as_slice()), (0, &b"\n"[..]), "{err}");
    outputs.push(err);

    // The wrong secret: refused in the handshake, and the caller's last line says why. The
    // refusal ends the caller's wait at once: with a 120 s timeout, waiting it out would
    // overrun `run_bounded`'s 30 s and fail.
    let (code, out, err) = grid.call_env(
        &[
            "--jwt-secret",
            WRONG_SECRET,
            "--to",
            &grid.servers[0],
            "--handler",
            "78",
            "--timeout",
            "120",
        ],
        &[debug],
    );
    assert_eq!((code, out.len()), (2, 0), "{err}");
    let last = last_line(&err);
    assert!(
        last.starts_with(&format!("rgrid: no connection to {}", grid.servers[0])),
        "{err}"
    );
    assert!(
        last.ends_with("connection rejected: auth token: invalid token signature"),
        "the last line gives the server's reason: {err}"
    );
    outputs.push(err);
    wait_logged(
        &servers[0],
        &["rejected incoming connection", "invalid token signature"],
    );

    for s in servers {
        let log = s.log();
        assert_eq!(s.terminate(), 0, "clean exit on SIGTERM");
        assert_no_secret("a server's log", &log, &[JWT_SECRET, WRONG_SECRET]);
    }
    for err in outputs {
        assert_no_secret("a caller's stderr", &err, &[JWT_SECRET, WRONG_SECRET]);
    }
}

/// A server on MinIO's root credentials (from the variables) answers a caller with the same
/// credentials (flags, the secret key in a file) and refuses one with another secret key.
#[test]
fn minio_credentials_authenticate_and_a_wrong_secret_key_is_refused() {
    const ACCESS: &str = "minio-root-user";
    const SECRET: &str = "minio-root-password-77c1";
    let mut grid = Grid::with("http", 1, "minio", Vec::new());
    grid.auth = Vec::new();
    let server = grid.serve_env(
        0,
        0,
        &[],
        &[
            ("RUST_LOG", "debug"),
            ("RGRID_MINIO_ACCESS_KEY", ACCESS),
            ("RGRID_MINIO_SECRET_KEY", SECRET),
        ],
    );
    let key_file = grid.logs.join("minio-secret");
    std::fs::write(&key_file, SECRET).unwrap();
    let key_file = key_file.to_string_lossy().into_owned();
    let call = |secret_flag: &str, secret: &str| {
        grid.call_env(
            &[
                "--minio-access-key",
                ACCESS,
                secret_flag,
                secret,
                "--to",
                &grid.servers[0],
                "--handler",
                "78",
                "--payload",
                "minio",
                "--timeout",
                "2",
            ],
            &[("RUST_LOG", "debug")],
        )
    };
    let (code, out, ok_err) = call("--minio-secret-key-file", &key_file);
    assert_eq!((code, out.as_slice()), (0, &b"minio\n"[..]), "{ok_err}");
    let (code, out, err) = call("--minio-secret-key", WRONG_SECRET);
    assert_eq!((code, out.len()), (2, 0), "{err}");
    assert!(
        last_line(&err).ends_with("connection rejected: auth token: invalid token signature"),
        "{err}"
    );
    let log = server.log();
    assert_eq!(server.terminate(), 0);
    for output in [&log, &ok_err, &err] {
        assert_no_secret("an output", output, &[SECRET, WRONG_SECRET]);
    }
}

/// Two sources of credentials are refused before anything starts (a variable counts as its
/// flag, and the error names it), as is none; `--help` names the variables, not their values.
#[test]
fn conflicting_or_missing_credentials_are_refused() {
    let node = [
        "--local",
        "http://127.0.0.1:1",
        "--hosts",
        "http://127.0.0.1:2",
    ];
    let call_args = |auth: &[&'static str]| {
        let mut a = vec!["call"];
        a.extend(node);
        a.extend(["--to", "http://127.0.0.1:2", "--handler", "78"]);
        a.extend(auth);
        a
    };
    let (code, _, err) = run_bounded(rgrid(
        &call_args(&["--jwt-secret", JWT_SECRET, "--token", TOKEN]),
        &[],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'--jwt-secret <SECRET>' cannot be used with '--token <T>'"),
        "{err}"
    );
    assert_no_secret("the conflict error", &err, &[JWT_SECRET, TOKEN]);

    let (code, _, err) = run_bounded(rgrid(
        &call_args(&["--minio-secret-key", WRONG_SECRET, "--jwt-secret-file", "f"]),
        &[("RGRID_MINIO_ACCESS_KEY", "root")],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(
        err.contains("RGRID_MINIO_ACCESS_KEY is set in the environment"),
        "{err}"
    );
    assert_no_secret("the conflict error", &err, &[WRONG_SECRET]);

    // A variable of one source and a flag of another.
    let mut serve = vec!["serve"];
    serve.extend(node);
    let mut with_flag = serve.clone();
    with_flag.extend(["--jwt-secret", JWT_SECRET]);
    let (code, _, err) = run_bounded(rgrid(&with_flag, &[("RGRID_TOKEN", TOKEN)]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(
        err.contains("RGRID_TOKEN is set in the environment and counts as --token"),
        "{err}"
    );
    assert_no_secret("the conflict error", &err, &[JWT_SECRET, TOKEN]);

    // None at all: the message names the options (and nothing listens).
    let (code, _, err) = run_bounded(rgrid(&serve, &[]));
    assert_eq!(code, 2, "{err}");
    let last = last_line(&err);
    assert!(last.starts_with("rgrid: no authentication"), "{err}");
    for option in ["--jwt-secret", "--minio-access-key", "--token"] {
        assert!(last.contains(option), "{err}");
    }
    let (code, _, err) = run_bounded(rgrid(&call_args(&["--minio-access-key", "root"]), &[]));
    assert_eq!(code, 2, "{err}");
    assert!(
        last_line(&err).contains("needs --minio-secret-key"),
        "{err}"
    );

    let (code, out, err) = run_bounded(rgrid(
        &["serve", "--help"],
        &[
            ("RGRID_JWT_SECRET", JWT_SECRET),
            ("RGRID_MINIO_SECRET_KEY", WRONG_SECRET),
            ("RGRID_TOKEN", TOKEN),
        ],
    ));
    let help = String::from_utf8_lossy(&out);
    assert_eq!(code, 0, "{err}");
    for var in AUTH_ENV {
        assert!(help.contains(var), "{help}");
    }
    assert_no_secret("--help", &help, &[JWT_SECRET, WRONG_SECRET, TOKEN]);
}

/// `rgrid call` without `--local` joins as a client participant: it is not in the servers'
/// host list, listens nowhere, and gets its answer; a server started with `--max-clients 0`
/// (like a MinIO node) refuses it, and the caller's last line says why.
#[test]
fn call_without_local_joins_as_a_client() {
    let grid = Grid::with("http", 3, "client", Vec::new());
    let _s0 = grid.serve(0, 0);
    let _s1 = grid.serve(1, 0);
    let _s2 = grid.serve_with(2, 0, &["--max-clients", "0"]);
    let servers = grid.servers.join(",");
    let client = |to: &str| {
        let mut cmd = rgrid(&["call", "--hosts", &servers, "--to", to], &[]);
        cmd.args([
            "--token",
            TOKEN,
            "--handler",
            "78",
            "--payload",
            "hi",
            "--timeout",
            "5",
        ]);
        run_bounded(cmd)
    };
    let (code, out, err) = client(&grid.servers[0]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"hi\n");
    let (code, _, err) = client(&grid.servers[2]);
    assert_eq!(code, 2, "{err}");
    let last = last_line(&err);
    assert!(
        last.contains("unknown incoming host (this node joined as a client"),
        "{last}"
    );
}

/// `serve --hosts-file F` re-reads F on SIGHUP: a host added to the file joins the running
/// node (the pair connects and the node logs it), without a restart.
#[cfg(unix)]
#[test]
fn sighup_reloads_the_host_list() {
    let mut grid = Grid::with("http", 2, "sighup", Vec::new());
    let file = grid.logs.join("hosts.txt");
    std::fs::write(&file, "# no other host yet\n").unwrap();
    let all = grid.hosts.clone();
    // Node 0 starts alone; node 1 knows both.
    grid.hosts = grid.servers[0].clone();
    let s0 = grid.serve_with(0, 0, &["--hosts-file", file.to_str().unwrap()]);
    grid.hosts = all;
    let _s1 = grid.serve(1, 0);
    std::fs::write(&file, format!("{}\n", grid.servers[1])).unwrap();
    // Node 1 may already be connected as a client participant (if it is the dialer): the
    // connection as a host is the next one.
    let connected = |log: &str| {
        log.lines()
            .filter(|l| l.contains("grid connected") && l.contains(&grid.servers[1]))
            .count()
    };
    let before = connected(&s0.log());
    let hup = Command::new("kill")
        .args(["-HUP", &s0.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_logged(&s0, &["host list reloaded", "added=1"]);
    wait_connected_logged(std::slice::from_ref(&s0), 0, &grid.servers[1], before + 1);
    // Removing it again.
    std::fs::write(&file, "").unwrap();
    Command::new("kill")
        .args(["-HUP", &s0.child.id().to_string()])
        .status()
        .unwrap();
    wait_logged(&s0, &["removed=1", "grid: host removed"]);
}
