//! Secrets and passwords assigned to a telling name, found by reading the code around each
//! name by hand rather than with one regex per assignment form.
//!
//! At each word that contains `secret`, `token`, `key`, `pass`, `pwd` or `passphrase` (one
//! multi-literal search; see [`Literals`]), the whole name is read (`[A-Za-z0-9_-]`, so header names
//! like `X-Auth-Token` count) and classified ([`name_kind`]). Then the assignment form:
//!
//! * `name = v`, `name := v`, `name => v`, `name: v` (dicts, YAML), `name: Type = v`
//!   (annotations, keyword defaults in signatures), `f(name=v)` (keyword arguments);
//! * a quoted name: `d["name"] = v`, `os.environ["NAME"] = v`, `{"name": v}`,
//!   `getenv("NAME", v)`, `setdefault("NAME", v)`;
//!
//! and the value: one or more string literals (any prefix, single or triple quotes), in
//! parentheses or not, concatenated by juxtaposition or `+`; or, where no code can be (a
//! comment line, `name: v` at the end of a line, `;name=v;` in a connection string,
//! `?name=v&` in a query), an unquoted value. The value is checked by
//! [`accept_value`](crate::clean::redact_checks::accept_value); each literal's contents are
//! redacted, never the quotes or the code around them.
//!
//! Linear time: a word is read once however many trigger literals it holds (the next hit
//! inside it is skipped), look-back is bounded (200 bytes), and the value reader stops after
//! 4 KiB.

use crate::clean::redact::{charge, Kind};
use crate::clean::redact_checks::accept_value;

/// Literal triggers: each word in lower case, Capitalized and UPPER case (other mixed
/// spellings such as `sEcReT` are not looked for; camelCase names are found through their
/// Capitalized part, e.g. `apiKey` through `Key`).
///
/// One search for all spellings: a regex that is an alternation of literals runs as the
/// regex crate's SIMD multi-literal prefilter (Teddy). Measured on 60 MB of Python (one core,
/// busy machine): one `memmem` pass per spelling, 18 spellings, took 167 ms of a 499 ms
/// redaction, the one search 52 ms; earlier, an `ascii_case_insensitive` Aho-Corasick
/// automaton scanned at 560 MB/s.
pub(crate) struct Literals(regex::bytes::Regex);

impl Literals {
    pub(crate) fn spellings(words: &[&str]) -> Literals {
        let mut all = Vec::new();
        for w in words {
            let mut cap = w.to_ascii_lowercase();
            cap[..1].make_ascii_uppercase();
            all.extend([w.to_ascii_lowercase(), cap, w.to_ascii_uppercase()]);
        }
        all.sort();
        all.dedup();
        let alternation: Vec<String> = all.iter().map(|w| regex::escape(w)).collect();
        Literals(regex::bytes::Regex::new(&alternation.join("|")).expect("literal pattern"))
    }

    /// Start offsets of the (non-overlapping) occurrences, sorted.
    pub(crate) fn find_all(&self, hay: &[u8]) -> Vec<usize> {
        self.0.find_iter(hay).map(|m| m.start()).collect()
    }
}

fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn is_quote(c: u8) -> bool {
    c == b'"' || c == b'\''
}

/// Parts of a name (after the first) that make it a reference to a secret (its URL, file,
/// variable name, type, ...), not the secret: `TOKEN_URL`, `api_key_file`, `SECRET_NAME`.
const NOT_A_HOLDER: [&str; 29] = [
    "url",
    "uri",
    "path",
    "file",
    "filename",
    "name",
    "names",
    "type",
    "env",
    "var",
    "field",
    "fields",
    "dir",
    "endpoint",
    "prefix",
    "header",
    "length",
    "len",
    "size",
    "pattern",
    "regex",
    "re",
    "format",
    "template",
    "label",
    "placeholder",
    "prompt",
    "help",
    "hash",
];

/// What a name holds, if it looks like a secret's: `Password` or `GenericSecret`, and whether
/// it is a short `pass` name ([`short_pass`]) whose value must look like a password. Runs at
/// every trigger word (`key` is common in code), so it allocates nothing (a first version
/// built a `String` and 30 `format!`s per word).
pub(crate) fn name_kind(name: &[u8]) -> Option<(Kind, bool)> {
    let mut buf = [0u8; 128];
    let n = name.len().min(128);
    for (d, &c) in buf.iter_mut().zip(&name[..n]) {
        *d = if c == b'-' {
            b'_'
        } else {
            c.to_ascii_lowercase()
        };
    }
    let lower = &buf[..n];
    let has = |w: &[u8]| memchr::memmem::find(lower, w).is_some();
    // `db_pass` (but not `db_password`) asks more of its value: `weak`.
    let mut weak = false;
    let kind = if has(b"passw") || has(b"pwd") || has(b"passphrase") {
        Kind::Password
    } else if has(b"pass") && short_pass(name) {
        weak = true;
        Kind::Password
    } else if has(b"secret")
        || (has(b"token") && !has(b"tokeniz") && !has(b"tokenis"))
        || [
            &b"api_key"[..],
            b"apikey",
            b"access_key",
            b"accesskey",
            b"private_key",
        ]
        .iter()
        .chain(&[&b"privatekey"[..], b"auth_key", b"authkey"])
        .any(|w| has(w))
    {
        Kind::GenericSecret
    } else {
        return None;
    };
    let mut parts = lower.split(|&c| c == b'_').filter(|p| !p.is_empty());
    // `ERR_PASSWDMISMATCH = "464"`, `PASSWORD_REQUIRED_MSG`: a message about a password.
    let message = parts
        .clone()
        .any(|p| MESSAGE.iter().any(|w| w.as_bytes() == p));
    parts.next();
    let holder = parts.any(|p| NOT_A_HOLDER.iter().any(|w| w.as_bytes() == p) || p == b"hashers");
    (!holder && !message).then_some((kind, weak))
}

const MESSAGE: [&str; 8] = [
    "err", "error", "msg", "message", "mismatch", "invalid", "required", "missing",
];

/// A name that says `pass` for password without spelling it out (`SMTP_PASS`, `redis_pass`,
/// `dbPass`, a `"pass"` key) -- a part `pass` between underscores or dashes, or a final
/// camelCase `Pass` -- and is not about passing tests or passing through (`TEST_PASS`,
/// `PASS_THROUGH`, `pass_count`). Its values are checked harder ([`plausible_password`]): in code,
/// `PASS = "PASS"` is far more often a status than a secret.
pub(crate) fn short_pass(name: &[u8]) -> bool {
    const NOT_SECRET: [&[u8]; 15] = [
        b"test", b"tests", b"through", b"thru", b"fail", b"status", b"result", b"count", b"rate",
        b"mark", b"num", b"first", b"second", b"last", b"next",
    ];
    // camelCase words that end in `Pass` without meaning a password.
    const WORDS: [&[u8]; 4] = [b"byPass", b"ByPass", b"comPass", b"surPass"];
    let n = name.len();
    let camel = n > 4
        && name.ends_with(b"Pass")
        && name[n - 5].is_ascii_lowercase()
        && !WORDS.iter().any(|w| name.ends_with(w));
    let mut parts = name
        .split(|&c| c == b'_' || c == b'-')
        .filter(|p| !p.is_empty());
    let part = parts.clone().any(|p| p.eq_ignore_ascii_case(b"pass"));
    (camel || part) && !parts.any(|p| NOT_SECRET.iter().any(|w| p.eq_ignore_ascii_case(w)))
}

/// A value that can be a password rather than a status or a mode: 4+ bytes, not a word
/// about passing or failing (`"PASS"`, `"passed"`, `"passthrough"`), not a common keyword
/// value (`"continue"`, `"none"`), and not a snake_case identifier (`"twisted_test"`).
/// Weak passwords count (`db_pass = "root"`): they are credentials all the same.
pub(crate) fn plausible_password(value: &str) -> bool {
    const WORDS: [&str; 10] = [
        "true", "false", "none", "null", "yes", "continue", "skip", "skipped", "ignore", "break",
    ];
    let lower = value.to_ascii_lowercase();
    let word = lower.contains("pass") || lower.contains("fail") || WORDS.contains(&lower.as_str());
    let snake = value.contains('_') && value.bytes().all(|c| c.is_ascii_lowercase() || c == b'_');
    value.len() >= 4 && !word && !snake
}

/// Whether the literal whose opening quote is at `q` is the first argument of a call that
/// takes a default next: `getenv("NAME", v)`, `.get(`, `.setdefault(`, `.pop(`. Other
/// `("password", x)` pairs are lists of names or arguments, not assignments.
fn default_call(b: &[u8], q: usize) -> bool {
    let mut i = q;
    while i > 0 && q - i < 2 && b"rRbBuU".contains(&b[i - 1]) {
        i -= 1;
    }
    while i > 0 && b[i - 1] == b' ' {
        i -= 1;
    }
    if i == 0 || b[i - 1] != b'(' {
        return false;
    }
    let head = &b[i.saturating_sub(11)..i - 1];
    [&b"getenv"[..], b".get", b"setdefault", b".pop"]
        .iter()
        .any(|w| head.ends_with(w))
}

/// Every assigned secret in `text`, as content spans of its literals (or of the unquoted value).
pub(crate) fn assignments(text: &str, lits: &Literals, found: &mut Vec<(usize, usize, Kind)>) {
    let b = text.as_bytes();
    let mut next_free = 0; // hits before this offset are inside a word already read
    for hit in lits.find_all(b) {
        if hit < next_free {
            continue;
        }
        let mut ws = hit;
        while ws > next_free && is_name(b[ws - 1]) {
            ws -= 1;
        }
        let mut we = hit;
        while we < b.len() && is_name(b[we]) {
            we += 1;
        }
        charge(we - ws);
        next_free = we;
        if we - ws > 128 {
            continue;
        }
        let Some((kind, weak)) = name_kind(&b[ws..we]) else {
            continue;
        };
        assignment(text, ws, we, kind, weak, found);
    }
}

/// Skips spaces and tabs.
fn blanks(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && matches!(b[p], b' ' | b'\t') {
        p += 1;
    }
    p
}

/// Skips all whitespace, newlines included.
fn space(b: &[u8], mut p: usize) -> usize {
    while p < b.len() && b[p].is_ascii_whitespace() {
        p += 1;
    }
    p
}

/// The operator after the name `[ws, we)`: where the value starts and what it may be.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// Code: only string literals are values.
    Code,
    /// `name: value` with the line ending after the value (YAML, docstrings, comments).
    Colon,
    /// `name=value` after a space: a literal (a keyword argument), or an unquoted value
    /// followed by `;`, `&`, a quote or ` next=` (a `key=value key=value` string).
    Spaced,
    /// `;name=v`, `&name=v`, `?name=v`: inside a string; unquoted values only.
    InString,
    /// `name = value` on a comment line: a literal or an unquoted value to the line end.
    Comment,
}

fn operator(b: &[u8], ws: usize, we: usize) -> Option<(usize, Form)> {
    let quoted = ws > 0 && is_quote(b[ws - 1]);
    let mut p = we;
    if quoted {
        if b.get(p) != Some(&b[ws - 1]) {
            return None;
        }
        p += 1;
    }
    p = blanks(b, p);
    let c = *b.get(p)?;
    let next = b.get(p + 1).copied().unwrap_or(0);
    match c {
        b']' if quoted => {
            p = blanks(b, p + 1);
            (b.get(p) == Some(&b'=') && b.get(p + 1) != Some(&b'=')).then_some((p + 1, Form::Code))
        }
        b',' if quoted && default_call(b, ws - 1) => Some((p + 1, Form::Code)),
        b'=' if next == b'=' => None,
        b'=' if next == b'>' => Some((p + 2, Form::Code)),
        b'=' => {
            let before = if ws > 0 { b[ws - 1] } else { b'\n' };
            let form = if comment_line(b, ws) {
                Form::Comment
            } else if matches!(before, b';' | b'&' | b'?') {
                Form::InString
            } else if before == b' ' && !quoted && p == we {
                Form::Spaced
            } else {
                Form::Code
            };
            Some((p + 1, form))
        }
        b':' if next == b'=' => Some((p + 2, Form::Code)),
        b':' => {
            let v = blanks(b, p + 1);
            if quoted || b.get(v).is_some_and(|&c| is_quote(c) || c == b'(') {
                return Some((v, Form::Code));
            }
            // An annotation `name: Type = value`: the type runs to `=` on the same line.
            let mut q = v;
            while q < b.len()
                && q - v < 100
                && (b[q].is_ascii_alphanumeric() || b" _.,|[]".contains(&b[q]))
            {
                q += 1;
            }
            if q < b.len() && b[q] == b'=' && b.get(q + 1) != Some(&b'=') && q > v {
                return Some((q + 1, Form::Code));
            }
            Some((v, Form::Colon))
        }
        _ => None,
    }
}

/// Whether the line holding `p` starts (after blanks) with `#` or `//`; looks back 200 bytes.
fn comment_line(b: &[u8], p: usize) -> bool {
    let lo = p.saturating_sub(200);
    let Some(nl) = memchr::memrchr(b'\n', &b[lo..p])
        .map(|i| lo + i + 1)
        .or((lo == 0).then_some(0))
    else {
        return false;
    };
    let s = blanks(b, nl);
    b[s..].starts_with(b"#") || b[s..].starts_with(b"//")
}

/// One string literal at `p` (optional prefix): `(content start, content end, after, f-string)`.
fn literal(b: &[u8], p: usize) -> Option<(usize, usize, usize, bool)> {
    let mut q = p;
    let mut fstring = false;
    while q < b.len() && q - p < 2 && b"rRbBuUfF".contains(&b[q]) {
        fstring |= b[q] == b'f' || b[q] == b'F';
        q += 1;
    }
    let quote = *b.get(q).filter(|&&c| is_quote(c))?;
    let triple = b.len() > q + 2 && b[q + 1] == quote && b[q + 2] == quote;
    let start = if triple { q + 3 } else { q + 1 };
    let mut i = start;
    while i < b.len() && i - start < 4096 {
        match b[i] {
            b'\\' => i += 2,
            b'\n' if !triple => return None,
            c if c == quote => {
                if !triple {
                    return Some((start, i, i + 1, fstring));
                }
                if b.len() > i + 2 && b[i + 1] == quote && b[i + 2] == quote {
                    return Some((start, i, i + 3, fstring));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

fn assignment(
    text: &str,
    ws: usize,
    we: usize,
    kind: Kind,
    weak: bool,
    found: &mut Vec<(usize, usize, Kind)>,
) {
    let b = text.as_bytes();
    let Some((p, form)) = operator(b, ws, we) else {
        return;
    };
    let mut p = blanks(b, p);
    let paren = b.get(p) == Some(&b'(');
    if paren {
        p = space(b, p + 1);
    }
    let mut parts: Vec<(usize, usize)> = Vec::new();
    let mut templated = false;
    // In a string (`;pwd=v;`) a quote ends the string: only unquoted values there.
    while let Some((s, e, after, fstring)) = literal(b, p).filter(|_| form != Form::InString) {
        charge(after - p);
        parts.push((s, e));
        templated |= fstring && b[s..e].contains(&b'{');
        let mut q = if paren {
            space(b, after)
        } else {
            blanks(b, after)
        };
        if b.get(q) == Some(&b'+') {
            q = if paren {
                space(b, q + 1)
            } else {
                blanks(b, q + 1)
            };
        } else if b.get(q) == Some(&b'\\') && b.get(q + 1) == Some(&b'\n') {
            q = blanks(b, q + 2);
        }
        p = q;
    }
    // `x = (b"user", b"password")` is a tuple, `x = ("a" "b")` a parenthesised value.
    if paren && !parts.is_empty() && b.get(p) != Some(&b')') {
        return;
    }
    if parts.is_empty() {
        if form == Form::Code || paren {
            return;
        }
        // An unquoted value, where code cannot be.
        let mut e = p;
        while e < b.len() && e - p < 200 && !b" \t\r\n'\"`;&,()[]{}<>".contains(&b[e]) {
            e += 1;
        }
        charge(e - p);
        let line_end = blanks(b, e) >= b.len() || matches!(b[blanks(b, e)], b'\n' | b'\r');
        let end_ok = match form {
            Form::Colon | Form::Comment => line_end,
            _ => {
                e >= b.len()
                    || matches!(b[e], b';' | b'&' | b'"' | b'\'')
                    || (b[e] == b' ' && key_equals(b, e + 1))
            }
        };
        // `password: str` (an annotation at the end of a line) has no digit; unquoted
        // secrets need one, and 6+ characters.
        let v = &b[p..e];
        if e - p >= 6 && end_ok && v.iter().any(u8::is_ascii_digit) {
            parts.push((p, e));
        }
    }
    if parts.is_empty() || templated {
        return;
    }
    let value: Vec<u8> = parts
        .iter()
        .flat_map(|&(s, e)| b[s..e].iter().copied())
        .collect();
    let Ok(value) = std::str::from_utf8(&value) else {
        return;
    };
    if accept_value(kind, value) && (!weak || plausible_password(value)) {
        for (s, e) in parts {
            if e > s {
                found.push((s, e, kind));
            }
        }
    }
}

/// Whether `p` starts `word=` (the next term of a `key=value key=value` string).
fn key_equals(b: &[u8], p: usize) -> bool {
    let mut q = p;
    while q < b.len() && q - p < 40 && (b[q].is_ascii_alphanumeric() || b[q] == b'_') {
        q += 1;
    }
    q > p && b.get(q) == Some(&b'=')
}
