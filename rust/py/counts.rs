//! Bindings of counting and training (in memory or in bounded memory) and count files:
//! `Counter`, `merge_count_files`, `inspect_count_file`, `train_count_files`. The typed public
//! API is `Tokenizer.train` and `codekiln.tokenizer.counts`.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::bpe::parse_pattern;
use super::{convert, run, threads, with_utf8_copies, Callback};
use crate::bpe::countfile::{self, Settings, Stats};
use crate::bpe::counts::PieceCounter;
use crate::bpe::train::{
    count_file_settings as rs_count_file_settings, train_count_files as rs_train_count_files,
    train_counter, SortedReport,
};

fn stats_dict<'py>(
    py: Python<'py>,
    settings: Option<Settings>,
    s: &Stats,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    if let Some(st) = settings {
        d.set_item("pattern", st.pattern.name())?;
        d.set_item("newline", st.newline)?;
        d.set_item("newline_token", st.newline_token)?;
    }
    d.set_item("documents", s.documents)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("pieces", s.pieces)?;
    d.set_item("distinct_pieces", s.entries)?;
    Ok(d)
}

/// Merges, distinct pieces, multi-byte pieces kept.
type Trained = (Vec<(u32, u32)>, u64, u64);

/// Piece counts that spill sorted runs to disk past a memory budget.
#[pyclass(module = "codekiln._core")]
struct Counter {
    inner: Option<PieceCounter>,
    text_field: String,
}

fn used_up() -> PyErr {
    PyValueError::new_err(
        "this Counter has been used up (training or writing empties it); make a new one",
    )
}

impl Counter {
    fn open(&mut self) -> PyResult<&mut PieceCounter> {
        self.inner.as_mut().ok_or_else(used_up)
    }
}

#[pymethods]
impl Counter {
    #[new]
    #[pyo3(signature = (
        pattern, newline, text_field = "content", max_memory = None, spill_dir = None,
        newline_token = None
    ))]
    fn new(
        pattern: &str,
        newline: bool,
        text_field: &str,
        max_memory: Option<usize>,
        spill_dir: Option<PathBuf>,
        newline_token: Option<bool>,
    ) -> PyResult<Self> {
        let p = parse_pattern(pattern)?;
        let mut inner = match (max_memory, spill_dir) {
            (Some(budget), Some(dir)) => PieceCounter::with_spill(p, newline, budget, &dir),
            (None, None) => PieceCounter::new(p, newline),
            _ => {
                return Err(PyValueError::new_err(
                    "max_memory and spill_dir go together",
                ))
            }
        };
        if let Some(token) = newline_token {
            if newline && !token {
                return Err(PyValueError::new_err(
                    "newlines are isolated only for the strict <N> rule (newline_token=True)",
                ));
            }
            inner.newline_token = token;
        }
        Ok(Counter {
            inner: Some(inner),
            text_field: text_field.to_string(),
        })
    }

    /// Count the pieces of every text; returns how many texts were left out because they
    /// have no UTF-8 form (lone surrogates).
    fn add_texts(
        &mut self,
        py: Python<'_>,
        texts: Vec<Bound<'_, PyString>>,
        num_threads: usize,
    ) -> PyResult<usize> {
        let n = threads(num_threads)?;
        let inner = self.open()?;
        let ((), skipped) = with_utf8_copies(&texts, |refs| run(py, || inner.add_texts(refs, n)))?;
        Ok(skipped)
    }

    #[pyo3(signature = (paths, num_threads, progress = None, strict = false))]
    fn add_files<'py>(
        &mut self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        num_threads: usize,
        progress: Option<Py<PyAny>>,
        strict: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let n = threads(num_threads)?;
        let text_field = self.text_field.clone();
        let inner = self.open()?;
        inner.strict = strict;
        let mut cb = Callback::new(progress);
        let result = run(py, || {
            inner.add_files(&paths, &text_field, n, &mut |p| {
                cb.call(&[p.done, p.total, p.entries, p.table_bytes, p.runs])
            })
        });
        let report = cb.finish(result)?;
        convert::files_report(py, &report, &text_field)
    }

    #[getter]
    fn documents(&mut self) -> PyResult<u64> {
        Ok(self.open()?.documents)
    }

    #[getter]
    fn total_bytes(&mut self) -> PyResult<u64> {
        Ok(self.open()?.total_bytes)
    }

    #[getter]
    fn total_pieces(&mut self) -> PyResult<u64> {
        Ok(self.open()?.total_pieces)
    }

    #[getter]
    fn runs(&mut self) -> PyResult<usize> {
        Ok(self.open()?.runs())
    }

    #[getter]
    fn table_bytes(&mut self) -> PyResult<usize> {
        Ok(self.open()?.table_bytes())
    }

    /// Write a count file at `path`; the counter is used up.
    fn write<'py>(&mut self, py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
        let mut inner = self.inner.take().ok_or_else(used_up)?;
        let settings = inner.settings();
        let stats = run(py, || inner.write(&path))?;
        stats_dict(py, Some(settings), &stats)
    }

    /// Learn merges; the counter is used up. Returns (merges, distinct pieces, kept pieces).
    #[pyo3(signature = (num_merges, min_frequency, min_count, num_threads, progress = None))]
    fn train(
        &mut self,
        py: Python<'_>,
        num_merges: usize,
        min_frequency: u64,
        min_count: u64,
        num_threads: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Trained> {
        let n = threads(num_threads)?;
        let mut inner = self.inner.take().ok_or_else(used_up)?;
        let mut cb = Callback::new(progress);
        let result = run(py, || {
            train_counter(
                &mut inner,
                num_merges,
                min_frequency,
                min_count,
                n,
                &mut |d| cb.call(&[d]),
            )
        });
        let (merges, SortedReport { distinct, kept }) = cb.finish(result)?;
        Ok((merges, distinct, kept))
    }
}

/// Merge count files into `out` (settings must match); the merged stats.
#[pyfunction]
fn merge_count_files<'py>(
    py: Python<'py>,
    inputs: Vec<PathBuf>,
    out: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let (settings, stats) = run(py, || {
        let settings = countfile::open_all(&inputs)?.0;
        Ok((settings, countfile::merge_files(&inputs, &out)?))
    })?;
    stats_dict(py, Some(settings), &stats)
}

/// Read a count file to its end (verifying it): settings and stats.
#[pyfunction]
fn inspect_count_file<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let (settings, stats) = run(py, || countfile::inspect(&path))?;
    stats_dict(py, Some(settings), &stats)
}

/// The settings in a count file's header: (pattern, newline).
#[pyfunction]
fn count_file_settings(py: Python<'_>, path: PathBuf) -> PyResult<(&'static str, bool, bool)> {
    let s = run(py, || rs_count_file_settings(&path))?;
    Ok((s.pattern.name(), s.newline, s.newline_token))
}

/// Learn merges from count files: (stats with settings, merges, distinct, kept).
#[pyfunction]
#[pyo3(signature = (paths, num_merges, min_frequency, min_count, num_threads, progress = None))]
#[allow(clippy::type_complexity)]
fn train_count_files<'py>(
    py: Python<'py>,
    paths: Vec<PathBuf>,
    num_merges: usize,
    min_frequency: u64,
    min_count: u64,
    num_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyDict>, Vec<(u32, u32)>, u64, u64)> {
    let n = threads(num_threads)?;
    let mut cb = Callback::new(progress);
    let result = run(py, || {
        rs_train_count_files(&paths, num_merges, min_frequency, min_count, n, &mut |d| {
            cb.call(&[d])
        })
    });
    let (settings, stats, merges, report) = cb.finish(result)?;
    let d = stats_dict(py, Some(settings), &stats)?;
    Ok((d, merges, report.distinct, report.kept))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Counter>()?;
    m.add_function(wrap_pyfunction!(merge_count_files, m)?)?;
    m.add_function(wrap_pyfunction!(inspect_count_file, m)?)?;
    m.add_function(wrap_pyfunction!(count_file_settings, m)?)?;
    m.add_function(wrap_pyfunction!(train_count_files, m)?)?;
    Ok(())
}
