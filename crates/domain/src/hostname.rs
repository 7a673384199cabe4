//! `Hostname`: a custom domain an app answers to.

use std::fmt;

use crate::Error;

/// A fully qualified host name: two or more DNS labels, lowercase, at most 253 characters.
/// Wildcards and IP addresses are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(name: &str) -> Result<Hostname, Error> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            let b = l.as_bytes();
            (1..=63).contains(&b.len())
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        };
        let all_numeric = labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if name.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) || all_numeric {
            return Err(Error::Hostname(name.to_owned()));
        }
        Ok(Hostname(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::show;

    #[test]
    fn hostnames() {
        for good in ["example.com", "www.example.com", "a-b.c0.io"] {
            assert_eq!(show(Hostname::parse(good)), good);
        }
        assert_eq!(show(Hostname::parse("example.com.")), "example.com");
        for bad in [
            "",
            "localhost",
            "*.example.com",
            "Example.com",
            "-a.com",
            "a..com",
            "10.0.0.1",
            "a_b.com",
        ] {
            assert!(
                show(Hostname::parse(bad)).starts_with("error: invalid domain"),
                "{bad}"
            );
        }
    }
}
