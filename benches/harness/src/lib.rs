//! tandem-harness as a library: what the benchmarks share with the criterion
//! micro-benchmarks (the binary, `src/main.rs`, is the demo and the benchmark runner).

pub mod workload;
