//! The checks in code that follow a redaction match, for what a regex cannot express (see
//! `redact.rs` for the rules): what a secret or password value may not be, which IPv4
//! addresses are public hosts and not versions or network tables, which e-mail-like strings
//! are SSH or URL user names. A match is redacted only when [`accept`] says so.

use crate::clean::redact::Kind;

/// Checks in code after a regex match `[s, e)` in `text` (a line or the whole text).
pub(crate) fn accept(kind: Kind, text: &str, s: usize, e: usize) -> bool {
    match kind {
        Kind::Ip => public_ipv4(text, s, e),
        Kind::Email => {
            let (local, domain) = text[s..e].split_once('@').unwrap_or_default();
            local.len() <= 64
                && domain.len() <= 253
                && domain.split('.').all(|l| l.len() <= 63)
                && !domain.starts_with("self.")
                && !domain.starts_with("cls.")
                && !ssh_or_url_user(text.as_bytes(), s, e)
        }
        Kind::UrlPassword => {
            // Percent-encoded characters (`p%40ss`) belong to a password; `%s` is a template.
            let v = &text[s..e];
            (!v.contains('%') || percent_encoded(v))
                && accept_value(Kind::Password, &v.replace('%', ""))
        }
        Kind::GenericSecret => accept_value(kind, &text[s..e]),
        _ => true,
    }
}

/// Whether every `%` in `v` starts a `%XX` escape.
fn percent_encoded(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
    })
}

/// Whether a value assigned to a secret's name (`kind` GenericSecret) or a password's
/// (`kind` Password) is one, not a template, a placeholder, a path, a URL or a name.
pub(crate) fn accept_value(kind: Kind, value: &str) -> bool {
    if value.is_empty() || value.len() > 512 || value.bytes().any(|c| c.is_ascii_whitespace()) {
        return false;
    }
    if templated(value) || value.contains("://") || path_like(value) {
        return false;
    }
    let lower = value.to_ascii_lowercase();
    match kind {
        Kind::GenericSecret => {
            let has_alpha = value.bytes().any(|b| b.is_ascii_alphabetic());
            let has_digit = value.bytes().any(|b| b.is_ascii_digit());
            // A file name or a version suffix (`model_240323.json`, `x.model.v3`) ends in a
            // short dotted part; dotted secrets (JWTs, OAuth tokens) end in a long one.
            let file_like = value
                .rsplit_once('.')
                .is_some_and(|(_, last)| (1..=5).contains(&last.len()));
            value.len() >= 16
                && has_alpha
                && has_digit
                && !file_like
                && !identifier_like(value)
                && entropy(value) >= 3.0
        }
        Kind::Password => {
            let name_like = matches!(
                lower.as_str(),
                "password" | "passwd" | "pwd" | "passphrase" | "none" | "null" | "true" | "false"
            ) || lower.starts_with("password")
                || lower.starts_with("pass_")
                || value.bytes().all(|c| c == b'*' || c == b'x' || c == b'X');
            // `DB_PASSWORD_ENV = "DB_PASSWORD"`: an environment variable's name.
            let env_name = value.contains('_')
                && value
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
            value.len() <= 200 && !name_like && !env_name
        }
        _ => true,
    }
}

/// `{name}`, `{}`, `%s`, `%(name)s`, `${NAME}`, `$NAME`, `<your key>`: a template or a
/// placeholder, not a value. A lone `$` or `%` inside random characters is neither.
fn templated(v: &str) -> bool {
    let b = v.as_bytes();
    if v.contains('{') && v.contains('}') || v.contains('<') && v.contains('>') {
        return true;
    }
    b.windows(2).any(|w| {
        (w[0] == b'%' && matches!(w[1], b's' | b'd' | b'(' | b'r' | b'i'))
            || (w[0] == b'$' && w[1] == b'{')
    }) || env_reference(b)
}

/// `$NAME` (an upper-case name to the end or to a non-alphanumeric byte), as in `"$DB_PW"`;
/// `r00t$Pa55` is not one.
fn env_reference(b: &[u8]) -> bool {
    b.iter().enumerate().any(|(i, &c)| {
        let name = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_')
            .count();
        c == b'$'
            && name >= 2
            && b[i + 1].is_ascii_uppercase()
            && b.get(i + 1 + name)
                .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// `/etc/app/key`, `~/x`, `./x`, `C:\x`: a path.
fn path_like(v: &str) -> bool {
    (v.starts_with('/') && v[1..].contains('/'))
        || v.starts_with("~/")
        || v.starts_with("./")
        || v.starts_with("../")
}

/// `DJANGO_SECRET_KEY_V2`, `prod_db_secret_2024`, `my-api-key`: two or more parts joined by
/// `_`, `-` or `.`, each a word (letters), a number, or a word with a 1-2 digit suffix.
fn identifier_like(v: &str) -> bool {
    let parts: Vec<&str> = v.split(['_', '-', '.']).filter(|p| !p.is_empty()).collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            let letters = p.bytes().take_while(|c| c.is_ascii_alphabetic()).count();
            let rest = &p.as_bytes()[letters..];
            rest.iter().all(|c| c.is_ascii_digit()) && (letters == 0 || rest.len() <= 2)
        })
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

/// `scheme://user@host` (preceded by `://`) or `git@host:org/repo` (followed by `:` and a
/// path): a user name in an address, not a mailbox.
fn ssh_or_url_user(b: &[u8], s: usize, e: usize) -> bool {
    let url = s >= 3 && &b[s - 3..s] == b"://";
    let scp = e + 1 < b.len() && b[e] == b':' && !b[e + 1].is_ascii_whitespace();
    url || scp
}

/// Whether `rest` (what follows a dotted quad) starts with a space and a title word: letters
/// (and `-`/`_`), then a space, `:`, `,` or the line's end -- not a dotted host name.
fn outline_title(rest: &[u8]) -> bool {
    let Some((&b' ', word)) = rest.split_first() else {
        return false;
    };
    let n = word
        .iter()
        .take(64)
        .take_while(|c| c.is_ascii_alphabetic() || matches!(c, b'-' | b'_'))
        .count();
    n >= 2 && matches!(word.get(n), None | Some(b' ' | b':' | b',' | b'\n' | b'\r'))
}

/// At most this many bytes before an address are read for context (a bound that keeps the
/// check constant-time on one long line).
const CONTEXT_BYTES: usize = 80;

fn public_ipv4(text: &str, s: usize, e: usize) -> bool {
    let b = text.as_bytes();
    // Part of a longer dotted run or a name: 1.2.3.4.5, 2.10.0.1.post3, flowplayer-3.2.0.1,
    // section-4.3.4.1, v1.2.3.4; a version pin (`==1.1.14.2`, `>=`, `~=`).
    if s > 0
        && (matches!(
            b[s - 1],
            b'.' | b'-' | b'_' | b'#' | b'=' | b'>' | b'<' | b'~'
        ) || b[s - 1].is_ascii_alphanumeric())
    {
        return false;
    }
    if e + 1 < b.len() && b[e] == b'.' && b[e + 1].is_ascii_alphanumeric() {
        return false;
    }
    // A network block `x.x.x.x/nn`; a product version `Chrome/131.0.0.0`, `Edg/120.0.2210.91`.
    if e + 1 < b.len() && b[e] == b'/' && b[e + 1].is_ascii_digit() {
        return false;
    }
    if s >= 2 && b[s - 1] == b'/' && b[s - 2].is_ascii_alphanumeric() {
        return false;
    }
    // Version, OID and document-section numbers. Measured on the corpus: before these checks
    // ~40% of the "IP addresses" found were RFC section numbers ("[1, 4.3.3.1]") or versions.
    let mut lo = s.saturating_sub(CONTEXT_BYTES);
    while !text.is_char_boundary(lo) {
        lo += 1;
    }
    let line_start = text[lo..s].rfind('\n').map_or(lo, |i| lo + i + 1);
    let before = text[line_start..s].to_ascii_lowercase();
    const CONTEXT: [&str; 11] = [
        "version", "section", "rfc", "release", "chapter", "table", "§", "oid", "build", "mozilla",
        "agent",
    ];
    if CONTEXT.iter().any(|w| before.contains(w)) {
        return false;
    }
    // An outline number heading a line or a comment -- `# 17.4.1.6 logical-and: ...`,
    // ` * 4.3.2.1 Scope` -- is followed by a title word; an address at a line's start is
    // followed by a port, a host name with dots (a hosts file) or nothing.
    if before.bytes().all(|c| {
        matches!(
            c,
            b' ' | b'\t' | b'#' | b'*' | b'/' | b';' | b'-' | b'"' | b'\''
        )
    }) && outline_title(&b[e..])
    {
        return false;
    }
    let o: Vec<u32> = text[s..e]
        .split('.')
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // All octets single digits: an outline number (1.2.3.4) or a well-known public resolver
    // (8.8.8.8, 1.1.1.1) - neither is personal data. A last octet 0 or 255 is a network or
    // broadcast address (a block, not a host).
    if o.iter().all(|&x| x < 10) || o[3] == 0 || o[3] == 255 {
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
