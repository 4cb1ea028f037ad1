use super::*;

#[test]
fn example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tracker.example.toml");
    let f = FileConfig::load(Some(&path)).unwrap();
    assert_eq!(f.kafka.topic.as_deref(), Some("replication-events"));
    assert!(!f.tokens.is_empty());
    query::Auth::new(&f.tokens).unwrap();
}
