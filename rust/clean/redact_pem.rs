//! Private-key blocks, parsed by hand rather than matched with `BEGIN(?s:.)*?END`: that regex
//! swallowed the code between two marker *strings* (on the corpus, 8 of 41 "private keys" were
//! a list comprehension or two assertions between `"-----BEGIN ..."` and `"-----END ..."`), and
//! it took quadratic time on many BEGIN lines without an END.
//!
//! A block is `-----BEGIN <label> PRIVATE KEY[ BLOCK]-----`, optional header lines
//! (`Proc-Type: ...`, `Version: ...`), then base64 tokens separated only by *separators*:
//! whitespace, `\n` escapes, and string-literal breaks (`"\n"   "` or `" + "`: a quote,
//! blanks, an optional `+`, blanks, a quote). Code cannot hide between two tokens: any other
//! character ends the body. With an END line right after the body, the block runs to the end
//! of it. Without one (a truncated key), the body ends at its first line shorter than 40
//! characters (full PEM lines are 64 characters), and must hold 16+ characters.
//!
//! Every byte is looked at a bounded number of times: the next search starts where the last
//! block (or marker) ended, so the time is linear in the text.

use memchr::memmem;

/// `[start, end)` of every private-key block in `text`.
pub(crate) fn private_keys(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let finder = memmem::Finder::new(b"-----BEGIN ");
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = finder.find(&b[pos..]) {
        let start = pos + i;
        super::redact::charge(start - pos);
        let Some(marker_end) = private_marker(b, start + 11) else {
            pos = start + 11;
            continue;
        };
        match body_end(b, marker_end) {
            Some(end) => {
                out.push((start, end));
                pos = end;
            }
            None => pos = marker_end,
        }
    }
    out
}

/// After `-----BEGIN ` / `-----END `: the label up to `-----`, if it names a private key.
fn private_marker(b: &[u8], p: usize) -> Option<usize> {
    let mut q = p;
    while q < b.len()
        && q - p < 64
        && (b[q].is_ascii_uppercase() || b[q].is_ascii_digit() || b[q] == b' ')
    {
        q += 1;
    }
    let label = &b[p..q];
    let is_key = label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK");
    (is_key && b[q..].starts_with(b"-----")).then_some(q + 5)
}

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
}

/// Skips a separator; returns the position after it (`p` when there is none).
fn separator(b: &[u8], mut p: usize) -> usize {
    loop {
        let start = p;
        while p < b.len() && matches!(b[p], b' ' | b'\t' | b'\r' | b'\n') {
            p += 1;
        }
        if p + 1 < b.len() && b[p] == b'\\' && matches!(b[p + 1], b'n' | b'r') {
            p += 2;
        } else if p < b.len() && matches!(b[p], b'"' | b'\'') {
            // A string-literal break: quote, blanks, optional `+`, blanks, optional prefix, quote.
            let mut q = p + 1;
            let blanks = |q: &mut usize| {
                while *q < b.len() && matches!(b[*q], b' ' | b'\t' | b'\r' | b'\n') {
                    *q += 1;
                }
            };
            blanks(&mut q);
            if q < b.len() && b[q] == b'+' {
                q += 1;
                blanks(&mut q);
            }
            while q < b.len()
                && q - p < 80
                && matches!(b[q], b'b' | b'r' | b'u' | b'f' | b'B' | b'R')
            {
                q += 1;
            }
            if q < b.len() && matches!(b[q], b'"' | b'\'') {
                p = q + 1;
            }
        }
        if p == start {
            return p;
        }
    }
}

/// A header line (`Proc-Type: 4,ENCRYPTED`): its end (before the line break), if `p` starts one.
fn header_line(b: &[u8], p: usize) -> Option<usize> {
    let mut q = p;
    while q < b.len() && q - p < 32 && (b[q].is_ascii_alphanumeric() || b[q] == b'-') {
        q += 1;
    }
    if q == p || q >= b.len() || b[q] != b':' {
        return None;
    }
    while q < b.len() && q - p < 256 && !matches!(b[q], b'\n' | b'\\' | b'"' | b'\'') {
        q += 1;
    }
    Some(q)
}

/// The end of the block whose BEGIN marker ends at `p`, or `None` when no key body follows.
fn body_end(b: &[u8], p: usize) -> Option<usize> {
    let mut tokens: Vec<(usize, usize)> = Vec::new();
    let mut q = p;
    loop {
        let s = separator(b, q);
        if tokens.is_empty() {
            if let Some(h) = header_line(b, s) {
                if h > s {
                    super::redact::charge(h - q);
                    q = h;
                    continue;
                }
            }
        }
        let mut e = s;
        while e < b.len() && is_b64(b[e]) {
            e += 1;
        }
        super::redact::charge(e - q);
        if e == s {
            break;
        }
        tokens.push((s, e));
        q = e;
    }
    let &(_, last) = tokens.last()?;
    let s = separator(b, last);
    if b[s..].starts_with(b"-----END ") {
        if let Some(end) = private_marker(b, s + 9) {
            return Some(end);
        }
    }
    // No END line: stop at the first short line (the last line of a PEM body).
    let mut end = last;
    for &(s, e) in &tokens {
        end = e;
        if e - s < 40 {
            break;
        }
    }
    let chars: usize = tokens
        .iter()
        .take_while(|t| t.1 <= end)
        .map(|t| t.1 - t.0)
        .sum();
    (chars >= 16).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::private_keys;

    fn spans(t: &str) -> Vec<&str> {
        private_keys(t).into_iter().map(|(s, e)| &t[s..e]).collect()
    }

    #[test]
    fn blocks_with_and_without_end() {
        let t = "K = '''-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----'''\n";
        assert_eq!(spans(t), vec![&t[7..t.len() - 4]]);
        let body = "A".repeat(64);
        let t =
            format!("k = \"-----BEGIN PRIVATE KEY-----\\n{body}\\nMIIBxyzxyzxyzxyzxyz\"\nx = 1\n");
        assert_eq!(spans(&t), vec![&t[5..t.len() - 8]]);
        // Concatenated literals in parentheses, END included.
        let t = "P = (\n  \"-----BEGIN EC PRIVATE KEY-----\\n\"\n  \"MHcCAQEEIBkg\\n\"\n  \"-----END EC PRIVATE KEY-----\\n\"\n)\n";
        let s = spans(t);
        assert_eq!(s.len(), 1);
        assert!(
            s[0].starts_with("-----BEGIN") && s[0].ends_with("KEY-----"),
            "{s:?}"
        );
        // Encrypted headers.
        let t = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,F57\n\nMIIE\n-----END RSA PRIVATE KEY-----";
        assert_eq!(spans(t), vec![t]);
    }

    #[test]
    fn marker_strings_in_code_are_not_blocks() {
        for t in [
            "b = [l for l in x if l not in (\"-----BEGIN RSA PRIVATE KEY-----\", \"-----END RSA PRIVATE KEY-----\")]",
            "assert p.startswith(\"-----BEGIN PRIVATE KEY-----\")\nassert p.endswith(\"-----END PRIVATE KEY-----\")",
            "BEGIN = \"-----BEGIN RSA PRIVATE KEY-----\"\nEND = \"-----END RSA PRIVATE KEY-----\"",
            "x = \"-----BEGIN PRIVATE KEY-----\" if a else \"-----END PRIVATE KEY-----\"",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
            "k = \"-----BEGIN PRIVATE KEY-----\\nMIIB\"", // a short stub without END
        ] {
            assert!(spans(t).is_empty(), "{t}: {:?}", spans(t));
        }
    }
}
