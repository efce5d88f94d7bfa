//! Bindings of the data pipeline: `Packer`, `Preparer` and `check_prepared` (packing on
//! Ray), `redact`, `redaction_spans`, `check_document`, `dedup_key`, `split_of`,
//! `find_near_duplicates`. The typed public API is `codekiln.data`, which owns the defaults:
//! these bindings take every setting explicitly.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyDict;

use super::bpe::Encoder;
use super::{convert, run, threads, Callback};
use crate::clean::filters::Cleaner;
use crate::clean::neardup::NearConfig;
use crate::clean::redact::Redactor;
use crate::corpus::read::Record;
use crate::corpus::scan::Input;
use crate::pack::prepared::{self, Preparer as RsPreparer};
use crate::pack::shard::ShardInfo;
use crate::pack::split::split_key;
use crate::pack::{OnShard, PackConfig, Packer as RsPacker, Tokenize};

/// `(text, repo_name, path, license)` as Python passes a record.
type PyRecord = (String, Option<String>, Option<String>, Option<String>);

/// The shard packer; see `codekiln.data.pack` for the public API.
#[pyclass(module = "codekiln._core")]
struct Packer {
    inner: Mutex<Option<RsPacker>>,
}

/// Run `f` on the core object of a binding (`what` names it) with the GIL released; a
/// `ValueError` once `finish` has taken it.
fn with_open<T: Send, R: Send>(
    slot: &Mutex<Option<T>>,
    what: &str,
    py: Python<'_>,
    f: impl FnOnce(&mut T) -> crate::Result<R> + Send,
) -> PyResult<R> {
    let mut guard = slot.lock().unwrap();
    let p = guard.as_mut().ok_or_else(|| finished(what))?;
    run(py, || f(p))
}

/// Take the core object out of a binding for `finish`.
fn take_open<T>(slot: &Mutex<Option<T>>, what: &str) -> PyResult<T> {
    slot.lock().unwrap().take().ok_or_else(|| finished(what))
}

fn finished(what: &str) -> PyErr {
    PyValueError::new_err(format!("this {what} is already finished"))
}

impl Packer {
    /// Run `f` on the running packer with the GIL released.
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RsPacker) -> crate::Result<R> + Send,
    ) -> PyResult<R> {
        with_open(&self.inner, "packer", py, f)
    }
}

#[pymethods]
impl Packer {
    #[new]
    #[pyo3(signature = (
        out_dir, encoder, eot_id, fingerprint, *, num_threads, shard_tokens, filters,
        exact_dedup, near_threshold, near_num_perm, near_ngram, redact, valid_fraction,
        text_field, resume, on_shard, batch_bytes, strict = false
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
        strict: bool,
    ) -> PyResult<Self> {
        let (cfg, tokenize) = pack_config(
            out_dir,
            &encoder,
            eot_id,
            fingerprint,
            Settings {
                num_threads,
                shard_tokens,
                filters,
                exact_dedup,
                near_threshold,
                near_num_perm,
                near_ngram,
                redact,
                valid_fraction,
                text_field,
                batch_bytes,
                strict,
            },
        )?;
        let mut cfg = cfg;
        cfg.resume = resume.unwrap_or_default();
        let on_shard: OnShard = Box::new(move |info: &ShardInfo| {
            if let Some(f) = &on_shard {
                Python::attach(|py| {
                    let r = convert::shard_info(py, info).and_then(|d| f.call1(py, (d,)));
                    if let Err(e) = r {
                        e.write_unraisable(py, None);
                    }
                });
            }
        });
        let inner = RsPacker::new(cfg, tokenize, on_shard)?;
        Ok(Packer {
            inner: Mutex::new(Some(inner)),
        })
    }

    /// Read files in order: `paths` are `(path, name)` pairs; `name` is recorded as the
    /// document path of plain-text files. `progress(documents, bytes)` is called now and
    /// then from this (usually the main) thread, which also checks for Ctrl-C: Python
    /// delivers signals only there.
    #[pyo3(signature = (paths, progress = None))]
    fn add_files(
        &self,
        py: Python<'_>,
        paths: Vec<(PathBuf, Option<String>)>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let inputs: Vec<Input> = paths
            .into_iter()
            .map(|(path, name)| Input { path, name })
            .collect();
        let mut cb = Callback::new(progress);
        let result = self.with(py, |p| {
            p.add_files(&inputs, &mut |docs, bytes| cb.call(&[docs, bytes]))
        });
        cb.finish(result)
    }

    /// Feed `(text, repo_name, path, license)` records.
    fn add_records(&self, py: Python<'_>, records: Vec<PyRecord>) -> PyResult<()> {
        let records: Vec<Record> = records.into_iter().map(record).collect();
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
        let p = take_open(&self.inner, "packer")?;
        let report = run(py, || p.finish())?;
        convert::pack_report(py, &report)
    }

    /// Stop without finishing (after an error): the open shards stay `.tmp` files.
    fn abort(&self, py: Python<'_>) {
        let p = self.inner.lock().unwrap().take();
        py.detach(|| drop(p));
    }

    /// Feed prepared files in order: `(path, settings key)` pairs (see `Preparer`).
    fn add_prepared(&self, py: Python<'_>, files: Vec<(PathBuf, Vec<u8>)>) -> PyResult<()> {
        let files = files
            .into_iter()
            .map(|(p, k)| Ok((p, key32(k)?)))
            .collect::<PyResult<Vec<_>>>()?;
        self.with(py, move |p| {
            for (path, key) in &files {
                p.add_prepared(path, key)?;
            }
            Ok(())
        })
    }
}

fn record((text, repo_name, path, license): PyRecord) -> Record {
    Record {
        text,
        repo_name,
        path,
        license,
    }
}

/// The packer's settings as the bindings receive them (see `codekiln.data.pack`).
struct Settings<'a, 'py> {
    num_threads: usize,
    shard_tokens: u64,
    filters: Option<&'a Bound<'py, PyDict>>,
    exact_dedup: bool,
    near_threshold: Option<f64>,
    near_num_perm: usize,
    near_ngram: usize,
    redact: bool,
    valid_fraction: f64,
    text_field: String,
    batch_bytes: usize,
    strict: bool,
}

/// The one conversion of those settings into the core's configuration and tokenize closure.
fn pack_config(
    out_dir: PathBuf,
    encoder: &Encoder,
    eot_id: u32,
    fingerprint: Vec<u8>,
    s: Settings<'_, '_>,
) -> PyResult<(PackConfig, Tokenize)> {
    let encoder = encoder.inner.clone();
    let fingerprint: [u8; 32] = fingerprint
        .try_into()
        .map_err(|_| PyValueError::new_err("fingerprint must be 32 bytes (a raw SHA-256)"))?;
    if !(0.0..=1.0).contains(&s.valid_fraction) {
        return Err(PyValueError::new_err("valid_fraction must be in [0, 1]"));
    }
    let mut cfg = PackConfig::new(out_dir, encoder.vocab_size() as u32, eot_id);
    cfg.num_threads = threads(s.num_threads)?;
    cfg.shard_tokens = s.shard_tokens.max(1);
    cfg.clean = convert::clean_config(s.filters)?;
    cfg.exact_dedup = s.exact_dedup;
    cfg.near_dedup = s.near_threshold.map(|t| NearConfig {
        threshold: t,
        num_perm: s.near_num_perm.max(1),
        ngram: s.near_ngram.max(1),
        ..NearConfig::default()
    });
    cfg.redact = s.redact;
    cfg.valid_fraction = s.valid_fraction;
    cfg.text_field = s.text_field;
    cfg.fingerprint = fingerprint;
    cfg.batch_bytes = s.batch_bytes.max(1);
    cfg.strict = s.strict;
    let tokenize: Tokenize =
        Arc::new(move |t: &str, out: &mut Vec<u32>| encoder.encode_ordinary_into(t, out));
    Ok((cfg, tokenize))
}

fn key32(key: Vec<u8>) -> PyResult<[u8; 32]> {
    key.try_into().map_err(|_| {
        PyValueError::new_err("a prepared file's key must be 32 bytes (a raw SHA-256)")
    })
}

/// Writes a prepared file for a packer elsewhere (`rust/pack/prepared.rs`); see
/// `codekiln.distributed.pack`.
#[pyclass(module = "codekiln._core")]
struct Preparer {
    inner: Mutex<Option<RsPreparer>>,
}

impl Preparer {
    /// Run `f` on the open preparer with the GIL released.
    fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RsPreparer) -> crate::Result<R> + Send,
    ) -> PyResult<R> {
        with_open(&self.inner, "preparer", py, f)
    }
}

#[pymethods]
impl Preparer {
    #[new]
    #[pyo3(signature = (
        out, key, encoder, eot_id, fingerprint, *, num_threads, filters, exact_dedup,
        near_threshold, near_num_perm, near_ngram, redact, valid_fraction, text_field,
        batch_bytes, strict
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        out: PathBuf,
        key: Vec<u8>,
        encoder: PyRef<'_, Encoder>,
        eot_id: u32,
        fingerprint: Vec<u8>,
        num_threads: usize,
        filters: Option<&Bound<'_, PyDict>>,
        exact_dedup: bool,
        near_threshold: Option<f64>,
        near_num_perm: usize,
        near_ngram: usize,
        redact: bool,
        valid_fraction: f64,
        text_field: String,
        batch_bytes: usize,
        strict: bool,
    ) -> PyResult<Self> {
        let key = key32(key)?;
        let dir = out.parent().map(PathBuf::from).unwrap_or_default();
        let (cfg, tokenize) = pack_config(
            dir,
            &encoder,
            eot_id,
            fingerprint,
            Settings {
                num_threads,
                shard_tokens: 1,
                filters,
                exact_dedup,
                near_threshold,
                near_num_perm,
                near_ngram,
                redact,
                valid_fraction,
                text_field,
                batch_bytes,
                strict,
            },
        )?;
        let inner = run(py, || RsPreparer::create(&cfg, tokenize, &key, &out))?;
        Ok(Preparer {
            inner: Mutex::new(Some(inner)),
        })
    }

    /// Read one input file in Rust; `name` is the path of a plain-text document, `shown`
    /// names the file if it is skipped.
    fn add_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        name: Option<String>,
        shown: String,
    ) -> PyResult<()> {
        let input = Input { path, name };
        self.with(py, move |p| p.add_file(&input, &shown))
    }

    /// Feed `(text, repo_name, path, license)` records read in Python.
    fn add_records(&self, py: Python<'_>, records: Vec<PyRecord>) -> PyResult<()> {
        let records = records.into_iter().map(record).collect();
        self.with(py, move |p| p.add_records(records))
    }

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

    /// A file read in Python that could not be read to its end (`why`).
    fn count_skipped(&self, py: Python<'_>, path: String, why: String) -> PyResult<()> {
        self.with(py, move |p| {
            p.count_skipped(&path, &why);
            Ok(())
        })
    }

    /// Write the last records, the summary and the checksum; returns the summary.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = take_open(&self.inner, "preparer")?;
        let s = run(py, || p.finish())?;
        convert::prep_summary(py, &s)
    }
}

/// The reading summary of a prepared file made with `key`; an `OSError` naming it when it is
/// damaged or stale.
#[pyfunction]
fn check_prepared<'py>(
    py: Python<'py>,
    path: PathBuf,
    key: Vec<u8>,
) -> PyResult<Bound<'py, PyDict>> {
    let key = key32(key)?;
    let summary = run(py, || prepared::check(&path, &key))?;
    convert::prep_summary(py, &summary)
}

/// Redact secrets and PII: `(redacted_text, counts_by_kind)`.
#[pyfunction]
fn redact<'py>(py: Python<'py>, text: &str) -> PyResult<(String, Bound<'py, PyDict>)> {
    let (out, counts) = run(py, || Ok(Redactor::shared().redact(text)))?;
    Ok((out, convert::redactions(py, &counts)?))
}

/// `(start, end, kind)` of every redaction finding (byte offsets in the UTF-8 text).
#[pyfunction]
fn redaction_spans(py: Python<'_>, text: &str) -> PyResult<Vec<(usize, usize, &'static str)>> {
    let found = run(py, || Ok(Redactor::shared().find(text)))?;
    Ok(found
        .into_iter()
        .map(|(s, e, k)| (s, e, k.name()))
        .collect())
}

/// The first filter that rejects `text`, or None when it is kept (`filters=None`: none).
#[pyfunction]
fn check_document(
    text: &str,
    license: Option<&str>,
    filters: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<&'static str>> {
    let c = Cleaner::new(convert::clean_config(filters)?);
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
    crate::pack::split::split_of(&split_key(&rec), valid_fraction).name()
}

/// Near-duplicates among `texts` in order: `(duplicate, kept, estimated_jaccard)`.
#[pyfunction]
fn find_near_duplicates(
    py: Python<'_>,
    texts: Vec<PyBackedStr>,
    threshold: f64,
    num_perm: usize,
    ngram: usize,
    num_threads: usize,
) -> PyResult<Vec<(usize, usize, f64)>> {
    let n = threads(num_threads)?;
    let cfg = NearConfig {
        threshold,
        num_perm: num_perm.max(1),
        ngram: ngram.max(1),
        ..NearConfig::default()
    };
    run(py, || {
        let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
        Ok(crate::clean::neardup::find_near_duplicates(&refs, &cfg, n))
    })
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Packer>()?;
    m.add_class::<Preparer>()?;
    m.add_function(wrap_pyfunction!(check_prepared, m)?)?;
    m.add_function(wrap_pyfunction!(redact, m)?)?;
    m.add_function(wrap_pyfunction!(redaction_spans, m)?)?;
    m.add_function(wrap_pyfunction!(check_document, m)?)?;
    m.add_function(wrap_pyfunction!(dedup_key, m)?)?;
    m.add_function(wrap_pyfunction!(split_of, m)?)?;
    m.add_function(wrap_pyfunction!(find_near_duplicates, m)?)?;
    Ok(())
}
