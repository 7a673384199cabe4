//! API tokens for automation: what a scoped token may do, and how long a token lives.

use std::fmt;
use std::time::Duration;

use crate::Error;

/// What a token limited to one app may do there. A token without a scope is its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenScope {
    /// Read the app, and deploy it: create builds, roll back, push with a deploy key.
    Deploy,
    /// Read the app, nothing else.
    Read,
}

impl TokenScope {
    pub fn parse(scope: &str) -> Result<TokenScope, Error> {
        match scope {
            "deploy" => Ok(TokenScope::Deploy),
            "read" => Ok(TokenScope::Read),
            _ => Err(Error::TokenScope(scope.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Deploy => "deploy",
            TokenScope::Read => "read",
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a new token lives: `30d`, `12h`, `90m` or `45s`, at least a second and at most
/// [`Lifetime::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime(Duration);

impl Lifetime {
    /// The longest a token may live: a year.
    pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

    pub fn parse(text: &str) -> Result<Lifetime, Error> {
        let invalid = || Error::Lifetime(text.to_owned());
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (number, unit) = text.split_at(split);
        if number.is_empty() || number.len() > 12 {
            return Err(invalid());
        }
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit = match unit {
            "d" => 24 * 3600,
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            _ => return Err(invalid()),
        };
        if number == 0 {
            return Err(invalid());
        }
        let seconds = number.saturating_mul(unit);
        if seconds > Self::MAX.as_secs() {
            return Err(Error::LifetimeTooLong(text.to_owned()));
        }
        Ok(Lifetime(Duration::from_secs(seconds)))
    }

    /// A lifetime given as a duration (the server's default), capped at [`Lifetime::MAX`].
    pub fn capped(duration: Duration) -> Lifetime {
        Lifetime(duration.min(Self::MAX))
    }

    pub fn duration(self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::test_util::show;

    #[test]
    fn lifetimes() {
        let shown: Vec<String> = [
            "30d",
            "12h",
            "90m",
            "45s",
            "365d",
            "366d",
            "8761h",
            "0d",
            "d",
            "30",
            "30 d",
            "-1d",
            "1w",
            "99999999999999d",
        ]
        .iter()
        .map(|t| {
            format!(
                "{t}: {}",
                show(Lifetime::parse(t).map(|l| l.duration().as_secs()))
            )
        })
        .collect();
        expect![[r#"
            30d: 2592000
            12h: 43200
            90m: 5400
            45s: 45
            365d: 31536000
            366d: error: a token may live at most 365 days; "366d" is longer
            8761h: error: a token may live at most 365 days; "8761h" is longer
            0d: error: invalid lifetime "0d": write a number and a unit, such as 30d, 12h, 90m or 45s
            d: error: invalid lifetime "d": write a number and a unit, such as 30d, 12h, 90m or 45s
            30: error: invalid lifetime "30": write a number and a unit, such as 30d, 12h, 90m or 45s
            30 d: error: invalid lifetime "30 d": write a number and a unit, such as 30d, 12h, 90m or 45s
            -1d: error: invalid lifetime "-1d": write a number and a unit, such as 30d, 12h, 90m or 45s
            1w: error: invalid lifetime "1w": write a number and a unit, such as 30d, 12h, 90m or 45s
            99999999999999d: error: invalid lifetime "99999999999999d": write a number and a unit, such as 30d, 12h, 90m or 45s"#]]
        .assert_eq(&shown.join("\n"));
    }

    #[test]
    fn scopes() {
        assert_eq!(TokenScope::parse("deploy"), Ok(TokenScope::Deploy));
        assert_eq!(TokenScope::parse("read"), Ok(TokenScope::Read));
        expect![[r#"error: unknown token scope "write": use deploy or read"#]]
            .assert_eq(&show(TokenScope::parse("write")));
    }
}
