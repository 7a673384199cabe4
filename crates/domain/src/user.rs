//! Users: usernames and the password rule.

use std::fmt;

use crate::Error;

/// A username: 1-32 of `[a-z0-9._-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(name: &str) -> Result<Username, Error> {
        let bytes = name.as_bytes();
        let valid = (1..=32).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !valid {
            return Err(Error::Username(name.to_owned()));
        }
        Ok(Username(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password, checked for length only (NIST SP 800-63B: length, not composition rules).
/// Only characters that are not whitespace count towards the minimum, so eight spaces (or
/// `" a b c "`) are not a password. It has no `Display`, so it cannot end up in a log line
/// by accident.
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 1024;

    pub fn parse(password: &str) -> Result<Password, Error> {
        let len = password.chars().count();
        let real = password.chars().filter(|c| !c.is_whitespace()).count();
        if real < Self::MIN || len > Self::MAX {
            return Err(Error::Password {
                min: Self::MIN,
                max: Self::MAX,
            });
        }
        Ok(Password(password.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::test_util::show;

    #[test]
    fn usernames() {
        for good in ["ada", "a", "bob.smith", "b_2-x", "0cool"] {
            assert_eq!(show(Username::parse(good)), good);
        }
        for bad in ["", "Ada", ".x", "-x", "a b", "a@b", &"x".repeat(33)] {
            assert_eq!(
                show(Username::parse(bad)),
                format!(
                    "error: invalid username {bad:?}: use 1-32 lowercase letters, digits, '.', '_' and '-', starting with a letter or digit"
                )
            );
        }
    }

    #[test]
    fn passwords() {
        let long = "x".repeat(1024);
        let too_long = "x".repeat(1025);
        let spaces = " ".repeat(100);
        let inputs = [
            "correct horse",
            // Length counts characters, not bytes.
            "ääääääää",
            "  12345678  ",
            long.as_str(),
            "short",
            "",
            "        ",
            spaces.as_str(),
            "\t\t\t\t\n\n\n\n\r\r",
            // Unicode whitespace does not count either.
            "\u{3000}\u{3000}\u{3000}\u{3000}\u{a0}\u{a0}\u{a0}\u{a0}",
            " a b c d e f g ",
            too_long.as_str(),
        ];
        let table: Vec<String> = inputs
            .iter()
            .map(|input| {
                let shown: String = format!("{input:?}").chars().take(20).collect();
                match Password::parse(input) {
                    Ok(_) => format!("{shown} ok"),
                    Err(err) => format!("{shown} error: {err}"),
                }
            })
            .collect();
        expect![[r#"
            "correct horse" ok
            "ääääääää" ok
            "  12345678  " ok
            "xxxxxxxxxxxxxxxxxxx ok
            "short" error: the password needs at least 8 characters that are not spaces, and at most 1024 characters
            "" error: the password needs at least 8 characters that are not spaces, and at most 1024 characters
            "        " error: the password needs at least 8 characters that are not spaces, and at most 1024 characters
            "                    error: the password needs at least 8 characters that are not spaces, and at most 1024 characters
            "\t\t\t\t\n\n\n\n\r\ error: the password needs at least 8 characters that are not spaces, and at most 1024 characters
            "\u{3000}\u{3000}\u{ error: the password needs at least 8 characters that are not spaces, and at most 1024 characters
            " a b c d e f g " error: the password needs at least 8 characters that are not spaces, and at most 1024 characters
            "xxxxxxxxxxxxxxxxxxx error: the password needs at least 8 characters that are not spaces, and at most 1024 characters"#]].assert_eq(&table.join("\n"));
        assert_eq!(
            format!("{:?}", Password::parse("secret-password").unwrap()),
            "Password(..)"
        );
    }
}
