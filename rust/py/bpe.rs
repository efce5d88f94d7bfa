//! Bindings of the tokenizer: `pretokenize`, `pattern_regex`, `Encoder` (counting and training
//! are `Counter` in `counts.rs`). The typed public API is `codekiln.tokenizer`; these are its
//! private engine.

use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyByteArray, PyBytes, PyList};

use super::{run, threads};
use crate::bpe::encode::{Encoder as RsEncoder, SpecialMatcher};
use crate::bpe::pretokenize::{pieces, Pattern, PATTERN_NAMES};

pub(super) fn parse_pattern(name: &str) -> PyResult<Pattern> {
    Pattern::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown pattern {name:?}; expected one of {PATTERN_NAMES:?}"
        ))
    })
}

#[pyfunction]
fn pretokenize<'a>(text: &'a str, pattern: &str, newline: bool) -> PyResult<Vec<&'a str>> {
    let p = parse_pattern(pattern)?;
    Ok(pieces(text, p, newline).collect())
}

#[pyfunction]
fn pattern_regex(pattern: &str, newline: bool) -> PyResult<String> {
    Ok(parse_pattern(pattern)?.regex(newline))
}

#[pyclass(module = "codekiln._core", frozen)]
pub(super) struct Encoder {
    /// Shared with the packers made from this encoder (building one costs ~25 ms at 32k).
    pub(super) inner: Arc<RsEncoder>,
    /// One Python int per token id, shared by every list we return: building a list then
    /// costs an INCREF per id instead of allocating an int (the conversion ran single-threaded
    /// under the GIL and capped encode_batch's two-thread scaling).
    ints: OnceLock<Vec<Py<PyAny>>>,
}

impl Encoder {
    fn matcher(&self, allowed: &[String]) -> PyResult<Option<SpecialMatcher>> {
        Ok(self.inner.special_matcher(allowed)?)
    }

    fn unknown_id(&self, id: u32) -> PyErr {
        PyValueError::new_err(format!(
            "token id {id} is not in the vocabulary (size {})",
            self.inner.vocab_size()
        ))
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
        let inner = RsEncoder::new(parse_pattern(pattern)?, newline, &merges, &special_tokens)?;
        Ok(Encoder {
            inner: Arc::new(inner),
            ints: OnceLock::new(),
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    fn encode_ordinary<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyList>> {
        // Releasing the GIL costs more than encoding a short text.
        let ids = if text.len() < 4096 {
            self.inner.encode_ordinary(text)
        } else {
            run(py, || Ok(self.inner.encode_ordinary(text)))?
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
        let ids = run(py, || Ok(self.inner.encode_with(text, m.as_ref())))?;
        self.to_list(py, &ids)
    }

    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        allowed_special: Vec<String>,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = crate::parallel::threads_for(threads(num_threads)?, texts.len());
        let m = self.matcher(&allowed_special)?;
        let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
        if n == 1 {
            // One thread means one: encode everything, then convert.
            let all = run(py, || Ok(self.inner.encode_batch(&refs, m.as_ref(), 1)))?;
            let lists = all
                .iter()
                .map(|ids| self.to_list(py, ids))
                .collect::<PyResult<Vec<_>>>()?;
            return PyList::new(py, lists);
        }
        let out = PyList::new(py, (0..refs.len()).map(|_| py.None()))?;
        // The core encodes on the pool while this thread turns finished results into lists
        // (with the GIL, released while it waits for the next result).
        let converted = crate::error::catch(|| {
            self.inner
                .encode_batch_streamed(&refs, m.as_ref(), n, |rx| -> PyResult<()> {
                    loop {
                        let (i, ids) = match rx.try_recv() {
                            Ok(msg) => msg,
                            Err(crossbeam_channel::TryRecvError::Empty) => {
                                match py.detach(|| rx.recv()) {
                                    Ok(msg) => msg,
                                    Err(_) => return Ok(()),
                                }
                            }
                            Err(crossbeam_channel::TryRecvError::Disconnected) => return Ok(()),
                        };
                        out.set_item(i, self.to_list(py, &ids)?)?;
                    }
                })
        });
        converted.map_err(PyErr::from)??;
        Ok(out)
    }

    /// Encode on the pool (GIL released) into one flat id buffer: returns
    /// `(ids, offsets)` as two `bytearray`s holding native-endian `u32` ids and `u64`
    /// offsets (`len(texts) + 1` of them), for `numpy.frombuffer` without Python ints.
    fn encode_batch_flat<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        allowed_special: Vec<String>,
        num_threads: usize,
    ) -> PyResult<(Bound<'py, PyByteArray>, Bound<'py, PyByteArray>)> {
        let n = threads(num_threads)?;
        let m = self.matcher(&allowed_special)?;
        let refs: Vec<&str> = texts.iter().map(|t| &**t).collect();
        let (ids, offsets) = run(py, || {
            Ok(self.inner.encode_batch_flat(&refs, m.as_ref(), n))
        })?;
        Ok((
            PyByteArray::new(py, as_bytes(&ids)),
            PyByteArray::new(py, as_bytes(&offsets)),
        ))
    }

    /// `decode_bytes` for ids packed as native-endian `u32` (a numpy array's buffer).
    fn decode_bytes_u32<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        if !data.len().is_multiple_of(4) {
            return Err(PyValueError::new_err(format!(
                "a buffer of u32 ids must have a multiple of 4 bytes, got {}",
                data.len()
            )));
        }
        let ids: Vec<u32> = data
            .chunks_exact(4)
            .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.decode_bytes(py, ids)
    }

    fn decode_bytes<'py>(&self, py: Python<'py>, ids: Vec<u32>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self
            .inner
            .decode_bytes(&ids)
            .map_err(|id| self.unknown_id(id))?;
        Ok(PyBytes::new(py, &bytes))
    }

    fn token_bytes<'py>(&self, py: Python<'py>, id: u32) -> PyResult<Bound<'py, PyBytes>> {
        let b = self
            .inner
            .token_bytes(id)
            .ok_or_else(|| self.unknown_id(id))?;
        Ok(PyBytes::new(py, b))
    }
}

/// The bytes of a slice of plain integers (native endian), for handing to numpy.
fn as_bytes<T: Copy + Into<u64>>(v: &[T]) -> &[u8] {
    // SAFETY: `T` is u32 or u64 here (plain integers: no padding, every byte initialised),
    // and the returned slice borrows `v` for its lifetime.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("PATTERNS", PATTERN_NAMES.to_vec())?;
    m.add_function(wrap_pyfunction!(pretokenize, m)?)?;
    m.add_function(wrap_pyfunction!(pattern_regex, m)?)?;
    m.add_class::<Encoder>()?;
    Ok(())
}
