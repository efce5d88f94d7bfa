//! Secret and PII redaction: private keys, cloud and API tokens, secrets and passwords
//! assigned to telling names, credentials in URLs, connection strings and HTTP headers, e-mail
//! addresses and public IPv4 addresses are replaced by placeholders (`<KEY>`, `<PASSWORD>`,
//! `<EMAIL>`, `<IP>`). Only the secret is replaced, never the quotes or code around it.
//!
//! * private keys: `redact_pem.rs` (a parser: a block never spans code);
//! * assignments (`api_key = "..."`, `password: str = "..."`, `os.environ["TOKEN"] = ...`,
//!   `getenv("TOKEN", "...")`, `;Pwd=...;`): `redact_assign.rs` (a reader at each telling
//!   name), with the value checks in `redact_checks.rs`: generic secrets need 16+ characters
//!   with letters and digits and >= 3.0 bits/character of entropy, and neither kind may be a
//!   template, placeholder, path, URL or an identifier (an environment variable's name);
//! * vendor tokens (AWS, GitHub, Slack, Google, Stripe, OpenAI, GitLab, SendGrid, npm, PyPI,
//!   JWTs), `Bearer`/`Basic` credentials, `scheme://user:PASSWORD@host`: regexes;
//! * IPv4 addresses only when public hosts: private, loopback, link-local, multicast and
//!   reserved ranges, network and broadcast addresses (last octet 0 or 255), blocks (`/nn`),
//!   product versions (`Chrome/131.0.0.0`), version pins (`==1.1.14.2`), all-single-digit
//!   quads, dotted numbers inside longer runs or names, and numbers after "version", "oid",
//!   "section", ... on the same line are kept;
//! * e-mail addresses need a known top-level domain (two letters, a list of generic ones,
//!   `xn--` punycode, or non-ASCII letters), so `x@self.weight` and `@decorator` are not
//!   addresses; nor are `git@host:org/repo` and `scheme://user@host`.
//!
//! Linear time: every detector either runs a regex once over the text (or once per line that
//! holds its trigger) or reads a bounded neighbourhood of each trigger, never the rest of the
//! line per trigger (the quadratic cases before: one 2 MB line, a long word repeating
//! "secret", many BEGIN lines without END). Tests count the bytes examined (`charge`).
//!
//! Measured (60 MB of Python, one core): one pass per detector with the regex crate's literal
//! prefilters (`AKIA`, `@`) runs at 1-30 GB/s, but the detectors that start with a character
//! class ran at 320-450 MB/s each (the regex is tried at every position). They now run only
//! where a trigger occurs (words containing `secret`/`token`/`key`/`passw`/`pwd`, lines with
//! `://`, lines with a digit-dot-digit). One combined alternation was slower than separate
//! passes: it loses every literal prefilter. E-mail runs once per text that holds an `@` (the
//! regex finds the `@` first; most lines with an `@` are decorators). Its Unicode classes are unbounded (`+`), lengths
//! are checked after the match: `{1,64}` of a Unicode class compiled 64 copies of it (0.4 s
//! to build the detectors; now ~0.05 s).

use regex::{Regex, RegexBuilder};

use crate::clean::redact_assign::{assignments, Literals};
use crate::clean::redact_checks::accept;
use crate::clean::redact_pem::private_keys;

#[cfg(test)]
thread_local! {
    pub(crate) static WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` bytes examined (in tests, to check that the work is linear in the input).
#[inline(always)]
pub(crate) fn charge(_n: usize) {
    #[cfg(test)]
    WORK.with(|w| w.set(w.get() + _n as u64));
}

/// The kinds of findings, with their report names and placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PrivateKey,
    AwsKey,
    GithubToken,
    SlackToken,
    GoogleApiKey,
    StripeKey,
    GenericSecret,
    Password,
    UrlPassword,
    Email,
    Ip,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::PrivateKey,
        Kind::AwsKey,
        Kind::GithubToken,
        Kind::SlackToken,
        Kind::GoogleApiKey,
        Kind::StripeKey,
        Kind::GenericSecret,
        Kind::Password,
        Kind::UrlPassword,
        Kind::Email,
        Kind::Ip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::PrivateKey => "private_key",
            Kind::AwsKey => "aws_key",
            Kind::GithubToken => "github_token",
            Kind::SlackToken => "slack_token",
            Kind::GoogleApiKey => "google_api_key",
            Kind::StripeKey => "stripe_key",
            Kind::GenericSecret => "generic_secret",
            Kind::Password => "password",
            Kind::UrlPassword => "url_password",
            Kind::Email => "email",
            Kind::Ip => "ip_address",
        }
    }

    pub fn placeholder(self) -> &'static str {
        match self {
            Kind::Password | Kind::UrlPassword => "<PASSWORD>",
            Kind::Email => "<EMAIL>",
            Kind::Ip => "<IP>",
            _ => "<KEY>",
        }
    }
}

/// Counts of findings by kind (indexed like `Kind::ALL`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub [u64; 11]);

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    pub fn get(&self, kind: Kind) -> u64 {
        self.0[kind as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

struct Detector {
    kind: Kind,
    re: Regex,
    /// Which capture group is replaced (0: the whole match).
    group: usize,
    trigger: Trigger,
}

/// Where a detector's regex runs.
enum Trigger {
    /// On the whole text, when it contains this byte at all.
    Byte(u8),
    /// On the whole text.
    Always,
    /// Only on the lines where one of these literals occurs.
    Lines(Literals),
    /// Only on the lines with a digit, a dot and a digit (dotted quads).
    DigitDotDigit,
}

/// The line of `text` around byte `i`: `[start, end)` without the newline.
fn line_at(text: &[u8], i: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &text[..i]).map_or(0, |p| p + 1);
    let end = memchr::memchr(b'\n', &text[i..]).map_or(text.len(), |p| i + p);
    (start, end)
}

impl Detector {
    /// Run the regex on `hay` (which starts at byte `base` of the text) and collect accepted
    /// findings in text offsets. Acceptance checks look only at `hay` (a line or the text).
    fn scan(&self, hay: &str, base: usize, found: &mut Vec<(usize, usize, Kind)>) {
        charge(hay.len());
        if self.group == 0 {
            for m in self.re.find_iter(hay) {
                if accept(self.kind, hay, m.start(), m.end()) {
                    found.push((base + m.start(), base + m.end(), self.kind));
                }
            }
        } else {
            // The DFA finds the matches; the slower capture engine runs only on each match.
            for m in self.re.find_iter(hay) {
                let Some(c) = self.re.captures_at(&hay[..m.end()], m.start()) else {
                    continue;
                };
                let Some(g) = c.get(self.group) else {
                    continue;
                };
                if accept(self.kind, hay, g.start(), g.end()) {
                    found.push((base + g.start(), base + g.end(), self.kind));
                }
            }
        }
    }

    /// Run on each line that holds one of `hits` (sorted offsets), each line once.
    fn scan_lines(
        &self,
        text: &str,
        hits: impl Iterator<Item = usize>,
        found: &mut Vec<(usize, usize, Kind)>,
    ) {
        let b = text.as_bytes();
        let mut done = 0; // lines before this offset were scanned
        for i in hits {
            if i < done {
                continue;
            }
            let (ls, le) = line_at(b, i);
            self.scan(&text[ls..le], ls, found);
            done = le + 1;
        }
    }
}

/// The compiled detectors. Immutable; share it between threads.
pub struct Redactor {
    detectors: Vec<Detector>,
    /// Triggers of the assignment reader (`redact_assign.rs`).
    names: Literals,
}

const AWS_KEY: &str = r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?-u:\b)";
const GITHUB_TOKEN: &str =
    r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)";
const SLACK_TOKEN: &str = r"(?-u:\b)xox[abposr]-[A-Za-z0-9-]{10,250}(?-u:\b)|https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}";
const GOOGLE_API_KEY: &str = r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}(?-u:\b)";
const STRIPE_KEY: &str = r"(?-u:\b)(?:sk|rk)_live_[0-9A-Za-z]{24,99}(?-u:\b)";
/// OpenAI, GitLab, SendGrid, npm, PyPI tokens and JWTs: reported as generic secrets.
const VENDOR_TOKEN: &str = r"(?-u:\b)(?:sk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_\-]{32,256}|glpat-[A-Za-z0-9_\-]{20,64}|SG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{16,64}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_\-]{50,256}|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})";
/// `Authorization: Bearer <token>` / `Basic <base64>`.
const HTTP_AUTH: &str =
    r"(?-u:\b)(?:Bearer|bearer|BEARER|Basic|basic|BASIC)[ ]+([A-Za-z0-9+/_\-.=~]{12,512})";
const URL_PASSWORD: &str =
    r"(?i)(?-u:\b)[a-z][a-z0-9+.\-]{1,20}://[^\s:/@'\x22]{0,100}:([^\s:/@'\x22]{1,200})@";
/// Generic top-level domains beyond the two-letter country codes, without words that are
/// also common attribute names (`x@self.data`).
const EMAIL: &str = r"[\p{L}\p{N}._%+\-]+@(?:[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?\.)+(?:(?i:[a-z]{2}|com|org|net|edu|gov|mil|int|info|biz|name|pro|dev|app|io|tech|cloud|email|online|site|xyz|aero|coop|museum|mobi|asia|jobs|travel|tel|store|shop|blog|design|studio|agency|company|digital|solutions|systems|services|network|software|space|website|live|today|news|media|group|team|works|center|centre|global|academy|school|university|science|engineering|engineer|technology|consulting|expert|guru|ninja|rocks|social|health|care|capital|finance|fund|bank|insurance|law|legal|city|london|berlin|paris|nyc|tokyo|moscow|africa|amsterdam|earth|club|hosting|computer|xn--[a-z0-9\-]{2,59})(?-u:\b)|[\p{L}--\p{ASCII}]{2,})";
const IPV4: &str = r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)";

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    /// A process-wide instance (compiling the detectors takes a few milliseconds).
    pub fn shared() -> &'static Redactor {
        static SHARED: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
        SHARED.get_or_init(Redactor::new)
    }

    pub fn new() -> Redactor {
        let d = |kind, pat: &str, group, trigger| Detector {
            kind,
            re: RegexBuilder::new(pat)
                .size_limit(1 << 24)
                .build()
                .expect("static pattern"),
            group,
            trigger,
        };
        Redactor {
            detectors: vec![
                d(Kind::AwsKey, AWS_KEY, 0, Trigger::Byte(b'A')),
                d(Kind::GithubToken, GITHUB_TOKEN, 0, Trigger::Byte(b'_')),
                d(Kind::SlackToken, SLACK_TOKEN, 0, Trigger::Always),
                d(Kind::GoogleApiKey, GOOGLE_API_KEY, 0, Trigger::Byte(b'A')),
                d(Kind::StripeKey, STRIPE_KEY, 0, Trigger::Byte(b'_')),
                d(Kind::GenericSecret, VENDOR_TOKEN, 0, Trigger::Always),
                d(Kind::GenericSecret, HTTP_AUTH, 1, Trigger::Always),
                d(
                    Kind::UrlPassword,
                    URL_PASSWORD,
                    1,
                    Trigger::Lines(Literals::spellings(&["://"])),
                ),
                d(
                    Kind::Email,
                    EMAIL,
                    0,
                    Trigger::Lines(Literals::spellings(&["@"])),
                ),
                d(Kind::Ip, IPV4, 0, Trigger::DigitDotDigit),
            ],
            // Every compound secret name ends in `key`, so `key`/`Key`/`KEY` also finds
            // camelCase (`apiKey`, `PrivateKey`); `name_kind` then reads the whole name.
            // `pass` also finds `passw`, `passphrase` and short `pass` names (`db_pass`).
            names: Literals::spellings(&["secret", "token", "key", "pass", "pwd"]),
        }
    }

    /// All findings in `text` as non-overlapping `(start, end, kind)`, sorted by start.
    pub fn find(&self, text: &str) -> Vec<(usize, usize, Kind)> {
        let b = text.as_bytes();
        let mut found: Vec<(usize, usize, Kind)> = private_keys(text)
            .into_iter()
            .map(|(s, e)| (s, e, Kind::PrivateKey))
            .collect();
        for det in &self.detectors {
            match &det.trigger {
                Trigger::Always => det.scan(text, 0, &mut found),
                Trigger::Byte(n) => {
                    if memchr::memchr(*n, b).is_some() {
                        det.scan(text, 0, &mut found);
                    }
                }
                Trigger::Lines(lits) => {
                    det.scan_lines(text, lits.find_all(b).into_iter(), &mut found)
                }
                Trigger::DigitDotDigit => {
                    let quads = memchr::memchr_iter(b'.', b).filter(|&i| {
                        i > 0
                            && i + 1 < b.len()
                            && b[i - 1].is_ascii_digit()
                            && b[i + 1].is_ascii_digit()
                    });
                    det.scan_lines(text, quads, &mut found);
                }
            }
        }
        assignments(text, &self.names, &mut found);
        // Earlier start wins; at the same start the kind order (so a URL password beats the
        // e-mail-like `pw@host.com` that starts with it), then the longer span.
        found.sort_by_key(|&(s, e, k)| (s, k, std::cmp::Reverse(e)));
        let mut out: Vec<(usize, usize, Kind)> = Vec::with_capacity(found.len());
        for f in found {
            if out.last().is_none_or(|last| f.0 >= last.1) {
                out.push(f);
            }
        }
        out
    }

    /// `text` with every finding replaced by its placeholder, and the counts.
    pub fn redact(&self, text: &str) -> (String, Counts) {
        let mut out = text.to_string();
        let counts = self.redact_in_place(&mut out);
        (out, counts)
    }

    /// Redact `text` in place; no copy is made when nothing is found (the common case).
    pub fn redact_in_place(&self, text: &mut String) -> Counts {
        let found = self.find(text);
        let mut counts = Counts::default();
        if found.is_empty() {
            return counts;
        }
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        for (s, e, k) in found {
            out.push_str(&text[pos..s]);
            out.push_str(k.placeholder());
            counts.0[k as usize] += 1;
            pos = e;
        }
        out.push_str(&text[pos..]);
        *text = out;
        counts
    }
}
