//! The dashboard page: three static files compiled into the binary (no CDN,
//! no build step), served at `/`. The page calls only the public API with
//! the token its user types; the content security policy lets it load
//! nothing from anywhere else.

use axum::http::header;
use axum::response::IntoResponse;

const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

pub(crate) async fn index() -> impl IntoResponse {
    asset(
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    )
}

pub(crate) async fn script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    )
}

pub(crate) async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("../web/app.css"))
}

#[cfg(test)]
mod tests {
    /// The page's own assets stay small: no framework, no bundle.
    #[test]
    fn the_page_weighs_under_200_kb() {
        let total = include_str!("../web/index.html").len()
            + include_str!("../web/app.js").len()
            + include_str!("../web/app.css").len();
        assert!(total <= 200 * 1024, "{total} bytes");
    }
}
