//! The buildpacks that ship with Slipway: Heroku-API shell buildpacks under `buildpacks/`,
//! embedded in the binary and written to the data directory when the builder starts.
//!
//! They build with the toolchains installed on the build host (python3, node and npm, go,
//! cargo), since an app's processes run on that host's `/usr`; each keeps what makes its next
//! build faster (package caches, a copy of the installed dependencies, build caches) in the
//! app's cache directory. See each buildpack's `bin/compile` for what it does and caches.

/// One built-in buildpack's files, under `buildpacks/NAME/`.
macro_rules! buildpack {
    ($name:literal) => {
        (
            $name,
            &[
                (
                    "bin/detect",
                    include_str!(concat!("../buildpacks/", $name, "/bin/detect")),
                ),
                (
                    "bin/compile",
                    include_str!(concat!("../buildpacks/", $name, "/bin/compile")),
                ),
                (
                    "bin/release",
                    include_str!(concat!("../buildpacks/", $name, "/bin/release")),
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
    buildpack!("static"),
    buildpack!("procfile"),
];
