//! The builder: turns an app's exported source into a build — the process types it runs
//! and, with buildpacks, the image that runs them.
//!
//! Today it is the Procfile-only build: it reads the `Procfile` at the root of the source
//! and declares its process types; the buildpack runner and the OCI image assembly replace
//! its inside without changing [`build`]'s shape.
//!
//! Architecture invariant: the builder knows nothing about git, SSH or the database. It
//! gets a directory and a log, and returns a [`BuildOutput`] or a [`BuildError`] whose message
//! tells the pusher what to fix.

use std::path::Path;

use domain::Procfile;

/// Where build output goes, line by line; the gateway streams it to the pusher.
pub type Log<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    pub procfile: Procfile,
    /// The image, by digest, once builds make images.
    pub image: Option<String>,
}

/// Why a build failed. Messages are one line and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no Procfile at the root of the app: add one that declares your processes, such as `web: ./server`"
    )]
    NoProcfile,
    #[error("{0}")]
    Procfile(#[from] domain::Error),
    #[error("the Procfile declares no process types: add one, such as `web: ./server`")]
    NoProcesses,
    #[error("cannot read the source: {0}")]
    Io(#[from] std::io::Error),
}

/// Builds the source in `dir`.
pub async fn build(dir: &Path, log: Log<'_>) -> Result<BuildOutput, BuildError> {
    log("-----> Procfile-only build");
    let text = match tokio::fs::read_to_string(dir.join("Procfile")).await {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::NoProcfile);
        }
        Err(err) => return Err(err.into()),
    };
    let procfile = Procfile::parse(&text)?;
    if procfile.is_empty() {
        return Err(BuildError::NoProcesses);
    }
    let types: Vec<String> = procfile.process_types().map(ToString::to_string).collect();
    log(&format!("       Process types: {}", types.join(", ")));
    Ok(BuildOutput {
        procfile,
        image: None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    async fn run(files: &[(&str, &str)]) -> (Result<BuildOutput, BuildError>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let lines = Mutex::new(Vec::new());
        let log = |line: &str| lines.lock().unwrap().push(line.to_owned());
        let result = build(dir.path(), &log).await;
        (result, lines.into_inner().unwrap())
    }

    #[tokio::test]
    async fn reads_the_procfile() {
        let (result, lines) = run(&[("Procfile", "web: ./serve\nworker: ./work\n")]).await;
        let output = result.unwrap();
        assert_eq!(output.procfile.command("web"), Some("./serve"));
        assert_eq!(lines.last().unwrap(), "       Process types: web, worker");
    }

    #[tokio::test]
    async fn refuses_what_cannot_run() {
        let message = |r: Result<BuildOutput, BuildError>| r.unwrap_err().to_string();
        assert!(message(run(&[]).await.0).starts_with("no Procfile at the root of the app"));
        assert_eq!(
            message(run(&[("Procfile", "web: a\nweb: b\n")]).await.0),
            "invalid Procfile line 2: process type web is defined twice"
        );
        assert!(
            message(run(&[("Procfile", "# empty\n")]).await.0)
                .starts_with("the Procfile declares no process types")
        );
    }
}
