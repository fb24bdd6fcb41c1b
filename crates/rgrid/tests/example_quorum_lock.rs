//! The quorum-lock example (`examples/quorum_lock.rs`, issue 15's acceptance) as three
//! processes on loopback: node 2 is killed as soon as nodes 0 and 1 are both locking; they
//! finish every round by majority, read the two-way stream and report their connections
//! (node 2's down).
//!
//! `cargo test` builds the example next to this test (`target/<profile>/examples/`); every
//! wait is bounded and the processes are killed if the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;

/// A free loopback port below Linux's ephemeral range (32768 and up), so that no outgoing
/// connection of the nodes can take it between this check and the node's bind.
fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// Kills the processes still running when the test ends (or fails).
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn three_processes_lock_by_majority_and_survive_one_killed() {
    let deps = std::env::current_exe().unwrap();
    let exe = deps
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join(format!("quorum_lock{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "{} is missing: `cargo test -p rgrid` builds it",
        exe.display()
    );
    let urls: Vec<String> = (0..3)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let hosts = urls.join(",");
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let mut nodes = Nodes(Vec::new());
    for (i, url) in urls.iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([url.as_str(), hosts.as_str(), &ROUNDS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((i, line)).is_err() {
                    break;
                }
            }
        });
        nodes.0.push(child);
    }
    drop(tx);

    let give_up = Instant::now() + Duration::from_secs(60);
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); 3];
    let mut killed = false;
    let mut done = [false; 2];
    let mut finished_after_kill = [false; 2];
    let mut locking = [false; 2];
    while done != [true, true] {
        let left = give_up.saturating_duration_since(Instant::now());
        let Ok((i, line)) = rx.recv_timeout(left) else {
            panic!("the nodes did not finish in time: {lines:#?}");
        };
        // Kill node 2 as soon as nodes 0 and 1 are both past the start-up barrier and
        // locking (a node still waiting for node 2 would wait in vain).
        if i < 2 && line.contains(": locked ") {
            locking[i] = true;
        }
        if locking == [true, true] && !killed {
            nodes.0[2].kill().unwrap();
            killed = true;
        }
        if i < 2 && line.contains(": done: ") {
            done[i] = true;
            finished_after_kill[i] = killed;
        }
        lines[i].push(line);
    }
    assert!(
        killed,
        "nodes 0 and 1 never got a sixth of the way: {lines:#?}"
    );
    assert_ne!(
        finished_after_kill,
        [false, false],
        "both finished before the kill"
    );
    for (i, out) in lines.iter().take(2).enumerate() {
        let text = out.join("\n");
        let done = format!("{}: done: locked {ROUNDS}, failed 0", urls[i]);
        assert!(text.contains(&done), "node {i}:\n{text}");
        let majority = out.iter().filter(|l| l.ends_with(" votes)")).count();
        assert_eq!(majority, ROUNDS, "node {i}:\n{text}");
        assert!(
            text.contains(": a: free") && text.contains(": b: free"),
            "{text}"
        );
        // A node still locking when node 2 died saw it go.
        if finished_after_kill[i] {
            let gone = format!("-> {} ConnectionError", urls[2]);
            assert!(text.contains(&gone), "{text}");
        }
    }
    for c in nodes.0.iter_mut().take(2) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                break;
            }
            assert!(Instant::now() < deadline, "a node did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
