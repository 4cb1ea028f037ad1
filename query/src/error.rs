//! The one error type of the HTTP API. Every failure becomes
//! `{"error_code", "error_msg"}` with a closed mapping to status codes; the
//! codes are stable and documented in `docs/api.md`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use common::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("invalid value for parameter `{param}`: {reason}")]
    InvalidParameter { param: String, reason: String },
    #[error("parameter `{0}` is given more than once")]
    DuplicateParameter(String),
    #[error("parameter `{0}` is given with an empty value")]
    EmptyParameter(String),
    #[error("header `{0}` is given more than once")]
    DuplicateHeader(&'static str),
    #[error("the X-Auth-Token header is missing")]
    MissingToken,
    #[error("the X-Auth-Token is not valid")]
    InvalidToken,
    #[error("the token is not allowed to access project `{0}`")]
    ProjectForbidden(String),
    #[error("this operation needs an operator token (scope `*`)")]
    OperatorOnly,
    #[error("replication record `{0}` does not exist in this project")]
    RecordNotFound(String),
    #[error("no such resource: {0}")]
    RouteNotFound(String),
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the request head (request line and headers) is over {0} bytes")]
    HeadersTooLarge(usize),
    #[error("the request took too long")]
    Timeout,
    #[error("too many concurrent requests, retry later")]
    Overloaded,
    #[error("too many change feeds open (max_streams: {0}), retry later; exports share the cap")]
    TooManyStreams(usize),
    #[error("the projection has not caught up with the event stream yet, retry later")]
    NotReady,
    /// A cluster node that owns the project (or the record) is down or not
    /// caught up: named, with why.
    #[error("`{node}`, the cluster node that answers for this, cannot now: {reason}; retry later")]
    NodeUnavailable { node: String, reason: String },
    /// A forwarded request reached a node that does not own it: the nodes'
    /// cluster maps differ.
    #[error("forwarded here by `{0}`, but this node's cluster map gives it to another: the nodes' maps differ")]
    Misrouted(String),
    /// A failure on our side whose detail is for the log, never the client:
    /// `unavailable` (retry: store I/O) or internal. The detail travels with
    /// the response to the access log, which logs it once.
    #[error("{}", if *.unavailable { "the store is unavailable, retry later" } else { "internal error" })]
    Failed { unavailable: bool, detail: String },
}

/// The detail of a failure, attached to its response for the access log.
#[derive(Debug, Clone)]
pub struct ErrorDetail(pub String);

/// An error answer's code, attached to its response for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Serialize)]
struct Body<'a> {
    error_code: &'a str,
    error_msg: String,
}

impl ApiError {
    pub fn invalid(param: &str, reason: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter {
            param: param.to_owned(),
            reason: reason.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParameter { .. }
            | ApiError::DuplicateParameter(_)
            | ApiError::EmptyParameter(_)
            | ApiError::DuplicateHeader(_) => StatusCode::BAD_REQUEST,
            ApiError::MissingToken | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::ProjectForbidden(_) | ApiError::OperatorOnly => StatusCode::FORBIDDEN,
            ApiError::RecordNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Overloaded
            | ApiError::TooManyStreams(_)
            | ApiError::NotReady
            | ApiError::NodeUnavailable { .. }
            | ApiError::Failed {
                unavailable: true, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Misrouted(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code (8-36 characters).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter { .. } => "TRK.INVALID_PARAMETER",
            ApiError::DuplicateParameter(_) => "TRK.DUPLICATE_PARAMETER",
            ApiError::EmptyParameter(_) => "TRK.EMPTY_PARAMETER",
            ApiError::DuplicateHeader(_) => "TRK.DUPLICATE_HEADER",
            ApiError::MissingToken => "TRK.MISSING_TOKEN",
            ApiError::InvalidToken => "TRK.INVALID_TOKEN",
            ApiError::ProjectForbidden(_) => "TRK.PROJECT_FORBIDDEN",
            ApiError::OperatorOnly => "TRK.OPERATOR_ONLY",
            ApiError::RecordNotFound(_) => "TRK.RECORD_NOT_FOUND",
            ApiError::RouteNotFound(_) => "TRK.ROUTE_NOT_FOUND",
            ApiError::MethodNotAllowed => "TRK.METHOD_NOT_ALLOWED",
            ApiError::PayloadTooLarge => "TRK.PAYLOAD_TOO_LARGE",
            ApiError::HeadersTooLarge(_) => "TRK.HEADERS_TOO_LARGE",
            ApiError::Timeout => "TRK.REQUEST_TIMEOUT",
            ApiError::Overloaded | ApiError::TooManyStreams(_) => "TRK.OVERLOADED",
            ApiError::NotReady => "TRK.NOT_READY",
            ApiError::NodeUnavailable { .. } => "TRK.NODE_UNAVAILABLE",
            ApiError::Misrouted(_) => "TRK.MISROUTED",
            ApiError::Failed {
                unavailable: true, ..
            } => "TRK.STORE_UNAVAILABLE",
            ApiError::Failed { .. } => "TRK.INTERNAL_ERROR",
        }
    }

    /// Every code, for documentation and tests.
    pub const CODES: [&'static str; 20] = [
        "TRK.INVALID_PARAMETER",
        "TRK.DUPLICATE_PARAMETER",
        "TRK.EMPTY_PARAMETER",
        "TRK.DUPLICATE_HEADER",
        "TRK.MISSING_TOKEN",
        "TRK.INVALID_TOKEN",
        "TRK.PROJECT_FORBIDDEN",
        "TRK.OPERATOR_ONLY",
        "TRK.RECORD_NOT_FOUND",
        "TRK.ROUTE_NOT_FOUND",
        "TRK.METHOD_NOT_ALLOWED",
        "TRK.PAYLOAD_TOO_LARGE",
        "TRK.HEADERS_TOO_LARGE",
        "TRK.REQUEST_TIMEOUT",
        "TRK.OVERLOADED",
        "TRK.NOT_READY",
        "TRK.NODE_UNAVAILABLE",
        "TRK.MISROUTED",
        "TRK.STORE_UNAVAILABLE",
        "TRK.INTERNAL_ERROR",
    ];
}

/// Store failures: a request the store cannot answer as asked (a bad
/// `marker`) is the client's 400; I/O is "unavailable, retry"; anything else
/// is internal.
/// The detail goes to the log (once, by the access log), never to the client.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let unavailable = match &e {
            StoreError::Query { param, reason } => return ApiError::invalid(param, reason.clone()),
            StoreError::Sled(_)
            | StoreError::Engine(_)
            | StoreError::Missing { .. }
            | StoreError::Locked { .. }
            | StoreError::OpenHere { .. }
            | StoreError::Io { .. }
            | StoreError::Publish(_) => true,
            StoreError::Corrupt { .. }
            | StoreError::Layout { .. }
            | StoreError::Upgrade { .. }
            | StoreError::Numbers(_)
            | StoreError::Fold { .. }
            | StoreError::Damaged { .. }
            | StoreError::Listing { .. } => false,
        };
        ApiError::Failed {
            unavailable,
            detail: format!("store: {e}"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut msg: String = self.to_string().chars().take(512).collect();
        if msg.len() < 2 {
            msg = "error".into();
        }
        let status = self.status();
        let code = self.code();
        let mut resp = (
            status,
            axum::Json(Body {
                error_code: code,
                error_msg: msg,
            }),
        )
            .into_response();
        resp.extensions_mut().insert(ErrorCode(code));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let ApiError::Failed { detail, .. } = self {
            resp.extensions_mut().insert(ErrorDetail(detail));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store failure answers in general words; its detail rides on the
    /// response for the access log only.
    #[test]
    fn a_failures_detail_never_reaches_the_client() {
        let e = ApiError::from(StoreError::Corrupt {
            key: "r-secret".into(),
            reason: "bad bytes".into(),
        });
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = resp.extensions().get::<ErrorDetail>().unwrap().0.clone();
        assert!(detail.contains("r-secret"), "{detail}");
        let io = ApiError::from(StoreError::Missing { path: "/x".into() });
        assert_eq!(io.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(io.code(), "TRK.STORE_UNAVAILABLE");
        assert_eq!(io.to_string(), "the store is unavailable, retry later");
    }

    #[test]
    fn codes_are_within_the_contracted_length() {
        for c in ApiError::CODES {
            assert!((8..=36).contains(&c.len()), "{c}");
        }
    }
}
