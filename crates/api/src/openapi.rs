//! The OpenAPI document served at `/v1/openapi.json`, assembled from the handlers'
//! `#[utoipa::path]` annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};

/// Adds what the handlers cannot say: the title, version and the bearer-token scheme.
pub(crate) fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("Slipway API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some("The REST API of Slipway, a Git-push PaaS. Authenticate with `Authorization: Bearer <token>` from `POST /v1/auth/login`."))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}
