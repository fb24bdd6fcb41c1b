//! The harness's own delay, jitter and loss stage (the kernels it runs on have no
//! sch_netem), and the one-way cut: a userspace forwarder between a node's veth and its
//! bridge port.
//!
//! The node's path is `eth0` (its namespace) ↔ `t<i>` | stage | `s<i>` ↔ `p<i>` (bridge
//! port), the four ends in veth pairs, `t<i>` and `s<i>` in the bridge's namespace and in
//! no bridge. An AF_PACKET socket is bound to each of `s<i>` and `t<i>`; per direction one
//! thread reads every frame (ARP and IPv6 neighbour discovery included), drops it with the
//! configured probability (or all of them when that direction is cut) and queues the rest
//! with a release time of now + delay ± jitter (uniform), and a second thread writes each
//! one to the other socket at its release time. Release times never go backwards within a
//! direction (a frame is held until the one before it went), so jitter does not reorder
//! frames: the queue is FIFO per direction, as netem's is when its jitter is combined with
//! a rate; real networks may reorder, this stage does not.
//!
//! Offloads: the veths do segmentation offload and checksum offload, so a TCP frame read
//! here may be a GSO super-frame up to 64 KiB, and its checksum may be left to the device
//! (CHECKSUM_PARTIAL). Without ethtool they cannot be turned off, so the sockets use
//! `PACKET_VNET_HDR`: every frame is read with a virtio-net header that carries its GSO
//! type and size and its checksum start and offset, and is written back with that header,
//! so the kernel rebuilds the same super-frame and completes the checksum. A frame larger
//! than the read buffer would be counted as truncated (the harness asserts none was).
//! Loss applies to frames: a dropped super-frame loses every segment in it.
//!
//! `PACKET_IGNORE_OUTGOING` keeps a socket from reading the frames the stage itself writes
//! to its device.

#![allow(unsafe_code)] // libc: AF_PACKET sockets, setsockopt, setns.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `<linux/if_packet.h>`, missing from the libc crate.
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `struct virtio_net_hdr` (without the `num_buffers` of the mergeable variant).
const VNET_HDR_LEN: usize = 10;
/// Larger than any frame a veth hands over (64 KiB GSO plus headers).
const READ_BUF: usize = 256 * 1024;
/// How often a blocked reader looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

fn os_err(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Moves the calling thread into network namespace `ns` (made by `ip netns add`). Only this
/// thread moves; sockets it opens afterwards belong to that namespace for their life.
pub(crate) fn enter_netns(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{ns}"))
        .map_err(|e| io::Error::new(e.kind(), format!("/run/netns/{ns}: {e}")))?;
    // SAFETY: a valid descriptor of a namespace file; setns only changes this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(os_err(&format!("setns {ns}")));
    }
    Ok(())
}

/// Runs `f` on a thread of its own in namespace `ns`.
pub(crate) fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter_netns(&ns)?;
        f()
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("in_netns: the thread panicked")))
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` outlives the call and its size is passed.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(os_err(&format!("setsockopt {level}/{name}")));
    }
    Ok(())
}

/// An AF_PACKET socket on device `ifname` of the calling thread's namespace: every frame,
/// with a virtio-net header, none of its own, reads waking every `POLL`.
pub(crate) fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let name = CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(os_err(&format!("device {ifname}")));
    }
    // Protocol 0: no frame is queued before bind (ETH_P_ALL here would queue every
    // device's until then).
    // SAFETY: plain socket(2).
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(os_err("socket(AF_PACKET)"));
    }
    // SAFETY: a new descriptor, owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_int(&fd, libc::SOL_PACKET, PACKET_VNET_HDR, 1)?;
    set_int(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)?;
    set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20)?;
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    // SAFETY: `timeout` outlives the call and its size is passed.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(os_err("SO_RCVTIMEO"));
    }
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = index as libc::c_int;
    // SAFETY: `addr` outlives the call and its size is passed.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(os_err(&format!("bind AF_PACKET to {ifname}")));
    }
    Ok(fd)
}

/// What a direction does to its frames; changed while the stage runs.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    delay_us: AtomicU64,
    jitter_us: AtomicU64,
    /// Drop probability, in parts per million.
    loss_ppm: AtomicU64,
    /// Drop every frame.
    cut: AtomicBool,
}

/// What a direction did.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Frames read.
    pub(crate) frames: AtomicU64,
    /// Dropped by the loss probability.
    pub(crate) lost: AtomicU64,
    /// Dropped because the direction was cut.
    pub(crate) cut: AtomicU64,
    /// Larger than the read buffer (dropped).
    pub(crate) truncated: AtomicU64,
    /// Failed reads and writes other than timeouts.
    pub(crate) errors: AtomicU64,
    /// The largest frame read, in bytes without the virtio-net header.
    pub(crate) max_frame: AtomicU64,
}

/// One direction: its shape and its counters.
#[derive(Debug, Default)]
pub(crate) struct Dir {
    pub(crate) shape: Shape,
    pub(crate) counters: Counters,
}

/// A running stage; dropping it stops its threads and closes its sockets (which hold the
/// namespace until then).
#[derive(Debug)]
pub(crate) struct Stage {
    /// Frames from the bridge to the node.
    pub(crate) to_node: Arc<Dir>,
    /// Frames from the node to the bridge.
    pub(crate) from_node: Arc<Dir>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Stage {
    /// Forwards between device `outer` (the bridge's side) and `inner` (the node's side),
    /// both in namespace `ns`, with no delay and no loss until told otherwise.
    pub(crate) fn start(ns: &str, outer: &str, inner: &str) -> io::Result<Stage> {
        let (o, i) = (outer.to_owned(), inner.to_owned());
        let (outer, inner) = in_netns(ns, move || Ok((packet_socket(&o)?, packet_socket(&i)?)))?;
        let (outer, inner) = (Arc::new(outer), Arc::new(inner));
        let stop = Arc::new(AtomicBool::new(false));
        let to_node = Arc::new(Dir::default());
        let from_node = Arc::new(Dir::default());
        let mut threads = Vec::new();
        for (from, to, dir) in [
            (outer.clone(), inner.clone(), to_node.clone()),
            (inner, outer, from_node.clone()),
        ] {
            let (tx, rx) = mpsc::channel();
            let (d, s) = (dir.clone(), stop.clone());
            threads.push(std::thread::spawn(move || read_loop(&from, &d, &s, tx)));
            let s = stop.clone();
            threads.push(std::thread::spawn(move || write_loop(&to, &dir, &s, rx)));
        }
        Ok(Stage {
            to_node,
            from_node,
            stop,
            threads,
        })
    }

    /// Both directions: `delay` ± `jitter` (uniform), each frame lost with probability
    /// `loss`.
    pub(crate) fn shape(&self, delay: Duration, jitter: Duration, loss: f64) {
        for dir in [&self.to_node, &self.from_node] {
            let s = &dir.shape;
            s.delay_us
                .store(delay.as_micros() as u64, Ordering::Relaxed);
            s.jitter_us
                .store(jitter.min(delay).as_micros() as u64, Ordering::Relaxed);
            s.loss_ppm
                .store((loss * 1e6).round() as u64, Ordering::Relaxed);
        }
    }

    /// Drops everything toward the node and/or from it (false: forwards again).
    pub(crate) fn cut(&self, to_node: bool, from_node: bool) {
        self.to_node.shape.cut.store(to_node, Ordering::Relaxed);
        self.from_node.shape.cut.store(from_node, Ordering::Relaxed);
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn read_loop(fd: &OwnedFd, dir: &Dir, stop: &AtomicBool, queue: mpsc::Sender<(Instant, Vec<u8>)>) {
    let c = &dir.counters;
    let mut buf = vec![0u8; READ_BUF];
    let mut rng = fastrand::Rng::new();
    let mut last_release = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `buf` is writable for its length. MSG_TRUNC: the frame's real length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) {
                c.errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let n = n as usize;
        c.frames.fetch_add(1, Ordering::Relaxed);
        if n > buf.len() {
            c.truncated.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        c.max_frame
            .fetch_max(n.saturating_sub(VNET_HDR_LEN) as u64, Ordering::Relaxed);
        let s = &dir.shape;
        if s.cut.load(Ordering::Relaxed) {
            c.cut.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let loss = s.loss_ppm.load(Ordering::Relaxed);
        if loss > 0 && rng.u64(0..1_000_000) < loss {
            c.lost.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let delay = s.delay_us.load(Ordering::Relaxed);
        let jitter = s.jitter_us.load(Ordering::Relaxed);
        let us = delay - jitter.min(delay) + rng.u64(0..=2 * jitter);
        let release = (Instant::now() + Duration::from_micros(us)).max(last_release);
        last_release = release;
        if queue.send((release, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

fn write_loop(
    fd: &OwnedFd,
    dir: &Dir,
    stop: &AtomicBool,
    queue: mpsc::Receiver<(Instant, Vec<u8>)>,
) {
    let c = &dir.counters;
    while !stop.load(Ordering::Relaxed) {
        let (release, frame) = match queue.recv_timeout(POLL) {
            Ok(item) => item,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let wait = release.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        // SAFETY: `frame` is readable for its length.
        let sent = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Raises this process's soft limit of open files to `want` (at most the hard limit);
/// the limit now.
pub(crate) fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: want.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: a valid rlimit to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
        }
    }
    lim.rlim_cur
}
