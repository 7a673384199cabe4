//! The platform's private files (the CA's key, the ACME account): read without following a
//! symbolic link and only when owned by this process's user, written beside the final name
//! and renamed into place so that a crash leaves the old file or the new one, never half.
//! Blocking I/O: async callers use `spawn_blocking`.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::Error;

/// Larger than any key, certificate chain or account file this crate writes.
const MAX_FILE_BYTES: u64 = 1 << 20;

fn nofollow() -> i32 {
    (OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32
}

/// Creates `dir` (and its parents) readable by this user only, unless it exists.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Io(format!(
            "{} is not a directory: remove it or choose another data directory",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display()))),
        Err(e) => Err(Error::Io(format!("cannot read {}: {e}", dir.display()))),
    }
}

/// The contents of `path`, or `None` when it does not exist. Refuses a symbolic link, a
/// file that is not a regular file, and one owned by another user (someone could have
/// planted it), saying what to do.
pub(crate) fn read_private(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nofollow())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
            return Err(Error::Io(format!(
                "{} is a symbolic link, which slipwayd does not follow for its keys: replace it \
                 with the file itself",
                path.display()
            )));
        }
        Err(e) => return Err(Error::Io(format!("cannot open {}: {e}", path.display()))),
    };
    check_owned(&file, path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::Io(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes, which no file of slipwayd's is: remove it",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

fn check_owned(file: &File, path: &Path) -> Result<(), Error> {
    let meta = file
        .metadata()
        .map_err(|e| Error::Io(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::Io(format!(
            "{} is not a regular file: remove it",
            path.display()
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::Io(format!(
            "{} is owned by uid {}, not by slipwayd's user (uid {me}): remove it, or chown it if \
             it is yours",
            path.display(),
            meta.uid()
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` with permissions `mode`: into a new file beside it, synced, then
/// renamed over `path` (which replaces a symbolic link there rather than following it).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.{}.{nanos}.new", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nofollow())
            .open(&tmp)?;
        // The umask may have taken bits away from `mode`; say exactly what is meant.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io(format!("cannot write {}: {e}", path.display()))
    })
}
