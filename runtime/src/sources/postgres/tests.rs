use super::*;

#[test]
fn positions_round_trip_through_their_tokens() {
    for p in [
        Position::Snapshot {
            lsn: "0/16B3748".into(),
            table: "public.orders".into(),
            after: Some(vec!["42".into()]),
            ranges: None,
        },
        Position::Snapshot {
            lsn: "0/16B3748".into(),
            table: "public.orders".into(),
            after: None,
            ranges: None,
        },
        Position::Snapshot {
            lsn: "0/16B3748".into(),
            table: "public.orders".into(),
            after: None,
            ranges: Some(vec![
                ranges::RangeProgress {
                    after: None,
                    until: Some(vec!["eu".into(), "7".into()]),
                    done: true,
                },
                ranges::RangeProgress {
                    after: Some(vec!["us".into(), "3".into()]),
                    until: None,
                    done: false,
                },
            ]),
        },
        Position::Stream { lsn: "1/0".into() },
    ] {
        let back: Position = serde_json::from_str(&p.token()).unwrap();
        assert_eq!(back, p);
    }
}

#[test]
fn config_mistakes_are_refused_before_connecting() {
    let base = PostgresSourceConfig {
        url: "postgres://u:p@127.0.0.1:1/db".into(),
        tables: vec!["a.b.c".into()],
        slot: "s".into(),
        publication: "p".into(),
        snapshot: true,
        chunk_rows: 10,
        snapshot_workers: 1,
        linger_ms: 5,
        schema_changes: SchemaChanges::Stop,
        on_schema_change: None,
        until_caught_up: false,
        slot_warn_mb: 1024,
    };
    let e = PostgresSource::new(base.clone()).err().unwrap().to_string();
    assert!(e.contains("`a.b.c` is not a table name"), "{e}");
    let e = PostgresSource::new(PostgresSourceConfig {
        tables: vec![],
        ..base.clone()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("`tables` is empty"), "{e}");
    for n in [0, 33] {
        let e = PostgresSource::new(PostgresSourceConfig {
            tables: vec!["t".into()],
            snapshot_workers: n,
            ..base.clone()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("`snapshot_workers` must be between 1 and 32"),
            "{e}"
        );
    }
    // A checkpoint written before ranges existed still reads.
    let old: Position =
        serde_json::from_str(r#"{"phase":"snapshot","lsn":"0/1","table":"t","after":["5"]}"#)
            .unwrap();
    assert_eq!(
        old,
        Position::Snapshot {
            lsn: "0/1".into(),
            table: "t".into(),
            after: Some(vec!["5".into()]),
            ranges: None
        }
    );
    assert!(!e.contains(":p@"), "no password in messages: {e}");
}

#[test]
fn slot_and_publication_default_to_the_pipeline_name() {
    let mut c: PostgresSourceConfig =
        toml::from_str("url = \"postgres://x\"\ntables = [\"t\"]").unwrap();
    c.apply_defaults("Legacy-CRM");
    assert_eq!(c.slot, "sluice_legacy_crm");
    assert_eq!(c.publication, "sluice_legacy_crm");
}
