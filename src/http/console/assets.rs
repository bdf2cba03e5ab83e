//! The console's stylesheet and script, compiled into the binary and served under names
//! that carry a digest of their content, so browsers may cache them forever and still get
//! a new version the moment it changes.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::crypto::secrets::SecretDigest;

pub struct Asset {
    stem: &'static str,
    extension: &'static str,
    content_type: &'static str,
    body: &'static str,
    path: LazyLock<String>,
}

impl Asset {
    pub fn path(&'static self) -> &'static str {
        self.path.as_str()
    }
}

fn versioned(stem: &str, extension: &str, body: &str) -> String {
    let digest = SecretDigest::of(body.as_bytes());
    let short: String = digest.as_bytes()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("/console/static/{stem}.{short}.{extension}")
}

const CSS_BODY: &str = include_str!("../../../static/console.css");
const JS_BODY: &str = include_str!("../../../static/console.js");

pub static CSS: Asset = Asset {
    stem: "console",
    extension: "css",
    content_type: "text/css; charset=utf-8",
    body: CSS_BODY,
    path: LazyLock::new(|| versioned("console", "css", CSS_BODY)),
};

pub static JS: Asset = Asset {
    stem: "console",
    extension: "js",
    content_type: "text/javascript; charset=utf-8",
    body: JS_BODY,
    path: LazyLock::new(|| versioned("console", "js", JS_BODY)),
};

/// `GET /console/static/{name}`: the current version forever-cacheable; an older or
/// unknown name is 404 (the page that asked for it is older than this server).
pub async fn get_asset(name: web::Path<String>) -> HttpResponse {
    for asset in [&CSS, &JS] {
        if asset.path().rsplit('/').next() == Some(name.as_str()) {
            debug_assert!(name.starts_with(asset.stem) && name.ends_with(asset.extension));
            return HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, asset.content_type))
                .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
                .body(asset.body);
        }
    }
    HttpResponse::NotFound()
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .body("not found")
}
