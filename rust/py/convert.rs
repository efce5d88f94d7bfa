//! Core types to and from Python objects, in one place: the report dicts the Python package
//! reads, and the filter settings dict it passes. Written out rather than derived: a derive
//! would put pyo3 attributes on the core types, and pyo3 stays in `py/`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::clean::filters::CleanConfig;
use crate::clean::redact::{Counts, Kind};
use crate::corpus::scan::FilesReport;
use crate::pack::prepared::PrepSummary;
use crate::pack::shard::ShardInfo;
use crate::pack::{PackReport, SplitReport};

/// The `filters` dict (`None`: no filters).
pub(super) fn clean_config(filters: Option<&Bound<'_, PyDict>>) -> PyResult<CleanConfig> {
    let mut c = CleanConfig::none();
    let Some(d) = filters else {
        return Ok(c);
    };
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

/// `Trainer.add_files`'s report.
pub(super) fn files_report<'py>(
    py: Python<'py>,
    r: &FilesReport,
    text_field: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("files", r.files)?;
    d.set_item("documents", r.documents)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("skipped_files", r.skipped_files.len())?;
    d.set_item("skipped_documents", r.skipped_documents)?;
    d.set_item("skipped", r.skipped_listing(text_field))?;
    Ok(d)
}

pub(super) fn shard_info<'py>(py: Python<'py>, s: &ShardInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("split", &s.split)?;
    d.set_item("index", s.index)?;
    d.set_item("file", &s.file)?;
    d.set_item("tokens", s.tokens)?;
    d.set_item("documents", s.documents)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("sha256", &s.sha256)?;
    d.set_item("redactions", redactions(py, &s.redactions)?)?;
    d.set_item("redacted_documents", s.redacted_documents)?;
    Ok(d)
}

fn split_report<'py>(py: Python<'py>, s: &SplitReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("documents", s.documents)?;
    d.set_item("bytes", s.bytes)?;
    d.set_item("resumed_documents", s.resumed_documents)?;
    d.set_item("tokens", s.tokens)?;
    let shards = PyList::empty(py);
    for sh in &s.shards {
        shards.append(shard_info(py, sh)?)?;
    }
    d.set_item("shards", shards)?;
    Ok(d)
}

/// `{kind name: count}` for every redaction kind.
pub(super) fn redactions<'py>(py: Python<'py>, c: &Counts) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for k in Kind::ALL {
        d.set_item(k.name(), c.get(k))?;
    }
    Ok(d)
}

/// `Packer.finish`'s report.
pub(super) fn pack_report<'py>(py: Python<'py>, r: &PackReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("files", r.files)?;
    d.set_item("skipped_files", r.skipped_files.clone())?;
    d.set_item("documents_in", r.documents_in)?;
    d.set_item("bytes_in", r.bytes_in)?;
    d.set_item("invalid_records", r.invalid_records)?;
    d.set_item("removed", r.removed.clone())?;
    d.set_item("removed_bytes", r.removed_bytes.clone())?;
    d.set_item("redactions", redactions(py, &r.redactions)?)?;
    d.set_item("redacted_documents", r.redacted_documents)?;
    d.set_item("train", split_report(py, &r.train)?)?;
    d.set_item("valid", split_report(py, &r.valid)?)?;
    Ok(d)
}

/// A prepared file's reading summary (`Preparer.finish`, `check_prepared`).
pub(super) fn prep_summary<'py>(py: Python<'py>, s: &PrepSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("files", s.files)?;
    d.set_item("documents_in", s.documents_in)?;
    d.set_item("bytes_in", s.bytes_in)?;
    d.set_item("invalid_records", s.invalid_records)?;
    d.set_item("skipped_files", s.skipped_files.clone())?;
    d.set_item("encoded_documents", s.encoded_documents)?;
    d.set_item("encoded_tokens", s.encoded_tokens)?;
    d.set_item("removed", s.removed.clone())?;
    Ok(d)
}
