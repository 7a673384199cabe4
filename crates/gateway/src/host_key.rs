//! The gateway's host key: made on first start, kept in the data directory.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use russh::keys::{Algorithm, PrivateKey};

use crate::Error;

/// Loads the Ed25519 host key at `path`, making it (mode 0600) if it does not exist.
pub(crate) fn load_or_create(path: &Path) -> Result<PrivateKey, Error> {
    if path.exists() {
        return russh::keys::load_secret_key(path, None)
            .map_err(|e| Error::HostKey(format!("cannot read {}: {e}", path.display())));
    }
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .map_err(|e| Error::HostKey(format!("cannot make a host key: {e}")))?;
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .map_err(|e| Error::HostKey(format!("cannot encode the host key: {e}")))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::HostKey(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())?;
    tracing::info!(path = %path.display(), fingerprint = %key.public_key().fingerprint(russh::keys::HashAlg::Sha256), "made the SSH host key");
    Ok(key)
}
