//! Redis glob patterns (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and `\`
//! escapes, matched byte by byte as Redis's `stringmatchlen` does (case-sensitive).
//!
//! A pattern is parsed once into tokens; matching backtracks only to the last `*`, so it
//! is O(pattern × key) whatever the pattern (no exponential blow-up on `*a*a*a*b`).

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(u8),
    Any,
    Star,
    Class { negate: bool, ranges: Vec<(u8, u8)> },
}

impl Tok {
    fn one(&self, c: u8) -> bool {
        match self {
            Tok::Lit(l) => *l == c,
            Tok::Any => true,
            Tok::Star => false,
            Tok::Class { negate, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negate
            }
        }
    }
}

/// A parsed glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
}

impl Glob {
    /// Parse `p`. Every byte string is a pattern: an unterminated `[` class ends with the
    /// pattern and a trailing `\` is a literal backslash, as in Redis.
    pub fn new(p: &[u8]) -> Glob {
        let mut toks = Vec::new();
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    toks.push(Tok::Any);
                    i += 1;
                }
                b'\\' if i + 1 < p.len() => {
                    toks.push(Tok::Lit(p[i + 1]));
                    i += 2;
                }
                b'[' => {
                    i += 1;
                    let negate = p.get(i) == Some(&b'^');
                    if negate {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    while i < p.len() {
                        match p[i] {
                            b']' => {
                                i += 1;
                                break;
                            }
                            b'\\' if i + 1 < p.len() => {
                                ranges.push((p[i + 1], p[i + 1]));
                                i += 2;
                            }
                            c if i + 2 < p.len() && p[i + 1] == b'-' => {
                                let d = p[i + 2];
                                ranges.push((c.min(d), c.max(d)));
                                i += 3;
                            }
                            c => {
                                ranges.push((c, c));
                                i += 1;
                            }
                        }
                    }
                    toks.push(Tok::Class { negate, ranges });
                }
                c => {
                    toks.push(Tok::Lit(c));
                    i += 1;
                }
            }
        }
        Glob { toks }
    }

    /// The literal bytes every match starts with (for a prefix scan).
    pub fn prefix(&self) -> Vec<u8> {
        self.toks
            .iter()
            .map_while(|t| match t {
                Tok::Lit(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Whether the pattern is `*` (matches everything).
    pub fn is_all(&self) -> bool {
        self.toks == [Tok::Star]
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &[u8]) -> bool {
        let (mut t, mut i) = (0, 0);
        // The last `*` seen and the position in `s` it was last retried from.
        let mut star: Option<(usize, usize)> = None;
        while i < s.len() {
            match self.toks.get(t) {
                Some(Tok::Star) => {
                    star = Some((t, i));
                    t += 1;
                    continue;
                }
                Some(tok) if tok.one(s[i]) => {
                    t += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((st, si)) => {
                    t = st + 1;
                    i = si + 1;
                    star = Some((st, si + 1));
                }
                None => return false,
            }
        }
        self.toks[t.min(self.toks.len())..]
            .iter()
            .all(|tok| *tok == Tok::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p.as_bytes()).matches(s.as_bytes())
    }

    #[test]
    fn redis_glob_cases() {
        for (p, s, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("[\\]]", "]", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            (
                "*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("user:*", "user:1", true),
            ("user:*", "use", false),
            ("abc\\", "abc\\", true),
            ("[abc", "b", true),
            ("[]x", "x", false),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(m(p, s), want, "{p:?} ~ {s:?}");
        }
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(Glob::new(b"user:*").prefix(), b"user:");
        assert_eq!(Glob::new(b"a\\*b?").prefix(), b"a*b");
        assert_eq!(Glob::new(b"[ab]c").prefix(), b"");
        assert!(Glob::new(b"*").is_all() && Glob::new(b"**").is_all());
    }
}
