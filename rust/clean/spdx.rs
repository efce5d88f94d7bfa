//! SPDX license expressions against an allow-list.
//!
//! `MIT`, `Apache-2.0 OR MIT`, `(MIT AND BSD-3-Clause) OR GPL-3.0-only`,
//! `GPL-2.0-or-later WITH Classpath-exception-2.0`. Operators are case-insensitive; `AND` binds
//! tighter than `OR`; parentheses group. A license is allowed when its identifier is in the
//! allow-list (case-insensitive); `ID WITH EXC` is allowed when `ID` is (an exception only adds
//! permissions) or when the whole `ID WITH EXC` is listed; `ID+` when `ID+` or `ID` is listed.
//! `A AND B` is allowed when both are, `A OR B` when either is. A license string that is not a
//! well-formed expression (`MIT/X11`, `BSD License`) is compared with the list as a whole.

/// An allow-list of licenses, lower-cased.
#[derive(Debug, Clone, Default)]
pub struct LicenseAllow {
    allowed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    With,
    Id(String),
}

fn lex(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Tok>| {
        if word.is_empty() {
            return;
        }
        let w = std::mem::take(word);
        out.push(match w.to_ascii_lowercase().as_str() {
            "and" => Tok::And,
            "or" => Tok::Or,
            "with" => Tok::With,
            _ => Tok::Id(w.to_ascii_lowercase()),
        });
    };
    for c in s.chars() {
        match c {
            '(' | ')' => {
                flush(&mut word, &mut out);
                out.push(if c == '(' { Tok::Open } else { Tok::Close });
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    allow: &'a LicenseAllow,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    /// expr := and (OR and)*
    fn or_expr(&mut self) -> Option<bool> {
        let mut v = self.and_expr()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let rhs = self.and_expr()?;
            v = v || rhs;
        }
        Some(v)
    }

    /// and := atom (AND atom)*
    fn and_expr(&mut self) -> Option<bool> {
        let mut v = self.atom()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let rhs = self.atom()?;
            v = v && rhs;
        }
        Some(v)
    }

    /// atom := '(' expr ')' | ID [WITH ID]
    fn atom(&mut self) -> Option<bool> {
        match self.toks.get(self.pos)? {
            Tok::Open => {
                self.pos += 1;
                let v = self.or_expr()?;
                if self.peek() != Some(&Tok::Close) {
                    return None;
                }
                self.pos += 1;
                Some(v)
            }
            Tok::Id(id) => {
                self.pos += 1;
                if self.peek() == Some(&Tok::With) {
                    self.pos += 1;
                    let Some(Tok::Id(exc)) = self.toks.get(self.pos) else {
                        return None;
                    };
                    self.pos += 1;
                    let whole = format!("{id} with {exc}");
                    return Some(self.allow.has(&whole) || self.allow.id_allowed(id));
                }
                Some(self.allow.id_allowed(id))
            }
            _ => None,
        }
    }
}

impl LicenseAllow {
    pub fn new<S: AsRef<str>>(licenses: &[S]) -> LicenseAllow {
        LicenseAllow {
            allowed: licenses
                .iter()
                .map(|l| normalize(l.as_ref()))
                .filter(|l| !l.is_empty())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    fn has(&self, lower: &str) -> bool {
        self.allowed.iter().any(|l| l == lower)
    }

    fn id_allowed(&self, id: &str) -> bool {
        self.has(id) || id.strip_suffix('+').is_some_and(|base| self.has(base))
    }

    /// Whether `license` (an SPDX expression, or any other string) is allowed.
    pub fn allows(&self, license: &str) -> bool {
        let toks = lex(license);
        let mut p = Parser {
            toks: &toks,
            pos: 0,
            allow: self,
        };
        match p.or_expr() {
            Some(v) if p.pos == toks.len() => v,
            _ => self.has(&normalize(license)),
        }
    }
}

/// Lower case, inner whitespace runs collapsed to one space.
fn normalize(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        let a = LicenseAllow::new(&["MIT", "apache-2.0", "BSD-3-Clause", "GPL-2.0"]);
        assert!(a.allows("mit"));
        assert!(a.allows("  MIT "));
        assert!(a.allows("MIT AND Apache-2.0"));
        assert!(a.allows("mit and apache-2.0 and bsd-3-clause"));
        assert!(!a.allows("MIT AND GPL-3.0-only"));
        assert!(a.allows("GPL-3.0-only OR Apache-2.0"));
        assert!(a.allows("(MIT AND BSD-3-Clause) OR GPL-3.0-only"));
        assert!(!a.allows("MIT AND (BSD-3-Clause OR GPL-3.0-only) AND LGPL-2.1"));
        assert!(a.allows("MIT AND (BSD-3-Clause OR GPL-3.0-only)"));
        // AND binds tighter than OR.
        assert!(a.allows("GPL-3.0-only AND LGPL-2.1 OR MIT"));
        assert!(!a.allows("GPL-3.0-only AND (LGPL-2.1 OR MIT)"));
        assert!(a.allows("GPL-2.0 WITH Classpath-exception-2.0"));
        assert!(a.allows("GPL-2.0+"));
        assert!(!a.allows("LGPL-2.1 WITH Classpath-exception-2.0"));
        // Malformed: compared as a whole.
        assert!(!a.allows("MIT AND"));
        assert!(!a.allows("(MIT"));
        assert!(!a.allows("MIT/X11"));
        assert!(LicenseAllow::new(&["MIT/X11"]).allows("mit/x11"));
        assert!(LicenseAllow::new(&["BSD License"]).allows("bsd  license"));
        let w = LicenseAllow::new(&["GPL-3.0 WITH GCC-exception-3.1"]);
        assert!(w.allows("gpl-3.0 with gcc-exception-3.1"));
        assert!(!w.allows("GPL-3.0"));
    }
}
