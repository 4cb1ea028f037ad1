//! Edges an operator met in the first hour (issue 29), through the real
//! binary: settings that could never mean what they say are refused at
//! start, naming the setting.

mod support;

use support::*;

/// A stuck threshold past ten years is refused: `200000000d` (and
/// `18446744073709551615s`) wrapped around and marked every replicating
/// record stuck.
#[test]
fn a_stuck_threshold_past_its_bound_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (flag, value) in [
        ("--stuck-replicating", "200000000d"),
        ("--stuck-replicating", "18446744073709551615s"),
        ("--stuck-waiting-replicate", "3651d"),
    ] {
        let (code, err) = support::cli::run_to_end(&[
            "run",
            "--brokers",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            flag,
            value,
        ]);
        assert_eq!(code, Some(1), "{flag} {value}: {err}");
        assert!(
            err.contains(value) && err.contains("at most 3650d"),
            "{flag} {value}: {err}"
        );
    }
}

/// A token whose projects list a blank id is refused at start: it was
/// accepted, and `GET /v1//replication_records` answered 200.
#[test]
fn a_blank_project_id_in_the_token_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tracker.toml");
    let hash = hex::encode(query::hash_token("a-real-secret"));
    std::fs::write(
        &config,
        format!("[[tokens]]\nname = \"blank\"\nsha256 = \"{hash}\"\nprojects = [\"\", \"  \"]\n"),
    )
    .unwrap();
    let (code, err) = support::cli::run_to_end(&[
        "--config",
        config.to_str().unwrap(),
        "run",
        "--brokers",
        &format!("127.0.0.1:{}", free_port()),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("blank") && err.contains("project id"), "{err}");
}
