//! Run images: the root filesystem apps are built on, made of Debian packages. The packages
//! are downloaded with `apt-get download` and unpacked with `dpkg-deb -x` (dependencies are
//! not followed: the operator names them), a busybox among them gets its applets as links in
//! `/bin`, and the tree becomes one layer at `/`, stored as `run-image:<name>` in the image
//! store, where [`BuilderConfig::run_image`](crate::BuilderConfig::run_image) finds it.
//!
//! The unpacked tree is written only through [`tenant_fs`](crate::tenant_fs): a package that
//! ships a symbolic link where the platform adds files makes the run image fail, never write
//! outside it. Processes run with `tokio::process`, file work on blocking threads; what the
//! tools say is bounded, and only its last line is kept, for the error.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use domain::Digest;
use tokio::io::AsyncReadExt as _;

use crate::image::{self, ImageStore};
use crate::tenant_fs::{Kind, Tree};
use crate::{BuildError, Log};

/// The longest run image name: it is a tag in the image store and in the registry.
pub const MAX_NAME: usize = 128;

/// Where busybox may be in its package.
const BUSYBOX: [&str; 2] = ["bin/busybox", "usr/bin/busybox"];

/// The most of a tool's output read; the rest is discarded unread.
const MAX_TOOL_OUTPUT: u64 = 1024 * 1024;

/// Makes the run image `name` of the Debian `packages` in the image store under `data_dir`,
/// saying what it does to `progress`. Returns the image's digest. A bad name or package is
/// refused before anything is downloaded or written.
pub async fn make(
    data_dir: &Path,
    name: &str,
    packages: &[String],
    progress: Log<'_>,
) -> Result<Digest, BuildError> {
    check_name(name)?;
    if packages.is_empty() {
        return Err(BuildError::RunImage(
            "a run image needs packages: name at least one, such as busybox-static".to_owned(),
        ));
    }
    for package in packages {
        check_package(package)?;
    }
    let work = blocking(|| Ok(tempfile::tempdir()?)).await?;
    let rootfs = work.path().join("rootfs");
    let made = rootfs.clone();
    blocking(move || Ok(std::fs::create_dir(made)?)).await?;

    progress(&format!("-----> Downloading {}", packages.join(", ")));
    let mut download = tokio::process::Command::new("apt-get");
    download
        .arg("download")
        .args(packages)
        .current_dir(work.path());
    run(
        download,
        "apt-get download",
        "check the package names, or run `apt-get update` first",
    )
    .await?;
    let dir = work.path().to_owned();
    let debs = blocking(move || {
        let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        Ok(debs)
    })
    .await?;
    for deb in &debs {
        let file = deb.file_name().unwrap_or_default().to_string_lossy();
        progress(&format!("-----> Unpacking {file}"));
        let mut unpack = tokio::process::Command::new("dpkg-deb");
        unpack.arg("-x").arg(deb).arg(&rootfs);
        run(
            unpack,
            "dpkg-deb -x",
            "check that the package is a valid .deb",
        )
        .await?;
    }
    let applets = link_busybox(&rootfs).await?;
    if applets > 0 {
        progress(&format!("-----> Linked {applets} busybox applets in /bin"));
    }

    progress("-----> Storing the run image");
    let images = ImageStore::open(crate::images_dir(data_dir))?;
    let owned = name.to_owned();
    let digest = blocking(move || store(&images, &owned, &rootfs)).await?;
    progress(&format!(
        "-----> Run image {name} is {digest}; build on it with `slipwayd up --run-image {name}`"
    ));
    drop(work);
    Ok(digest)
}

/// Stores the root filesystem `rootfs` as the run image `name`: the directories every image
/// needs added, then one layer at `/`. Blocking.
pub(crate) fn store(images: &ImageStore, name: &str, rootfs: &Path) -> Result<Digest, BuildError> {
    let tree = Tree::open(rootfs, "rootfs")?;
    for dir in ["tmp", image::APP_DIR.trim_start_matches('/'), "etc"] {
        tree.create_dir_all(Path::new(dir))?;
    }
    let layer = image::layer_from_tree(images, &tree, "")?;
    let spec = image::ImageSpec {
        env: vec!["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_owned()],
        working_dir: Some(image::APP_DIR.to_owned()),
        labels: [("io.slipway.run-image".to_owned(), name.to_owned())].into(),
        ..image::ImageSpec::default()
    };
    Ok(images
        .write_image(&reference(name), &[layer.into()], &spec)?
        .digest)
}

/// The name a run image has in the image store.
pub(crate) fn reference(name: &str) -> String {
    format!("run-image:{name}")
}

/// A run image's name is a tag: a letter, digit or `_` first, then those, `.` and `-`.
fn check_name(name: &str) -> Result<(), BuildError> {
    let valid = name.len() <= MAX_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(BuildError::RunImage(format!(
            "invalid run image name {name:?}: use letters, digits, `_`, `.` and `-`, at most {MAX_NAME}, such as base"
        )))
    }
}

/// A package as `apt-get download` takes it (`name`, `name:arch`, `name=version`), never an
/// option.
fn check_package(package: &str) -> Result<(), BuildError> {
    let valid = package.len() <= 256
        && package
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && package
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.:=~_".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(BuildError::RunImage(format!(
            "invalid package {package:?}: give a Debian package name, such as busybox-static"
        )))
    }
}

/// Gives a busybox in the root filesystem its applets as links in `/bin`, so the image has a
/// shell and the usual tools. Returns how many links it made.
async fn link_busybox(rootfs: &Path) -> Result<usize, BuildError> {
    let root = rootfs.to_owned();
    let found = blocking(move || {
        let tree = Tree::open(&root, "rootfs")?;
        for at in BUSYBOX {
            // A link on the way is no busybox of the image; linking its applets says so.
            match tree.kind(Path::new(at)) {
                Ok(Some(Kind::File)) => return Ok(Some(at)),
                Ok(_) | Err(BuildError::Link(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    })
    .await?;
    let Some(at) = found else {
        return Ok(0);
    };
    let mut list = tokio::process::Command::new(rootfs.join(at));
    list.arg("--list");
    let listed = output(list, "busybox --list").await?;
    let applets: Vec<String> = String::from_utf8_lossy(&listed)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "." && *a != ".." && !a.contains(['/', '\0']))
        .map(str::to_owned)
        .collect();
    let root = rootfs.to_owned();
    blocking(move || {
        let tree = Tree::open(&root, "rootfs")?;
        tree.create_dir_all(Path::new("bin"))?;
        let target = Path::new("/").join(at);
        let mut made = 0;
        for applet in &applets {
            let link = Path::new("bin").join(applet);
            if tree.kind(&link)?.is_none() {
                tree.symlink(&link, &target)?;
                made += 1;
            }
        }
        Ok(made)
    })
    .await
}

/// Runs `command` to the end; a failure says `what` failed, the tool's last line of error
/// output and `advice`.
async fn run(command: tokio::process::Command, what: &str, advice: &str) -> Result<(), BuildError> {
    let (status, _, said) = spawn(command, what).await?;
    if status.success() {
        return Ok(());
    }
    let said = last_line(&said);
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(" ({said})")
    };
    Err(BuildError::RunImage(format!(
        "{what} failed{said}: {advice}"
    )))
}

/// Runs `command` and returns its output, which must succeed.
async fn output(command: tokio::process::Command, what: &str) -> Result<Vec<u8>, BuildError> {
    let (status, out, said) = spawn(command, what).await?;
    if !status.success() {
        return Err(BuildError::RunImage(format!(
            "{what} failed ({}): check the package",
            last_line(&said)
        )));
    }
    Ok(out)
}

/// Runs `command` with no input, reading at most [`MAX_TOOL_OUTPUT`] of each of its outputs.
async fn spawn(
    mut command: tokio::process::Command,
    what: &str,
) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), BuildError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        BuildError::RunImage(format!(
            "cannot run {what} ({e}): making a run image needs Debian's apt-get and dpkg-deb"
        ))
    })?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (out, err, status) = tokio::join!(bounded(stdout), bounded(stderr), child.wait());
    Ok((status?, out?, err?))
}

/// Reads up to [`MAX_TOOL_OUTPUT`] bytes, then discards the rest so the writer never blocks.
async fn bounded(mut from: impl tokio::io::AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    (&mut from)
        .take(MAX_TOOL_OUTPUT)
        .read_to_end(&mut kept)
        .await?;
    tokio::io::copy(&mut from, &mut tokio::io::sink()).await?;
    Ok(kept)
}

/// The last non-empty line of `text`, at most 300 characters.
fn last_line(text: &[u8]) -> String {
    String::from_utf8_lossy(text)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

/// Runs file work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_packages_are_checked() {
        for good in ["base", "base-2.1", "_x"] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "a/b",
            "../x",
            "-x",
            ".x",
            "a b",
            &"x".repeat(MAX_NAME + 1),
        ] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid run image name"), "{bad}: {err}");
        }
        for good in [
            "busybox-static",
            "libc6:amd64",
            "g++-12",
            "tzdata=2024a-0+deb12u1",
        ] {
            check_package(good).unwrap();
        }
        for bad in ["", "-oDir=/", "--print-uris", "a b", "../x.deb", "x/stable"] {
            let err = check_package(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid package"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn a_bad_name_changes_nothing() {
        let data = tempfile::tempdir().unwrap();
        let said = std::sync::Mutex::new(Vec::new());
        let log = |line: &str| said.lock().unwrap().push(line.to_owned());
        let err = make(data.path(), "../up", &["busybox-static".to_owned()], &log)
            .await
            .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid run image name"),
            "{err}"
        );
        let err = make(data.path(), "base", &["-oDebug=1".to_owned()], &log)
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("invalid package"), "{err}");
        assert!(said.lock().unwrap().is_empty());
        assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
    }

    /// A root filesystem holding the host's busybox where Debian's package puts it.
    fn rootfs_with_busybox() -> Option<tempfile::TempDir> {
        let host = Path::new("/usr/bin/busybox");
        if !host.is_file() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs/usr/bin")).unwrap();
        std::fs::copy(host, dir.path().join("rootfs/usr/bin/busybox")).unwrap();
        Some(dir)
    }

    #[tokio::test]
    async fn busybox_gets_its_applets_as_links_and_the_rootfs_becomes_an_image() {
        let Some(dir) = rootfs_with_busybox() else {
            panic!("this test needs busybox at /usr/bin/busybox: apt-get install busybox");
        };
        let rootfs = dir.path().join("rootfs");
        // A link the package shipped stays as it was.
        std::fs::create_dir(rootfs.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/dash", rootfs.join("bin/sh")).unwrap();
        let made = link_busybox(&rootfs).await.unwrap();
        assert!(made > 20, "{made} applets");
        assert_eq!(
            std::fs::read_link(rootfs.join("bin/ls")).unwrap(),
            Path::new("/usr/bin/busybox")
        );
        assert_eq!(
            std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
            Path::new("/usr/bin/dash")
        );
        let images = ImageStore::open(dir.path().join("images")).unwrap();
        let digest = store(&images, "base", &rootfs).unwrap();
        let found = images.find(&reference("base")).unwrap().unwrap();
        assert_eq!((found.digest, found.layers.len()), (digest, 1));
        assert!(rootfs.join("workspace").is_dir() && rootfs.join("tmp").is_dir());
    }

    #[tokio::test]
    async fn a_bin_link_out_of_the_rootfs_is_refused_and_nothing_written_there() {
        let Some(dir) = rootfs_with_busybox() else {
            panic!("this test needs busybox at /usr/bin/busybox: apt-get install busybox");
        };
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("rootfs/bin")).unwrap();
        let err = link_busybox(&dir.path().join("rootfs")).await.unwrap_err();
        assert!(matches!(err, BuildError::Link(_)), "{err}");
        assert!(
            err.to_string().starts_with("rootfs/bin is a symbolic link"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
