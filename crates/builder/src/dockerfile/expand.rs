//! Variable expansion in a Dockerfile's words, as Docker's shell lexer does it: `$V`, `${V}`,
//! `${V:-default}`, `${V:+alternative}`, single quotes literal, double quotes expanding,
//! a backslash escaping the next character. Anything else in `${…}` is refused rather than
//! guessed at. Pure: the variables come from the caller (ARGs and ENV in scope).

/// Expands `text` into one word (quotes removed, no splitting): WORKDIR, USER, a FROM image.
pub(crate) fn word(text: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    Ok(lex(text, vars, false)?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// Splits `text` into words at its unquoted whitespace and expands each (a value is never
/// split again, as in Docker's `ENV B=$A`): ENV, LABEL, ARG, EXPOSE.
pub(crate) fn words(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    lex(text, vars, true)
}

fn lex(
    text: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    split: bool,
) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    // Whether a word has begun: `""` is an empty word, not none.
    let mut started = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if split && c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut current));
                    started = false;
                }
            }
            '\\' => {
                started = true;
                match chars.next() {
                    Some(next) => current.push(next),
                    None => current.push('\\'),
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("a single quote is not closed".to_owned()),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&n @ ('"' | '\\' | '$')) => {
                                chars.next();
                                current.push(n);
                            }
                            _ => current.push('\\'),
                        },
                        Some('$') => current.push_str(&variable(&mut chars, vars)?),
                        Some(c) => current.push(c),
                        None => return Err("a double quote is not closed".to_owned()),
                    }
                }
            }
            '$' => {
                // An unquoted variable that expands to nothing makes no word.
                let value = variable(&mut chars, vars)?;
                started |= !value.is_empty();
                current.push_str(&value);
            }
            c => {
                started = true;
                current.push(c);
            }
        }
    }
    if started || !split {
        words.push(current);
    }
    Ok(words)
}

/// The value of the variable after a `$`; a `$` before anything that is not a name is itself.
fn variable(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let is_name_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.peek().copied() {
        Some('{') => {
            chars.next();
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if !is_name(c) {
                    break;
                }
                name.push(c);
                chars.next();
            }
            if name.is_empty() || !name.starts_with(is_name_start) {
                return Err(format!("${{{name}…}} does not name a variable"));
            }
            match chars.next() {
                Some('}') => Ok(vars(&name).unwrap_or_default()),
                Some(':') => {
                    let op = chars.next();
                    // The operand runs to the matching brace; it is expanded itself.
                    let mut operand = String::new();
                    let mut depth = 0;
                    loop {
                        match chars.next() {
                            Some('}') if depth == 0 => break,
                            Some(c) => {
                                if c == '{' {
                                    depth += 1;
                                } else if c == '}' {
                                    depth -= 1;
                                }
                                operand.push(c);
                            }
                            None => return Err(format!("${{{name}:… is not closed with }}")),
                        }
                    }
                    let value = vars(&name).filter(|v| !v.is_empty());
                    match op {
                        Some('-') => match value {
                            Some(v) => Ok(v),
                            None => word(&operand, vars),
                        },
                        Some('+') => match value {
                            Some(_) => word(&operand, vars),
                            None => Ok(String::new()),
                        },
                        _ => Err(format!(
                            "${{{name}:{}…}} is not supported; use ${{{name}:-default}} or ${{{name}:+alternative}}",
                            op.map(String::from).unwrap_or_default()
                        )),
                    }
                }
                Some(c) => Err(format!(
                    "${{{name}{c}…}} is not supported; use ${{{name}}}, ${{{name}:-default}} or ${{{name}:+alternative}}"
                )),
                None => Err(format!("${{{name} is not closed with }}")),
            }
        }
        Some(c) if is_name_start(c) => {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if !is_name(c) {
                    break;
                }
                name.push(c);
                chars.next();
            }
            Ok(vars(&name).unwrap_or_default())
        }
        _ => Ok("$".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("one".to_owned()),
            "SPACED" => Some("a b".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn words_expand_like_dockers_lexer() {
        let cases: &[(&str, &[&str])] = &[
            ("$A", &["one"]),
            ("${A}x", &["onex"]),
            ("x$A-y", &["xone-y"]),
            ("$UNSET.", &["."]),
            // Values are never split again: words split only where the text has spaces.
            ("${UNSET:-fallback $A}", &["fallback one"]),
            ("\"${UNSET:-fallback $A}\"", &["fallback one"]),
            ("${EMPTY:-d}", &["d"]),
            ("${A:-d}", &["one"]),
            ("${A:+alt}", &["alt"]),
            ("${UNSET:+alt}", &[]),
            ("'$A' \"$A\"", &["$A", "one"]),
            ("\\$A", &["$A"]),
            ("a\\ b c", &["a b", "c"]),
            ("\"\" x", &["", "x"]),
            ("$ $1 cost$", &["$", "$1", "cost$"]),
            ("K=\"v w\" L=$SPACED", &["K=v w", "L=a b"]),
            ("  ", &[]),
        ];
        for (text, expected) in cases {
            assert_eq!(words(text, &vars).unwrap(), *expected, "{text}");
        }
        assert_eq!(word("/srv/$A dir", &vars).unwrap(), "/srv/one dir");
        assert_eq!(word("\"q\"", &vars).unwrap(), "q");
    }

    #[test]
    fn what_is_not_supported_is_refused() {
        for text in [
            "${A?must}",
            "${A#pre}",
            "${A:=x}",
            "${A",
            "${}",
            "'open",
            "\"open",
        ] {
            assert!(words(text, &vars).is_err(), "{text}");
        }
    }
}
