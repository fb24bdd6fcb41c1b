//! `rgrid-bench`: runs the benchmark matrix against its baselines and prints the tables
//! (see `rgrid-bench --help`).

use rgrid_bench::alloc::CountingAlloc;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() {
    std::process::exit(rgrid_bench::run(std::env::args().skip(1).collect()));
}
