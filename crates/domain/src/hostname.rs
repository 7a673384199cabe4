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

    /// Where this name stands relative to the platform's domain: a custom domain must be
    /// [`PlatformPlace::Outside`] it, since every name under it is the platform's to give.
    pub fn platform_place(&self, platform: &str) -> PlatformPlace<'_> {
        let platform = platform.trim_matches('.');
        if self.0.eq_ignore_ascii_case(platform) {
            return PlatformPlace::Other;
        }
        let Some(sub) = self
            .0
            .len()
            .checked_sub(platform.len() + 1)
            .filter(|&at| {
                self.0.as_bytes()[at] == b'.' && self.0[at + 1..].eq_ignore_ascii_case(platform)
            })
            .map(|at| &self.0[..at])
        else {
            return PlatformPlace::Outside;
        };
        if sub.contains('.') {
            PlatformPlace::Other
        } else {
            PlatformPlace::App(sub)
        }
    }

    /// The TXT record whose value proves control of this name: `_slipway-challenge.<name>`.
    pub fn challenge_record(&self) -> String {
        challenge_record(&self.0)
    }
}

/// Whether a certificate for `names` (its DNS names) is valid for `host`: one of them
/// exactly, case and a final dot aside, or one label below a wildcard's parent
/// (`*.example.com` covers `www.example.com`, not `example.com` nor `a.b.example.com`).
pub fn certificate_covers(names: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => name == host,
        }
    })
}

/// The TXT record whose value proves control of `domain`: `_slipway-challenge.<domain>`.
pub fn challenge_record(domain: &str) -> String {
    format!("_slipway-challenge.{domain}")
}

/// A host name's place relative to the platform's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformPlace<'a> {
    /// Not under the platform's domain: a custom domain, to be verified by its owner.
    Outside,
    /// Exactly `<label>.<platform domain>`: the address of the app named `label`.
    App(&'a str),
    /// The platform's domain itself, or deeper under it.
    Other,
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_exact_hosts_and_one_label_below_a_wildcard() {
        let names = vec!["example.com".to_owned(), "*.apps.example.com".to_owned()];
        for (host, covered) in [
            ("example.com", true),
            ("EXAMPLE.com.", true),
            ("www.example.com", false),
            ("a.apps.example.com", true),
            ("apps.example.com", false),
            ("a.b.apps.example.com", false),
            (".apps.example.com", false),
            ("example.org", false),
        ] {
            assert_eq!(certificate_covers(&names, host), covered, "{host}");
        }
    }
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

    #[test]
    fn places_relative_to_the_platform_domain() {
        let place = |host: &str, platform: &str| {
            format!(
                "{:?}",
                Hostname::parse(host).unwrap().platform_place(platform)
            )
        };
        assert_eq!(place("demo.localhost", "localhost"), "App(\"demo\")");
        assert_eq!(place("a.demo.localhost", "localhost"), "Other");
        assert_eq!(place("apps.example.com", "apps.example.com"), "Other");
        assert_eq!(
            place("demo.apps.example.com", "apps.example.com."),
            "App(\"demo\")"
        );
        assert_eq!(
            place("x.demo.apps.example.com", "apps.example.com"),
            "Other"
        );
        assert_eq!(place("evillocalhost.com", "localhost"), "Outside");
        assert_eq!(place("demo.notlocalhost", "localhost"), "Outside");
        assert_eq!(place("example.com", "apps.example.com"), "Outside");
        assert_eq!(
            Hostname::parse("www.example.com")
                .unwrap()
                .challenge_record(),
            "_slipway-challenge.www.example.com"
        );
    }
}
