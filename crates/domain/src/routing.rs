//! How the router treats an app's traffic besides where it sends it: routing on or off,
//! maintenance mode, the IP allow list and HTTPS only.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::Error;

/// Entries an app's IP allow list may hold.
pub const MAX_ALLOW_LIST: usize = 100;

/// `max-age` of the `Strict-Transport-Security` header when HSTS is on: one year, as
/// browsers' preload lists ask.
pub const HSTS_MAX_AGE: u32 = 31_536_000;

/// A range of client addresses, `10.0.0.0/8` or `2001:db8::/32`; a bare address is the
/// range of that one address. Host bits below the prefix are cleared, so `10.1.2.3/8`
/// is `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr(ipnet::IpNet);

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, Error> {
        let text = text.trim();
        let net = match text.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => text
                .parse::<IpAddr>()
                .map(ipnet::IpNet::from)
                .map_err(|_| Error::Cidr(text.to_owned()))?,
        };
        Ok(Cidr(net.trunc()))
    }

    /// Whether `address` is in the range. An IPv4 address written as IPv6
    /// (`::ffff:10.0.0.1`, as a dual-stack listener reports it) is taken as IPv4.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&address.to_canonical())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Cidr, Error> {
        Cidr::parse(s)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An app's routing switches. The default routes the app to everyone over HTTP and HTTPS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RoutingSettings {
    /// Off (`slip routing:disable`): the app runs, but the router sends it nothing and its
    /// hosts answer as unknown ones do.
    pub enabled: bool,
    /// On (`slip maintenance:on`): every request gets the platform's 503 maintenance page;
    /// the app's processes keep running and `slip run` still works.
    pub maintenance: bool,
    /// When not empty, only clients in these ranges are served; others get a 403.
    pub allow: BTreeSet<Cidr>,
    /// `slip tls:enable`: plain HTTP requests are redirected to HTTPS.
    pub force_https: bool,
    /// `slip tls:enable --hsts`: HTTPS responses carry `Strict-Transport-Security`.
    pub hsts: bool,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            enabled: true,
            maintenance: false,
            allow: BTreeSet::new(),
            force_https: false,
            hsts: false,
        }
    }
}

impl RoutingSettings {
    /// Whether the allow list lets `client` in.
    pub fn allows(&self, client: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(client))
    }

    /// Applies `change`; `Err` (and nothing changed) when it would break a limit.
    pub fn apply(&mut self, change: &RoutingChange) -> Result<(), Error> {
        match change {
            RoutingChange::Enabled(on) => self.enabled = *on,
            RoutingChange::Maintenance(on) => self.maintenance = *on,
            RoutingChange::Allow(ranges) => {
                let added = ranges.iter().filter(|c| !self.allow.contains(c)).count();
                if self.allow.len() + added > MAX_ALLOW_LIST {
                    return Err(Error::AllowListFull {
                        max: MAX_ALLOW_LIST,
                    });
                }
                self.allow.extend(ranges.iter().copied());
            }
            RoutingChange::Disallow(ranges) => {
                if let Some(missing) = ranges.iter().find(|c| !self.allow.contains(c)) {
                    return Err(Error::NotAllowed(missing.to_string()));
                }
                for range in ranges {
                    self.allow.remove(range);
                }
            }
            RoutingChange::Https { force, hsts } => {
                self.force_https = *force;
                self.hsts = *force && *hsts;
            }
        }
        Ok(())
    }
}

/// One change to an app's [`RoutingSettings`], as a CLI command makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingChange {
    /// `routing:enable` / `routing:disable`.
    Enabled(bool),
    /// `maintenance:on` / `maintenance:off`.
    Maintenance(bool),
    /// `whitelist:add`.
    Allow(Vec<Cidr>),
    /// `whitelist:remove`; refused if a range is not on the list.
    Disallow(Vec<Cidr>),
    /// `tls:enable [--hsts]` / `tls:disable` (which also turns HSTS off).
    Https { force: bool, hsts: bool },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cidr_is_normalised_and_a_bare_address_is_one_host() {
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            Cidr::parse(" 192.0.2.7 ").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            Cidr::parse("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "example.com",
            "10.0.0/8",
            "::1/129",
            "1.2.3.4/-1",
        ] {
            let err = Cidr::parse(bad).unwrap_err();
            assert!(matches!(err, Error::Cidr(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn a_cidr_contains_its_addresses_and_ipv4_written_as_ipv6() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
    }

    #[test]
    fn an_empty_allow_list_allows_everyone_and_a_list_only_its_ranges() {
        let mut settings = RoutingSettings::default();
        assert!(settings.allows("203.0.113.9".parse().unwrap()));
        let net = Cidr::parse("198.51.100.0/24").unwrap();
        settings.apply(&RoutingChange::Allow(vec![net])).unwrap();
        assert!(settings.allows("198.51.100.20".parse().unwrap()));
        assert!(!settings.allows("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn removing_a_range_not_on_the_list_changes_nothing() {
        let mut settings = RoutingSettings::default();
        let a = Cidr::parse("10.0.0.0/8").unwrap();
        let b = Cidr::parse("192.168.0.0/16").unwrap();
        settings.apply(&RoutingChange::Allow(vec![a])).unwrap();
        let err = settings
            .apply(&RoutingChange::Disallow(vec![a, b]))
            .unwrap_err();
        assert_eq!(err, Error::NotAllowed("192.168.0.0/16".to_owned()));
        assert!(settings.allow.contains(&a));
    }

    #[test]
    fn the_allow_list_is_bounded() {
        let mut settings = RoutingSettings::default();
        let many: Vec<Cidr> = (0..=MAX_ALLOW_LIST as u32)
            .map(|i| Cidr::parse(&format!("10.0.{}.{}", i / 256, i % 256)).unwrap())
            .collect();
        let err = settings.apply(&RoutingChange::Allow(many)).unwrap_err();
        assert_eq!(
            err,
            Error::AllowListFull {
                max: MAX_ALLOW_LIST
            }
        );
        assert!(settings.allow.is_empty());
    }

    #[test]
    fn hsts_needs_https_only_and_settings_read_back_from_json() {
        let mut settings = RoutingSettings::default();
        settings
            .apply(&RoutingChange::Https {
                force: false,
                hsts: true,
            })
            .unwrap();
        assert!(!settings.hsts);
        settings
            .apply(&RoutingChange::Https {
                force: true,
                hsts: true,
            })
            .unwrap();
        settings
            .apply(&RoutingChange::Allow(vec![Cidr::parse("::1").unwrap()]))
            .unwrap();
        let json = serde_json::to_string(&settings).unwrap();
        assert_eq!(
            serde_json::from_str::<RoutingSettings>(&json).unwrap(),
            settings
        );
        // Settings stored before a field existed read back with its default.
        let old: RoutingSettings = serde_json::from_str(r#"{"maintenance":true}"#).unwrap();
        assert!(old.enabled && old.maintenance);
    }
}
