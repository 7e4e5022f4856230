//! Accept stage: admission. Each listener holds at most `max_total`
//! connections, and one source address at most `max_per_address`. At a
//! cap, the oldest idle connection (never served first, then idle
//! keep-alive ones) is closed to make room; a listener full of requests in
//! flight refuses the newcomer instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::conn::ConnState;

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Every connection of the listener has a request in flight.
    Total,
    /// Every connection of this source address has a request in flight.
    PerAddress,
}

impl Refused {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Total => "max_connections",
            Self::PerAddress => "max_connections_per_address",
        }
    }
}

/// The connections one listener holds.
#[derive(Debug)]
pub(crate) struct Admission {
    max_total: usize,
    max_per_address: usize,
    head_cap: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    /// By id, which is also the order of arrival.
    conns: BTreeMap<u64, (IpAddr, Arc<ConnState>)>,
    by_address: HashMap<IpAddr, BTreeSet<u64>>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Arc<ConnState>> {
        let (ip, state) = self.conns.remove(&id)?;
        if let Some(ids) = self.by_address.get_mut(&ip) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_address.remove(&ip);
            }
        }
        Some(state)
    }

    /// Closes the oldest idle connection (of `ip`, if given); false if
    /// every candidate is serving.
    fn evict_idle(&mut self, ip: Option<IpAddr>) -> bool {
        let candidates: Vec<u64> = match ip {
            Some(ip) => self
                .by_address
                .get(&ip)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default(),
            None => self.conns.keys().copied().collect(),
        };
        let pick = |never_served: bool| {
            candidates.iter().copied().find(|id| {
                self.conns
                    .get(id)
                    .is_some_and(|(_, s)| s.is_idle() && (!never_served || !s.has_served()))
            })
        };
        let Some(id) = pick(true).or_else(|| pick(false)) else {
            return false;
        };
        if let Some(state) = self.remove(id) {
            state.evict();
        }
        true
    }
}

impl Admission {
    /// `head_cap`: how much of each raw request head a connection keeps.
    pub(crate) fn new(max_total: usize, max_per_address: usize, head_cap: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_address: max_per_address.max(1),
            head_cap,
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table stays consistent at every step: a panic elsewhere
        // while it was held leaves nothing half-done.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, evicting an idle one at a cap.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let mut table = self.table();
        let of_address = table.by_address.get(&ip).map_or(0, BTreeSet::len);
        if of_address >= self.max_per_address && !table.evict_idle(Some(ip)) {
            return Err(Refused::PerAddress);
        }
        if table.conns.len() >= self.max_total && !table.evict_idle(None) {
            return Err(Refused::Total);
        }
        let id = table.next;
        table.next += 1;
        let state = Arc::new(ConnState::new(self.head_cap));
        table.conns.insert(id, (ip, Arc::clone(&state)));
        table.by_address.entry(ip).or_default().insert(id);
        Ok(Slot {
            admission: Arc::clone(self),
            id,
            state,
        })
    }

    /// Frees a file descriptor when accepting fails for want of one.
    pub(crate) fn evict_one(&self) -> bool {
        self.table().evict_idle(None)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table().conns.len()
    }
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Admission>,
    id: u64,
    state: Arc<ConnState>,
}

impl Slot {
    pub(crate) fn state(&self) -> &Arc<ConnState> {
        &self.state
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.table().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn an_address_at_its_cap_loses_its_oldest_idle_connection() {
        let adm = Admission::new(10, 2, 1024);
        let first = adm.admit(A).unwrap();
        let second = adm.admit(A).unwrap();
        let other = adm.admit(B).unwrap();
        let _third = adm.admit(A).unwrap();
        assert_eq!(adm.len(), 3, "one of A's was evicted");
        assert!(first.state().is_evicted() && !second.state().is_evicted());
        // The watchdog of the evicted connection would now close it.
        drop(first);
        drop(second);
        drop(other);
        assert_eq!(adm.len(), 1);
    }

    #[test]
    fn connections_serving_requests_are_never_evicted() {
        let adm = Admission::new(2, 10, 1024);
        let a = adm.admit(A).unwrap();
        let b = adm.admit(B).unwrap();
        let _busy_a = a.state().begin();
        let _busy_b = b.state().begin();
        assert_eq!(adm.admit(A).unwrap_err(), Refused::Total);
        let adm = Admission::new(10, 1, 1024);
        let a = adm.admit(A).unwrap();
        let _busy = a.state().begin();
        assert_eq!(adm.admit(A).unwrap_err(), Refused::PerAddress);
        assert!(adm.admit(B).is_ok());
    }

    #[test]
    fn never_served_connections_go_before_idle_keep_alive_ones() {
        let adm = Admission::new(2, 10, 1024);
        let kept_alive = adm.admit(A).unwrap();
        drop(kept_alive.state().begin());
        let silent = adm.admit(B).unwrap();
        let _new = adm.admit(A).unwrap();
        assert_eq!(adm.len(), 2);
        assert!(silent.state().is_evicted());
        assert!(!kept_alive.state().is_evicted());
    }
}
