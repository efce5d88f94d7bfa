//! Explicit parallelism: every parallel entry point takes `num_threads` and runs on a rayon
//! pool of exactly that size (no global environment variable decides it). Pools are cached
//! per size because building one costs a thread spawn per worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

/// A shared pool with `num_threads` workers (0 means "all cores").
pub fn pool(num_threads: usize) -> Arc<ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let n = if num_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        num_threads
    };
    let mut pools = POOLS.get_or_init(Default::default).lock().unwrap();
    pools
        .entry(n)
        .or_insert_with(|| {
            Arc::new(
                ThreadPoolBuilder::new()
                    .num_threads(n)
                    .thread_name(|i| format!("codekiln-{i}"))
                    .build()
                    .expect("failed to start a thread pool"),
            )
        })
        .clone()
}

/// Run `f` inside a pool of `num_threads` workers.
pub fn install<R: Send>(num_threads: usize, f: impl FnOnce() -> R + Send) -> R {
    pool(num_threads).install(f)
}
