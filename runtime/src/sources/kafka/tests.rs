#![allow(clippy::unwrap_used)]

use super::*;

fn config(extra: &str) -> KafkaSourceConfig {
    toml::from_str(&format!("brokers = \"127.0.0.1:9092\"\n{extra}")).unwrap()
}

#[test]
fn tokens_carry_the_next_offset_of_each_partition() {
    let mut o = Offsets::new();
    o.insert(("orders.eu".to_string(), 3), 42);
    o.insert(("a/b".to_string(), 0), 7);
    let t = make_token(&o);
    assert_eq!(parse_token(&t).unwrap(), o);
    assert!(t.contains(r#""orders.eu/3":42"#), "{t}");
    assert_eq!(split_key("a/b/0"), Some(("a/b".to_string(), 0)));
    let tpl = offsets_list(&o, |tp| tp.0 == "orders.eu");
    assert_eq!(tpl.count(), 1);
    let e = &tpl.elements()[0];
    assert_eq!(
        (e.topic(), e.partition(), e.offset()),
        ("orders.eu", 3, Offset::Offset(42))
    );
    assert_eq!(parse_token("line 12"), None);
}

#[test]
fn the_config_says_what_is_wrong() {
    assert_eq!(
        config("").problems().unwrap(),
        "give `topics` or `topic_pattern`"
    );
    assert_eq!(
        config("topics = [\"a\"]\ntopic_pattern = \"^a\"")
            .problems()
            .unwrap(),
        "give `topics` or `topic_pattern`, not both"
    );
    assert!(
        config("topics = [\"a\"]\noptions = { \"enable.auto.commit\" = \"true\" }")
            .problems()
            .unwrap()
            .contains("set by Sluice")
    );
    let mut c = config("topics = [\"a\"]");
    assert_eq!(c.problems(), None);
    c.apply_defaults("crm");
    assert_eq!(c.group, "sluice-crm");
    assert_eq!(
        (c.linger_ms, c.format, c.start),
        (50, ValueFormat::Json, StartAt::Earliest)
    );
    assert!(
        toml::from_str::<KafkaSourceConfig>("brokers = \"x\"\ntopics = [\"a\"]\nbogus = 1")
            .is_err()
    );
}
