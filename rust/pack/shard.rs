//! The shard format (version 1) and its atomic writer.
//!
//! A shard is one little-endian file, memory-mappable as three flat arrays:
//!
//! ```text
//! offset  size  field
//!      0     8  magic b"CKSHARD\0"
//!      8     4  version (u32) = 1
//!     12     4  header size in bytes (u32) = 256
//!     16     4  bytes per token (u32): 2 (uint16) when the vocabulary has <= 65536 ids, else 4
//!     20     4  vocabulary size (u32)
//!     24     8  token count T (u64), separators included
//!     32     8  document count D (u64)
//!     40     8  byte offset of the document index (u64) = 256 + T * bytes per token
//!     48     4  separator id (u32), the tokenizer's <|endoftext|>
//!     52     4  reserved, zero
//!     56    32  tokenizer fingerprint (raw SHA-256 bytes)
//!     88   168  reserved, zero
//!    256        T tokens; every document is followed by one separator
//!  index        D + 1 u64 token offsets: document i is tokens[off[i] .. off[i+1] - 1]
//!               (the separator at off[i+1] - 1 excluded); off[0] = 0, off[D] = T
//! ```
//!
//! The file size is therefore exactly `256 + T * bytes_per_token + (D + 1) * 8`, which readers
//! check on open. A document never spans two shards.
//!
//! Writes are atomic: a shard is written to `NAME.tmp`, fsynced, hashed, then renamed to `NAME`
//! and the directory fsynced, so a crash leaves either no file or a complete one.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::clean::redact::Counts;
use crate::error::{Context, Error, Result};

pub const MAGIC: [u8; 8] = *b"CKSHARD\0";
pub const VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 256;

/// The fixed header of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub token_bytes: u32,
    pub vocab_size: u32,
    pub token_count: u64,
    pub doc_count: u64,
    pub eot_id: u32,
    pub fingerprint: [u8; 32],
}

impl Header {
    pub fn index_offset(&self) -> u64 {
        HEADER_BYTES as u64 + self.token_count * self.token_bytes as u64
    }

    /// The exact file size a shard with this header has.
    pub fn file_size(&self) -> u64 {
        self.index_offset() + (self.doc_count + 1) * 8
    }

    pub fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.token_bytes.to_le_bytes());
        b[20..24].copy_from_slice(&self.vocab_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.token_count.to_le_bytes());
        b[32..40].copy_from_slice(&self.doc_count.to_le_bytes());
        b[40..48].copy_from_slice(&self.index_offset().to_le_bytes());
        b[48..52].copy_from_slice(&self.eot_id.to_le_bytes());
        b[56..88].copy_from_slice(&self.fingerprint);
        b
    }

    /// Parse and validate a header; the error says what is wrong.
    pub fn parse(b: &[u8]) -> Result<Header, String> {
        if b.len() < HEADER_BYTES {
            return Err(format!(
                "file is {} bytes, shorter than the {HEADER_BYTES}-byte shard header",
                b.len()
            ));
        }
        if b[0..8] != MAGIC {
            return Err("not a codekiln shard (bad magic bytes)".into());
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "shard format version {version}, this reader knows {VERSION}"
            ));
        }
        if u32_at(12) as usize != HEADER_BYTES {
            return Err(format!(
                "header size {} (expected {HEADER_BYTES})",
                u32_at(12)
            ));
        }
        let token_bytes = u32_at(16);
        if token_bytes != 2 && token_bytes != 4 {
            return Err(format!(
                "bytes per token is {token_bytes} (expected 2 or 4)"
            ));
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&b[56..88]);
        let h = Header {
            token_bytes,
            vocab_size: u32_at(20),
            token_count: u64_at(24),
            doc_count: u64_at(32),
            eot_id: u32_at(48),
            fingerprint,
        };
        if u64_at(40) != h.index_offset() {
            return Err(format!(
                "index offset {} does not match the token count (expected {})",
                u64_at(40),
                h.index_offset()
            ));
        }
        Ok(h)
    }
}

/// Bytes per token for a vocabulary size.
pub fn token_bytes_for(vocab_size: u32) -> u32 {
    if vocab_size <= 1 << 16 {
        2
    } else {
        4
    }
}

/// Append `tokens` and then `eot` to `out` as little-endian integers of `token_bytes` (2 or 4)
/// bytes: a document as it is stored in a shard.
pub fn encode_doc(tokens: &[u32], eot: u32, token_bytes: u32, out: &mut Vec<u8>) {
    let ids = tokens.iter().copied().chain(std::iter::once(eot));
    if token_bytes == 2 {
        out.reserve(2 * tokens.len() + 2);
        out.extend(ids.flat_map(|t| (t as u16).to_le_bytes()));
    } else {
        out.reserve(4 * tokens.len() + 4);
        out.extend(ids.flat_map(|t| t.to_le_bytes()));
    }
}

/// What a finished shard is; also what the manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub split: String,
    pub index: usize,
    pub file: String,
    pub tokens: u64,
    pub documents: u64,
    pub bytes: u64,
    pub sha256: String,
    /// Redaction findings in this shard's documents (filled in by the packer's writer).
    pub redactions: Counts,
    /// Documents of this shard whose text redaction changed.
    pub redacted_documents: u64,
}

/// The file name of shard `index` of `split`.
pub fn shard_name(split: &str, index: usize) -> String {
    format!("{split}-{index:06}.bin")
}

/// Writes one shard, streaming the tokens to `NAME.tmp`.
pub struct ShardWriter {
    dir: PathBuf,
    split: String,
    index: usize,
    tmp: PathBuf,
    out: BufWriter<File>,
    header: Header,
    offsets: Vec<u64>,
}

impl ShardWriter {
    pub fn create(
        dir: &Path,
        split: &str,
        index: usize,
        vocab_size: u32,
        eot_id: u32,
        fingerprint: [u8; 32],
    ) -> Result<ShardWriter> {
        let tmp = dir.join(format!("{}.tmp", shard_name(split, index)));
        let file = File::create(&tmp).at(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&[0u8; HEADER_BYTES]).at(&tmp)?;
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            split: split.to_string(),
            index,
            tmp,
            out,
            header: Header {
                token_bytes: token_bytes_for(vocab_size),
                vocab_size,
                token_count: 0,
                doc_count: 0,
                eot_id,
                fingerprint,
            },
            offsets: vec![0],
        })
    }

    pub fn token_count(&self) -> u64 {
        self.header.token_count
    }

    pub fn doc_count(&self) -> u64 {
        self.header.doc_count
    }

    /// Append one document and its separator.
    pub fn push_doc(&mut self, tokens: &[u32]) -> Result<()> {
        let mut buf = Vec::new();
        encode_doc(
            tokens,
            self.header.eot_id,
            self.header.token_bytes,
            &mut buf,
        );
        self.push_encoded(&buf, tokens.len() as u64 + 1)
    }

    /// Append a document already serialized by [`encode_doc`] (with this shard's token width
    /// and separator); `tokens` counts the separator. The packer's workers serialize, so the
    /// single writer thread only copies bytes.
    pub fn push_encoded(&mut self, bytes: &[u8], tokens: u64) -> Result<()> {
        debug_assert_eq!(
            bytes.len() as u64,
            tokens * u64::from(self.header.token_bytes)
        );
        self.out.write_all(bytes).at(&self.tmp)?;
        self.header.token_count += tokens;
        self.header.doc_count += 1;
        self.offsets.push(self.header.token_count);
        Ok(())
    }

    /// Write the index and header, fsync, hash, and atomically rename into place.
    pub fn finish(mut self) -> Result<ShardInfo> {
        let index: Vec<u8> = self.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        let tmp = &self.tmp;
        self.out.write_all(&index).at(tmp)?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error()).at(tmp)?;
        file.seek(SeekFrom::Start(0)).at(tmp)?;
        file.write_all(&self.header.to_bytes()).at(tmp)?;
        // Hash (CPU) while the kernel flushes the file (I/O): at the end of a pack the last
        // shard's finish is the only work left, so overlapping the two shortens the tail.
        let (synced, hashed) = std::thread::scope(|scope| {
            let sync = scope.spawn(|| file.sync_all());
            let hashed = sha256_file(tmp);
            (sync.join().expect("fsync thread"), hashed)
        });
        synced.at(tmp)?;
        drop(file);
        let (bytes, sha256) = hashed?;
        debug_assert_eq!(bytes, self.header.file_size());
        let file = shard_name(&self.split, self.index);
        let dest = self.dir.join(&file);
        fs::rename(&self.tmp, &dest).at(&dest)?;
        sync_dir(&self.dir);
        Ok(ShardInfo {
            split: self.split,
            index: self.index,
            file,
            tokens: self.header.token_count,
            documents: self.header.doc_count,
            bytes,
            sha256,
            redactions: Counts::default(),
            redacted_documents: 0,
        })
    }
}

/// Size and hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).at(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).at(path)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex(&h.finalize())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check a finished shard: header, exact size and (when given) its SHA-256.
pub fn verify(path: &Path, sha256: Option<&str>) -> Result<Header> {
    let mut f = File::open(path).at(path)?;
    let mut head = vec![0u8; HEADER_BYTES];
    let n = f.read(&mut head).at(path)?;
    let h = Header::parse(&head[..n])
        .map_err(Error::invalid_data)
        .at(path)?;
    let size = f.metadata().at(path)?.len();
    if size != h.file_size() {
        return Err(Error::invalid_data(format!(
            "{size} bytes but the header promises {} (truncated or corrupt)",
            h.file_size()
        ))
        .at(path));
    }
    if let Some(want) = sha256 {
        let (_, got) = sha256_file(path)?;
        if got != want {
            return Err(Error::invalid_data(format!(
                "SHA-256 {got} does not match the manifest's {want}"
            ))
            .at(path));
        }
    }
    Ok(h)
}

/// Make a rename durable. Best effort: not every platform can open a directory.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("codekiln-shard-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn read_u16s(b: &[u8]) -> Vec<u32> {
        b.chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect()
    }

    #[test]
    fn write_then_read_back() {
        let d = tmpdir("rw");
        let mut w = ShardWriter::create(&d, "train", 3, 1000, 999, [7; 32]).unwrap();
        w.push_doc(&[1, 2, 3]).unwrap();
        w.push_doc(&[]).unwrap();
        w.push_doc(&[500]).unwrap();
        let info = w.finish().unwrap();
        assert_eq!(info.file, "train-000003.bin");
        assert_eq!((info.tokens, info.documents), (7, 3));
        assert!(!d.join("train-000003.bin.tmp").exists());
        let bytes = fs::read(d.join(&info.file)).unwrap();
        assert_eq!(bytes.len() as u64, info.bytes);
        let h = verify(&d.join(&info.file), Some(&info.sha256)).unwrap();
        assert_eq!(h.token_bytes, 2);
        assert_eq!(h.fingerprint, [7; 32]);
        let toks = read_u16s(&bytes[256..256 + 14]);
        assert_eq!(toks, vec![1, 2, 3, 999, 999, 500, 999]);
        let idx: Vec<u64> = bytes[270..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(idx, vec![0, 4, 5, 7]);
    }

    #[test]
    fn wide_tokens_and_corruption() {
        let d = tmpdir("wide");
        let mut w = ShardWriter::create(&d, "valid", 0, 100_000, 70_000, [0; 32]).unwrap();
        w.push_doc(&[65_536, 1]).unwrap();
        let info = w.finish().unwrap();
        let p = d.join(&info.file);
        let bytes = fs::read(&p).unwrap();
        assert_eq!(
            u32::from_le_bytes(bytes[256..260].try_into().unwrap()),
            65_536
        );
        assert_eq!(verify(&p, None).unwrap().token_bytes, 4);
        // Flip one token: the size still matches, the checksum does not.
        let mut bad = bytes.clone();
        bad[257] ^= 1;
        fs::write(&p, &bad).unwrap();
        assert!(verify(&p, None).is_ok());
        assert!(verify(&p, Some(&info.sha256))
            .unwrap_err()
            .to_string()
            .contains("SHA-256"));
        // Truncate: the size check names the file.
        fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        let e = verify(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("truncated") && e.contains("valid-000000.bin"),
            "{e}"
        );
        fs::write(&p, b"hello").unwrap();
        assert!(verify(&p, None)
            .unwrap_err()
            .to_string()
            .contains("shorter"));
        let mut foreign = vec![0u8; 300];
        foreign[0] = b'X';
        fs::write(&p, &foreign).unwrap();
        assert!(verify(&p, None).unwrap_err().to_string().contains("magic"));
    }
}
