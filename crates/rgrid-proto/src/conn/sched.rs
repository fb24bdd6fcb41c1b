//! Keys of the scheduler's queues.

/// Which table a mux is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Side {
    /// Opened here (our ids).
    Client,
    /// Served here (the peer's ids).
    Server,
}

/// A mux in one of the two tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) side: Side,
    pub(crate) id: u64,
}

impl Key {
    pub(crate) fn client(id: u64) -> Self {
        Key {
            side: Side::Client,
            id,
        }
    }

    pub(crate) fn server(id: u64) -> Self {
        Key {
            side: Side::Server,
            id,
        }
    }
}
