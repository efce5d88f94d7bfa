//! The only file that touches pyo3: convert arguments, release the GIL, map errors.
//! Heavy work always runs inside `py.detach(...)` (the GIL released).

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::OnceLock;

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::bpe::encode::Encoder as RsEncoder;
use crate::bpe::pretokenize::{pieces, Pattern, PATTERN_NAMES};
use crate::bpe::train::Trainer as RsTrainer;

/// Map an I/O error to the matching Python exception (the message names the file).
fn io_err(e: io::Error) -> PyErr {
    match e.kind() {
        io::ErrorKind::NotFound => PyFileNotFoundError::new_err(e.to_string()),
        io::ErrorKind::PermissionDenied => PyPermissionError::new_err(e.to_string()),
        _ => PyOSError::new_err(e.to_string()),
    }
}

fn parse_pattern(name: &str) -> PyResult<Pattern> {
    Pattern::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown pattern {name:?}; expected one of {PATTERN_NAMES:?}"
        ))
    })
}

/// Run a progress callback with the GIL, also checking for signals (Ctrl-C). Returns whether
/// the Rust side should go on; the first Python error is kept in `failure` to be raised.
fn callback(failure: &mut Option<PyErr>, f: impl FnOnce(Python<'_>) -> PyResult<()>) -> bool {
    if failure.is_some() {
        return false;
    }
    let res = Python::attach(|py| f(py).and_then(|_| py.check_signals()));
    match res {
        Ok(()) => true,
        Err(e) => {
            *failure = Some(e);
            false
        }
    }
}

fn threads(n: usize) -> usize {
    n.max(1)
}

// ==== tokenizer bindings (lead) ====

#[pyfunction]
fn pretokenize<'a>(text: &'a str, pattern: &str, newline: bool) -> PyResult<Vec<&'a str>> {
    let p = parse_pattern(pattern)?;
    Ok(pieces(text, p, newline).collect())
}

#[pyfunction]
fn pattern_regex(pattern: &str, newline: bool) -> PyResult<String> {
    Ok(parse_pattern(pattern)?.regex(newline))
}

#[pyclass(module = "codekiln._core")]
struct Trainer {
    inner: RsTrainer,
    trained: bool,
}

impl Trainer {
    fn check_open(&self) -> PyResult<()> {
        if self.trained {
            return Err(PyValueError::new_err(
                "this Trainer has already been trained (training frees its counts); make a new one",
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl Trainer {
    #[new]
    #[pyo3(signature = (pattern, newline, text_field = "content"))]
    fn new(pattern: &str, newline: bool, text_field: &str) -> PyResult<Self> {
        Ok(Trainer {
            inner: RsTrainer::new(parse_pattern(pattern)?, newline, text_field),
            trained: false,
        })
    }

    fn add_texts(
        &mut self,
        py: Python<'_>,
        texts: Vec<Bound<'_, PyString>>,
        num_threads: usize,
    ) -> PyResult<()> {
        self.check_open()?;
        // Encode to temporary bytes objects rather than borrowing the str's UTF-8: CPython
        // caches that UTF-8 copy inside every non-ASCII str for the str's lifetime, which
        // added the corpus's non-ASCII text to peak memory while training.
        let bytes: Vec<Bound<'_, PyBytes>> = texts
            .iter()
            .map(|t| t.encode_utf8())
            .collect::<PyResult<_>>()?;
        // SAFETY: PyUnicode_AsUTF8String always returns valid UTF-8.
        let refs: Vec<&str> = bytes
            .iter()
            .map(|b| unsafe { std::str::from_utf8_unchecked(b.as_bytes()) })
            .collect();
        let inner = &mut self.inner;
        py.detach(|| inner.add_texts(&refs, threads(num_threads)));
        Ok(())
    }

    #[pyo3(signature = (paths, num_threads, progress = None))]
    fn add_files<'py>(
        &mut self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        num_threads: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.check_open()?;
        let inner = &mut self.inner;
        let mut failure: Option<PyErr> = None;
        let result = py.detach(|| {
            let mut cb = |done: u64, total: u64| {
                callback(&mut failure, |py| match &progress {
                    Some(f) => f.call1(py, (done, total)).map(drop),
                    None => Ok(()),
                })
            };
            inner.add_files(&paths, threads(num_threads), &mut cb)
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let report = result.map_err(io_err)?;
        let d = PyDict::new(py);
        d.set_item("files", report.files)?;
        d.set_item("documents", report.documents)?;
        d.set_item("bytes", report.bytes)?;
        d.set_item("skipped_files", report.skipped_files)?;
        d.set_item("skipped_documents", report.skipped_documents)?;
        d.set_item("skipped", report.skipped)?;
        Ok(d)
    }

    #[getter]
    fn documents(&self) -> u64 {
        self.inner.documents
    }

    #[getter]
    fn total_bytes(&self) -> u64 {
        self.inner.total_bytes
    }

    #[getter]
    fn total_pieces(&self) -> u64 {
        self.inner.total_pieces
    }

    #[getter]
    fn unique_pieces(&mut self) -> usize {
        self.inner.unique_pieces()
    }

    #[pyo3(signature = (num_merges, min_frequency, num_threads, progress = None))]
    fn train(
        &mut self,
        py: Python<'_>,
        num_merges: usize,
        min_frequency: u64,
        num_threads: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<(u32, u32)>> {
        self.check_open()?;
        self.trained = true;
        let inner = &mut self.inner;
        let mut failure: Option<PyErr> = None;
        let merges = py.detach(|| {
            let mut cb = |done: u64| {
                callback(&mut failure, |py| match &progress {
                    Some(f) => f.call1(py, (done,)).map(drop),
                    None => Ok(()),
                })
            };
            inner.train_consuming(num_merges, min_frequency, threads(num_threads), &mut cb)
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(merges),
        }
    }
}

#[pyclass(module = "codekiln._core", frozen)]
struct Encoder {
    // Shared with the packers made from this encoder (building one costs ~25 ms at 32k).
    inner: std::sync::Arc<RsEncoder>,
    /// One Python int per token id, shared by every list we return: building a list then
    /// costs an INCREF per id instead of allocating an int (the conversion ran single-threaded
    /// under the GIL and capped encode_batch's two-thread scaling).
    ints: OnceLock<Vec<Py<PyAny>>>,
}

impl Encoder {
    fn matcher(&self, allowed: &[String]) -> PyResult<Option<crate::bpe::encode::SpecialMatcher>> {
        self.inner
            .special_matcher(allowed)
            .map_err(PyValueError::new_err)
    }

    /// A Python list of ints from token ids (all ids come from our own encoder, so in range).
    fn to_list<'py>(&self, py: Python<'py>, ids: &[u32]) -> PyResult<Bound<'py, PyList>> {
        let ints = self.ints.get_or_init(|| {
            (0..self.inner.vocab_size() as u32)
                .map(|i| i.into_pyobject(py).unwrap().into_any().unbind())
                .collect()
        });
        let len = ffi::Py_ssize_t::try_from(ids.len())
            .map_err(|_| PyValueError::new_err("too many tokens for one list"))?;
        // SAFETY: PyList_New gives a new reference (checked for NULL); every slot is set
        // exactly once with a new (INCREF'd) reference, which PyList_SetItem steals.
        unsafe {
            let list = ffi::PyList_New(len);
            if list.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (i, &id) in ids.iter().enumerate() {
                let obj = ints[id as usize].as_ptr();
                ffi::Py_INCREF(obj);
                ffi::PyList_SetItem(list, i as ffi::Py_ssize_t, obj);
            }
            Ok(Bound::from_owned_ptr(py, list).cast_into_unchecked())
        }
    }
}

#[pymethods]
impl Encoder {
    #[new]
    fn new(
        pattern: &str,
        newline: bool,
        merges: Vec<(u32, u32)>,
        special_tokens: Vec<(String, u32)>,
    ) -> PyResult<Self> {
        let inner = RsEncoder::new(parse_pattern(pattern)?, newline, &merges, &special_tokens)
            .map_err(PyValueError::new_err)?;
        Ok(Encoder {
            inner: std::sync::Arc::new(inner),
            ints: OnceLock::new(),
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    fn encode_ordinary<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyList>> {
        let ids = if text.len() < 4096 {
            self.inner.encode_ordinary(text)
        } else {
            py.detach(|| self.inner.encode_ordinary(text))
        };
        self.to_list(py, &ids)
    }

    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        allowed_special: Vec<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let m = self.matcher(&allowed_special)?;
        let ids = py.detach(|| self.inner.encode_with(text, m.as_ref()));
        self.to_list(py, &ids)
    }

    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        allowed_special: Vec<String>,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let m = self.matcher(&allowed_special)?;
        let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
        if num_threads <= 1 {
            // One thread means one: encode everything, then convert.
            let all = py.detach(|| self.inner.encode_batch(&refs, m.as_ref(), 1));
            let lists = all
                .iter()
                .map(|ids| self.to_list(py, ids))
                .collect::<PyResult<Vec<_>>>()?;
            return PyList::new(py, lists);
        }
        let out = PyList::new(py, (0..refs.len()).map(|_| py.None()))?;
        // Workers encode while this thread turns finished results into Python lists (which
        // needs the GIL, so it cannot run in parallel with itself): measured, converting after
        // the whole batch capped two threads at 1.45x one thread.
        let (tx, rx) = crossbeam_channel::unbounded::<(usize, Vec<u32>)>();
        let (inner, matcher, n) = (&self.inner, m.as_ref(), threads(num_threads));
        std::thread::scope(|s| -> PyResult<()> {
            let refs = &refs;
            s.spawn(move || {
                inner.encode_batch_each(refs, matcher, n, |i, ids| {
                    let _ = tx.send((i, ids));
                })
            });
            loop {
                let msg = match rx.try_recv() {
                    Ok(msg) => msg,
                    Err(crossbeam_channel::TryRecvError::Empty) => match py.detach(|| rx.recv()) {
                        Ok(msg) => msg,
                        Err(_) => break,
                    },
                    Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                };
                out.set_item(msg.0, self.to_list(py, &msg.1)?)?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn decode_bytes<'py>(&self, py: Python<'py>, ids: Vec<u32>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.inner.decode_bytes(&ids).map_err(|id| {
            PyValueError::new_err(format!(
                "token id {id} is not in the vocabulary (size {})",
                self.inner.vocab_size()
            ))
        })?;
        Ok(PyBytes::new(py, &bytes))
    }

    fn token_bytes<'py>(&self, py: Python<'py>, id: u32) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.inner.token_bytes(id).ok_or_else(|| {
            PyValueError::new_err(format!(
                "token id {id} is not in the vocabulary (size {})",
                self.inner.vocab_size()
            ))
        })?;
        Ok(PyBytes::new(py, b))
    }
}

// ==== end tokenizer bindings ====

// ==== data bindings (data pipeline) ====

use crate::clean::filters::{CleanConfig, Cleaner};
use crate::clean::neardup::NearConfig;
use crate::corpus::read::Record;
use crate::pack::packer::{PackConfig, PackReport, Packer as RsPacker, SplitReport};
use crate::pack::shard::ShardInfo;

/// `(text, repo_name, path, license)` as Python passes a record.
type PyRecord = (String, Option<String>, Option<String>, Option<String>);

fn parse_clean(filters: Option<&Bound<'_, PyDict>>) -> PyResult<CleanConfig> {
    let Some(d) = filters else {
        return Ok(CleanConfig::none());
    };
    let mut c = CleanConfig::none();
    for (k, v) in d.iter() {
        let key: String = k.extract()?;
        match key.as_str() {
            "min_bytes" => c.min_bytes = v.extract()?,
            "max_bytes" => c.max_bytes = v.extract()?,
            "max_line_length" => c.max_line_length = v.extract()?,
            "max_mean_line_length" => c.max_mean_line_length = v.extract()?,
            "min_alnum_fraction" => c.min_alnum_fraction = v.extract()?,
            "auto_generated" => c.auto_generated = v.extract()?,
            "license_allow" => c.license_allow = v.extract()?,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "unknown filter setting {key:?}"
                )))
            }
        }
    }
    Ok(c)
}

fn shard_dict<'py>(py: Python<'py>, s: &ShardInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("split", &s.split)?;
    d.set_item("index", s.index)?;
    d.set_item("file", &s.file)?;
    d.set_item("tokens", s.tokens)?;
    d.set_item("documents", s.documents)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("sha256", &s.sha256)?;
    Ok(d)
}

fn split_dict<'py>(py: Python<'py>, s: &SplitReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("documents", s.documents)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("resumed_documents", s.resumed_documents)?;
    d.set_item("tokens", s.tokens)?;
    let shards = PyList::empty(py);
    for sh in &s.shards {
        shards.append(shard_dict(py, sh)?)?;
    }
    d.set_item("shards", shards)?;
    Ok(d)
}

fn redaction_dict<'py>(
    py: Python<'py>,
    c: &crate::clean::redact::Counts,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for k in crate::clean::redact::Kind::ALL {
        d.set_item(k.name(), c.get(k))?;
    }
    Ok(d)
}

fn report_dict<'py>(py: Python<'py>, r: &PackReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("files", r.files)?;
    d.set_item("skipped_files", r.skipped_files.clone())?;
    d.set_item("documents_in", r.documents_in)?;
    d.set_item("bytes_in", r.bytes_in)?;
    d.set_item("invalid_records", r.invalid_records)?;
    d.set_item("removed", r.removed.clone())?;
    d.set_item("removed_bytes", r.removed_bytes.clone())?;
    d.set_item("redactions", redaction_dict(py, &r.redactions)?)?;
    d.set_item("redacted_documents", r.redacted_documents)?;
    d.set_item("train", split_dict(py, &r.train)?)?;
    d.set_item("valid", split_dict(py, &r.valid)?)?;
    Ok(d)
}

/// The shard packer; see `codekiln.data.pack` for the public API.
#[pyclass(module = "codekiln._core")]
struct Packer {
    inner: std::sync::Mutex<Option<RsPacker>>,
}

impl Packer {
    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RsPacker) -> io::Result<R> + Send,
    ) -> PyResult<R>
    where
        R: Send,
    {
        let mut guard = self.inner.lock().unwrap();
        let p = guard
            .as_mut()
            .ok_or_else(|| PyValueError::new_err("this packer is already finished"))?;
        py.detach(|| f(p)).map_err(io_err)
    }
}

#[pymethods]
impl Packer {
    #[new]
    #[pyo3(signature = (
        out_dir, encoder, eot_id, fingerprint, *,
        num_threads = 1, shard_tokens = 50_000_000, filters = None, exact_dedup = true,
        near_threshold = None, near_num_perm = 128, near_ngram = 5, redact = true,
        valid_fraction = 0.0, text_field = "content".to_string(), resume = None,
        on_shard = None, batch_bytes = 1 << 20
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        out_dir: PathBuf,
        encoder: PyRef<'_, Encoder>,
        eot_id: u32,
        fingerprint: Vec<u8>,
        num_threads: usize,
        shard_tokens: u64,
        filters: Option<&Bound<'_, PyDict>>,
        exact_dedup: bool,
        near_threshold: Option<f64>,
        near_num_perm: usize,
        near_ngram: usize,
        redact: bool,
        valid_fraction: f64,
        text_field: String,
        resume: Option<[(usize, u64); 2]>,
        on_shard: Option<Py<PyAny>>,
        batch_bytes: usize,
    ) -> PyResult<Self> {
        let encoder = encoder.inner.clone();
        let fingerprint: [u8; 32] = fingerprint
            .try_into()
            .map_err(|_| PyValueError::new_err("fingerprint must be 32 bytes (a raw SHA-256)"))?;
        if !(0.0..=1.0).contains(&valid_fraction) {
            return Err(PyValueError::new_err("valid_fraction must be in [0, 1]"));
        }
        let mut cfg = PackConfig::new(out_dir, encoder.vocab_size() as u32, eot_id);
        cfg.num_threads = threads(num_threads);
        cfg.shard_tokens = shard_tokens.max(1);
        cfg.clean = parse_clean(filters)?;
        cfg.exact_dedup = exact_dedup;
        cfg.near_dedup = near_threshold.map(|t| NearConfig {
            threshold: t,
            num_perm: near_num_perm.max(1),
            ngram: near_ngram.max(1),
            ..NearConfig::default()
        });
        cfg.redact = redact;
        cfg.valid_fraction = valid_fraction;
        cfg.text_field = text_field;
        cfg.fingerprint = fingerprint;
        cfg.resume = resume.unwrap_or_default();
        cfg.batch_bytes = batch_bytes.max(1);
        let tokenize: crate::pack::packer::Tokenize =
            std::sync::Arc::new(move |t: &str, out: &mut Vec<u32>| {
                encoder.encode_ordinary_into(t, out)
            });
        let on_shard: crate::pack::packer::OnShard = Box::new(move |info: &ShardInfo| {
            if let Some(f) = &on_shard {
                Python::attach(|py| {
                    let r = shard_dict(py, info).and_then(|d| f.call1(py, (d,)));
                    if let Err(e) = r {
                        e.write_unraisable(py, None);
                    }
                });
            }
        });
        let inner = RsPacker::new(cfg, tokenize, on_shard).map_err(io_err)?;
        Ok(Packer {
            inner: std::sync::Mutex::new(Some(inner)),
        })
    }

    /// Read files in order: `paths` are `(path, name)` pairs; `name` is recorded as the
    /// document path of plain-text files. `progress(documents, bytes)` is called per batch.
    #[pyo3(signature = (paths, progress = None))]
    fn add_files(
        &self,
        py: Python<'_>,
        paths: Vec<(PathBuf, Option<String>)>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let mut failure: Option<PyErr> = None;
        let result = self.with(py, |p| {
            let state = p.progress();
            // The files are read on a pool thread; this (the calling, usually the main)
            // thread meanwhile reports progress and checks for Ctrl-C, which Python only
            // delivers to the main thread, and cancels the reading on an exception.
            std::thread::scope(|s| {
                let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
                let reader = s.spawn(move || {
                    let mut result = Ok(());
                    for (path, name) in &paths {
                        result = p.add_file(path, name.as_deref());
                        if result.is_err() {
                            break;
                        }
                    }
                    let _ = done_tx.send(());
                    result
                });
                loop {
                    let waited = done_rx.recv_timeout(std::time::Duration::from_millis(100));
                    let finished = !matches!(waited, Err(RecvTimeoutError::Timeout));
                    let go_on = callback(&mut failure, |py| match &progress {
                        Some(f) => f.call1(py, (state.documents(), state.bytes())).map(drop),
                        None => Ok(()),
                    });
                    if !go_on {
                        state.cancel();
                    }
                    if finished {
                        break;
                    }
                }
                reader.join().expect("packer reading thread")
            })
        });
        match failure {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Feed `(text, repo_name, path, license)` records.
    fn add_records(&self, py: Python<'_>, records: Vec<PyRecord>) -> PyResult<()> {
        let records: Vec<Record> = records
            .into_iter()
            .map(|(text, repo_name, path, license)| Record {
                text,
                repo_name,
                path,
                license,
            })
            .collect();
        self.with(py, move |p| p.add_records(records))
    }

    /// Count documents removed before they were fed (e.g. by the `ast.parse` filter).
    fn count_removed(
        &self,
        py: Python<'_>,
        reason: String,
        documents: u64,
        bytes: u64,
    ) -> PyResult<()> {
        self.with(py, move |p| {
            p.count_removed(&reason, documents, bytes);
            Ok(())
        })
    }

    fn count_invalid(&self, py: Python<'_>, records: u64) -> PyResult<()> {
        self.with(py, move |p| {
            p.count_invalid(records);
            Ok(())
        })
    }

    /// Wait for every stage, write the last shards and return the report.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self
            .inner
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| PyValueError::new_err("this packer is already finished"))?;
        let report = py.detach(|| p.finish()).map_err(io_err)?;
        report_dict(py, &report)
    }

    /// Stop without finishing (after an error): the open shards stay `.tmp` files.
    fn abort(&self, py: Python<'_>) {
        let p = self.inner.lock().unwrap().take();
        py.detach(|| drop(p));
    }
}

/// Redact secrets and PII: `(redacted_text, counts_by_kind)`.
#[pyfunction]
fn redact<'py>(py: Python<'py>, text: &str) -> PyResult<(String, Bound<'py, PyDict>)> {
    let (out, counts) = py.detach(|| crate::clean::redact::Redactor::shared().redact(text));
    Ok((out, redaction_dict(py, &counts)?))
}

/// `(start, end, kind)` of every redaction finding (byte offsets in the UTF-8 text).
#[pyfunction]
fn redaction_spans(py: Python<'_>, text: &str) -> Vec<(usize, usize, &'static str)> {
    py.detach(|| crate::clean::redact::Redactor::shared().find(text))
        .into_iter()
        .map(|(s, e, k)| (s, e, k.name()))
        .collect()
}

/// The first filter that rejects `text`, or None when it is kept.
#[pyfunction]
#[pyo3(signature = (text, license = None, filters = None))]
fn check_document(
    text: &str,
    license: Option<&str>,
    filters: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<&'static str>> {
    let c = Cleaner::new(parse_clean(filters)?);
    Ok(c.check(text, license).map(|r| r.name()))
}

/// The exact-dedup key (32 hex digits) of a text.
#[pyfunction]
fn dedup_key(text: &str) -> String {
    format!(
        "{:032x}",
        crate::clean::dedup::exact_key(text, &mut Vec::new())
    )
}

/// "train" or "valid" for a record, by the stable hash of its repo_name / path / content.
#[pyfunction]
#[pyo3(signature = (valid_fraction, repo_name = None, path = None, text = ""))]
fn split_of(
    valid_fraction: f64,
    repo_name: Option<String>,
    path: Option<String>,
    text: &str,
) -> &'static str {
    let rec = Record {
        text: text.to_string(),
        repo_name,
        path,
        license: None,
    };
    crate::pack::split::split_of(&crate::pack::packer::split_key(&rec), valid_fraction).name()
}

/// Near-duplicates among `texts` in order: `(duplicate, kept, estimated_jaccard)`.
#[pyfunction]
#[pyo3(signature = (texts, threshold = 0.85, num_perm = 128, ngram = 5, num_threads = 1))]
fn find_near_duplicates(
    py: Python<'_>,
    texts: Vec<PyBackedStr>,
    threshold: f64,
    num_perm: usize,
    ngram: usize,
    num_threads: usize,
) -> Vec<(usize, usize, f64)> {
    let cfg = NearConfig {
        threshold,
        num_perm: num_perm.max(1),
        ngram: ngram.max(1),
        ..NearConfig::default()
    };
    py.detach(|| {
        let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
        crate::clean::neardup::find_near_duplicates(&refs, &cfg, threads(num_threads))
    })
}

// ==== end data bindings ====

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // tokenizer registrations
    m.add("PATTERNS", PATTERN_NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(pretokenize, m)?)?;
    m.add_function(wrap_pyfunction!(pattern_regex, m)?)?;
    m.add_class::<Trainer>()?;
    m.add_class::<Encoder>()?;
    // data registrations
    m.add_class::<Packer>()?;
    m.add_function(wrap_pyfunction!(redact, m)?)?;
    m.add_function(wrap_pyfunction!(redaction_spans, m)?)?;
    m.add_function(wrap_pyfunction!(check_document, m)?)?;
    m.add_function(wrap_pyfunction!(dedup_key, m)?)?;
    m.add_function(wrap_pyfunction!(split_of, m)?)?;
    m.add_function(wrap_pyfunction!(find_near_duplicates, m)?)?;
    let _ = m;
    Ok(())
}
