//! The buildpacks that ship with Slipway: Heroku-API shell buildpacks under `buildpacks/`,
//! embedded in the binary and written to the data directory when the builder starts.

/// The buildpacks that ship with Slipway, tried in this order.
pub(crate) const BUILTIN: &[(&str, &[(&str, &str)])] = &[(
    "procfile",
    &[
        (
            "bin/detect",
            include_str!("../buildpacks/procfile/bin/detect"),
        ),
        (
            "bin/compile",
            include_str!("../buildpacks/procfile/bin/compile"),
        ),
        (
            "bin/release",
            include_str!("../buildpacks/procfile/bin/release"),
        ),
    ],
)];
