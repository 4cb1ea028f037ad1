//! The API's OpenAPI document, generated from the handlers' annotations and
//! the bodies (`bodies.rs`), served at `/openapi.json` (and used by the
//! schemathesis run in `scripts/schemathesis`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::bodies::{
    CapabilitiesBody, CheckpointBody, DigestBody, ErrorBody, EventBody, EventsBody, ListBody,
    LiveBody, ProjectsBody, QuarantineBody, QuarantinedBody, ReadyBody, RecordBody, RegionBody,
    SummariesBody, SummaryInterval, SummaryItem, Time,
};

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Token"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Replication tracker", version = "1", description = "Huawei Cloud's query replication records API, served from an event-sourced projection."),
    paths(
        crate::routes::list,
        crate::routes::list_alias,
        crate::dashboard::summaries,
        crate::dashboard::capabilities,
        crate::dashboard::projects,
        crate::feed::changes,
        crate::routes::record,
        crate::routes::events,
        crate::routes::quarantine,
        crate::routes::digest,
        crate::routes::live,
        crate::routes::ready,
        crate::routes::metrics,
    ),
    components(schemas(Time, ProjectsBody, SummariesBody, SummaryItem, SummaryInterval, CapabilitiesBody, RegionBody, ListBody, RecordBody, EventsBody, EventBody, QuarantineBody, QuarantinedBody, DigestBody, CheckpointBody, LiveBody, ReadyBody, ErrorBody)),
    modifiers(&TokenAuth)
)]
pub struct ApiDoc;
