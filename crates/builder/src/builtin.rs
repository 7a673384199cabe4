//! The buildpacks that ship with Slipway: Cloud Native Buildpacks under `buildpacks/`,
//! embedded in the binary and written to the data directory when the builder starts.
//!
//! They build with the toolchains installed on the build host (python3, node and npm, go,
//! cargo, a JDK and Maven). Each puts what changes seldom — a virtualenv, node_modules — in launch layers of its
//! own, keyed by the lockfile, so a change to the app's code ships only the code; and keeps
//! what makes its next build faster (package and build caches) in cache layers. See each
//! buildpack's `bin/build` for what it does and keeps.

/// One built-in buildpack: its directory name under `buildpacks/`, and its files.
macro_rules! buildpack {
    ($name:literal) => {
        (
            $name,
            &[
                (
                    "buildpack.toml",
                    include_str!(concat!("../buildpacks/", $name, "/buildpack.toml")),
                ),
                (
                    "bin/detect",
                    include_str!(concat!("../buildpacks/", $name, "/bin/detect")),
                ),
                (
                    "bin/build",
                    include_str!(concat!("../buildpacks/", $name, "/bin/build")),
                ),
            ],
        )
    };
}

/// The buildpacks that ship with Slipway, tried in this order: the most specific first, and
/// `procfile` (any app with a Procfile) last.
pub(crate) const BUILTIN: &[(&str, &[(&str, &str)])] = &[
    buildpack!("python"),
    buildpack!("nodejs"),
    buildpack!("go"),
    buildpack!("rust"),
    buildpack!("java"),
    buildpack!("static"),
    buildpack!("procfile"),
];
