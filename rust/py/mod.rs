//! The Python extension `codekiln._core`: the only pyo3 code. Thin on purpose: each binding
//! converts its arguments, runs one core call with the GIL released ([`run`]) and converts
//! the result; validation, defaults and documentation belong to the Python package.
//!
//! * `bpe.rs`: the tokenizer (`pretokenize`, `pattern_regex`, `Trainer`, `Encoder`);
//! * `counts.rs`: bounded-memory counting and count files (`Counter`, `*_count_file(s)`);
//! * `data.rs`: the data pipeline (`Packer`, filters, dedup, redaction, split);
//! * `convert.rs`: core types to and from Python objects;
//! * here: the module, the one `Error -> PyErr` map and the progress-callback helper.

use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyPermissionError, PyRuntimeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::error::{catch, Error, Kind};

mod bpe;
mod convert;
mod counts;
mod data;

/// The one map from core errors to Python exceptions (the message names the file).
impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e.kind() {
            Kind::Io(io) => match io.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                _ => PyOSError::new_err(msg),
            },
            Kind::Invalid(_) => PyValueError::new_err(msg),
            Kind::Interrupted => PyKeyboardInterrupt::new_err(msg),
            Kind::Panic(_) => PyRuntimeError::new_err(msg),
        }
    }
}

/// Run `f` with the GIL released; a panic becomes a `RuntimeError`.
fn run<R: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<R> + Send) -> PyResult<R> {
    py.detach(|| catch(f).and_then(|r| r)).map_err(PyErr::from)
}

/// Call `f` with the texts as `&str`, borrowed from temporary UTF-8 `bytes` copies rather than
/// from the `str`s: CPython caches the UTF-8 form inside every non-ASCII `str` for the str's
/// lifetime, which added the corpus's non-ASCII text to peak memory while counting. A `str`
/// that has no UTF-8 form (a lone surrogate such as `"\ud800"`, which `surrogateescape`
/// decoding or `chr` can make) is left out, like an undecodable line of a file; the second
/// value is how many were.
fn with_utf8_copies<R>(
    texts: &[Bound<'_, PyString>],
    f: impl FnOnce(&[&str]) -> PyResult<R>,
) -> PyResult<(R, usize)> {
    let bytes: Vec<Bound<'_, PyBytes>> =
        texts.iter().filter_map(|t| t.encode_utf8().ok()).collect();
    // SAFETY: PyUnicode_AsUTF8String always returns valid UTF-8.
    let refs: Vec<&str> = bytes
        .iter()
        .map(|b| unsafe { std::str::from_utf8_unchecked(b.as_bytes()) })
        .collect();
    Ok((f(&refs)?, texts.len() - refs.len()))
}

/// `num_threads` as the core takes it: the Python API resolves `None` and rejects values
/// below 1 before calling; 0 arriving here is a caller bug, reported rather than guessed.
fn threads(num_threads: usize) -> PyResult<usize> {
    if num_threads == 0 {
        return Err(PyValueError::new_err("num_threads must be at least 1"));
    }
    Ok(num_threads)
}

/// Progress reporting from inside a released-GIL call: [`Callback::call`] takes the GIL,
/// runs the Python callback and checks for signals (Ctrl-C); the first Python error stops
/// the Rust side and is raised by [`Callback::finish`] instead of the core's result.
struct Callback {
    f: Option<Py<PyAny>>,
    failure: Option<PyErr>,
}

impl Callback {
    fn new(f: Option<Py<PyAny>>) -> Callback {
        Callback { f, failure: None }
    }

    /// Call `f(*args)`; whether the core should go on.
    fn call(&mut self, args: &[u64]) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let f = &self.f;
        let res = Python::attach(|py| {
            if let Some(f) = f {
                f.call1(py, pyo3::types::PyTuple::new(py, args)?)?;
            }
            py.check_signals()
        });
        match res {
            Ok(()) => true,
            Err(e) => {
                self.failure = Some(e);
                false
            }
        }
    }

    /// The callback's error if it raised one, else the core's result.
    fn finish<R>(self, result: PyResult<R>) -> PyResult<R> {
        match self.failure {
            Some(e) => Err(e),
            None => result,
        }
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    bpe::register(m)?;
    counts::register(m)?;
    data::register(m)
}
