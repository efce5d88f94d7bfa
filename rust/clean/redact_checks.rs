//! The checks in code that follow a redaction regex match, for what a regex cannot express
//! (see `redact.rs` for the rules): letters, digits and entropy of generic secrets, what a
//! password literal may not be, which IPv4 addresses are public and not version numbers.
//! A match is redacted only when [`accept`] says so.

use crate::clean::redact::Kind;

/// Checks in code for what the regexes cannot express.
pub(crate) fn accept(kind: Kind, text: &str, s: usize, e: usize) -> bool {
    let value = &text[s..e];
    match kind {
        Kind::GenericSecret => {
            let has_alpha = value.bytes().any(|b| b.is_ascii_alphabetic());
            let has_digit = value.bytes().any(|b| b.is_ascii_digit());
            // `text` starts at the assigned name (the detector is anchored there).
            let name: String = text
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .map(|b| b.to_ascii_lowercase() as char)
                .collect();
            // `tokenizer_name = "tekken_240911.json"`: a tokenizer is not a token.
            let tokenizer_only = (name.contains("tokeniz") || name.contains("tokenis"))
                && !name.contains("secret")
                && !name.contains("key");
            // A file name or a version suffix (`model_240323.json`, `x.model.v3`) ends in a
            // short dotted part; dotted secrets (JWTs, OAuth tokens) end in a long one.
            let file_like = value
                .rsplit_once('.')
                .is_some_and(|(_, last)| (1..=5).contains(&last.len()));
            has_alpha && has_digit && !tokenizer_only && !file_like && entropy(value) >= 3.0
        }
        Kind::Password | Kind::UrlPassword => {
            let templated = value.contains(['{', '}', '%', '$', '<', '>', '*']);
            let lower = value.to_ascii_lowercase();
            let name_like = matches!(
                lower.as_str(),
                "password" | "passwd" | "pwd" | "passphrase" | "none" | "null" | "true" | "false"
            ) || lower.starts_with("password")
                || lower.starts_with("pass_");
            !templated && !name_like
        }
        Kind::Ip => public_ipv4(text, s, e),
        _ => true,
    }
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn public_ipv4(text: &str, s: usize, e: usize) -> bool {
    let b = text.as_bytes();
    // Part of a longer dotted run or a name: 1.2.3.4.5, 2.10.0.1.post3, flowplayer-3.2.0.1,
    // section-4.3.4.1, v1.2.3.4.
    if s > 0 && (matches!(b[s - 1], b'.' | b'-' | b'_' | b'#') || b[s - 1].is_ascii_alphanumeric())
    {
        return false;
    }
    if e + 1 < b.len() && b[e] == b'.' && b[e + 1].is_ascii_alphanumeric() {
        return false;
    }
    // Version and document-section numbers. Measured on the corpus: before these checks ~40%
    // of the "IP addresses" found were RFC section numbers ("[1, 4.3.3.1]") or versions.
    let line_start = text[..s].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..s].to_ascii_lowercase();
    const CONTEXT: [&str; 7] = [
        "version", "section", "rfc", "release", "chapter", "table", "§",
    ];
    if CONTEXT.iter().any(|w| before.contains(w)) {
        return false;
    }
    let o: Vec<u32> = text[s..e]
        .split('.')
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // All octets single digits: an outline number (1.2.3.4) or a well-known public resolver
    // (8.8.8.8, 1.1.1.1) - neither is personal data.
    if o.iter().all(|&x| x < 10) {
        return false;
    }
    let (a, b2) = (o[0], o[1]);
    let special = a == 0
        || a == 10
        || a == 127
        || (a == 169 && b2 == 254)
        || (a == 172 && (16..=31).contains(&b2))
        || (a == 192 && b2 == 168)
        || (a == 100 && (64..=127).contains(&b2))
        || (a == 192 && b2 == 0 && o[2] == 2) // RFC 5737 documentation ranges
        || (a == 198 && b2 == 51 && o[2] == 100)
        || (a == 203 && b2 == 0 && o[2] == 113)
        || (a == 198 && (18..=19).contains(&b2)) // RFC 2544 benchmarking
        || a >= 224;
    !special
}
