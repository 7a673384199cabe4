//! `AppName`: an app's name, which is also its DNS label, namespace and repository name.

use std::fmt;

use crate::Error;

/// Names that would collide with the platform's own hosts, namespaces or routes.
const RESERVED: &[&str] = &[
    "admin",
    "api",
    "dashboard",
    "default",
    "git",
    "kube-node-lease",
    "kube-public",
    "kube-system",
    "localhost",
    "registry",
    "router",
    "slipway",
    "ssh",
    "www",
];

/// An app's name: a DNS-1035 label of 1 to 30 characters (`[a-z]([-a-z0-9]*[a-z0-9])?`).
///
/// It must start with a letter, not merely be a DNS-1123 label, because it also names the
/// app's Kubernetes Service, whose names follow the stricter rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct AppName(String);

impl AppName {
    pub const MAX_LEN: usize = 30;

    pub fn parse(name: &str) -> Result<AppName, Error> {
        let bytes = name.as_bytes();
        let valid = (1..=Self::MAX_LEN).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if !valid {
            return Err(Error::AppName(name.to_owned()));
        }
        if RESERVED.contains(&name) {
            return Err(Error::ReservedAppName(name.to_owned()));
        }
        Ok(AppName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A readable name, `adjective-noun-NNNN`, for an app created without one: indices
    /// pick from fixed word lists (taken modulo their lengths) and `number` is kept to
    /// four digits. The caller draws them at random and tries again if the name is taken.
    pub fn generate(adjective: usize, noun: usize, number: u32) -> AppName {
        let adjective = ADJECTIVES[adjective % ADJECTIVES.len()];
        let noun = NOUNS[noun % NOUNS.len()];
        AppName(format!("{adjective}-{noun}-{:04}", number % 10_000))
    }

    /// How many adjectives and nouns [`AppName::generate`] chooses from.
    pub const WORDS: (usize, usize) = (ADJECTIVES.len(), NOUNS.len());
}

/// Words for generated names: short, plain and harmless in any combination.
const ADJECTIVES: &[&str] = &[
    "amber", "brave", "bright", "calm", "clever", "coral", "crisp", "dapper", "eager", "early",
    "fancy", "fresh", "gentle", "golden", "happy", "hidden", "jolly", "keen", "kind", "lively",
    "lucky", "mellow", "merry", "misty", "noble", "polite", "proud", "quick", "quiet", "rapid",
    "ruby", "silent", "silver", "smooth", "snowy", "solid", "sunny", "swift", "tidy", "vivid",
    "warm", "wise", "witty", "young", "zesty",
];

const NOUNS: &[&str] = &[
    "anchor", "badger", "beacon", "brook", "canyon", "cedar", "comet", "coral", "delta", "dune",
    "falcon", "fern", "fjord", "forest", "garden", "glacier", "harbor", "heron", "island",
    "lagoon", "lantern", "maple", "meadow", "mesa", "otter", "orchid", "pebble", "pine", "prairie",
    "quartz", "raven", "reef", "river", "sparrow", "summit", "thicket", "tide", "tundra", "valley",
    "willow",
];

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for AppName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AppName::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::test_util::show;

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        expect.assert_eq(&show(AppName::parse(input)));
    }

    #[test]
    fn accepts_dns_labels() {
        check("demo", expect!["demo"]);
        check("my-app-2", expect!["my-app-2"]);
        check("a", expect!["a"]);
        check(
            "abcdefghijklmnopqrstuvwxyz0123",
            expect!["abcdefghijklmnopqrstuvwxyz0123"],
        );
    }

    #[test]
    fn refuses_everything_else() {
        let msg = "use 1-30 lowercase letters, digits and dashes, starting with a letter and not ending with a dash";
        for bad in [
            "",
            "Demo",
            "1app",
            "-app",
            "app-",
            "my_app",
            "my.app",
            "app/x",
            "../x",
            "abcdefghijklmnopqrstuvwxyz01234",
            "dé",
        ] {
            assert_eq!(
                show(AppName::parse(bad)),
                format!("error: invalid app name {bad:?}: {msg}")
            );
        }
    }

    #[test]
    fn every_generated_name_parses() {
        let (adjectives, nouns) = AppName::WORDS;
        for a in 0..adjectives {
            for n in 0..nouns {
                for number in [0, 7, 4242, 9999, 10_000, u32::MAX] {
                    let name = AppName::generate(a, n, number);
                    assert_eq!(AppName::parse(name.as_str()), Ok(name.clone()));
                    assert!(name.as_str().len() <= AppName::MAX_LEN, "{name}");
                }
            }
        }
        check(
            AppName::generate(6, 3, 42).as_str(),
            expect!["crisp-brook-0042"],
        );
    }

    #[test]
    fn refuses_reserved_names() {
        check(
            "slipway",
            expect![[r#"error: the app name "slipway" is reserved; choose another"#]],
        );
        check(
            "kube-system",
            expect![[r#"error: the app name "kube-system" is reserved; choose another"#]],
        );
    }
}
