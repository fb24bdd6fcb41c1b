//! Admission of connections before they authenticate: the pre-auth table.
//!
//! Every accepted socket (or mounted upgrade, or custom transport's connection) holds a slot
//! from TCP accept until its connect message is validated. The table bounds them in total
//! ([`crate::Options::max_preauth_conns`]) and per source address that is not a known
//! host's ([`crate::Options::max_preauth_per_addr`]), so one address cannot hold every slot. When
//! the table is full, the oldest slot of an address that is not a known host's is evicted
//! (its connection is dropped) to make room: a slowloris from many addresses keeps
//! evicting itself, while a peer that restarts gets a slot and authenticates within one
//! round trip. A newcomer from an unknown address never evicts a known host's slot.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::util::lock;

/// The pre-auth table of one manager.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_addr: usize,
    /// Addresses of the grid's hosts (IP literals in the host list; names are not resolved).
    known: HashSet<IpAddr>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// Live slots by age (oldest first).
    slots: BTreeMap<u64, Entry>,
    per_addr: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Entry {
    addr: Option<IpAddr>,
    evict: CancellationToken,
}

/// A pre-auth slot, freed when dropped. Its holder must drop the connection once
/// [`Slot::evicted`] fires.
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<Admission>,
    id: u64,
    evict: CancellationToken,
}

impl Slot {
    /// Fired when the table evicts this slot to make room for a newer connection: its
    /// holder then drops the connection.
    pub(crate) fn eviction(&self) -> CancellationToken {
        self.evict.clone()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = lock(&self.table.state);
        if let Some(e) = st.slots.remove(&self.id) {
            release(&mut st, e.addr);
        }
    }
}

fn release(st: &mut State, addr: Option<IpAddr>) {
    if let Some(a) = addr
        && let Some(n) = st.per_addr.get_mut(&a)
    {
        *n -= 1;
        if *n == 0 {
            st.per_addr.remove(&a);
        }
    }
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_addr: usize, known: HashSet<IpAddr>) -> Self {
        Admission {
            max_total,
            max_per_addr,
            known,
            state: Mutex::new(State::default()),
        }
    }

    /// A slot for a connection from `addr` (`None` when the transport does not tell), or
    /// `None` when it must be refused: its address already holds its share, or the table is
    /// full of connections it may not evict.
    pub(crate) fn admit(self: &Arc<Self>, addr: Option<IpAddr>) -> Option<Slot> {
        let addr = addr.map(canonical);
        let newcomer_known = addr.is_some_and(|a| self.known.contains(&a));
        let mut st = lock(&self.state);
        // Known hosts' addresses are bounded by the total only (several nodes may share one,
        // as on loopback).
        if let Some(a) = addr
            && !newcomer_known
            && st.per_addr.get(&a).copied().unwrap_or(0) >= self.max_per_addr
        {
            return None;
        }
        if st.slots.len() >= self.max_total {
            let victim = st
                .slots
                .iter()
                .find(|(_, e)| !e.addr.is_some_and(|a| self.known.contains(&a)))
                .map(|(id, _)| *id)
                .or_else(|| {
                    newcomer_known
                        .then(|| st.slots.keys().next().copied())
                        .flatten()
                })?;
            if let Some(e) = st.slots.remove(&victim) {
                release(&mut st, e.addr);
                e.evict.cancel();
                tracing::debug!(addr = ?e.addr, "grid: pre-auth table full, evicted the oldest connection");
            }
        }
        let id = st.next;
        st.next += 1;
        let evict = CancellationToken::new();
        st.slots.insert(
            id,
            Entry {
                addr,
                evict: evict.clone(),
            },
        );
        if let Some(a) = addr {
            *st.per_addr.entry(a).or_insert(0) += 1;
        }
        Some(Slot {
            table: self.clone(),
            id,
            evict,
        })
    }

    /// Slots in use (tests and stats).
    #[cfg(test)]
    fn in_use(&self) -> usize {
        lock(&self.state).slots.len()
    }
}

/// An IPv4 address mapped into IPv6 counts as the IPv4 address.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn table(total: usize, per_addr: usize) -> Arc<Admission> {
        let known = HashSet::from(["10.0.0.1".parse().unwrap()]);
        Arc::new(Admission::new(total, per_addr, known))
    }

    #[test]
    fn one_address_gets_its_share_only() {
        let t = table(8, 2);
        let a = t.admit(ip("10.9.9.9")).unwrap();
        let _b = t.admit(ip("10.9.9.9")).unwrap();
        assert!(t.admit(ip("10.9.9.9")).is_none());
        // The same address mapped into IPv6 is the same address.
        assert!(t.admit(ip("::ffff:10.9.9.9")).is_none());
        assert!(t.admit(ip("10.9.9.8")).is_some());
        drop(a);
        assert!(t.admit(ip("10.9.9.9")).is_some());
    }

    #[test]
    fn a_full_table_evicts_the_oldest_unknown_connection() {
        let t = table(3, 3);
        let known = t.admit(ip("10.0.0.1")).unwrap();
        let old = t.admit(ip("10.9.9.9")).unwrap();
        let young = t.admit(None).unwrap();
        // Full: a newcomer evicts the oldest slot of an unknown address, never the known one.
        let _new = t.admit(ip("10.9.9.8")).unwrap();
        assert!(old.evict.is_cancelled());
        assert!(!known.evict.is_cancelled() && !young.evict.is_cancelled());
        assert_eq!(t.in_use(), 3);
        // Dropping the evicted slot later frees nothing twice.
        drop(old);
        assert_eq!(t.in_use(), 3);
    }

    #[test]
    fn known_hosts_share_only_the_total() {
        let t = table(8, 2);
        let held: Vec<_> = (0..5).map(|_| t.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(held.len(), 5);
    }

    #[test]
    fn unknown_newcomers_never_evict_known_hosts() {
        let t = table(2, 2);
        let a = t.admit(ip("10.0.0.1")).unwrap();
        let b = t.admit(ip("10.0.0.1")).unwrap();
        assert!(t.admit(ip("10.9.9.9")).is_none());
        assert!(t.admit(None).is_none());
        // A known host's newcomer evicts the oldest when only known hosts hold slots.
        let t2 = table(1, 2);
        let x = t2.admit(ip("10.0.0.1")).unwrap();
        let _y = t2.admit(ip("10.0.0.1")).unwrap();
        assert!(x.evict.is_cancelled());
        assert!(!a.evict.is_cancelled() && !b.evict.is_cancelled());
    }
}
