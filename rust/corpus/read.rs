//! Corpus readers: one document per file (`.py`, `.txt`, anything else) or one document per
//! line of JSON lines (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`; CodeParrot / The Stack schema).
//!
//! Reading is streaming (a `BufRead` over the decompressor) so memory does not grow with the
//! file. One policy for damaged input: undecodable lines and files are skipped and counted,
//! and so (unless `strict`) is a file that cannot be read to its end (unreadable, a truncated
//! or corrupt `.gz`/`.zst`): the documents before the damage are kept, the rest of the file is
//! skipped and the file is named in the report with the reason. With `strict` such a file is
//! an error naming it. A JSON array where JSON lines were expected is always an error (a
//! wrong format for the whole input, not damage). Reading many files (threads, progress,
//! cancel) is `scan.rs`'s job.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use crate::error::{Context, Error, Kind, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// One document and the optional metadata of its JSON record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub text: String,
    pub repo_name: Option<String>,
    pub path: Option<String>,
    pub license: Option<String>,
}

/// How a file is read, decided by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// One JSON object per line.
    JsonLines(Compression),
    /// The whole file is one UTF-8 document.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl FileKind {
    pub fn of(path: &Path) -> FileKind {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.ends_with(".jsonl") || name.ends_with(".json") {
            FileKind::JsonLines(Compression::None)
        } else if name.ends_with(".jsonl.gz") || name.ends_with(".json.gz") {
            FileKind::JsonLines(Compression::Gzip)
        } else if name.ends_with(".jsonl.zst") || name.ends_with(".json.zst") {
            FileKind::JsonLines(Compression::Zstd)
        } else {
            FileKind::Text
        }
    }
}

/// What reading one file produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Documents handed to the sink.
    pub documents: u64,
    /// UTF-8 bytes of those documents' text.
    pub bytes: u64,
    /// Lines/records skipped: invalid JSON, missing or non-string text field.
    pub skipped_documents: u64,
    /// Set when the file, or the rest of it, was skipped: a text file that is not UTF-8, or
    /// (not strict) a read or decompression error.
    pub skipped_file: Option<String>,
}

/// Read `path`, calling `sink` for every document; reading stops early when `sink` returns
/// `false` (an interrupted run). `text_field` names the JSON field holding the text;
/// `with_meta` also extracts `repo_name`, `path` and `license` when present.
pub fn read_file(
    path: &Path,
    text_field: &str,
    with_meta: bool,
    sink: impl FnMut(Record) -> bool,
) -> Result<ReadStats> {
    let done = AtomicU64::new(0);
    read_file_counted(path, text_field, with_meta, true, &done, sink)
}

/// A reader that adds the number of bytes it reads to a shared counter (for progress bars).
struct Counted<'a, R> {
    inner: R,
    done: &'a AtomicU64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// [`read_file`], adding the bytes read from disk (compressed size) to `done` as it goes;
/// `strict: false` turns read and decompression errors into a skipped (rest of the) file.
pub fn read_file_counted(
    path: &Path,
    text_field: &str,
    with_meta: bool,
    strict: bool,
    done: &AtomicU64,
    sink: impl FnMut(Record) -> bool,
) -> Result<ReadStats> {
    let mut stats = ReadStats::default();
    match read_into(path, text_field, with_meta, done, &mut stats, sink) {
        Ok(()) => Ok(stats),
        Err(e) if !strict && matches!(e.kind(), Kind::Io(_)) => {
            let why = e.message();
            stats.skipped_file = Some(if stats.documents == 0 && stats.skipped_documents == 0 {
                format!("cannot be read: {why}")
            } else {
                format!(
                    "read error after {} document(s), the rest of the file skipped: {why}",
                    stats.documents
                )
            });
            Ok(stats)
        }
        Err(e) => Err(e),
    }
}

fn read_into(
    path: &Path,
    text_field: &str,
    with_meta: bool,
    done: &AtomicU64,
    stats: &mut ReadStats,
    mut sink: impl FnMut(Record) -> bool,
) -> Result<()> {
    let file = Counted {
        inner: File::open(path).at(path)?,
        done,
    };
    match FileKind::of(path) {
        FileKind::Text => {
            let mut buf = Vec::new();
            BufReader::new(file).read_to_end(&mut buf).at(path)?;
            match String::from_utf8(buf) {
                Ok(text) => {
                    stats.documents = 1;
                    stats.bytes = text.len() as u64;
                    sink(Record {
                        text,
                        ..Record::default()
                    });
                }
                Err(e) => {
                    stats.skipped_file = Some(format!(
                        "not valid UTF-8 (byte offset {})",
                        e.utf8_error().valid_up_to()
                    ))
                }
            }
        }
        FileKind::JsonLines(compression) => {
            let reader: Box<dyn Read> = match compression {
                Compression::None => Box::new(file),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
                Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).at(path)?),
            };
            let mut reader = BufReader::with_capacity(1 << 20, reader);
            let mut line = Vec::new();
            let mut first = true;
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).at(path)?;
                if n == 0 {
                    break;
                }
                if first {
                    // A UTF-8 byte order mark (files written on Windows) is not JSON.
                    if line.starts_with(UTF8_BOM) {
                        line.drain(..UTF8_BOM.len());
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    first = false;
                    check_not_json_array(path, &line)?;
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match parse_record(&line, text_field, with_meta) {
                    Some(rec) => {
                        stats.documents += 1;
                        stats.bytes += rec.text.len() as u64;
                        if !sink(rec) {
                            break;
                        }
                    }
                    None => stats.skipped_documents += 1,
                }
            }
        }
    }
    Ok(())
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// A `.json` file holding one JSON array (not JSON lines) would otherwise be read as one
/// invalid record per line: say what it is instead.
fn check_not_json_array(path: &Path, first_line: &[u8]) -> Result<()> {
    let start = first_line.iter().find(|b| !b.is_ascii_whitespace());
    if start == Some(&b'[') {
        return Err(Error::invalid(
            "a JSON array, not JSON lines (one object per line); convert it with \
             `jq -c '.[]' FILE > FILE.jsonl`",
        )
        .at(path));
    }
    Ok(())
}

/// Parse one JSON line; `None` when it is not an object with a string `text_field`.
pub fn parse_record(line: &[u8], text_field: &str, with_meta: bool) -> Option<Record> {
    let serde_json::Value::Object(mut obj) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    let serde_json::Value::String(text) = obj.remove(text_field)? else {
        return None;
    };
    let mut take = |k: &str| match obj.remove(k) {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    let (repo_name, path, license) = if with_meta {
        (take("repo_name"), take("path"), take("license"))
    } else {
        (None, None, None)
    };
    Some(Record {
        text,
        repo_name,
        path,
        license,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bom_is_skipped_and_json_arrays_are_named() {
        let d = tmpdir("bom");
        let p = d.join("bom.jsonl");
        std::fs::write(
            &p,
            b"\xef\xbb\xbf{\"content\": \"a = 1\"}\n{\"content\": \"b\"}\n",
        )
        .unwrap();
        let mut docs = Vec::new();
        let st = read_file(&p, "content", false, |r| {
            docs.push(r.text);
            true
        })
        .unwrap();
        assert_eq!((st.documents, st.skipped_documents), (2, 0));
        assert_eq!(docs, ["a = 1", "b"]);
        let a = d.join("array.json");
        std::fs::write(
            &a,
            b"\n[\n  {\"content\": \"a\"},\n  {\"content\": \"b\"}\n]\n",
        )
        .unwrap();
        let err = read_file(&a, "content", false, |_| true).unwrap_err();
        // A wrong format (ValueError in Python), not damage to skip.
        assert!(matches!(err.kind(), crate::error::Kind::Invalid(_)));
        assert!(
            err.to_string().contains("array.json: a JSON array"),
            "{err}"
        );
    }

    fn tmpdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("codekiln-read-{}-{}", name, std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn kinds_from_names() {
        assert_eq!(FileKind::of(Path::new("a.py")), FileKind::Text);
        assert_eq!(
            FileKind::of(Path::new("x/train-00000.jsonl.gz")),
            FileKind::JsonLines(Compression::Gzip)
        );
        assert_eq!(
            FileKind::of(Path::new("b.JSONL.ZST")),
            FileKind::JsonLines(Compression::Zstd)
        );
    }

    #[test]
    fn jsonl_gz_zst_and_skips() {
        let d = tmpdir("jsonl");
        let body = "{\"content\": \"print(1)\\n\", \"repo_name\": \"r\", \"path\": \"p.py\"}\n\
                    not json\n\n{\"other\": 1}\n{\"content\": \"x = 2\"}\n";
        let plain = d.join("a.jsonl");
        std::fs::write(&plain, body).unwrap();
        let gz = d.join("a.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        enc.write_all(body.as_bytes()).unwrap();
        enc.finish().unwrap();
        let zst = d.join("a.jsonl.zst");
        std::fs::write(&zst, zstd::encode_all(body.as_bytes(), 3).unwrap()).unwrap();
        for p in [&plain, &gz, &zst] {
            let mut docs = Vec::new();
            let st = read_file(p, "content", true, |r| {
                docs.push(r);
                true
            })
            .unwrap();
            assert_eq!(st.documents, 2, "{}", p.display());
            assert_eq!(st.skipped_documents, 2);
            assert_eq!(docs[0].text, "print(1)\n");
            assert_eq!(docs[0].repo_name.as_deref(), Some("r"));
            assert_eq!(docs[1].text, "x = 2");
            assert_eq!(st.bytes, 9 + 5);
        }
    }

    #[test]
    fn damaged_files_are_skipped_unless_strict() {
        let d = tmpdir("damaged");
        let body: String = (0..2000)
            .map(|i| format!("{{\"content\": \"x_{i} = {i} * 7919 % 104729\\n\"}}\n"))
            .collect();
        let gz = d.join("t.jsonl.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Default::default());
        enc.write_all(body.as_bytes()).unwrap();
        let full = enc.finish().unwrap();
        std::fs::write(&gz, &full[..full.len() * 2 / 3]).unwrap(); // truncated
        let done = AtomicU64::new(0);
        let mut n = 0u64;
        let st = read_file_counted(&gz, "content", false, false, &done, |_| {
            n += 1;
            true
        })
        .unwrap();
        assert!(st.documents > 0 && st.documents < 2000 && st.documents == n);
        let why = st.skipped_file.expect("named as skipped");
        assert!(why.contains("rest of the file skipped"), "{why}");
        let err = read_file_counted(&gz, "content", false, true, &done, |_| true).unwrap_err();
        assert!(
            err.to_string().starts_with(&gz.display().to_string()),
            "{err}"
        );
        // A missing (or unreadable) file: skipped whole unless strict.
        let gone = d.join("gone.py");
        let st = read_file_counted(&gone, "content", false, false, &done, |_| true).unwrap();
        assert!(st.skipped_file.unwrap().starts_with("cannot be read"));
        assert!(read_file_counted(&gone, "content", false, true, &done, |_| true).is_err());
        // A JSON array is a wrong format, not damage: an error either way.
        let arr = d.join("a.json");
        std::fs::write(&arr, "[{\"content\": \"x\"}]\n").unwrap();
        assert!(read_file_counted(&arr, "content", false, false, &done, |_| true).is_err());
    }

    #[test]
    fn text_file_and_non_utf8() {
        let d = tmpdir("text");
        let good = d.join("ok.py");
        std::fs::write(&good, "def f():\n    return 1\n").unwrap();
        let bad = d.join("bad.py");
        std::fs::write(&bad, b"x = '\xff'\n").unwrap();
        let mut n = 0;
        let st = read_file(&good, "content", false, |_| {
            n += 1;
            true
        })
        .unwrap();
        assert_eq!((n, st.documents), (1, 1));
        let st = read_file(&bad, "content", false, |_| panic!("no doc")).unwrap();
        assert!(st.skipped_file.unwrap().contains("UTF-8"));
        let err = read_file(&d.join("missing.py"), "content", false, |_| true).unwrap_err();
        assert!(err.to_string().contains("missing.py"));
    }
}
