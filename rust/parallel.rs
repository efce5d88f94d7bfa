//! Explicit parallelism, and the only place thread pools are built.
//!
//! `num_threads` means one thing everywhere in the core: N >= 1 is N cores busy, file
//! reading included (readers run as jobs on the same pool, see `corpus/scan.rs`). Every
//! parallel entry point takes it explicitly (no environment variable decides) and runs on a
//! rayon pool from [`pool`].
//!
//! Decisions:
//! * pools are cached per size: building one costs a thread spawn per worker (~25 us each);
//! * the size is capped at the CPUs this process may use ([`max_threads`]: affinity and
//!   cgroup quota, as `std::thread::available_parallelism` reports them) and, through
//!   [`threads_for`], at the number of work items: the Python side caps too, but the core
//!   does not trust it (`encode_batch(num_threads=3000)` on three texts once spawned 3,000
//!   threads and took 8.8 s). Results never depend on the size, so capping is invisible
//!   except in speed;
//! * 0 is not "all cores" here (the Python API rejects it); the core treats it as 1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rayon::{ThreadPool, ThreadPoolBuilder};

/// The CPUs this process may use (at least 1).
pub fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `requested` clamped to `1..=max_threads()`.
pub fn threads(requested: usize) -> usize {
    requested.clamp(1, max_threads())
}

/// [`threads`], and no more than `work` (the number of independent work items).
pub fn threads_for(requested: usize, work: usize) -> usize {
    threads(requested).min(work.max(1))
}

/// The shared pool of [`threads`]`(num_threads)` workers.
pub fn pool(num_threads: usize) -> Arc<ThreadPool> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let n = threads(num_threads);
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

/// Run `f` inside the pool of [`threads`]`(num_threads)` workers.
pub fn install<R: Send>(num_threads: usize, f: impl FnOnce() -> R + Send) -> R {
    pool(num_threads).install(f)
}

/// A bound on the batches in flight between a producer (a file reader) and the jobs that
/// consume them: the producer takes a ticket per batch, whoever finishes the batch returns
/// it through a [`TicketReturn`]. Memory stays bounded whatever the relative speeds.
pub struct Tickets {
    rx: crossbeam_channel::Receiver<()>,
}

/// Gives tickets back; when every `TicketReturn` is gone, [`Tickets::take`] fails.
#[derive(Clone)]
pub struct TicketReturn {
    tx: crossbeam_channel::Sender<()>,
}

/// The consumers are gone (they only stop early after recording an error).
#[derive(Debug)]
pub struct Closed;

impl Tickets {
    pub fn new(n: usize) -> (Tickets, TicketReturn) {
        let n = n.max(1);
        let (tx, rx) = crossbeam_channel::bounded(n);
        for _ in 0..n {
            tx.send(()).expect("ticket channel");
        }
        (Tickets { rx }, TicketReturn { tx })
    }

    /// Take a ticket. On a pool thread (a reader runs as one), wait by running the pool's
    /// pending jobs, so the reader is one of the `num_threads` workers rather than an extra
    /// thread competing with them. Measured on the packer (BENCHMARKS.md): as an extra
    /// thread the reader made "1 thread" use ~1.2 cores and 2 threads scale 1.6x; counted by
    /// a semaphore it idled cores while it held a permit (1.75 of 2 cores busy); running
    /// jobs while waiting keeps 1.9 cores busy. Off the pool, block.
    pub fn take(&self) -> Result<(), Closed> {
        use crossbeam_channel::{RecvTimeoutError, TryRecvError};
        if rayon::current_thread_index().is_none() {
            return self.rx.recv().map_err(|_| Closed);
        }
        loop {
            match self.rx.try_recv() {
                Ok(()) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(Closed),
                Err(TryRecvError::Empty) => {}
            }
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                // Nothing to run: the batches in flight are with other threads.
                match self.rx.recv_timeout(Duration::from_micros(200)) {
                    Ok(()) => return Ok(()),
                    Err(RecvTimeoutError::Disconnected) => return Err(Closed),
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
        }
    }
}

impl TicketReturn {
    pub fn put(&self) {
        let _ = self.tx.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_capped() {
        let max = max_threads();
        assert_eq!(threads(0), 1);
        assert_eq!(threads(3000), max);
        assert_eq!(threads_for(3000, 3), max.min(3));
        assert_eq!(threads_for(8, 0), 1);
        assert_eq!(pool(3000).current_num_threads(), max);
        assert!(Arc::ptr_eq(&pool(3000), &pool(max)));
    }

    #[test]
    fn tickets_bound_and_close() {
        let (t, back) = Tickets::new(2);
        t.take().unwrap();
        t.take().unwrap();
        back.put();
        t.take().unwrap();
        drop(back);
        assert!(t.take().is_err());
    }
}
