//! The dashboard's static files, compiled into the binary: its stylesheet and the vendored
//! htmx (see `crates/api/assets/vendor/README.md`). Each is addressed with a digest of its
//! content, so browsers may keep it forever and a new build is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const FILES: [Asset; 3] = [
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/dashboard.css"),
    },
    Asset {
        name: "htmx-2.0.11.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        name: "htmx-ext-sse-2.2.4.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/vendor/htmx-ext-sse-2.2.4.min.js"),
    },
];

/// `name.<first 12 hex digits of its SHA-256>` for each file, computed once.
static VERSIONED: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|f| {
            let digest = hex::encode(Sha256::digest(f.body));
            let (stem, ext) = f.name.rsplit_once('.').expect("assets have extensions");
            format!("{stem}.{}.{ext}", &digest[..12])
        })
        .collect()
});

/// The URL of an asset by its plain name.
pub(crate) fn url(name: &str) -> String {
    let index = FILES
        .iter()
        .position(|f| f.name == name)
        .expect("only known assets are linked");
    format!("/assets/{}", VERSIONED[index])
}

/// `GET /assets/{file}`: only the exact versioned names; anything else is 404 (a name is
/// never a path).
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let Some(index) = VERSIONED.iter().position(|v| *v == file) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let asset = &FILES[index];
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_addressed_by_their_content() {
        let css = url("dashboard.css");
        assert!(
            css.starts_with("/assets/dashboard.") && css.ends_with(".css"),
            "{css}"
        );
        assert_eq!(css.len(), "/assets/dashboard..css".len() + 12);
    }
}
