//! Count files: piece counts on disk, sorted by piece bytes, so that any number of them merge
//! in one streaming pass (a k-way merge) with memory for one entry per file. The same format
//! holds the sorted runs a memory-bounded counter spills (`spill.rs`) and the mergeable
//! `counts-NNN.bin` files users write on many machines.
//!
//! Layout (version 1; integers little-endian, `varint` = unsigned LEB128):
//!
//! ```text
//! magic "CKCOUNTS" | version u32 | settings: u32 length + JSON {"pattern", "newline"}
//! entries: varint len (>0) | len piece bytes | varint count     (strictly increasing pieces)
//! end:     varint 0 | stats: u32 length + JSON {"documents", "bytes", "pieces", "entries"}
//! sha256 of every byte before it (32 bytes)
//! ```
//!
//! A reader checks the magic, the version, the order of the pieces and, at the end, the
//! checksum and the entry count: a truncated or corrupt file is an error naming the file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::bpe::pretokenize::Pattern;
use crate::error::{Error, Result};

pub const MAGIC: &[u8; 8] = b"CKCOUNTS";
pub const VERSION: u32 = 1;
const BUF: usize = 1 << 16;

/// The pre-tokenizer settings the counts were made with: files made with other settings
/// cannot be merged (their pieces are different strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub pattern: Pattern,
    /// Whether the pre-tokenizer isolates every newline (the strict `<N>` rule).
    pub newline: bool,
    /// Whether the tokenizer to train has the `<N>` token. Pieces do not depend on it when
    /// newlines are not isolated (the merged `<N>` rule counts like no `<N>`), but the
    /// tokenizer trained from the counts does; files without it (older) have it = `newline`.
    pub newline_token: bool,
}

impl Settings {
    /// Settings where `<N>` is present exactly when newlines are isolated.
    pub fn new(pattern: Pattern, newline: bool) -> Settings {
        Settings {
            pattern,
            newline,
            newline_token: newline,
        }
    }

    fn describe(&self) -> String {
        let mode = match (self.newline_token, self.newline) {
            (false, _) => "none",
            (true, true) => "<N> strict",
            (true, false) => "<N> merged",
        };
        format!("pattern={:?} newline={mode}", self.pattern.name())
    }
}

/// What the counted input held (sums over merged files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub documents: u64,
    pub bytes: u64,
    /// Pieces with repetitions.
    pub pieces: u64,
    /// Distinct pieces (entries in the file).
    pub entries: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.documents += other.documents;
        self.bytes += other.bytes;
        self.pieces += other.pieces;
    }
}

/// Writes one count file; pieces must come in strictly increasing byte order.
pub struct CountWriter {
    out: BufWriter<File>,
    hash: Sha256,
    last: Vec<u8>,
    entries: u64,
    path: PathBuf,
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl CountWriter {
    /// Create (truncate) `path` and write the header.
    pub fn create(path: &Path, settings: Settings) -> Result<CountWriter> {
        let file = File::create(path).map_err(|e| Error::from(e).at(path))?;
        let mut w = CountWriter {
            out: BufWriter::with_capacity(BUF, file),
            hash: Sha256::new(),
            last: Vec::new(),
            entries: 0,
            path: path.to_path_buf(),
        };
        let json = serde_json::json!({
            "pattern": settings.pattern.name(),
            "newline": settings.newline,
            "newline_token": settings.newline_token,
        })
        .to_string();
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(json.len() as u32).to_le_bytes());
        head.extend_from_slice(json.as_bytes());
        w.write(&head)?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hash.update(bytes);
        self.out
            .write_all(bytes)
            .map_err(|e| Error::from(e).at(&self.path))
    }

    /// Append one entry (`piece` non-empty and greater than the previous one).
    pub fn push(&mut self, piece: &[u8], count: u64) -> Result<()> {
        assert!(
            !piece.is_empty() && (self.entries == 0 || piece > self.last.as_slice()),
            "count file entries must be non-empty and strictly increasing"
        );
        let mut buf = Vec::with_capacity(piece.len() + 12);
        put_varint(&mut buf, piece.len() as u64);
        buf.extend_from_slice(piece);
        put_varint(&mut buf, count);
        self.write(&buf)?;
        self.last.clear();
        self.last.extend_from_slice(piece);
        self.entries += 1;
        Ok(())
    }

    /// Write the stats (`entries` is filled in) and the checksum, and flush. Not synced:
    /// spill runs need no durability, and user files go through Python's atomic writes,
    /// which fsync before renaming.
    pub fn finish(mut self, stats: Stats) -> Result<Stats> {
        let stats = Stats {
            entries: self.entries,
            ..stats
        };
        let json = serde_json::json!({
            "documents": stats.documents,
            "bytes": stats.bytes,
            "pieces": stats.pieces,
            "entries": stats.entries,
        })
        .to_string();
        let mut tail = vec![0u8];
        tail.extend_from_slice(&(json.len() as u32).to_le_bytes());
        tail.extend_from_slice(json.as_bytes());
        self.write(&tail)?;
        let digest = self.hash.clone().finalize();
        let path = self.path.clone();
        let io = |e: std::io::Error| Error::from(e).at(&path);
        self.out.write_all(&digest).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(stats)
    }
}

/// Streams the entries of one count file, checking it as it goes.
pub struct CountReader {
    inp: BufReader<File>,
    hash: Sha256,
    path: PathBuf,
    pub settings: Settings,
    /// Filled in when the end has been read (and the checksum verified).
    pub stats: Option<Stats>,
    last: Vec<u8>,
    entries: u64,
}

impl CountReader {
    /// Open `path` and read its header.
    pub fn open(path: &Path) -> Result<CountReader> {
        let file = File::open(path).map_err(|e| Error::from(e).at(path))?;
        let mut r = CountReader {
            inp: BufReader::with_capacity(BUF, file),
            hash: Sha256::new(),
            path: path.to_path_buf(),
            settings: Settings::new(Pattern::Code, true),
            stats: None,
            last: Vec::new(),
            entries: 0,
        };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|_| r.bad("not a codekiln count file (too short)"))?;
        if &magic != MAGIC {
            return Err(r.bad("not a codekiln count file (wrong magic bytes)"));
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(r.bad(&format!(
                "count file version {version} is not supported (this codekiln reads version \
                 {VERSION}); recount with this version"
            )));
        }
        let json = r.json()?;
        let pattern = json["pattern"]
            .as_str()
            .and_then(Pattern::from_name)
            .ok_or_else(|| r.bad("count file settings: unknown or missing pattern"))?;
        let newline = json["newline"]
            .as_bool()
            .ok_or_else(|| r.bad("count file settings: missing newline"))?;
        let newline_token = json["newline_token"].as_bool().unwrap_or(newline);
        r.settings = Settings {
            pattern,
            newline,
            newline_token,
        };
        Ok(r)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bad(&self, msg: &str) -> Error {
        Error::invalid_data(msg.to_string()).at(&self.path)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        match self.inp.read_exact(buf) {
            Ok(()) => {
                self.hash.update(&*buf);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(self.bad("count file is truncated"))
            }
            Err(e) => Err(Error::from(e).at(&self.path)),
        }
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn varint(&mut self) -> Result<u64> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let mut b = [0u8; 1];
            self.read_exact(&mut b)?;
            if shift >= 64 {
                return Err(self.bad("count file is corrupt (bad varint)"));
            }
            v |= ((b[0] & 0x7f) as u64) << shift;
            if b[0] & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    fn json(&mut self) -> Result<serde_json::Value> {
        let len = self.u32()? as usize;
        if len > 1 << 20 {
            return Err(self.bad("count file is corrupt (header too long)"));
        }
        let mut buf = vec![0u8; len];
        self.read_exact(&mut buf)?;
        serde_json::from_slice(&buf).map_err(|_| self.bad("count file is corrupt (bad header)"))
    }

    /// The next entry, or `None` at the end (after the checksum was verified).
    pub fn next_entry(&mut self) -> Result<Option<(Vec<u8>, u64)>> {
        if self.stats.is_some() {
            return Ok(None);
        }
        let len = self.varint()?;
        if len == 0 {
            let json = self.json()?;
            let field = |k: &str| json[k].as_u64();
            let (Some(documents), Some(bytes), Some(pieces), Some(entries)) = (
                field("documents"),
                field("bytes"),
                field("pieces"),
                field("entries"),
            ) else {
                return Err(self.bad("count file is corrupt (bad stats)"));
            };
            let expected = self.hash.clone().finalize();
            let mut digest = [0u8; 32];
            self.read_exact(&mut digest)?;
            if digest[..] != expected[..] {
                return Err(self.bad("count file checksum mismatch: the file is corrupt"));
            }
            if entries != self.entries {
                return Err(self.bad("count file is corrupt (entry count)"));
            }
            self.stats = Some(Stats {
                documents,
                bytes,
                pieces,
                entries,
            });
            return Ok(None);
        }
        // Read through `take` so that a corrupt length cannot allocate more than the file.
        let mut piece = Vec::new();
        let got = (&mut self.inp)
            .take(len)
            .read_to_end(&mut piece)
            .map_err(|e| Error::from(e).at(&self.path))?;
        if got as u64 != len {
            return Err(self.bad("count file is truncated"));
        }
        self.hash.update(&piece);
        let count = self.varint()?;
        if self.entries > 0 && piece.as_slice() <= self.last.as_slice() {
            return Err(self.bad("count file is corrupt (pieces out of order)"));
        }
        self.last.clear();
        self.last.extend_from_slice(&piece);
        self.entries += 1;
        Ok(Some((piece, count)))
    }
}

/// Open count files and check that they were all made with the same settings.
pub fn open_all(paths: &[PathBuf]) -> Result<(Settings, Vec<CountReader>)> {
    let readers = paths
        .iter()
        .map(|p| CountReader::open(p))
        .collect::<Result<Vec<_>>>()?;
    let first = readers
        .first()
        .ok_or_else(|| Error::invalid("no count files given"))?;
    let settings = first.settings;
    for r in &readers[1..] {
        if r.settings != settings {
            return Err(Error::invalid(format!(
                "count files were made with different settings: {} has {}, {} has {}; count \
                 all inputs with the same --pattern, --newline and --newline-rule",
                first.path.display(),
                settings.describe(),
                r.path.display(),
                r.settings.describe(),
            ))
            .at(&r.path));
        }
    }
    Ok((settings, readers))
}

/// A consumer of `(piece, count)` entries in increasing piece order.
pub type Sink<'a> = dyn FnMut(&[u8], u64) -> Result<()> + 'a;

/// K-way merge: calls `f(piece, total count)` once per distinct piece, in increasing order;
/// returns the summed stats (`entries` = distinct pieces of the merge). Every file is read to
/// its end, so its checksum is verified before this returns `Ok`.
pub fn merge(readers: &mut [CountReader], f: &mut Sink<'_>) -> Result<Stats> {
    let mut heap: BinaryHeap<Reverse<(Vec<u8>, usize, u64)>> = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some((p, c)) = r.next_entry()? {
            heap.push(Reverse((p, i, c)));
        }
    }
    let mut stats = Stats::default();
    while let Some(Reverse((piece, i, mut count))) = heap.pop() {
        if let Some((p, c)) = readers[i].next_entry()? {
            heap.push(Reverse((p, i, c)));
        }
        while heap.peek().is_some_and(|Reverse((p, _, _))| *p == piece) {
            let Reverse((_, j, c)) = heap.pop().unwrap();
            count = count.saturating_add(c);
            if let Some((p, c)) = readers[j].next_entry()? {
                heap.push(Reverse((p, j, c)));
            }
        }
        f(&piece, count)?;
        stats.entries += 1;
    }
    for r in readers.iter() {
        stats.add(r.stats.as_ref().expect("merged readers are at their end"));
    }
    Ok(stats)
}

/// Merge count files into one (`out` is written directly: callers write to a temporary
/// name and rename).
pub fn merge_files(inputs: &[PathBuf], out: &Path) -> Result<Stats> {
    let (settings, mut readers) = open_all(inputs)?;
    let mut w = CountWriter::create(out, settings)?;
    let stats = merge(&mut readers, &mut |p, c| w.push(p, c))?;
    w.finish(stats)
}

/// Read a whole count file (checking it): its settings and stats.
pub fn inspect(path: &Path) -> Result<(Settings, Stats)> {
    let mut r = CountReader::open(path)?;
    while r.next_entry()?.is_some() {}
    Ok((r.settings, r.stats.unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("codekiln-countfile-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    fn write(path: &Path, settings: Settings, entries: &[(&str, u64)], docs: u64) {
        let mut w = CountWriter::create(path, settings).unwrap();
        for (p, c) in entries {
            w.push(p.as_bytes(), *c).unwrap();
        }
        w.finish(Stats {
            documents: docs,
            bytes: 10,
            pieces: entries.iter().map(|e| e.1).sum(),
            entries: 0,
        })
        .unwrap();
    }

    const CODE: Settings = Settings {
        pattern: Pattern::Code,
        newline: true,
        newline_token: true,
    };

    #[test]
    fn merge_sums_counts_and_checks_files() {
        let (a, b, m) = (tmp("a.bin"), tmp("b.bin"), tmp("m.bin"));
        write(&a, CODE, &[("def", 3), ("x", 1), ("\u{e9}t\u{e9}", 300)], 1);
        write(&b, CODE, &[("abc", 2), ("def", 1 << 40), ("y", 5)], 2);
        let stats = merge_files(&[a.clone(), b.clone()], &m).unwrap();
        assert_eq!(stats.entries, 5);
        assert_eq!(stats.documents, 3);
        let mut r = CountReader::open(&m).unwrap();
        let mut got = Vec::new();
        while let Some((p, c)) = r.next_entry().unwrap() {
            got.push((String::from_utf8(p).unwrap(), c));
        }
        let want: Vec<(String, u64)> = [
            ("abc", 2),
            ("def", 3 + (1 << 40)),
            ("x", 1),
            ("y", 5),
            ("\u{e9}t\u{e9}", 300),
        ]
        .iter()
        .map(|(p, c)| (p.to_string(), *c))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            inspect(&m).unwrap().1.pieces,
            3 + (1 << 40) + 1 + 300 + 2 + 5
        );

        // Different settings: a clear error naming both files.
        let g = tmp("g.bin");
        write(&g, Settings::new(Pattern::Gpt2, true), &[("a", 1)], 1);
        let err = merge_files(&[a.clone(), g.clone()], &m).unwrap_err();
        assert!(err.to_string().contains("different settings"), "{err}");
        assert!(err.to_string().contains("g.bin"), "{err}");

        // Any flipped byte or truncation is caught.
        let good = std::fs::read(&a).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            let c = tmp("corrupt.bin");
            std::fs::write(&c, &bad).unwrap();
            assert!(inspect(&c).is_err(), "flipped byte {i} not detected");
            std::fs::write(&c, &good[..i]).unwrap();
            let err = inspect(&c).unwrap_err();
            assert!(err.to_string().contains("corrupt.bin"), "{err}");
        }
        let err = merge_files(&[], &m).unwrap_err();
        assert!(err.to_string().contains("no count files"));
    }

    #[test]
    fn pieces_longer_than_the_read_buffer_round_trip() {
        let p = tmp("long.bin");
        let long = "x".repeat(3 * BUF + 7);
        write(&p, CODE, &[("a", 1), (long.as_str(), 1 << 50), ("y", 2)], 1);
        let mut r = CountReader::open(&p).unwrap();
        let mut got = Vec::new();
        while let Some((piece, c)) = r.next_entry().unwrap() {
            got.push((piece.len(), c));
        }
        assert_eq!(got, vec![(1, 1), (long.len(), 1 << 50), (1, 2)]);
        assert_eq!(r.stats.unwrap().entries, 3);
    }
}
