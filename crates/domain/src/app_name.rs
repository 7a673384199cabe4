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
}

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
