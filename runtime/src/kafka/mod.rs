//! What the Kafka source and sink share: client settings, how a record's
//! key and metadata travel in a Kafka message, and readable errors.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;

/// A client config with the brokers, a client id, and the user's extra
/// librdkafka settings (which win).
pub fn client_config(brokers: &str, options: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "sluice")
        .set("log_level", "3");
    for (k, v) in options {
        c.set(k, v);
    }
    c
}

/// The cluster's metadata, or why the brokers cannot be reached (what the
/// source's and the sink's start-up checks say).
pub fn reach<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
) -> Result<rdkafka::metadata::Metadata, String> {
    let md = client
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .map_err(|e| format!("cannot reach the Kafka brokers: {}", explain(&e, brokers)))?;
    if md.brokers().is_empty() {
        return Err(format!(
            "no broker answered at `{brokers}`: is a broker running there?"
        ));
    }
    Ok(md)
}

/// A Kafka error as a sentence with what to check.
pub fn explain(e: &KafkaError, brokers: &str) -> String {
    use rdkafka::types::RDKafkaErrorCode as C;
    let code = e.rdkafka_error_code();
    let hint = match code {
        Some(C::BrokerTransportFailure | C::AllBrokersDown | C::Resolve) => {
            format!(": is a broker running at `{brokers}`?")
        }
        Some(C::UnknownTopicOrPartition | C::UnknownTopic) => {
            ": create the topic first (or check its name)".into()
        }
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize) => {
            ": the message is larger than the broker or producer accepts (`message.max.bytes`)"
                .into()
        }
        _ => String::new(),
    };
    format!("{e}{hint}")
}
