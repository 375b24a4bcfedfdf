use super::*;

fn config(extra: &str) -> Result<MysqlSourceConfig, toml::de::Error> {
    toml::from_str(&format!(
        "url = \"mysql://u:secret@127.0.0.1:3306/shop\"\ntables = [\"orders\", \"crm.customers\"]\n{extra}"
    ))
}

#[test]
fn settings_default_and_name_tables_in_the_urls_database() {
    let mut c = config("").unwrap();
    assert!(c.snapshot);
    assert_eq!(c.chunk_rows, 50_000);
    assert_eq!(c.zero_dates, ZeroDates::Null);
    c.apply_defaults("orders-sync");
    let id = c.server_id.unwrap();
    assert!((1_000_000..2_000_000_000).contains(&id));
    let mut again = config("").unwrap();
    again.apply_defaults("orders-sync");
    assert_eq!(
        again.server_id,
        Some(id),
        "the same pipeline registers with the same id"
    );
    let s = MysqlSource::new(c).unwrap();
    assert_eq!(
        s.names,
        vec![
            ("shop".to_string(), "orders".to_string()),
            ("crm".to_string(), "customers".to_string())
        ]
    );
    assert_eq!(s.stream_of("shop", "orders"), "orders");
    assert_eq!(s.stream_of("crm", "customers"), "crm.customers");
    assert!(!s.describe().contains("secret"), "{}", s.describe());
}

#[test]
fn wrong_settings_are_named() {
    let e = config("zero_dates = \"maybe\"").unwrap_err().to_string();
    assert!(e.contains("zero_dates") || e.contains("maybe"), "{e}");
    let e = config("tabels = []").unwrap_err().to_string();
    assert!(e.contains("tabels"), "{e}");
    let c: MysqlSourceConfig =
        toml::from_str("url = \"mysql://u@127.0.0.1/\"\ntables = [\"orders\"]").unwrap();
    let e = MysqlSource::new(c).err().unwrap().to_string();
    assert!(e.contains("names no database"), "{e}");
    let c: MysqlSourceConfig = toml::from_str("url = \"postgres://x\"\ntables = [\"t\"]").unwrap();
    let e = MysqlSource::new(c).err().unwrap().to_string();
    assert!(e.contains("not a mysql:// URL"), "{e}");
    let c: MysqlSourceConfig = toml::from_str("url = \"mysql://u@h/db\"\ntables = []").unwrap();
    let e = MysqlSource::new(c).err().unwrap().to_string();
    assert!(e.contains("`tables` is empty"), "{e}");
}

#[test]
fn positions_round_trip_and_order() {
    let p = Position::Snapshot {
        binlog: BinlogPos {
            file: "binlog.000002".into(),
            pos: 1234,
            gtid: "0-1-7".into(),
        },
        table: "shop.orders".into(),
        after: Some(vec![
            KeyPart::of(&mysql_async::Value::Int(-5)).unwrap(),
            KeyPart::of(&mysql_async::Value::Bytes(b"caf\xc3\xa9\x00".to_vec())).unwrap(),
        ]),
    };
    let back: Position = serde_json::from_str(&p.token()).unwrap();
    assert_eq!(back, p);
    let Position::Snapshot { after: Some(a), .. } = back else {
        panic!()
    };
    assert_eq!(
        a[1].value().unwrap(),
        mysql_async::Value::Bytes(b"caf\xc3\xa9\x00".to_vec())
    );
    let at = |f: &str, p: u64| BinlogPos {
        file: f.into(),
        pos: p,
        gtid: String::new(),
    };
    assert!(at("binlog.000010", 4).at_or_after(&at("binlog.000009", 90_000)));
    assert!(!at("binlog.000009", 4).at_or_after(&at("binlog.000009", 5)));
    assert!(at("binlog.000009", 5).at_or_after(&at("binlog.000009", 5)));
}

#[test]
fn snapshot_chunks_continue_after_the_last_key() {
    let col = |n: &str| catalog::Column {
        name: n.into(),
        column_type: "int".into(),
        kind: catalog::Kind::Int {
            bytes: 4,
            unsigned: false,
        },
    };
    let t = Table {
        database: "shop".into(),
        name: "line`items".into(),
        stream: "line`items".into(),
        columns: vec![col("order"), col("line"), col("qty")],
        key: vec![0, 1],
        declared: vec!["integer".into(); 3],
        key_names: "order,line".into(),
    };
    let (sql, params) = snapshot::chunk_query(&t, None, 100);
    assert_eq!(
        sql,
        "SELECT `order`, `line`, `qty` FROM `shop`.`line``items` ORDER BY `order`, `line` LIMIT 100"
    );
    assert!(params.is_empty());
    let after = vec![KeyPart::Int(7), KeyPart::Int(3)];
    let (sql, params) = snapshot::chunk_query(&t, Some(&after), 100);
    assert_eq!(
        sql,
        "SELECT `order`, `line`, `qty` FROM `shop`.`line``items` WHERE (`order` > ?) OR (`order` = ? AND `line` > ?) ORDER BY `order`, `line` LIMIT 100"
    );
    assert_eq!(
        params,
        vec![
            mysql_async::Value::Int(7),
            mysql_async::Value::Int(7),
            mysql_async::Value::Int(3)
        ]
    );
}

#[test]
fn column_types_map_to_declared_types() {
    let row = |dt: &str, ct: &str, cs: Option<&str>| catalog::ColumnRow {
        name: "c".into(),
        data_type: dt.into(),
        column_type: ct.into(),
        charset: cs.map(str::to_string),
        precision: Some(12),
        scale: Some(2),
        fsp: Some(3),
        json_checked: false,
    };
    let d = |r: catalog::ColumnRow| catalog::classify(&r).unwrap().1;
    assert_eq!(
        d(row("bigint", "bigint(20) unsigned", None)),
        "numeric(20,0)"
    );
    assert_eq!(d(row("int", "int(10) unsigned", None)), "bigint");
    assert_eq!(d(row("tinyint", "tinyint(1)", None)), "smallint");
    assert_eq!(d(row("decimal", "decimal(12,2)", None)), "numeric(12,2)");
    assert_eq!(
        d(row("datetime", "datetime(3)", None)),
        "timestamp(3) without time zone"
    );
    assert_eq!(
        d(row("timestamp", "timestamp(3)", None)),
        "timestamp(3) with time zone"
    );
    assert_eq!(d(row("bit", "bit(10)", None)), "bit(10)");
    assert_eq!(d(row("varchar", "varchar(20)", Some("latin1"))), "text");
    assert_eq!(d(row("varbinary", "varbinary(20)", None)), "bytea");
    let mut j = row("longtext", "longtext", Some("utf8mb4"));
    j.json_checked = true;
    assert_eq!(
        catalog::classify(&j).unwrap().0,
        catalog::Kind::Json { binary: false }
    );
    let e = catalog::classify(&row("varchar", "varchar(3)", Some("utf32"))).unwrap_err();
    assert!(e.contains("utf32") && e.contains("CONVERT TO"), "{e}");
    assert_eq!(
        catalog::labels("enum('a','b''c','d\\\\e',',')"),
        vec!["a", "b'c", "d\\e", ","]
    );
}
