//! What the scale scenario reads from (and asks of) the operating system: the process's
//! resident memory and CPU time, its open-files limit, the kernel's TCP figures, and a trim
//! of the C heap. Linux only; elsewhere every reading is `None` and the scenario says so.

use std::time::Duration;

/// The process's resident set size in KiB (`VmRSS` of `/proc/self/status`).
pub fn rss_kib() -> Option<u64> {
    parse_vm_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU time used by the whole process so far (user + system, every thread), from
/// `getrusage(RUSAGE_SELF)`.
#[cfg(unix)]
pub fn cpu_time() -> Option<Duration> {
    // SAFETY: `rusage` is plain old data (all-zero is a valid value), and getrusage only
    // writes into the struct it is given.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    }?;
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Some(tv(usage.ru_utime) + tv(usage.ru_stime))
}

/// CPU time used by the whole process so far (not available on this platform).
#[cfg(not(unix))]
pub fn cpu_time() -> Option<Duration> {
    None
}

/// Gives the C heap's free memory back to the system (glibc's `malloc_trim(0)`), so that
/// resident memory measured next counts what is in use rather than what earlier work left
/// free in the allocator's arenas. Returns whether it could (glibc only).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_heap() -> bool {
    // SAFETY: malloc_trim only walks and releases the allocator's own free lists; it takes
    // the allocator's locks like any malloc call.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
    true
}

/// Gives the C heap's free memory back to the system (not available on this platform).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_heap() -> bool {
    false
}

/// The open-files limit of the process: (soft, hard), `None` for unlimited.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is not u64 on every target
pub fn open_files_limit() -> Option<(Option<u64>, Option<u64>)> {
    // SAFETY: `rlimit` is plain old data; getrlimit only writes into it.
    #[allow(unsafe_code)]
    let lim = unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0).then_some(lim)
    }?;
    let finite = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then(|| u64::from(v));
    Some((finite(lim.rlim_cur), finite(lim.rlim_max)))
}

/// The open-files limit of the process (not available on this platform).
#[cfg(not(unix))]
pub fn open_files_limit() -> Option<(Option<u64>, Option<u64>)> {
    None
}

/// Raises the soft open-files limit to `want` (at most the hard limit), as Go programs do at
/// start. Returns the new soft limit.
#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is not u64 on every target
pub fn raise_open_files(want: u64) -> Result<u64, String> {
    let (_, hard) = open_files_limit().ok_or("getrlimit failed")?;
    let new = hard.map_or(want, |h| want.min(h));
    let rlim = |v: u64| libc::rlim_t::try_from(v).unwrap_or(libc::RLIM_INFINITY);
    let lim = libc::rlimit {
        rlim_cur: rlim(new),
        rlim_max: hard.map_or(libc::RLIM_INFINITY, rlim),
    };
    // SAFETY: setrlimit only reads the struct it is given.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc == 0 {
        Ok(new)
    } else {
        Err(format!(
            "setrlimit(RLIMIT_NOFILE, {new}): {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Raises the soft open-files limit (not available on this platform).
#[cfg(not(unix))]
pub fn raise_open_files(_want: u64) -> Result<u64, String> {
    Err("not available on this platform".to_owned())
}

/// File descriptors the process has open now (entries of `/proc/self/fd`).
pub fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// The kernel's range of ephemeral ports for outgoing connections (inclusive).
pub fn local_port_range() -> Option<(u32, u32)> {
    let s = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// The kernel's TCP figures for the whole machine, from `/proc/net/sockstat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStat {
    /// TCP sockets in use.
    pub inuse: u64,
    /// Sockets in TIME_WAIT.
    pub time_wait: u64,
    /// Memory of TCP socket buffers, in pages.
    pub mem_pages: u64,
}

/// The kernel's TCP figures now.
pub fn tcp_stat() -> Option<TcpStat> {
    parse_sockstat(&std::fs::read_to_string("/proc/net/sockstat").ok()?)
}

/// The `TCP:` line of `/proc/net/sockstat`.
pub fn parse_sockstat(text: &str) -> Option<TcpStat> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == name)?;
        words.get(i + 1)?.parse().ok()
    };
    Some(TcpStat {
        inuse: field("inuse")?,
        time_wait: field("tw").unwrap_or(0),
        mem_pages: field("mem").unwrap_or(0),
    })
}

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
pub fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\trgrid\nVmPeak:\t  123 kB\nVmRSS:\t    8812 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(parse_vm_rss(status), Some(8812));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn parses_sockstat() {
        let text =
            "sockets: used 180\nTCP: inuse 12 orphan 0 tw 3 alloc 15 mem 2\nUDP: inuse 1 mem 0\n";
        assert_eq!(
            parse_sockstat(text),
            Some(TcpStat {
                inuse: 12,
                time_wait: 3,
                mem_pages: 2
            })
        );
        assert_eq!(parse_sockstat("UDP: inuse 1\n"), None);
    }

    #[test]
    fn readings_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_kib().unwrap() > 0);
            assert!(open_fds().unwrap() > 0);
            assert!(cpu_time().is_some());
            let (lo, hi) = local_port_range().unwrap();
            assert!(lo <= hi);
        }
    }
}
