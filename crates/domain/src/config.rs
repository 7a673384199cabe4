//! Config vars: keys, the size limits, and how a set or unset changes an app's config.

use std::collections::BTreeMap;
use std::fmt;

use crate::Error;

/// The largest value one config var may hold, in bytes.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// The largest an app's whole config may be (keys plus values), in bytes.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;

/// Keys the platform sets for every process; letting apps set them would break routing.
const RESERVED_KEYS: &[&str] = &["PORT"];

/// A config var's name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ConfigKey(String);

impl ConfigKey {
    pub fn parse(key: &str) -> Result<ConfigKey, Error> {
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::ConfigKey(key.to_owned()));
        }
        if RESERVED_KEYS.contains(&key) {
            return Err(Error::ReservedConfigKey(key.to_owned()));
        }
        Ok(ConfigKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Refuses a value with a control character other than tab, newline and the carriage
/// return of a `\r\n`: a NUL cannot be put into a process's environment at all, and the
/// other controls (escape sequences, a lone `\r`) rewrite what `slip config` and logs show.
fn check_value(key: &ConfigKey, value: &str) -> Result<(), Error> {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let allowed = match c {
            '\t' | '\n' => true,
            '\r' => chars.peek() == Some(&'\n'),
            c => !c.is_ascii_control(),
        };
        if !allowed {
            return Err(Error::ConfigValueControl {
                key: key.0.clone(),
                found: format!("U+{:04X}", u32::from(c)),
            });
        }
    }
    Ok(())
}

/// A requested change to an app's config: keys to set and keys to unset, as one
/// `PATCH` of the API carries them (`null` unsets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    set: BTreeMap<ConfigKey, String>,
    unset: Vec<ConfigKey>,
}

impl ConfigChange {
    /// Parses a change: `Some(value)` sets a key, `None` unsets it. Each key and value is
    /// checked on its own; a key given twice is refused.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<ConfigChange, Error> {
        let mut change = ConfigChange::default();
        for (key, value) in entries {
            let key = ConfigKey::parse(key)?;
            if change.set.contains_key(&key) || change.unset.contains(&key) {
                return Err(Error::Duplicate(key.0));
            }
            match value {
                Some(value) if value.len() > MAX_VALUE_BYTES => {
                    return Err(Error::ConfigValueTooLarge {
                        key: key.0,
                        len: value.len(),
                        max: MAX_VALUE_BYTES,
                    });
                }
                Some(value) => {
                    check_value(&key, value)?;
                    change.set.insert(key, value.to_owned());
                }
                None => change.unset.push(key),
            }
        }
        Ok(change)
    }

    /// A change that only sets keys.
    pub fn set<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<ConfigChange, Error> {
        ConfigChange::parse(pairs.into_iter().map(|(k, v)| (k, Some(v))))
    }

    /// A change that only unsets keys.
    pub fn unset<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<ConfigChange, Error> {
        ConfigChange::parse(keys.into_iter().map(|k| (k, None)))
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.unset.is_empty()
    }
}

/// What a change did, for the release summary: keys added, changed and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub added: Vec<ConfigKey>,
    pub changed: Vec<ConfigKey>,
    pub removed: Vec<ConfigKey>,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl fmt::Display for ConfigDiff {
    /// `added A, B; changed C; removed D`, the middle of a release summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
        ];
        let mut first = true;
        for (verb, keys) in parts {
            if keys.is_empty() {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            let names: Vec<&str> = keys.iter().map(ConfigKey::as_str).collect();
            write!(f, "{verb} {}", names.join(", "))?;
        }
        Ok(())
    }
}

/// An app's whole config: the environment its processes get. Always within the limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigVars(BTreeMap<ConfigKey, String>);

impl ConfigVars {
    /// Rebuilds config read back from storage or the wire, checking every key and limit.
    pub fn from_map(map: BTreeMap<String, String>) -> Result<ConfigVars, Error> {
        let change = ConfigChange::set(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let config = ConfigVars(change.set);
        config.check_total()?;
        Ok(config)
    }

    /// The config after `change`, and what changed. Refused if it would exceed the limits.
    pub fn apply(&self, change: &ConfigChange) -> Result<(ConfigVars, ConfigDiff), Error> {
        let mut next = self.0.clone();
        let mut diff = ConfigDiff::default();
        for (key, value) in &change.set {
            match next.insert(key.clone(), value.clone()) {
                None => diff.added.push(key.clone()),
                Some(old) if old != *value => diff.changed.push(key.clone()),
                Some(_) => {}
            }
        }
        for key in &change.unset {
            if next.remove(key).is_some() {
                diff.removed.push(key.clone());
            }
        }
        let next = ConfigVars(next);
        next.check_total()?;
        Ok((next, diff))
    }

    /// Keys plus values, in bytes.
    pub fn size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.0.len() + v.len()).sum()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn check_total(&self) -> Result<(), Error> {
        let len = self.size();
        if len > MAX_CONFIG_BYTES {
            return Err(Error::ConfigTooLarge {
                len,
                max: MAX_CONFIG_BYTES,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    #[track_caller]
    fn check_key(input: &str, expect: Expect) {
        let actual = match ConfigKey::parse(input) {
            Ok(key) => key.to_string(),
            Err(err) => format!("error: {err}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn keys() {
        check_key("DATABASE_URL", expect!["DATABASE_URL"]);
        check_key("_private", expect!["_private"]);
        check_key("a1", expect!["a1"]);
        check_key(
            "",
            expect![[r#"error: invalid config key "": keys match [A-Za-z_][A-Za-z0-9_]*"#]],
        );
        check_key(
            "1A",
            expect![[r#"error: invalid config key "1A": keys match [A-Za-z_][A-Za-z0-9_]*"#]],
        );
        check_key(
            "A-B",
            expect![[r#"error: invalid config key "A-B": keys match [A-Za-z_][A-Za-z0-9_]*"#]],
        );
        check_key(
            "A=B",
            expect![[r#"error: invalid config key "A=B": keys match [A-Za-z_][A-Za-z0-9_]*"#]],
        );
        check_key(
            "PORT",
            expect!["error: PORT is set by the platform and cannot be configured"],
        );
    }

    #[track_caller]
    fn check_value(value: &str, expect: Expect) {
        let actual = match ConfigChange::set([("KEY", value)]) {
            Ok(_) => "ok".to_owned(),
            Err(err) => format!("error: {err}"),
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn values() {
        check_value("", expect!["ok"]);
        check_value("postgres://u:p@db/x?a=1&b=2", expect!["ok"]);
        check_value("tab\there", expect!["ok"]);
        check_value(
            "-----BEGIN KEY-----\nabc\n-----END KEY-----\n",
            expect!["ok"],
        );
        check_value("windows\r\nlines\r\n", expect!["ok"]);
        check_value("ünïcödé ✓ \u{a0}", expect!["ok"]);
        check_value(
            "a\0b",
            expect![
                "error: the value of KEY contains the control character U+0000: only tabs and line breaks are allowed in config values"
            ],
        );
        check_value(
            "\0",
            expect![
                "error: the value of KEY contains the control character U+0000: only tabs and line breaks are allowed in config values"
            ],
        );
        check_value(
            "lone\rreturn",
            expect![
                "error: the value of KEY contains the control character U+000D: only tabs and line breaks are allowed in config values"
            ],
        );
        check_value(
            "ends with\r",
            expect![
                "error: the value of KEY contains the control character U+000D: only tabs and line breaks are allowed in config values"
            ],
        );
        check_value(
            "\u{1b}[31mred",
            expect![
                "error: the value of KEY contains the control character U+001B: only tabs and line breaks are allowed in config values"
            ],
        );
        check_value(
            "bell\u{7}",
            expect![
                "error: the value of KEY contains the control character U+0007: only tabs and line breaks are allowed in config values"
            ],
        );
        check_value(
            "del\u{7f}",
            expect![
                "error: the value of KEY contains the control character U+007F: only tabs and line breaks are allowed in config values"
            ],
        );
        check_value(
            "\u{1f}",
            expect![
                "error: the value of KEY contains the control character U+001F: only tabs and line breaks are allowed in config values"
            ],
        );
    }

    /// Applies each change in turn, rendering the diff or error of each step and the final config.
    #[track_caller]
    fn check_changes(changes: &[Result<ConfigChange, Error>], expect: Expect) {
        let mut config = ConfigVars::default();
        let mut out = String::new();
        for change in changes {
            let step = change.clone().and_then(|c| config.apply(&c));
            match step {
                Ok((next, diff)) => {
                    out += &format!("ok: {diff}\n");
                    config = next;
                }
                Err(err) => out += &format!("error: {err}\n"),
            }
        }
        let vars: Vec<String> = config.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out += &format!("=> {}", vars.join(" "));
        expect.assert_eq(&out);
    }

    #[test]
    fn set_and_unset() {
        check_changes(
            &[
                ConfigChange::set([("A", "1"), ("B", "2")]),
                ConfigChange::set([("A", "1"), ("B", "3"), ("C", "4")]),
                ConfigChange::set([("A", "1")]),
                ConfigChange::unset(["B", "MISSING"]),
                ConfigChange::unset(["B"]),
            ],
            expect![[r#"
                ok: added A, B
                ok: added C; changed B
                ok: 
                ok: removed B
                ok: 
                => A=1 C=4"#]],
        );
    }

    #[test]
    fn refuses_bad_changes_and_keeps_config() {
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        let almost = "x".repeat(MAX_VALUE_BYTES);
        let mut changes = vec![
            ConfigChange::set([("A", "1")]),
            ConfigChange::set([("A", "2"), ("A", "3")]),
            ConfigChange::set([("OK", "1"), ("BAD-KEY", "2")]),
            ConfigChange::set([("BIG", big.as_str())]),
            ConfigChange::unset(["A", "A"]),
        ];
        // Eight values of 32 KiB each fit one by one, but not all together.
        let keys: Vec<String> = (0..8).map(|i| format!("K{i}")).collect();
        changes.push(ConfigChange::set(
            keys.iter().map(|k| (k.as_str(), almost.as_str())),
        ));
        check_changes(
            &changes,
            expect![[r#"
                ok: added A
                error: "A" is given more than once
                error: invalid config key "BAD-KEY": keys match [A-Za-z_][A-Za-z0-9_]*
                error: the value of BIG is 32769 bytes; values are limited to 32768 bytes
                error: "A" is given more than once
                error: the app's config would be 262162 bytes; an app's config is limited to 262144 bytes
                => A=1"#]],
        );
    }
}
