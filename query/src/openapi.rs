//! The API's OpenAPI document, generated from the handlers' annotations and
//! the bodies (`bodies.rs`), served at `/openapi.json` (and used by the
//! schemathesis run in `scripts/schemathesis`).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use common::store::export::{ExportOffset, ExportTrailer};

use crate::admin::{ClusterBody, ClusterDigestBody, NodeBody};
use crate::bodies::{
    AcceptedGapBody, CapabilitiesBody, CheckpointBody, DigestBody, ErrorBody, EventBody,
    EventsBody, GapBody, ListBody, LiveBody, ProjectsBody, QuarantineBody, QuarantinedBody,
    ReadyBody, RecordBody, RegionBody, SummariesBody, SummaryInterval, SummaryItem, Time,
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
        crate::dashboard::cloud_capabilities,
        crate::dashboard::projects,
        crate::feed::changes,
        crate::export::export,
        crate::routes::record,
        crate::routes::events,
        crate::routes::quarantine,
        crate::routes::digest,
        crate::admin::cluster,
        crate::admin::cluster_digest,
        crate::routes::live,
        crate::routes::ready,
        crate::routes::metrics,
    ),
    components(schemas(Time, ExportTrailer, ExportOffset, ProjectsBody, SummariesBody, SummaryItem, SummaryInterval, CapabilitiesBody, RegionBody, ListBody, RecordBody, EventsBody, EventBody, QuarantineBody, QuarantinedBody, DigestBody, CheckpointBody, AcceptedGapBody, LiveBody, ReadyBody, GapBody, ErrorBody, ClusterBody, NodeBody, ClusterDigestBody)),
    modifiers(&TokenAuth)
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params;
    use common::vocab::Word;

    /// The served OpenAPI document describes each endpoint's parameters
    /// from a struct of its own (utoipa); this keeps those structs equal to
    /// the vocabularies the parser reads, so adding a parameter in one place
    /// fails here until it is documented.
    /// The document's metadata is complete: its license was `{"name": ""}`
    /// (the crate named none).
    #[test]
    fn the_metadata_names_the_license() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(
            doc["info"]["license"]["name"], "Apache-2.0",
            "{}",
            doc["info"]
        );
        assert_eq!(doc["info"]["title"], "Replication tracker");
    }

    #[test]
    fn the_documented_parameters_are_the_parsed_ones() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let documented = |path: &str| -> Vec<String> {
            let mut names: Vec<String> = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        fn parsed<P: Word>() -> Vec<String> {
            let mut names: Vec<String> = P::all().iter().map(|p| p.as_str().to_owned()).collect();
            names.sort();
            names
        }
        assert_eq!(
            documented("/v1/{project_id}/replication_records"),
            parsed::<params::ListParam>()
        );
        assert_eq!(
            documented("/v1/{project_id}/replications"),
            parsed::<params::ListParam>()
        );
        assert_eq!(
            documented("/v1/{project_id}/replication_summaries"),
            parsed::<params::SummaryParam>()
        );
        assert_eq!(
            documented("/v1/{project_id}/replication_records/changes"),
            parsed::<params::FeedParam>()
        );
        assert_eq!(
            documented("/v1/{project_id}/replication_records/export"),
            parsed::<params::ExportParam>()
        );
        assert_eq!(
            documented("/v1/admin/quarantine"),
            parsed::<params::PageParam>()
        );
        assert_eq!(
            documented("/v1/{project_id}/replication_records/{id}/events"),
            parsed::<params::TrailParam>()
        );
        assert_eq!(
            documented("/v1/{project_id}/replication_records/{id}"),
            parsed::<params::RecordParam>()
        );
        // The sort pattern names exactly the sort keys.
        let sort = doc["paths"]["/v1/{project_id}/replication_records"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "sort")
            .unwrap()["schema"]["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
        let keys = common::store::SortField::ALL.map(|f| f.as_str()).join("|");
        assert_eq!(
            sort,
            format!("^({keys})(:(asc|desc))?(,({keys})(:(asc|desc))?)*$")
        );
    }
}
