//! `Digest` and `ImageRef`: the only ways to name an image, so that a name can never be a
//! path. A blob of the local image store is named by a `Digest` alone (`sha256:` and 64
//! lowercase hex digits); an image in a registry by a reference in the distribution spec's
//! grammar, whose registry host is always given.

use std::fmt;

use crate::Error;

/// A content digest: `sha256:` and exactly 64 lowercase hex digits. Nothing else parses, so a
/// file name made from [`Digest::hex`] is always one plain name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

const SHA256: &str = "sha256:";

/// Where an app lives in its image: the builder puts the built app there and makes it the
/// image's working directory; runtimes run its processes from there.
pub const APP_DIR: &str = "/workspace";

impl Digest {
    pub fn parse(text: &str) -> Result<Digest, Error> {
        let ok = text.strip_prefix(SHA256).is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !ok {
            return Err(Error::Digest(shorten(text)));
        }
        Ok(Digest(text.to_owned()))
    }

    /// The digest of bytes already hashed: `sha256:` and the 32 bytes in lowercase hex.
    pub fn sha256(hash: [u8; 32]) -> Digest {
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        Digest(format!("{SHA256}{hex}"))
    }

    /// `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.0[SHA256.len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image: one of the local store by its manifest's digest, or one in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `sha256:…`: an image of the local store.
    Local(Digest),
    /// `host[:port]/path[:tag][@sha256:…]`.
    Registry(RegistryImage),
}

/// An image in a registry, by tag, by digest or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryImage {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// The distribution spec's limit on a repository name, host included.
const MAX_NAME: usize = 255;
const MAX_TAG: usize = 128;

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef, Error> {
        let refuse = |reason: &str| Error::ImageRef {
            reference: shorten(text),
            reason: reason.to_owned(),
        };
        if text.starts_with(SHA256) || !text.contains('/') {
            return match Digest::parse(text) {
                Ok(digest) => Ok(ImageRef::Local(digest)),
                Err(_) if text.starts_with(SHA256) => Err(Error::Digest(shorten(text))),
                Err(_) => Err(refuse(
                    "give an image digest (sha256:…) or registry/repository:tag",
                )),
            };
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest)?)),
            None => (text, None),
        };
        let (registry, path) = rest.split_once('/').expect("has a slash");
        // A tag follows the last colon of the path, if any (the registry's port is not in it).
        let (path, tag) = match path.rsplit_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (path, None),
        };
        if !is_registry(registry) {
            return Err(refuse(
                "start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag",
            ));
        }
        if path.is_empty() || !path.split('/').all(is_path_component) {
            return Err(refuse(
                "repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes",
            ));
        }
        if registry.len() + 1 + path.len() > MAX_NAME {
            return Err(refuse("the name is longer than 255 characters"));
        }
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(refuse(
                "a tag is 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
            ));
        }
        if tag.is_none() && digest.is_none() {
            return Err(refuse("give a tag (:1.0) or a digest (@sha256:…)"));
        }
        Ok(ImageRef::Registry(RegistryImage {
            registry: registry.to_owned(),
            repository: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        }))
    }

    /// The digest that pins the image, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            ImageRef::Local(digest) => Some(digest),
            ImageRef::Registry(image) => image.digest.as_ref(),
        }
    }

    /// The registry's `host[:port]`; `None` for an image of the local store.
    pub fn registry(&self) -> Option<&str> {
        match self {
            ImageRef::Local(_) => None,
            ImageRef::Registry(image) => Some(image.registry()),
        }
    }

    /// The repository's path within its registry; `None` for an image of the local store.
    pub fn repository(&self) -> Option<&str> {
        match self {
            ImageRef::Local(_) => None,
            ImageRef::Registry(image) => Some(image.repository()),
        }
    }
}

impl RegistryImage {
    /// `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository's path within the registry.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Local(digest) => write!(f, "{digest}"),
            ImageRef::Registry(image) => {
                write!(f, "{}/{}", image.registry, image.repository)?;
                if let Some(tag) = &image.tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(digest) = &image.digest {
                    write!(f, "@{digest}")?;
                }
                Ok(())
            }
        }
    }
}

/// `host[:port]`, where a host is DNS labels (`localhost` among them), an IPv4 address or
/// a bracketed IPv6 address. A bare word (`library`) is a path, not a registry: refused, so
/// no reference means a registry it does not name.
fn is_registry(text: &str) -> bool {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let Some((addr, rest)) = v6.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match rest.strip_prefix(':') {
            Some(port) => ("[v6]", Some(port)),
            None if rest.is_empty() => ("[v6]", None),
            None => return false,
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    let host_ok = host == "[v6]"
        || (host.split('.').all(label)
            && (host.contains('.') || port.is_some() || host == "localhost"));
    port_ok && host_ok
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or any number of `-`.
fn is_path_component(text: &str) -> bool {
    let b = text.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let separator = &text[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn is_tag(text: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = text.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// What an error message quotes of hostile input: at most 100 characters of it.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::test_util::show;

    fn check(inputs: &[&str], expected: Expect) {
        let shown: Vec<String> = inputs
            .iter()
            .map(|text| format!("{text:?} -> {}", show(ImageRef::parse(text))))
            .collect();
        expected.assert_eq(&shown.join("\n"));
    }

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn digests_are_sha256_and_64_lowercase_hex_digits() {
        assert_eq!(Digest::parse(&format!("sha256:{HEX}")).unwrap().hex(), HEX);
        let upper = HEX.to_uppercase();
        for bad in [
            String::new(),
            "sha256:".to_owned(),
            format!("sha256:{}", &HEX[1..]),
            format!("sha256:{HEX}0"),
            format!("sha256:{upper}"),
            format!("sha512:{HEX}"),
            format!("sha256:../{}", &HEX[3..]),
            format!("sha256:{}/x", &HEX[2..]),
            format!(" sha256:{HEX}"),
        ] {
            assert!(
                show(Digest::parse(&bad)).starts_with("error: invalid digest"),
                "{bad}"
            );
        }
        assert_eq!(Digest::sha256([0xab; 32]).hex(), "ab".repeat(32));
    }

    #[test]
    fn image_references() {
        let digest = format!("sha256:{HEX}");
        check(
            &[
                &digest,
                "registry.local/demo:1",
                "localhost:5000/team/app_1__x--y.z:v1.2-rc_3",
                &format!("127.0.0.1:5000/demo@{digest}"),
                &format!("[::1]:5000/demo:2@{digest}"),
                "ghcr.io/owner/app:latest",
            ],
            expect![[r#"
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" -> sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
                "registry.local/demo:1" -> registry.local/demo:1
                "localhost:5000/team/app_1__x--y.z:v1.2-rc_3" -> localhost:5000/team/app_1__x--y.z:v1.2-rc_3
                "127.0.0.1:5000/demo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" -> 127.0.0.1:5000/demo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
                "[::1]:5000/demo:2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" -> [::1]:5000/demo:2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
                "ghcr.io/owner/app:latest" -> ghcr.io/owner/app:latest"#]],
        );
    }

    #[test]
    fn references_that_could_be_paths_are_refused() {
        check(
            &[
                "../../etc",
                "/etc",
                "/etc/passwd:1",
                "sha256:../x",
                "sha256:",
                "img:1",
                "registry/../x:1",
                "registry.local/../x:1",
                "registry.local/./x:1",
                "registry.local//x:1",
                "registry.local/x/:1",
                "registry.local/Demo:1",
                "registry.local/demo",
                "registry.local/demo:.x",
                "registry.local/demo:1@sha256:../../etc",
                "registry.local/demo@sha256:0123",
                "..:5000/x:1",
                "a..b/x:1",
                "host:port/x:1",
                "registry.local/x:1 ",
                "registry.local/x%2f..:1",
                "registry.local/x\n:1",
            ],
            expect![[r#"
                "../../etc" -> error: invalid image reference "../../etc": start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag
                "/etc" -> error: invalid image reference "/etc": start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag
                "/etc/passwd:1" -> error: invalid image reference "/etc/passwd:1": start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag
                "sha256:../x" -> error: invalid digest "sha256:../x": write sha256: and 64 lowercase hex digits
                "sha256:" -> error: invalid digest "sha256:": write sha256: and 64 lowercase hex digits
                "img:1" -> error: invalid image reference "img:1": give an image digest (sha256:…) or registry/repository:tag
                "registry/../x:1" -> error: invalid image reference "registry/../x:1": start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag
                "registry.local/../x:1" -> error: invalid image reference "registry.local/../x:1": repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes
                "registry.local/./x:1" -> error: invalid image reference "registry.local/./x:1": repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes
                "registry.local//x:1" -> error: invalid image reference "registry.local//x:1": repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes
                "registry.local/x/:1" -> error: invalid image reference "registry.local/x/:1": repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes
                "registry.local/Demo:1" -> error: invalid image reference "registry.local/Demo:1": repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes
                "registry.local/demo" -> error: invalid image reference "registry.local/demo": give a tag (:1.0) or a digest (@sha256:…)
                "registry.local/demo:.x" -> error: invalid image reference "registry.local/demo:.x": a tag is 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'
                "registry.local/demo:1@sha256:../../etc" -> error: invalid digest "sha256:../../etc": write sha256: and 64 lowercase hex digits
                "registry.local/demo@sha256:0123" -> error: invalid digest "sha256:0123": write sha256: and 64 lowercase hex digits
                "..:5000/x:1" -> error: invalid image reference "..:5000/x:1": start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag
                "a..b/x:1" -> error: invalid image reference "a..b/x:1": start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag
                "host:port/x:1" -> error: invalid image reference "host:port/x:1": start with the registry host, as registry.example.com/repo:tag or localhost:5000/repo:tag
                "registry.local/x:1 " -> error: invalid image reference "registry.local/x:1 ": a tag is 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'
                "registry.local/x%2f..:1" -> error: invalid image reference "registry.local/x%2f..:1": repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes
                "registry.local/x\n:1" -> error: invalid image reference "registry.local/x\n:1": repository path components are lowercase letters and digits joined by '.', '_', '__' or dashes"#]],
        );
    }
}
