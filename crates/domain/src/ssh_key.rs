//! `SshPublicKey`: a user's OpenSSH public key, normalised, with its SHA256 fingerprint.

use std::fmt;

use ssh_key::{Algorithm, HashAlg, PublicKey};

use crate::Error;

/// RSA keys shorter than this are refused, as OpenSSH itself refuses them.
const MIN_RSA_BITS: usize = 2048;

/// A public key in OpenSSH's one-line form, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    /// `ssh-ed25519 AAAA…` without the comment.
    openssh: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    fingerprint: String,
    comment: String,
}

impl SshPublicKey {
    /// Parses `type base64 [comment]`. Ed25519, ECDSA and RSA (≥ 2048 bits) are accepted.
    pub fn parse(line: &str) -> Result<SshPublicKey, Error> {
        let line = line.trim();
        if line.is_empty() {
            return Err(Error::SshKey("the key is empty".into()));
        }
        if line.contains('\n') {
            return Err(Error::SshKey("give one key, on one line".into()));
        }
        if line.starts_with("-----BEGIN") {
            return Err(Error::SshKey(
                "that is a private key; give the .pub file".into(),
            ));
        }
        let key = PublicKey::from_openssh(line)
            .map_err(|err| Error::SshKey(format!("not an OpenSSH public key ({err})")))?;
        match key.algorithm() {
            Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
            Algorithm::Rsa { .. } => {
                let bits = key.key_data().rsa().map_or(0, |rsa| {
                    rsa.n.as_positive_bytes().map_or(0, |n| n.len() * 8)
                });
                if bits < MIN_RSA_BITS {
                    return Err(Error::SshKey(format!(
                        "RSA keys need at least {MIN_RSA_BITS} bits"
                    )));
                }
            }
            other => {
                return Err(Error::SshKey(format!(
                    "{other} keys are not supported; use ed25519"
                )));
            }
        }
        let comment = key.comment().to_owned();
        let mut bare = key.clone();
        bare.set_comment("");
        let openssh = bare
            .to_openssh()
            .map_err(|err| Error::SshKey(err.to_string()))?
            .trim()
            .to_owned();
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        Ok(SshPublicKey {
            openssh,
            fingerprint,
            comment,
        })
    }

    pub fn openssh(&self) -> &str {
        &self.openssh
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn comment(&self) -> &str {
        &self.comment
    }
}

impl fmt::Display for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.fingerprint, self.comment)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::test_util::show;

    #[track_caller]
    fn check(input: &str, expect: Expect) {
        expect.assert_eq(&show(SshPublicKey::parse(input)));
    }

    // Test keys made with `ssh-keygen`; only their public halves appear here.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnl4hM1pOmO5uGWO3i+0m0Y8ymXXJQ1s1eoF7XmKXYf ada@laptop";

    #[test]
    fn accepts_ed25519_and_keeps_the_comment() {
        let key = SshPublicKey::parse(&format!("  {ED25519}\n")).unwrap();
        expect!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnl4hM1pOmO5uGWO3i+0m0Y8ymXXJQ1s1eoF7XmKXYf"]
            .assert_eq(key.openssh());
        assert!(
            key.fingerprint().starts_with("SHA256:"),
            "{}",
            key.fingerprint()
        );
        assert_eq!(key.comment(), "ada@laptop");
        // The same key with another comment has the same fingerprint.
        let again = SshPublicKey::parse(&ED25519.replace("ada@laptop", "other")).unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
    }

    #[test]
    fn refuses_what_is_not_a_public_key() {
        check(
            "",
            expect!["error: invalid SSH public key: the key is empty"],
        );
        check(
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            expect!["error: invalid SSH public key: that is a private key; give the .pub file"],
        );
        assert!(
            show(SshPublicKey::parse("ssh-ed25519 not-base64"))
                .starts_with("error: invalid SSH public key: not an OpenSSH public key")
        );
        assert!(
            show(SshPublicKey::parse("hello world"))
                .starts_with("error: invalid SSH public key: not an OpenSSH public key")
        );
        check(
            &format!("{ED25519}\n{ED25519}"),
            expect!["error: invalid SSH public key: give one key, on one line"],
        );
    }
}
