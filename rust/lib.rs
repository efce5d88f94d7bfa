//! codekiln's Rust core: a code-aware byte-level BPE tokenizer and the data pipeline that
//! turns a code corpus into token shards. One crate, one folder per concern:
//!
//! ```text
//! corpus/   reading documents from files (one engine for every multi-file reader)
//! bpe/      pre-tokenizer, piece counts, trainer, encoder, vocabulary
//! clean/    document filters, exact and near deduplication, secret/PII redaction
//! pack/     the shard packer: config, pipeline, stages, train/valid split, shard format
//! py/       the Python bindings (the only pyo3 code; `python` feature)
//! error.rs  the one error type;  parallel.rs  the only place thread pools are built
//! ```
//!
//! Dependencies run one way: `bpe` uses neither `clean` nor `pack`; `pack` never uses `bpe`
//! (it receives a tokenize closure); only `py` knows both products. `layering_tests` below
//! checks this on the source files. Pure Rust: `cargo test` needs no Python.

pub mod bpe;
pub mod clean;
pub mod corpus;
pub mod error;
pub mod pack;
pub mod parallel;

pub use error::{Error, Result};

#[cfg(feature = "python")]
mod py;

/// The dependency rules, checked on the source text (a `use` is the only way one module
/// reaches another). Comments are skipped, so docs may name what a module must not use.
#[cfg(test)]
mod layering_tests {
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    /// (file relative to `rust/`, its code without comments) for every source file.
    fn code() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rust");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(files.len() > 20, "found only {} files", files.len());
        files
            .into_iter()
            .map(|p| {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&p).unwrap();
                let code: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                (rel, code.join("\n"))
            })
            .collect()
    }

    /// Files under `dir` (or the file `dir`) must not mention any of `forbidden`.
    fn check(dir: &str, forbidden: &[&str], why: &str) {
        let mut seen = 0;
        for (rel, code) in code() {
            if rel == dir || rel.starts_with(&format!("{dir}/")) {
                seen += 1;
                for f in forbidden {
                    assert!(!code.contains(f), "rust/{rel} uses `{f}`: {why}");
                }
            }
        }
        assert!(seen > 0, "no files under rust/{dir}");
    }

    #[test]
    fn one_way_dependencies() {
        let rule = "bpe never uses clean or pack";
        check("bpe", &["crate::clean", "crate::pack", "crate::py"], rule);
        let rule = "pack never uses bpe: the packer gets a tokenize closure";
        check("pack", &["crate::bpe", "crate::py"], rule);
        let rule = "clean is below pack and beside bpe";
        check("clean", &["crate::bpe", "crate::pack", "crate::py"], rule);
        let rule = "corpus is the bottom layer (what an input is)";
        check(
            "corpus",
            &["crate::bpe", "crate::clean", "crate::pack", "crate::py"],
            rule,
        );
        let rule = "config is the packer's leaf; stages never reach back into packer";
        check("pack/config.rs", &["pack::packer", "pack::stages"], rule);
        check("pack/stages.rs", &["pack::packer"], rule);
        check("pack/shard.rs", &["pack::packer", "pack::stages"], rule);
        check("pack/split.rs", &["pack::packer", "pack::stages"], rule);
    }

    #[test]
    fn pyo3_and_pools_stay_in_their_files() {
        // lib.rs is skipped: it declares modules and holds these checks (and their strings).
        for (rel, code) in code().into_iter().filter(|(rel, _)| rel != "lib.rs") {
            if !rel.starts_with("py/") {
                assert!(
                    !code.contains("pyo3"),
                    "rust/{rel} uses pyo3 outside rust/py/"
                );
            }
            if rel != "parallel.rs" {
                assert!(
                    !code.contains("ThreadPoolBuilder"),
                    "rust/{rel} builds a thread pool: pools come from parallel.rs"
                );
            }
            assert!(
                !code.contains("crate::{"),
                "rust/{rel}: name modules in full (`use crate::a::b`) so these checks see them"
            );
        }
    }
}
