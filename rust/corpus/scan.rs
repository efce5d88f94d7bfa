//! The one engine for reading many files, used by BPE counting and by the packer.
//!
//! Readers are jobs on the caller's pool, so `num_threads` threads do all the work, reading
//! included; the calling thread only watches: every 100 ms (and once at the end) it calls
//! `watch`, which reports progress and may cancel (a Python callback, Ctrl-C). Two ways in:
//!
//! * [`read_files`]: one sink per reader, called with every record. With one sink the files
//!   are read one after the other, in input order (the packer: order defines its output);
//! * [`read_batches`]: `readers` files at a time, in any order, documents handed in batches
//!   of about `batch_bytes` to `work` jobs on the same pool (BPE counting: the result is a
//!   sum, so order does not matter). At most `in_flight` batches exist at once; a reader
//!   waiting for room runs pending jobs ([`Tickets::take`]), so a single large file still
//!   keeps every thread busy.
//!
//! Decided: before, the tokenizer read with `min(N, files)` extra reader threads feeding N
//! counting threads (up to 2N busy), while the packer's N included its reader: one engine,
//! one meaning of `num_threads`. A missing input fails before anything is read (the sizes
//! are needed for the progress total anyway). A panic in a reader or job becomes
//! [`Kind::Panic`](crate::error::Kind::Panic), never an I/O error.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rayon::ThreadPool;

use crate::corpus::read::{read_file_counted, FileKind, Record};
use crate::error::{catch, Context, Error, Result};
use crate::parallel::Tickets;

/// One input file; `name` is recorded as the document path of a plain-text file (JSON lines
/// carry their own metadata), the file's path when `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub name: Option<String>,
}

impl Input {
    pub fn new(path: impl Into<PathBuf>) -> Input {
        Input {
            path: path.into(),
            name: None,
        }
    }
}

/// How records are read.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The JSON field holding the text.
    pub text_field: String,
    /// Also extract `repo_name`, `path`, `license` (and name plain-text documents).
    pub with_meta: bool,
    /// Fail on a file that cannot be read to its end (unreadable, truncated or corrupt
    /// compression) instead of skipping the rest of it and naming it in the report.
    pub strict: bool,
}

/// Reading progress that other threads can poll, and the flag that cancels reading. Readers
/// check the flag after every document.
#[derive(Debug, Default)]
pub struct Progress {
    disk_bytes: AtomicU64,
    total_disk_bytes: AtomicU64,
    documents: AtomicU64,
    bytes: AtomicU64,
    cancelled: AtomicBool,
}

impl Progress {
    /// Bytes read from disk so far (compressed size).
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Relaxed)
    }

    /// Size on disk of the inputs of the current read.
    pub fn total_disk_bytes(&self) -> u64 {
        self.total_disk_bytes.load(Ordering::Relaxed)
    }

    /// Documents read so far.
    pub fn documents(&self) -> u64 {
        self.documents.load(Ordering::Relaxed)
    }

    /// UTF-8 bytes of text read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Count documents that did not come through a reader (records fed from elsewhere).
    pub fn add(&self, documents: u64, bytes: u64) {
        self.documents.fetch_add(documents, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Stop reading: the files being read end early and the read returns
    /// [`Kind::Interrupted`](crate::error::Kind::Interrupted).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// What reading the inputs found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesReport {
    /// Files read (skipped ones included).
    pub files: u64,
    pub documents: u64,
    /// UTF-8 bytes of the documents' text.
    pub bytes: u64,
    /// JSON lines that were not objects with a string text field.
    pub skipped_documents: u64,
    /// (path, reason) of every file skipped whole (e.g. not UTF-8), in input order.
    pub skipped_files: Vec<(String, String)>,
    /// (path, lines skipped) of the files with skipped lines, in input order.
    pub files_with_skipped_lines: Vec<(String, u64)>,
}

impl FilesReport {
    /// Every skipped file and every file with skipped lines, as sorted (path, reason) pairs.
    pub fn skipped_listing(&self, text_field: &str) -> Vec<(String, String)> {
        let mut out = self.skipped_files.clone();
        out.extend(self.files_with_skipped_lines.iter().map(|(p, n)| {
            let why = format!("{n} line(s) without a string field {text_field:?} skipped");
            (p.clone(), why)
        }));
        out.sort();
        out
    }
}

/// How often the calling thread calls `watch`.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The state the readers of one call share.
struct Shared<'a> {
    inputs: &'a [Input],
    opts: &'a Options,
    progress: &'a Progress,
    next: AtomicUsize,
    /// Per input index: its read statistics.
    done: Mutex<Vec<(usize, crate::corpus::read::ReadStats)>>,
    error: Mutex<Option<Error>>,
    /// The input a reader was in when it saw the cancel flag.
    interrupted_at: Mutex<Option<usize>>,
    stop: AtomicBool,
}

impl<'a> Shared<'a> {
    fn new(inputs: &'a [Input], opts: &'a Options, progress: &'a Progress) -> Result<Self> {
        let total = inputs.iter().try_fold(0u64, |acc, i| {
            Ok::<u64, Error>(acc + std::fs::metadata(&i.path).at(&i.path)?.len())
        })?;
        progress.total_disk_bytes.store(total, Ordering::Relaxed);
        progress.disk_bytes.store(0, Ordering::Relaxed);
        Ok(Shared {
            inputs,
            opts,
            progress,
            next: AtomicUsize::new(0),
            done: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            interrupted_at: Mutex::new(None),
            stop: AtomicBool::new(false),
        })
    }

    fn fail(&self, e: Error) {
        self.error.lock().unwrap().get_or_insert(e);
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.progress.is_cancelled()
    }

    /// One reader: take the next input until none is left, handing records to `sink`
    /// (which returns `false` to stop reading).
    fn read_all(&self, sink: &mut dyn FnMut(Record) -> bool) {
        let (opts, progress) = (self.opts, self.progress);
        loop {
            if self.stopping() {
                break;
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(input) = self.inputs.get(i) else {
                break;
            };
            let path = &input.path;
            let is_text = opts.with_meta && FileKind::of(path) == FileKind::Text;
            let mut stopped = false;
            let res = catch(|| {
                read_file_counted(
                    path,
                    &opts.text_field,
                    opts.with_meta,
                    opts.strict,
                    &progress.disk_bytes,
                    |mut rec| {
                        if is_text && rec.path.is_none() {
                            rec.path = Some(name_of(input));
                        }
                        progress.add(1, rec.text.len() as u64);
                        let go_on = sink(rec) && !self.stopping();
                        stopped = !go_on;
                        go_on
                    },
                )
            })
            .and_then(|r| r)
            .at(path);
            match res {
                Ok(_) if stopped && progress.is_cancelled() => {
                    self.interrupted_at.lock().unwrap().get_or_insert(i);
                    break;
                }
                Ok(_) if stopped => break,
                Ok(stats) => self.done.lock().unwrap().push((i, stats)),
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
    }

    /// Calling thread: call `watch` until every reader has sent on `finished`.
    fn watch(
        &self,
        readers: usize,
        finished: &crossbeam_channel::Receiver<()>,
        watch: &mut dyn FnMut(&Progress) -> bool,
    ) {
        let mut left = readers;
        while left > 0 {
            match finished.recv_timeout(WATCH_EVERY) {
                Ok(()) => left -= 1,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if left > 0 && !watch(self.progress) {
                self.progress.cancel();
            }
        }
        if !watch(self.progress) {
            self.progress.cancel();
        }
    }

    fn into_report(self) -> Result<FilesReport> {
        if let Some(e) = self.error.into_inner().unwrap() {
            return Err(e);
        }
        if self.progress.is_cancelled() {
            let mut e = Error::interrupted();
            if let Some(i) = self.interrupted_at.into_inner().unwrap() {
                e = e.at(&self.inputs[i].path);
            }
            return Err(e);
        }
        let mut done = self.done.into_inner().unwrap();
        done.sort_by_key(|(i, _)| *i);
        let mut r = FilesReport::default();
        for (i, st) in done {
            let name = self.inputs[i].path.display().to_string();
            r.files += 1;
            r.documents += st.documents;
            r.bytes += st.bytes;
            r.skipped_documents += st.skipped_documents;
            if let Some(why) = st.skipped_file {
                r.skipped_files.push((name, why));
            } else if st.skipped_documents > 0 {
                r.files_with_skipped_lines
                    .push((name, st.skipped_documents));
            }
        }
        Ok(r)
    }
}

fn name_of(input: &Input) -> String {
    input
        .name
        .clone()
        .unwrap_or_else(|| input.path.display().to_string())
}

/// Read `inputs` on `pool` with one reader per sink (at most one per input): each record
/// goes to its reader's sink, which returns `false` to stop reading (then no error is
/// returned: the caller knows why it stopped). With one sink the inputs are read in order.
pub fn read_files<S>(
    pool: &ThreadPool,
    inputs: &[Input],
    opts: &Options,
    progress: &Progress,
    sinks: &mut [S],
    watch: &mut dyn FnMut(&Progress) -> bool,
) -> Result<FilesReport>
where
    S: FnMut(Record) -> bool + Send,
{
    let shared = Shared::new(inputs, opts, progress)?;
    let readers = sinks.len().min(inputs.len());
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
    let ran = catch(|| {
        pool.in_place_scope(|s| {
            for sink in sinks[..readers].iter_mut() {
                let (shared, done_tx) = (&shared, done_tx.clone());
                s.spawn(move |_| {
                    shared.read_all(sink);
                    let _ = done_tx.send(());
                });
            }
            drop(done_tx);
            shared.watch(readers, &done_rx, watch);
        })
    });
    if let Err(e) = ran {
        shared.fail(e);
    }
    shared.into_report()
}

/// Read `inputs` on `pool`, `readers` files at a time in any order, handing the documents'
/// texts in batches of about `batch_bytes` to `work`, run as jobs on the same pool with at
/// most `in_flight` batches in existence. Returns once every batch has been worked.
#[allow(clippy::too_many_arguments)]
pub fn read_batches(
    pool: &ThreadPool,
    inputs: &[Input],
    opts: &Options,
    progress: &Progress,
    readers: usize,
    batch_bytes: usize,
    in_flight: usize,
    work: &(dyn Fn(Vec<String>) + Sync),
    watch: &mut dyn FnMut(&Progress) -> bool,
) -> Result<FilesReport> {
    let shared = Shared::new(inputs, opts, progress)?;
    let readers = readers.clamp(1, inputs.len().max(1));
    let (tickets, back) = Tickets::new(in_flight);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
    let ran = catch(|| {
        pool.in_place_scope(|s| {
            for _ in 0..readers {
                let (shared, done_tx, tickets, back) = (&shared, done_tx.clone(), &tickets, &back);
                s.spawn(move |s| {
                    let mut batch: Vec<String> = Vec::new();
                    let mut size = 0usize;
                    let send = |batch: Vec<String>| {
                        if tickets.take().is_err() {
                            return;
                        }
                        let back = back.clone();
                        s.spawn(move |_| {
                            // Returned even if `work` panics (the scope re-raises the panic).
                            let _ticket = Returned(back);
                            work(batch)
                        });
                    };
                    shared.read_all(&mut |rec| {
                        size += rec.text.len();
                        batch.push(rec.text);
                        if size >= batch_bytes {
                            send(std::mem::take(&mut batch));
                            size = 0;
                        }
                        true
                    });
                    if !batch.is_empty() && !shared.stopping() {
                        send(batch);
                    }
                    let _ = done_tx.send(());
                });
            }
            drop(done_tx);
            shared.watch(readers, &done_rx, watch);
        })
    });
    if let Err(e) = ran {
        shared.fail(e);
    }
    shared.into_report()
}

/// Gives a ticket back when dropped.
struct Returned(crate::parallel::TicketReturn);

impl Drop for Returned {
    fn drop(&mut self) {
        self.0.put();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::parallel;
    use std::path::Path;
    use std::sync::atomic::AtomicU64;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("codekiln-scan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn opts() -> Options {
        Options {
            text_field: "content".into(),
            with_meta: true,
            strict: true,
        }
    }

    fn files(dir: &Path, n: usize) -> Vec<Input> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("f{i}.jsonl"));
                let body: String = (0..50)
                    .map(|j| format!("{{\"content\": \"doc {i} {j}\"}}\n"))
                    .collect();
                std::fs::write(&p, body + "not json\n").unwrap();
                Input::new(p)
            })
            .collect()
    }

    #[test]
    fn one_sink_reads_in_order_and_names_text_files() {
        let d = tmpdir("order");
        let mut inputs = files(&d, 3);
        let txt = d.join("t.py");
        std::fs::write(&txt, "x = 1\n").unwrap();
        inputs.insert(
            1,
            Input {
                path: txt,
                name: Some("pkg/t.py".into()),
            },
        );
        let mut docs = Vec::new();
        let progress = Progress::default();
        let r = read_files(
            &parallel::pool(2),
            &inputs,
            &opts(),
            &progress,
            &mut [|rec: Record| {
                docs.push(rec);
                true
            }],
            &mut |_| true,
        )
        .unwrap();
        assert_eq!((r.files, r.documents, r.skipped_documents), (4, 151, 3));
        assert_eq!(docs[0].text, "doc 0 0");
        assert_eq!(docs[50].path.as_deref(), Some("pkg/t.py"));
        assert_eq!(docs[51].text, "doc 1 0");
        assert_eq!(r.files_with_skipped_lines.len(), 3);
        assert_eq!(progress.documents(), 151);
        assert_eq!(progress.disk_bytes(), progress.total_disk_bytes());
    }

    #[test]
    fn batches_see_every_document_once_for_any_thread_count() {
        let d = tmpdir("batches");
        let inputs = files(&d, 5);
        for (threads, readers) in [(1, 1), (2, 1), (2, 2), (3, 5)] {
            let n = AtomicU64::new(0);
            let bytes = AtomicU64::new(0);
            let r = read_batches(
                &parallel::pool(threads),
                &inputs,
                &opts(),
                &Progress::default(),
                readers,
                64,
                2,
                &|b: Vec<String>| {
                    n.fetch_add(b.len() as u64, Ordering::Relaxed);
                    let s: usize = b.iter().map(String::len).sum();
                    bytes.fetch_add(s as u64, Ordering::Relaxed);
                },
                &mut |_| true,
            )
            .unwrap();
            assert_eq!(n.into_inner(), 250);
            assert_eq!(bytes.into_inner(), r.bytes);
        }
    }

    #[test]
    fn missing_input_cancel_and_panics() {
        let d = tmpdir("errors");
        let mut inputs = files(&d, 2);
        inputs.push(Input::new(d.join("nope.jsonl")));
        let pool = parallel::pool(2);
        let err = read_batches(
            &pool,
            &inputs,
            &opts(),
            &Progress::default(),
            2,
            64,
            2,
            &|_| {},
            &mut |_| true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope.jsonl"), "{err}");
        inputs.pop();
        // Cancelled from the first document on: an interruption that names the file.
        let progress = Progress::default();
        let err = read_files(
            &pool,
            &inputs,
            &opts(),
            &progress,
            &mut [|_: Record| {
                progress.cancel();
                true
            }],
            &mut |_| true,
        )
        .unwrap_err();
        assert!(err.is_interrupted());
        assert!(err.to_string().contains("f0.jsonl"), "{err}");
        // A panicking job is an internal error, not an I/O error.
        let err = read_batches(
            &pool,
            &inputs,
            &opts(),
            &Progress::default(),
            1,
            64,
            2,
            &|_| panic!("worker bug"),
            &mut |_| true,
        )
        .unwrap_err();
        assert!(
            matches!(err.kind(), Kind::Panic(m) if m.contains("worker bug")),
            "{err}"
        );
    }
}
