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
/// It has no `Display`, so it cannot end up in a log line by accident.
pub struct Password(String);

impl Password {
    pub const MIN: usize = 8;
    pub const MAX: usize = 1024;

    pub fn parse(password: &str) -> Result<Password, Error> {
        let len = password.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&len) {
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
        assert!(Password::parse("correct horse").is_ok());
        assert!(
            Password::parse("ääääääää").is_ok(),
            "length counts characters, not bytes"
        );
        let err = Password::parse("short").unwrap_err().to_string();
        assert_eq!(err, "the password must be 8 to 1024 characters long");
        assert_eq!(
            format!("{:?}", Password::parse("secret-password").unwrap()),
            "Password(..)"
        );
    }
}
