//! rgrid: fast two-way RPC between the servers of a cluster over one persistent websocket per
//! pair of servers, byte-compatible with MinIO's internode grid (protocol v1).
//!
//! This crate will hold the async layer: the connection manager, connection driver tasks, the
//! mux client and server, handler registries, typed handlers and transports. The wire format it
//! builds on lives in the I/O-free [`proto`] crate (`rgrid-proto`), re-exported here.

pub use rgrid_proto as proto;
