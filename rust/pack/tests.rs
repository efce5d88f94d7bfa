//! End-to-end tests of the packer: shard bytes identical for any thread count, resume,
//! filters and dedup, reading files in the pool, cancel, abort, errors.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::clean::filters::CleanConfig;
use crate::clean::neardup::NearConfig;
use crate::corpus::read::Record;
use crate::corpus::scan::Input;
use crate::error::Kind;
use crate::pack::shard::{verify, HEADER_BYTES};
use crate::pack::split::{split_key, split_of, Split};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("codekiln-pack-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// A byte-level "tokenizer": id = byte value; 256 is the separator.
fn bytes_tokenizer() -> Tokenize {
    Arc::new(|t: &str, out: &mut Vec<u32>| out.extend(t.bytes().map(u32::from)))
}

fn corpus(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let body: String = (0..(i % 7 + 1))
                .map(|j| format!("def f_{i}_{j}(x):\n    return x * {j} + {i}\n"))
                .collect();
            Record {
                text: body,
                repo_name: Some(format!("repo{}", i % 13)),
                path: Some(format!("f{i}.py")),
                license: None,
            }
        })
        .collect()
}

fn config(dir: &Path, threads: usize) -> PackConfig {
    let mut c = PackConfig::new(dir, 257, 256);
    c.num_threads = threads;
    c.clean = CleanConfig::none();
    c.redact = false;
    c.valid_fraction = 0.3;
    c.shard_tokens = 2_000;
    c.batch_bytes = 500;
    c
}

fn pack(cfg: PackConfig, records: Vec<Record>) -> PackReport {
    let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
    for chunk in records.chunks(17) {
        p.add_records(chunk.to_vec()).unwrap();
    }
    p.finish().unwrap()
}

/// Read back every document of a split through the index.
fn read_docs(dir: &Path, split: &str) -> Vec<String> {
    let mut docs = Vec::new();
    for i in 0.. {
        let p = dir.join(crate::pack::shard::shard_name(split, i));
        if !p.exists() {
            break;
        }
        let h = verify(&p, None).unwrap();
        let b = fs::read(&p).unwrap();
        let toks: Vec<u32> = b[HEADER_BYTES..h.index_offset() as usize]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect();
        let off: Vec<usize> = b[h.index_offset() as usize..]
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as usize)
            .collect();
        for w in off.windows(2) {
            assert_eq!(toks[w[1] - 1], 256);
            docs.push(
                toks[w[0]..w[1] - 1]
                    .iter()
                    .map(|&t| t as u8 as char)
                    .collect(),
            );
        }
    }
    docs
}

fn dir_bytes(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn round_trip_split_and_thread_invariance() {
    let records = corpus(300);
    let d1 = tmpdir("rt1");
    let r1 = pack(config(&d1, 1), records.clone());
    assert_eq!(r1.documents_in, 300);
    assert_eq!(r1.train.documents + r1.valid.documents, 300);
    assert!(r1.train.shards.len() > 2 && !r1.valid.shards.is_empty());
    // Every document comes back, in order, in the split of its repository.
    let train = read_docs(&d1, "train");
    let valid = read_docs(&d1, "valid");
    let mut want_train = Vec::new();
    let mut want_valid = Vec::new();
    for r in &records {
        match split_of(&split_key(r), 0.3) {
            Split::Train => want_train.push(r.text.clone()),
            Split::Valid => want_valid.push(r.text.clone()),
        }
    }
    assert_eq!(train, want_train);
    assert_eq!(valid, want_valid);
    for s in &r1.train.shards {
        assert!(s.tokens <= 2_000);
    }
    for threads in [2, 3, 8] {
        let d = tmpdir(&format!("rt{threads}"));
        let r = pack(config(&d, threads), records.clone());
        assert_eq!(dir_bytes(&d), dir_bytes(&d1), "threads={threads}");
        assert_eq!(r.train.shards, r1.train.shards);
    }
}

#[test]
fn filters_dedup_and_report() {
    let mut records = corpus(50);
    let mut dup = records[3].clone();
    dup.text = dup.text.replace('\n', "  \r\n"); // same program: trailing spaces, CRLF
    records.push(dup);
    let mut reindented = records[4].clone();
    reindented.text = reindented.text.replace("    ", "\t"); // another program: kept
    records.push(reindented);
    records.push(Record {
        text: "x".into(),
        ..Record::default()
    });
    let d = tmpdir("dedup");
    let mut cfg = config(&d, 2);
    cfg.clean.min_bytes = Some(10);
    let r = pack(cfg, records);
    assert_eq!(r.removed.get("exact_duplicate"), Some(&1));
    assert_eq!(r.removed.get("too_small"), Some(&1));
    assert_eq!(r.removed_bytes.get("too_small"), Some(&1));
    assert_eq!(r.train.documents + r.valid.documents, 51);
}

#[test]
fn resume_skips_completed_shards_and_matches() {
    let records = corpus(300);
    let full = tmpdir("resume-full");
    let r = pack(config(&full, 2), records.clone());
    // Pretend the run died after the first two train shards and the first valid shard.
    let part = tmpdir("resume-part");
    let mut resume = [(0usize, 0u64); 2];
    for (s, shards, keep) in [(0, &r.train.shards, 2), (1, &r.valid.shards, 1)] {
        for sh in &shards[..keep] {
            fs::copy(full.join(&sh.file), part.join(&sh.file)).unwrap();
            resume[s].1 += sh.documents;
        }
        resume[s].0 = keep;
    }
    fs::write(part.join("train-000002.bin.tmp"), b"partial garbage").unwrap();
    let mut cfg = config(&part, 2);
    cfg.resume = resume;
    let r2 = pack(cfg, records);
    assert_eq!(r2.train.resumed_documents, resume[0].1);
    assert_eq!(r2.train.shards.len(), r.train.shards.len() - 2);
    assert_eq!(r2.train.shards[..], r.train.shards[2..]);
    let mut a = dir_bytes(&full);
    let b = dir_bytes(&part);
    a.retain(|k, _| !k.ends_with(".tmp"));
    assert_eq!(a, b);
}

#[test]
fn files_near_dedup_and_redaction() {
    let d = tmpdir("files");
    let inputs = tmpdir("files-in");
    let base: String = (0..200)
        .map(|i| format!("value_{i} = compute({i}, {})\n", i * 7))
        .collect();
    let near = base.replacen("compute(3,", "compute(4,", 1);
    let secret = format!("{base}EMAIL = 'someone@example.com'\n").replace("value_", "other_");
    fs::write(inputs.join("a.py"), &base).unwrap();
    fs::write(inputs.join("b.py"), &near).unwrap();
    fs::write(inputs.join("c.py"), &secret).unwrap();
    fs::write(inputs.join("d.py"), b"\xff\xfe not utf-8").unwrap();
    let mut cfg = config(&d, 2);
    cfg.valid_fraction = 0.0;
    cfg.near_dedup = Some(NearConfig::default());
    cfg.redact = true;
    cfg.shard_tokens = 1_000_000;
    let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
    for f in ["a.py", "b.py", "c.py", "d.py"] {
        p.add_file(&inputs.join(f), Some(f)).unwrap();
    }
    assert!(p.add_file(&inputs.join("missing.py"), None).is_err());
    let r = p.finish().unwrap();
    assert_eq!(r.files, 4);
    assert_eq!(r.skipped_files.len(), 1);
    assert_eq!(r.removed.get("near_duplicate"), Some(&1));
    assert_eq!(r.redactions.get(crate::clean::redact::Kind::Email), 1);
    let docs = read_docs(&d, "train");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0], base);
    assert!(docs[1].ends_with("EMAIL = '<EMAIL>'\n"));
}

#[test]
fn file_reader_runs_in_the_pool_for_any_thread_count() {
    // The reader works on a pool thread and runs pending jobs while it waits for a
    // ticket; with one thread it is the only worker. Tiny batches and one or two batches
    // in flight exercise that hand-off; the shards equal those of `add_records`.
    let records = corpus(200);
    let inputs = tmpdir("pool-in");
    let jsonl: String = records
        .iter()
        .map(|r| {
            let obj = serde_json::json!({
                "content": r.text, "repo_name": r.repo_name, "path": r.path,
            });
            format!("{obj}\n")
        })
        .collect();
    let file = inputs.join("corpus.jsonl");
    fs::write(&file, jsonl).unwrap();
    let want_dir = tmpdir("pool-want");
    pack(config(&want_dir, 2), records);
    let want = dir_bytes(&want_dir);
    for threads in [1, 2, 3] {
        for in_flight in [1, 2] {
            let d = tmpdir(&format!("pool-{threads}-{in_flight}"));
            let mut cfg = config(&d, threads);
            cfg.max_in_flight = in_flight;
            let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
            p.add_file(&file, None).unwrap();
            let r = p.finish().unwrap();
            assert_eq!(r.documents_in, 200);
            assert_eq!(
                dir_bytes(&d),
                want,
                "threads={threads} in_flight={in_flight}"
            );
        }
    }
}

#[test]
fn cancel_stops_reading_a_file() {
    let records = corpus(3000);
    let inputs = tmpdir("cancel-in");
    let jsonl: String = records
        .iter()
        .map(|r| format!("{}\n", serde_json::json!({ "content": r.text })))
        .collect();
    let file = inputs.join("corpus.jsonl");
    fs::write(&file, jsonl).unwrap();
    let d = tmpdir("cancel");
    let mut cfg = config(&d, 2);
    cfg.max_in_flight = 2;
    let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
    let progress = p.progress();
    let canceller = std::thread::spawn(move || {
        while progress.documents() == 0 {
            std::thread::yield_now();
        }
        progress.cancel();
    });
    let err = p.add_file(&file, None).unwrap_err();
    canceller.join().unwrap();
    assert!(err.is_interrupted(), "{err}");
    assert!(err.to_string().contains("corpus.jsonl"), "{err}");
    // What was read before the cancel still flows through; the rest was never read.
    let r = p.finish().unwrap();
    assert!(
        r.documents_in > 0 && r.documents_in < 3000,
        "{}",
        r.documents_in
    );
}

#[test]
fn abort_keeps_full_shards_and_never_closes_open_ones_early() {
    let records = corpus(3000);
    let want_dir = tmpdir("abort-ref");
    pack(config(&want_dir, 2), records.clone());
    let want = dir_bytes(&want_dir);
    let d = tmpdir("abort");
    let mut cfg = config(&d, 2);
    cfg.max_in_flight = 2;
    let mut p = Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).unwrap();
    for chunk in records[..1500].chunks(17) {
        p.add_records(chunk.to_vec()).unwrap();
    }
    drop(p); // aborted mid-stream, without finish
    let got = dir_bytes(&d);
    let bins: Vec<_> = got.keys().filter(|n| n.ends_with(".bin")).collect();
    assert!(!bins.is_empty(), "the shards that filled up are kept");
    for name in bins {
        assert_eq!(
            got[name], want[name],
            "{name} differs from the uninterrupted run"
        );
    }
    assert!(
        got.keys().any(|n| n.ends_with(".tmp")),
        "the open shards stay .tmp"
    );
}

#[test]
fn write_error_is_reported() {
    let d = tmpdir("err");
    let cfg = config(&d.join("file-not-dir"), 2);
    fs::write(d.join("file-not-dir"), b"x").unwrap();
    assert!(Packer::new(cfg, bytes_tokenizer(), Box::new(|_| {})).is_err());
    // A tokenizer that panics: the error surfaces from finish, nothing hangs.
    let d2 = tmpdir("err2");
    let boom: Tokenize = Arc::new(|_: &str, _: &mut Vec<u32>| panic!("boom"));
    let mut p = Packer::new(config(&d2, 2), boom, Box::new(|_| {})).unwrap();
    let _ = p.add_records(corpus(100));
    let e = p.finish().unwrap_err();
    // A worker panic is an internal error (RuntimeError in Python), not an I/O error.
    assert!(matches!(e.kind(), Kind::Panic(m) if m == "boom"), "{e}");
}

/// Input files for the prepared-file tests: exact and near duplicates spread over different
/// files, a secret to redact, a filtered document, a file that is not UTF-8 and JSON lines
/// with bad records.
fn spread_inputs(name: &str) -> (PathBuf, Vec<Input>) {
    let inputs = tmpdir(name);
    let mut records = corpus(120);
    let base: String = (0..200)
        .map(|i| format!("value_{i} = compute({i}, {})\n", i * 7))
        .collect();
    records[5].text = base.clone();
    records[70].text = base.replacen("compute(3,", "compute(4,", 1);
    records[100].text = records[10].text.clone();
    records[40].text = format!("{}KEY = 'someone@example.com'\n", records[40].text);
    records[41].text = "x".repeat(5000);
    let mut files = Vec::new();
    for (i, chunk) in records.chunks(40).enumerate() {
        let mut jsonl: String = chunk
            .iter()
            .map(|r| {
                let obj = serde_json::json!({
                    "content": r.text, "repo_name": r.repo_name, "path": r.path,
                });
                format!("{obj}\n")
            })
            .collect();
        jsonl.push_str("{\"other\": 1}\nnot json\n");
        let f = inputs.join(format!("part-{i}.jsonl"));
        fs::write(&f, jsonl).unwrap();
        files.push(Input {
            path: f,
            name: Some(format!("part-{i}.jsonl")),
        });
    }
    let bad = inputs.join("bad.py");
    fs::write(&bad, b"\xff\xfe not utf-8").unwrap();
    files.insert(
        1,
        Input {
            path: bad,
            name: Some("bad.py".into()),
        },
    );
    // A gzip file cut short: the documents before the cut are read, the rest skipped.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for r in corpus(400).iter().skip(200) {
        let line = serde_json::json!({"content": r.text, "path": r.path}).to_string();
        std::io::Write::write_all(&mut gz, format!("{line}\n").as_bytes()).unwrap();
    }
    let gz = gz.finish().unwrap();
    let cut = inputs.join("cut.jsonl.gz");
    fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    files.insert(
        3,
        Input {
            path: cut,
            name: Some("cut.jsonl.gz".into()),
        },
    );
    (inputs, files)
}

fn spread_config(dir: &Path, threads: usize) -> PackConfig {
    let mut cfg = config(dir, threads);
    cfg.near_dedup = Some(NearConfig::default());
    cfg.redact = true;
    cfg.clean.max_line_length = Some(1000);
    cfg
}

#[test]
fn prepared_files_give_the_packers_shards_and_report() {
    let (inputs, files) = spread_inputs("prep-in");
    let want_dir = tmpdir("prep-want");
    let mut p = Packer::new(
        spread_config(&want_dir, 2),
        bytes_tokenizer(),
        Box::new(|_| {}),
    )
    .unwrap();
    p.add_files(&files, &mut |_, _| true).unwrap();
    let want = p.finish().unwrap();
    assert_eq!(want.removed.get("exact_duplicate"), Some(&1));
    assert_eq!(want.removed.get("near_duplicate"), Some(&1));
    assert_eq!(want.removed.get("max_line_length"), Some(&1));
    assert_eq!(want.skipped_files.len(), 2);
    assert!(want.documents_in > 120 && want.documents_in < 320);
    assert_eq!(want.invalid_records, 6);
    assert!(want.redactions.total() > 0);
    let key = [7u8; 32];
    // Prepare each file with 1 and 2 threads: the same bytes.
    let mut prepared = Vec::new();
    for (i, input) in files.iter().enumerate() {
        let out = inputs.join(format!("prep-{i}.bin"));
        let shown = input.path.display().to_string();
        let cfg = spread_config(&want_dir, 1);
        let s1 = prepared::prepare(&cfg, bytes_tokenizer(), input, &shown, &key, &out).unwrap();
        let one = fs::read(&out).unwrap();
        let cfg = spread_config(&want_dir, 2);
        let s2 = prepared::prepare(&cfg, bytes_tokenizer(), input, &shown, &key, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), one);
        assert_eq!(s1, s2);
        prepared.push(out);
    }
    // Fed in input order, with 1 and 3 threads: the packer's shards and report.
    for threads in [1, 3] {
        let d = tmpdir(&format!("prep-got-{threads}"));
        let mut p = Packer::new(
            spread_config(&d, threads),
            bytes_tokenizer(),
            Box::new(|_| {}),
        )
        .unwrap();
        for f in &prepared {
            p.add_prepared(f, &key).unwrap();
        }
        let got = p.finish().unwrap();
        assert_eq!(got, want, "threads={threads}");
        assert_eq!(dir_bytes(&d), dir_bytes(&want_dir), "threads={threads}");
    }
    // A stale (other key), truncated or corrupt prepared file is an error naming it.
    let d = tmpdir("prep-bad");
    let mut p = Packer::new(spread_config(&d, 1), bytes_tokenizer(), Box::new(|_| {})).unwrap();
    let e = p.add_prepared(&prepared[0], &[8u8; 32]).unwrap_err();
    assert!(e.to_string().contains("stale"), "{e}");
    assert_eq!(e.path(), Some(prepared[0].as_path()));
    let b = fs::read(&prepared[0]).unwrap();
    fs::write(&prepared[0], &b[..b.len() - 1]).unwrap();
    assert!(prepared::check(&prepared[0], &key).is_err());
    let mut flipped = b.clone();
    flipped[60] ^= 1;
    fs::write(&prepared[0], &flipped).unwrap();
    let e = prepared::check(&prepared[0], &key).err().unwrap();
    assert!(e.to_string().contains("checksum"), "{e}");
    fs::write(&prepared[0], b"short").unwrap();
    assert!(prepared::check(&prepared[0], &key).is_err());
    // With `strict`, the damaged file is an error in preparing.
    let mut cfg = spread_config(&d, 1);
    cfg.strict = true;
    let out = inputs.join("strict.bin");
    assert!(prepared::prepare(&cfg, bytes_tokenizer(), &files[3], "cut", &key, &out).is_err());
}

#[test]
fn prepared_records_with_caller_counts_match_the_packer() {
    // The path the Python-side filters take: records read by the caller, documents it
    // removed and files it could not finish, recorded in the prepared file.
    let records = corpus(150);
    let want_dir = tmpdir("prep-rec-want");
    let mut p = Packer::new(config(&want_dir, 2), bytes_tokenizer(), Box::new(|_| {})).unwrap();
    p.add_records(records[..90].to_vec()).unwrap();
    p.count_removed("python_syntax", 3, 300);
    p.count_invalid(2);
    p.add_records(records[90..].to_vec()).unwrap();
    let mut want = p.finish().unwrap();
    want.skipped_files
        .push(("f.jsonl".into(), "cut short".into()));
    let key = [3u8; 32];
    let inputs = tmpdir("prep-rec-in");
    let (a, b) = (inputs.join("a.bin"), inputs.join("b.bin"));
    let cfg = config(&want_dir, 3);
    let mut pa = prepared::Preparer::create(&cfg, bytes_tokenizer(), &key, &a).unwrap();
    pa.add_records(records[..90].to_vec()).unwrap();
    pa.count_removed("python_syntax", 3, 300);
    pa.finish().unwrap();
    let mut pb = prepared::Preparer::create(&cfg, bytes_tokenizer(), &key, &b).unwrap();
    for chunk in records[90..].chunks(7) {
        pb.add_records(chunk.to_vec()).unwrap();
    }
    pb.count_invalid(2);
    pb.count_skipped("f.jsonl", "cut short");
    let s = pb.finish().unwrap();
    assert_eq!(s.documents_in, 60);
    let d = tmpdir("prep-rec-got");
    let mut p = Packer::new(config(&d, 1), bytes_tokenizer(), Box::new(|_| {})).unwrap();
    p.add_prepared(&a, &key).unwrap();
    p.add_prepared(&b, &key).unwrap();
    assert_eq!(p.finish().unwrap(), want);
    assert_eq!(dir_bytes(&d), dir_bytes(&want_dir));
}
