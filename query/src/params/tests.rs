//! The query-string parsers against what each endpoint takes.

use super::*;

#[test]
fn seed_example_parses() {
    let q = parse_list(
        Some("checkpoint_item_id='123'&status='replicating'&limit=5&offest"),
        &StuckPolicy::default(),
    )
    .unwrap();
    assert_eq!(q.checkpoint_item_id.as_deref(), Some("123"));
    assert_eq!(q.status, Some(Status::Replicating));
    assert_eq!(q.limit, Some(5));
    assert_eq!(q.offset, None);
}

#[test]
fn windows_take_both_time_formats_and_an_unescaped_plus() {
    let q = parse_list(Some(
        "created_after=2024-01-01T00:00:00&created_before=2024-01-01T02:00:00+01:00&updated_after=2024-01-01T00:00:00.5Z&marker='r9'",
    ), &StuckPolicy::default())
    .unwrap();
    let t = |s| Micros::parse_rfc3339(s);
    assert_eq!(q.created.after, t("2024-01-01T00:00:00Z"));
    assert_eq!(q.created.before, t("2024-01-01T01:00:00Z"));
    assert_eq!(q.updated.after, t("2024-01-01T00:00:00.5Z"));
    assert_eq!(q.marker.as_deref(), Some("r9"));
}

/// A parameter of another endpoint is refused by name; a name no
/// endpoint takes is ignored.
#[test]
fn another_endpoints_parameter_is_refused_and_a_stranger_ignored() {
    let policy = StuckPolicy::default();
    for raw in [
        "updated_after=2030-01-01T00:00:00",
        "sort=id",
        "limit=5",
        "marker=r1",
    ] {
        let e = parse_summary(Some(raw), &policy).unwrap_err();
        let name = raw.split('=').next().unwrap();
        assert!(
            matches!(&e, ApiError::InvalidParameter { param, .. } if param == name),
            "{raw}: {e}"
        );
    }
    assert!(parse_list(Some("interval=day"), &policy).is_err());
    assert!(parse_feed(Some("limit=3"), None).is_err());
    assert!(parse_list(Some("offest=3&enterprise_project_id=x"), &policy).is_ok());
}

/// A malformed escape or bytes that are not UTF-8 in any parameter's
/// value is a 400 naming it (free-text filters took `%ZZ` literally).
#[test]
fn a_bad_escape_is_refused_by_name() {
    let policy = StuckPolicy::default();
    for raw in [
        "source_region=%ZZ",
        "destination_region=a%2",
        "checkpoint_item_id=%",
        "status=%ff",
    ] {
        let name = raw.split('=').next().unwrap();
        let e = parse_list(Some(raw), &policy).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidParameter { param, .. } if param == name),
            "{raw}: {e}"
        );
    }
    assert!(parse_list(Some("source_region=r%2D1+x&stranger=%ZZ"), &policy).is_ok());
}

proptest::proptest! {
    /// On well-formed input the decoder reads what `form_urlencoded`
    /// (the URL standard's parser) reads.
    #[test]
    fn decoding_equals_the_url_standard(value in "([a-zA-Z0-9 +%é]|%[0-9a-fA-F]{2})*") {
        let raw = format!("k={value}");
        let standard: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        match url_decode(&value) {
            Some(ours) => proptest::prop_assert_eq!(&standard[0].1, &ours),
            // Refused only where the standard parser passes bytes on
            // leniently (a malformed escape, or not UTF-8).
            None => {
                let lenient = standard[0].1.contains('%') || standard[0].1.contains(char::REPLACEMENT_CHARACTER);
                proptest::prop_assert!(lenient, "{value:?} refused");
            }
        }
    }
}

#[test]
fn sort_parses_with_default_direction() {
    let s = parse_sort("status:asc,created_at").unwrap();
    assert_eq!(
        s,
        vec![
            SortKey {
                field: SortField::Status,
                dir: Dir::Asc
            },
            SortKey {
                field: SortField::CreatedAt,
                dir: Dir::Desc
            }
        ]
    );
}

#[test]
fn bad_values_name_their_parameter() {
    for (raw, param) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("offset=-3", "offset"),
        ("offset=99999999999999999999999", "offset"),
        ("status=done", "status"),
        ("with_count=yes", "with_count"),
        ("sort=bogus", "sort"),
        ("sort=created_at:up", "sort"),
        ("sort=created_at,,id", "sort"),
        ("sort=created_at:asc:desc", "sort"),
    ] {
        let e = parse_list(Some(raw), &StuckPolicy::default()).unwrap_err();
        assert!(e.to_string().contains(param), "{raw}: {e}");
    }
    assert_eq!(
        parse_list(Some("status=fail&status=skip"), &StuckPolicy::default()),
        Err(ApiError::DuplicateParameter("status".into()))
    );
    assert_eq!(
        parse_list(Some("source_region="), &StuckPolicy::default()),
        Err(ApiError::EmptyParameter("source_region".into()))
    );
    assert_eq!(
        parse_list(Some("source_region=''"), &StuckPolicy::default()),
        Err(ApiError::EmptyParameter("source_region".into()))
    );
    for (raw, param) in [
        ("created_after=yesterday", "created_after"),
        ("created_before=2024-01-01", "created_before"),
        (
            "updated_after=2024-01-01T00:00:00&updated_before=2024-01-01T00:00:00",
            "updated_after",
        ),
        (
            "created_after=2024-01-02T00:00:00Z&created_before=2024-01-01T00:00:00Z",
            "created_after",
        ),
        ("marker=r1&offset=0", "marker"),
    ] {
        let e = parse_list(Some(raw), &StuckPolicy::default()).unwrap_err();
        assert!(e.to_string().contains(param), "{raw}: {e}");
    }
    assert_eq!(
        parse_list(Some("marker="), &StuckPolicy::default()),
        Err(ApiError::EmptyParameter("marker".into()))
    );
    let long = format!("sort={}", "id,".repeat(90));
    assert!(parse_list(Some(&long), &StuckPolicy::default()).is_err());
}
