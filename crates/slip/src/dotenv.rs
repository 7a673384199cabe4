//! `.env` files: a parser that remembers where each entry is, a writer whose output the
//! parser reads back exactly, and the merge that `config:pull` does.
//!
//! The format: `KEY=VALUE` lines, `#` comments, blank lines, an optional `export ` prefix.
//! A value is bare (trimmed; ` #` starts a comment), single-quoted (literal) or
//! double-quoted (`\n`, `\r`, `\t`, `\"` and `\\` escapes). Quoted values may span lines.

use std::collections::BTreeMap;
use std::ops::Range;

/// One `KEY=VALUE` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
    /// Where `KEY=VALUE` is in the text: after any `export `, before any trailing comment.
    pub(crate) span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) message: &'static str,
}

/// Reads every entry of a file, in order; a key given twice appears twice.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, ParseError> {
    let mut p = Parser { text, pos: 0 };
    let mut entries = Vec::new();
    loop {
        p.skip_blanks();
        match p.peek() {
            None => break,
            Some('\n') => p.pos += 1,
            Some('#') => p.skip_line(),
            Some(_) => entries.push(p.entry()?),
        }
    }
    Ok(entries)
}

/// The entries as a map; where a key is given twice, the last value wins.
pub(crate) fn to_map(entries: Vec<Entry>) -> BTreeMap<String, String> {
    entries.into_iter().map(|e| (e.key, e.value)).collect()
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.pos += 1;
        }
    }

    fn skip_line(&mut self) {
        self.pos = match self.rest().find('\n') {
            Some(i) => self.pos + i + 1,
            None => self.text.len(),
        };
    }

    fn error(&self, at: usize, message: &'static str) -> ParseError {
        let line = 1 + self.text[..at].matches('\n').count();
        ParseError { line, message }
    }

    fn entry(&mut self) -> Result<Entry, ParseError> {
        if let Some(after) = self.rest().strip_prefix("export")
            && after.starts_with([' ', '\t'])
        {
            self.pos += "export".len();
            self.skip_blanks();
        }
        let start = self.pos;
        let key_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(self.rest().len());
        if key_len == 0 {
            return Err(self.error(start, "expected KEY=VALUE"));
        }
        let key = self.rest()[..key_len].to_owned();
        self.pos += key_len;
        self.skip_blanks();
        if self.bump() != Some('=') {
            return Err(self.error(start, "expected `=` after the key"));
        }
        let value_start = self.pos;
        self.skip_blanks();
        let value = match self.peek() {
            Some('\'') => self.single_quoted()?,
            Some('"') => self.double_quoted()?,
            _ => {
                self.pos = value_start;
                return Ok(self.bare(key, start));
            }
        };
        let end = self.pos;
        self.skip_blanks();
        match self.peek() {
            None | Some('\n') => {}
            Some('#') => self.skip_line(),
            Some(_) => return Err(self.error(end, "unexpected text after the closing quote")),
        }
        Ok(Entry {
            key,
            value,
            span: start..end,
        })
    }

    fn bare(&mut self, key: String, start: usize) -> Entry {
        let line_end = self
            .rest()
            .find('\n')
            .map_or(self.text.len(), |i| self.pos + i);
        let raw = &self.text[self.pos..line_end];
        let comment = raw
            .char_indices()
            .find(|&(i, c)| c == '#' && i > 0 && raw[..i].ends_with([' ', '\t']))
            .map_or(raw.len(), |(i, _)| i);
        let blank = |c: char| matches!(c, ' ' | '\t' | '\r');
        let value = raw[..comment].trim_matches(blank);
        let end = self.pos + raw[..comment].trim_end_matches(blank).len();
        self.pos = line_end;
        Entry {
            key,
            value: value.to_owned(),
            span: start..end,
        }
    }

    fn single_quoted(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let Some(len) = self.rest().find('\'') else {
            return Err(self.error(open, "unterminated single-quoted value"));
        };
        let value = self.rest()[..len].to_owned();
        self.pos += len + 1;
        Ok(value)
    }

    fn double_quoted(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(open, "unterminated double-quoted value")),
                Some('"') => return Ok(value),
                Some('\\') => match self.bump() {
                    None => return Err(self.error(open, "unterminated double-quoted value")),
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some(c @ ('"' | '\\')) => value.push(c),
                    Some(c) => {
                        value.push('\\');
                        value.push(c);
                    }
                },
                Some(c) => value.push(c),
            }
        }
    }
}

/// `KEY=VALUE` as the writer spells it, without a newline.
pub(crate) fn line(key: &str, value: &str) -> String {
    format!("{key}={}", quote(value))
}

/// A value as the writer spells it: bare when that is unambiguous, single-quoted when it
/// can be, double-quoted with escapes otherwise.
pub(crate) fn quote(value: &str) -> String {
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.,/:@%+=".contains(c);
    if value.chars().all(bare) {
        value.to_owned()
    } else if !value.chars().any(|c| c == '\'' || c.is_control()) {
        format!("'{value}'")
    } else {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('"');
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

/// A whole file holding these vars, one line each, in key order.
#[cfg(test)]
pub(crate) fn write(vars: &BTreeMap<String, String>) -> String {
    vars.iter().map(|(k, v)| line(k, v) + "\n").collect()
}

/// What [`merge`] did to a file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Merged {
    /// The new text of the file.
    pub(crate) text: String,
    /// Keys that were missing from the file and were appended.
    pub(crate) added: Vec<String>,
    /// Keys whose value in the file was replaced (`overwrite` only).
    pub(crate) replaced: Vec<String>,
    /// Keys whose value in the file differs and was left alone (without `overwrite`).
    pub(crate) kept: Vec<String>,
}

/// Brings `vars` into a file's text: appends the keys it lacks and, with `overwrite`,
/// replaces values that differ in place. Comments, order and keys only in the file stay.
pub(crate) fn merge(
    text: &str,
    vars: &BTreeMap<String, String>,
    overwrite: bool,
) -> Result<Merged, ParseError> {
    let entries = parse(text)?;
    let mut merged = Merged {
        text: text.to_owned(),
        ..Merged::default()
    };
    let local: BTreeMap<&str, &str> = entries.iter().map(|e| (&*e.key, &*e.value)).collect();
    for (key, value) in vars {
        match local.get(key.as_str()) {
            None => merged.added.push(key.clone()),
            Some(old) if old == value => {}
            Some(_) if overwrite => merged.replaced.push(key.clone()),
            Some(_) => merged.kept.push(key.clone()),
        }
    }
    if overwrite {
        for entry in entries.iter().rev() {
            if let Some(value) = vars.get(&entry.key)
                && *value != entry.value
            {
                merged
                    .text
                    .replace_range(entry.span.clone(), &line(&entry.key, value));
            }
        }
    }
    if !merged.added.is_empty() && !merged.text.is_empty() && !merged.text.ends_with('\n') {
        merged.text.push('\n');
    }
    for key in &merged.added {
        merged.text.push_str(&line(key, &vars[key]));
        merged.text.push('\n');
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use expect_test::{Expect, expect};

    use super::*;

    fn check_parse(text: &str, expect: Expect) {
        let actual = match parse(text) {
            Ok(entries) => entries.iter().fold(String::new(), |mut out, e| {
                let _ = writeln!(out, "{}={:?} @{:?}", e.key, e.value, &text[e.span.clone()]);
                out
            }),
            Err(e) => format!("error: {e}\n"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn parses_bare_values_comments_and_export() {
        check_parse(
            "# a comment\n\nA=1\nexport B = two words  # note\n  C=x#y\nD=\nE= # only a comment\nexport=3\r\nF=a=b\n",
            expect![[r##"
                A="1" @"A=1"
                B="two words" @"B = two words"
                C="x#y" @"C=x#y"
                D="" @"D="
                E="" @"E="
                export="3" @"export=3"
                F="a=b" @"F=a=b"
            "##]],
        );
    }

    #[test]
    fn parses_quoted_values() {
        check_parse(
            r#"A='single $HOME "x" \n'
B="double \"q\" \\ \n \t end"
C="multi
line" # trailing comment
D=''
E="unknown \q escape"
export F='#not a comment'
"#,
            expect![[r##"
                A="single $HOME \"x\" \\n" @"A='single $HOME \"x\" \\n'"
                B="double \"q\" \\ \n \t end" @"B=\"double \\\"q\\\" \\\\ \\n \\t end\""
                C="multi\nline" @"C=\"multi\nline\""
                D="" @"D=''"
                E="unknown \\q escape" @"E=\"unknown \\q escape\""
                F="#not a comment" @"F='#not a comment'"
            "##]],
        );
    }

    #[test]
    fn reports_the_line_of_a_mistake() {
        check_parse(
            "A=1\nnot a pair\n",
            expect![[r#"
            error: line 2: expected `=` after the key
        "#]],
        );
        check_parse(
            "A=1\n=2\n",
            expect![[r#"
            error: line 2: expected KEY=VALUE
        "#]],
        );
        check_parse(
            "A=1\n\nB='open\nC=3\n",
            expect![[r#"
            error: line 3: unterminated single-quoted value
        "#]],
        );
        check_parse(
            "A=\"open\\\"\n",
            expect![[r#"
            error: line 1: unterminated double-quoted value
        "#]],
        );
        check_parse(
            "A='x' y\n",
            expect![[r#"
            error: line 1: unexpected text after the closing quote
        "#]],
        );
    }

    #[test]
    fn writer_quotes_only_what_needs_it() {
        let vars: BTreeMap<String, String> = [
            ("PLAIN", "postgres://u:p@db:5432/x?y=1"),
            ("EMPTY", ""),
            ("SPACES", " two words "),
            ("HASH", "a #b"),
            ("DOLLAR", "$HOME"),
            ("APOSTROPHE", "it's"),
            ("NEWLINE", "a\nb"),
            ("BOTH", "\"it's\" \\ \t"),
            ("UNICODE", "héllo"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        expect![[r#"
            APOSTROPHE="it's"
            BOTH="\"it's\" \\ \t"
            DOLLAR='$HOME'
            EMPTY=
            HASH='a #b'
            NEWLINE="a\nb"
            PLAIN='postgres://u:p@db:5432/x?y=1'
            SPACES=' two words '
            UNICODE='héllo'
        "#]]
        .assert_eq(&write(&vars));
    }

    /// Every string of up to three characters from an alphabet of awkward ones survives a
    /// write and a parse unchanged.
    #[test]
    fn write_then_parse_round_trips_exactly() {
        let alphabet = [
            'a', ' ', '\t', '\n', '\r', '\'', '"', '\\', '#', '=', '$', 'é', '\u{1b}',
        ];
        let mut values = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..3 {
            last = last
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            values.extend(last.iter().cloned());
        }
        assert_eq!(values.len(), 1 + 13 + 13 * 13 + 13 * 13 * 13);
        for chunk in values.chunks(100) {
            let vars: BTreeMap<String, String> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("K{i:03}"), v.clone()))
                .collect();
            let text = write(&vars);
            let back = parse(&text).map(to_map);
            assert_eq!(back.as_ref(), Ok(&vars), "file:\n{text}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn check_merge(text: &str, overwrite: bool, expect: Expect) {
        let remote = vars(&[("A", "new a"), ("B", "same"), ("C", "c"), ("D", "d")]);
        let merged = merge(text, &remote, overwrite).unwrap();
        let actual = format!(
            "added {:?} replaced {:?} kept {:?}\n{}",
            merged.added, merged.replaced, merged.kept, merged.text
        );
        expect.assert_eq(&actual);
        let after = to_map(parse(&merged.text).unwrap());
        for (k, v) in &remote {
            if overwrite || !merged.kept.contains(k) {
                assert_eq!(after.get(k), Some(v), "{k} after merge");
            }
        }
    }

    #[test]
    fn merge_adds_missing_keys_and_keeps_the_rest() {
        check_merge(
            "# mine\nA=old # keep me\nB=same\nLOCAL=only here",
            false,
            expect![[r#"
                added ["C", "D"] replaced [] kept ["A"]
                # mine
                A=old # keep me
                B=same
                LOCAL=only here
                C=c
                D=d
            "#]],
        );
        check_merge(
            "",
            false,
            expect![[r#"
            added ["A", "B", "C", "D"] replaced [] kept []
            A='new a'
            B=same
            C=c
            D=d
        "#]],
        );
    }

    #[test]
    fn merge_with_overwrite_replaces_values_in_place() {
        check_merge(
            "# mine\nexport A=\"old\" # keep me\nB=same\nLOCAL=only here\nA=again\n",
            true,
            expect![[r#"
                added ["C", "D"] replaced ["A"] kept []
                # mine
                export A='new a' # keep me
                B=same
                LOCAL=only here
                A='new a'
                C=c
                D=d
            "#]],
        );
    }
}
