//! Pre-tokenization: splitting text into the pieces that BPE merges never cross.
//!
//! Two patterns, each hand-written as a scanner (no regex engine on the hot path) and each
//! with an equivalent regular expression ([`Pattern::regex`]) used for export to tiktoken /
//! HF tokenizers and as the test oracle. The scanners implement the regexes' leftmost-first
//! alternation exactly: at every position the alternatives are tried in order.
//!
//! `code` (the default) is designed for source code. In `<N>` mode (`newline = true`):
//!
//! ```text
//! (?m)\n                                   every newline alone (the <N> token)
//! |^[\t ]+                                 line-start indentation run, whole
//! |(?: |P)?[\p{L}_][\p{L}\p{M}\p{N}_]*     identifier, with one leading space or punctuation
//! |(?: |P)?\p{N}{1,3}                      digits in groups of at most 3, same prefix
//! | ?P+                                    operator / punctuation / quote run
//! |[^\S\n]+(?!\S)|[^\S\n]+                 other whitespace (GPT-2's rule, minus newlines)
//! ```
//!
//! where `P = [^\s\p{L}\p{N}_]`. With `newline = false` the first alternative becomes
//! `(?:\r?\n)+[\t ]*`: a newline run and the next line's indentation form one piece.
//!
//! Decisions: whole indentation runs make 4/8/12/16 spaces single tokens (GPT-2's
//! `\s+(?!\S)` leaves a run minus one space); identifiers keep `_` and inner digits so
//! `__init__`, `self._x` and `int64` stay whole; one punctuation prefix lets BPE learn `.append`,
//! `(self`, `"utf`; digit groups of 3 keep numbers from eating vocabulary.
//!
//! `gpt2` reproduces GPT-2's split exactly:
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! (in `<N>` mode `\n|` is prepended and `\s` in the whitespace rules becomes `[^\S\n]`).

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// A built-in pre-tokenization pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    Code,
    Gpt2,
}

pub const PATTERN_NAMES: [&str; 2] = ["code", "gpt2"];

impl Pattern {
    pub fn from_name(name: &str) -> Option<Pattern> {
        match name {
            "code" => Some(Pattern::Code),
            "gpt2" => Some(Pattern::Gpt2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pattern::Code => "code",
            Pattern::Gpt2 => "gpt2",
        }
    }

    /// The equivalent regular expression (fancy-regex / Oniguruma / Python `regex` syntax).
    pub fn regex(self, newline: bool) -> String {
        match (self, newline) {
            (Pattern::Code, nl) => {
                let p = r"[^\s\p{L}\p{N}_]";
                let first = if nl { r"\n" } else { r"(?:\r?\n)+[\t ]*" };
                format!(
                    r"(?m){first}|^[\t ]+|(?: |{p})?[\p{{L}}_][\p{{L}}\p{{M}}\p{{N}}_]*|(?: |{p})?\p{{N}}{{1,3}}| ?{p}+|[^\S\n]+(?!\S)|[^\S\n]+"
                )
            }
            (Pattern::Gpt2, false) => {
                r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
                    .to_string()
            }
            (Pattern::Gpt2, true) => {
                r"\n|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|[^\S\n]+(?!\S)|[^\S\n]+"
                    .to_string()
            }
        }
    }
}

/// Character classes the scanners need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cls {
    /// `\n`
    Nl,
    /// ` `
    Sp,
    /// Any other Unicode White_Space character.
    Ws,
    /// `\p{L}`
    L,
    /// `_`
    Us,
    /// `\p{N}`
    N,
    /// `\p{M}`
    M,
    /// Everything else (punctuation, symbols, controls that are not whitespace, ...).
    P,
}

const fn ascii_table() -> [Cls; 128] {
    let mut t = [Cls::P; 128];
    let mut i = 0;
    while i < 128 {
        let c = i as u8;
        t[i] = if c == b'\n' {
            Cls::Nl
        } else if c == b' ' {
            Cls::Sp
        } else if c == b'\t' || c == b'\r' || c == 0x0B || c == 0x0C {
            Cls::Ws
        } else if c.is_ascii_alphabetic() {
            Cls::L
        } else if c == b'_' {
            Cls::Us
        } else if c.is_ascii_digit() {
            Cls::N
        } else {
            Cls::P
        };
        i += 1;
    }
    t
}

static ASCII: [Cls; 128] = ascii_table();

#[inline]
fn class_of(c: char) -> Cls {
    if (c as u32) < 128 {
        return ASCII[c as usize];
    }
    if c.is_whitespace() {
        return Cls::Ws;
    }
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => Cls::L,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Cls::N,
        G::NonspacingMark | G::SpacingMark | G::EnclosingMark => Cls::M,
        _ => Cls::P,
    }
}

/// The class of the char starting at byte `i` and its UTF-8 length.
#[inline(always)]
fn at(s: &str, i: usize) -> (Cls, usize) {
    let b = s.as_bytes()[i];
    if b < 128 {
        return (ASCII[b as usize], 1);
    }
    // SAFETY-free: `i` is always on a char boundary; decode the one char.
    let c = s[i..].chars().next().unwrap();
    (class_of(c), c.len_utf8())
}

#[inline(always)]
fn is_ws(c: Cls) -> bool {
    matches!(c, Cls::Nl | Cls::Sp | Cls::Ws)
}

/// Advance over chars while `pred` holds; returns the end byte offset.
#[inline(always)]
fn run(s: &str, mut i: usize, pred: impl Fn(Cls) -> bool) -> usize {
    let bytes = s.as_bytes();
    while i < bytes.len() {
        let b = bytes[i];
        if b < 128 {
            if !pred(ASCII[b as usize]) {
                break;
            }
            i += 1;
        } else {
            let (c, n) = at(s, i);
            if !pred(c) {
                break;
            }
            i += n;
        }
    }
    i
}

/// Like [`run`] but at most `max` chars.
#[inline(always)]
fn run_max(s: &str, mut i: usize, max: usize, pred: impl Fn(Cls) -> bool) -> usize {
    let mut k = 0;
    while i < s.len() && k < max {
        let (c, n) = at(s, i);
        if !pred(c) {
            break;
        }
        i += n;
        k += 1;
    }
    i
}

/// The whitespace rules shared by both patterns: `W+(?!\S)|W+` where `W` is whitespace,
/// with `\n` only when `with_newline`. `i` is at a `W` char.
#[inline(always)]
fn whitespace(s: &str, i: usize, with_newline: bool) -> usize {
    let ws = |c: Cls| matches!(c, Cls::Sp | Cls::Ws) || (with_newline && c == Cls::Nl);
    let end = run(s, i, ws);
    if end == s.len() || is_ws(at(s, end).0) {
        return end; // followed by \n (<N> mode) or the end: the whole run
    }
    // Followed by a non-space: give the last char back, unless the run is one char.
    let last = s[..end].char_indices().next_back().map(|(j, _)| j).unwrap();
    if last > i {
        last
    } else {
        end
    }
}

/// End of the `code` piece starting at byte `i` (< len).
#[inline]
fn next_code(s: &str, i: usize, newline: bool) -> usize {
    let bytes = s.as_bytes();
    let (c, n) = at(s, i);
    // 1. newline
    if newline {
        if c == Cls::Nl {
            return i + 1;
        }
    } else if c == Cls::Nl || (bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
        let mut j = i;
        loop {
            if bytes.get(j) == Some(&b'\n') {
                j += 1;
            } else if bytes.get(j) == Some(&b'\r') && bytes.get(j + 1) == Some(&b'\n') {
                j += 2;
            } else {
                break;
            }
        }
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        return j;
    }
    // 2. line-start indentation
    if (bytes[i] == b' ' || bytes[i] == b'\t') && (i == 0 || bytes[i - 1] == b'\n') {
        let mut j = i;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        return j;
    }
    let ident_start = |c: Cls| matches!(c, Cls::L | Cls::Us);
    let ident_cont = |c: Cls| matches!(c, Cls::L | Cls::Us | Cls::M | Cls::N);
    let punct = |c: Cls| matches!(c, Cls::P | Cls::M);
    // 3./4. identifier or digits, directly or after one space / punctuation char
    if ident_start(c) {
        return run(s, i + n, ident_cont);
    }
    if c == Cls::N {
        return run_max(s, i + n, 2, |c| c == Cls::N);
    }
    let prefixable = c == Cls::Sp || punct(c);
    if prefixable && i + n < s.len() {
        let (c2, n2) = at(s, i + n);
        if ident_start(c2) {
            return run(s, i + n + n2, ident_cont);
        }
        if c2 == Cls::N {
            return run_max(s, i + n + n2, 2, |c| c == Cls::N);
        }
        // 5. punctuation run with an optional leading space
        if c == Cls::Sp && punct(c2) {
            return run(s, i + n + n2, punct);
        }
    }
    if punct(c) {
        return run(s, i + n, punct);
    }
    // 6./7. whitespace (never newlines: rule 1 took them)
    whitespace(s, i, false)
}

/// End of the `gpt2` piece starting at byte `i` (< len).
#[inline]
fn next_gpt2(s: &str, i: usize, newline: bool) -> usize {
    let bytes = s.as_bytes();
    let (c, n) = at(s, i);
    if newline && c == Cls::Nl {
        return i + 1;
    }
    if bytes[i] == b'\'' {
        let rest = &bytes[i + 1..];
        for suffix in [&b"s"[..], b"t", b"re", b"ve", b"m", b"ll", b"d"] {
            if rest.starts_with(suffix) {
                return i + 1 + suffix.len();
            }
        }
    }
    let letter = |c: Cls| c == Cls::L;
    let number = |c: Cls| c == Cls::N;
    let other = |c: Cls| matches!(c, Cls::P | Cls::M | Cls::Us);
    let (start, c) = if c == Cls::Sp && i + n < s.len() {
        let (c2, _) = at(s, i + n);
        if is_ws(c2) {
            (i, c)
        } else {
            (i + n, c2)
        }
    } else {
        (i, c)
    };
    match c {
        Cls::L => run(s, start, letter),
        Cls::N => run(s, start, number),
        Cls::P | Cls::M | Cls::Us => run(s, start, other),
        _ => whitespace(s, i, !newline),
    }
}

/// Iterator over the pieces of a text.
pub struct Pieces<'a> {
    s: &'a str,
    pos: usize,
    pattern: Pattern,
    newline: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        if self.pos >= self.s.len() {
            return None;
        }
        let end = match self.pattern {
            Pattern::Code => next_code(self.s, self.pos, self.newline),
            Pattern::Gpt2 => next_gpt2(self.s, self.pos, self.newline),
        };
        debug_assert!(end > self.pos);
        let piece = &self.s[self.pos..end];
        self.pos = end;
        Some(piece)
    }
}

/// Split `text` into pieces; their concatenation is always `text`.
pub fn pieces(text: &str, pattern: Pattern, newline: bool) -> Pieces<'_> {
    Pieces {
        s: text,
        pos: 0,
        pattern,
        newline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(p: Pattern, nl: bool, s: &str) -> Vec<String> {
        pieces(s, p, nl).map(str::to_string).collect()
    }

    fn oracle(p: Pattern, nl: bool, s: &str) -> Vec<String> {
        let re = fancy_regex::Regex::new(&p.regex(nl)).unwrap();
        re.find_iter(s)
            .map(|m| m.unwrap().as_str().to_string())
            .collect()
    }

    const SAMPLES: &[&str] = &[
        "def f(x):\n    return x + 1\n",
        "class A:\n\tdef __init__(self, a_b=12345):\n\t\tself._x = a_b  # it's\r\n",
        "  lead\n\n\n    x\n  \n\ty = 'don't' + \"s\"\n",
        "a  b   c\t\td \u{a0}e\u{2003}\u{2003}f  \n",
        "x=[1,2,3]; y = 1_000_000 * 3.14159e-10 ** -2 >= 0x1F",
        "émoji 😀😀 日本語のテキスト café naïve Ωmega ½ ² ٣٤٥ ",
        "\u{0}\u{1}\u{1c}\u{85}\u{2028}end\u{301}x a\u{301}b",
        "   ",
        "\n",
        "\r\n\r\n  x\r",
        "''' doc '''\n\"\"\"x\"\"\" f\"{a!r}\" b'\\x00'",
        "it's I'LL we've they're he'd 's 'm",
        "       \n   ",
        "x\n \n",
    ];

    #[test]
    fn matches_regex_oracle() {
        for &p in &[Pattern::Code, Pattern::Gpt2] {
            for nl in [true, false] {
                for s in SAMPLES {
                    assert_eq!(split(p, nl, s), oracle(p, nl, s), "{p:?} nl={nl} {s:?}");
                }
            }
        }
    }

    #[test]
    fn code_pattern_examples() {
        assert_eq!(
            split(
                Pattern::Code,
                true,
                "    if x:\n        y = self._a[10000]\n"
            ),
            [
                "    ", "if", " x", ":", "\n", "        ", "y", " =", " self", "._a", "[100", "00",
                "]", "\n"
            ]
        );
        assert_eq!(
            split(Pattern::Code, false, "x\n\n    y"),
            ["x", "\n\n    ", "y"]
        );
    }

    #[test]
    fn random_strings_match_regex_oracle() {
        // Random strings over an alphabet of the characters the rules care about.
        let alphabet: Vec<char> =
            " \t\n\r\u{b}\u{85}\u{a0}\u{2028}aZé日_0٣½'\"#.(=-+\u{301}\u{0}\u{1f}😀sltdmrev"
                .chars()
                .collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let regexes: Vec<_> = [Pattern::Code, Pattern::Gpt2]
            .iter()
            .flat_map(|&p| [(p, true), (p, false)])
            .map(|(p, nl)| (p, nl, fancy_regex::Regex::new(&p.regex(nl)).unwrap()))
            .collect();
        for _ in 0..3000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            for (p, nl, re) in &regexes {
                let want: Vec<&str> = re.find_iter(&s).map(|m| m.unwrap().as_str()).collect();
                let got: Vec<&str> = pieces(&s, *p, *nl).collect();
                assert_eq!(got, want, "{p:?} nl={nl} {s:?}");
            }
        }
    }

    #[test]
    fn concatenation_is_identity() {
        let s = "a\u{301}\u{301} \t\n\n x__ 12345 '''\r\n";
        for &p in &[Pattern::Code, Pattern::Gpt2] {
            for nl in [true, false] {
                assert_eq!(split(p, nl, s).concat(), s);
            }
        }
    }
}
