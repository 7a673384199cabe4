//! OCI images, generically: reproducible layers ([`layer`]), the local image store, an OCI
//! image layout whose manifests and configs are read with `oci-spec` types ([`layout`]), and
//! pushing an image of it to a registry ([`registry`]).
//!
//! Every document read back is size-capped and parsed as what it claims to be, and every
//! digest in it is parsed into a [`domain::Digest`] before it names a blob, so a stored
//! document can never name a path.
//!
//! Architecture invariant: this crate knows nothing of buildpacks, apps, the store or the
//! database. The builder decides what goes into an image (its layers, labels, environment);
//! runtimes read images back through [`ImageStore`]. A layer is made of any directory handle
//! that implements [`Dir`], so the caller decides how a tree it does not trust is walked.

pub mod layer;
pub mod layout;
pub mod rebase;
pub mod registry;
pub mod rootfs;

pub use domain::human_size;
pub use layer::{
    Change, Changes, Dir, EntryKind, Layer, changes_layer, compress, compress_stream, diff_id_of,
    sha256,
};
pub use layout::{
    FoundImage, ImageSpec, ImageStore, LayerRef, LayerSource, MAX_DOCUMENT, StoredImage,
};
pub use rebase::{BASE_LABEL, BaseRecord, image_env};
pub use registry::{PushReport, Pushed, Registry, RegistryConfig};

/// What failed with an image. Messages are one line and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stored document (manifest, config, index) that is not what it claims to be.
    #[error(
        "{what} is not a valid OCI document ({reason}); the image store holds only what Slipway wrote: build the image again"
    )]
    Invalid { what: String, reason: String },
    #[error(
        "{what} is over {limit} bytes, more than any document Slipway writes; build the image again"
    )]
    TooLarge { what: String, limit: u64 },
    #[error("{0}")]
    Digest(#[from] domain::Error),
    #[error("the layer {0} is no longer in the image store; build the image again")]
    LayerGone(domain::Digest),
    #[error("invalid registry {0:?}: give host:port or host:port/prefix")]
    RegistryAddress(String),
    #[error("invalid image reference {text:?}: {reason}")]
    Reference { text: String, reason: String },
    #[error(
        "cannot push the image to the registry: {0}; check that the registry is up and accepts pushes"
    )]
    Push(#[source] oci_client::errors::OciDistributionError),
    #[error("cannot pull {0} from the registry: {1}; check that the image is there")]
    Pull(String, #[source] oci_client::errors::OciDistributionError),
    /// Rebase refused: the image was built from a Dockerfile.
    #[error(
        "rebase swaps the run image under buildpack builds; this image was built from a Dockerfile whose layers depend on its base: push again to rebuild"
    )]
    DockerfileImage,
    /// Rebase refused: the image records no run image.
    #[error(
        "this image records no run image it was built on (it was built without --run-image, or before builds recorded it): push again to build it on the run image"
    )]
    NoBase,
    /// Rebase refused: the image's first layers are not the run image it records.
    #[error(
        "this image's first layers are not the run image it records, so its base cannot be swapped: push again to rebuild"
    )]
    BaseMismatch,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// For callers that work in `std::io`: an I/O error stays itself, and a bad document,
/// digest or reference is [`std::io::ErrorKind::InvalidData`] with the same message.
impl From<Error> for std::io::Error {
    fn from(error: Error) -> std::io::Error {
        match error {
            Error::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
