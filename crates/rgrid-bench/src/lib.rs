//! rgrid's benchmark suite: rgrid's single requests and streams (MinIO's BenchmarkRequests and
//! BenchmarkStream shapes) and, in the same run, the baselines they are judged against.
//!
//! Every point is closed-loop: `concurrency` client tasks on the same runtime as the servers
//! (performance guide §4.3), a warm-up, then a fixed measuring time, repeated and reported as
//! the median by ops/s. Allocations are counted for the whole process (both ends) by
//! [`alloc::CountingAlloc`], which the binary installs as its global allocator.

pub mod alloc;
pub mod floor;
pub mod measure;
pub mod requests;
pub mod streams;
