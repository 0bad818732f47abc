//! The Kafka source: messages of one or more topics, with their partitions and offsets.
//!
//! weir reads every partition of its topics itself (it assigns them, it does not join a
//! rebalancing group), starting each at the offset its newest checkpoint recorded. Offsets are
//! never auto-committed: the checkpoint is where they live, so a restart resumes exactly where
//! the state it restores ends. They are also committed to the consumer group after each
//! checkpoint, for lag monitoring only.
//!
//! Backpressure comes for free: librdkafka fetches ahead only up to
//! `queued.max.messages.kbytes` per partition, and the caller polls only when the dataflow
//! keeps up. A broker that is down or goes away is retried by librdkafka; what it reports is
//! logged as `weir: kafka: …` lines, at most one every few seconds per kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub use super::Offsets;
use super::{Polled, Record, Source, SourceError};
use crate::event::MAX_INPUT_BYTES;

/// A failure of the Kafka source.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("{0:?} is not a Kafka source: write kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…]")]
    BadUrl(String),
    #[error("cannot create the Kafka consumer: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot assign the partitions of {topics}: {source}")]
    Assign {
        topics: String,
        #[source]
        source: KafkaError,
    },
    #[error("stopped before the broker answered")]
    Stopped,
    #[error(
        "{topic}: the broker acknowledged {acked} of the {sent} events produced (first failure: {first}); check that the topic exists and this client may write to it"
    )]
    Produce {
        topic: String,
        sent: u64,
        acked: u64,
        first: String,
    },
    #[error(
        "topic {topic} partition {partition}: the checkpoint resumes at offset {next}, but the partition ends at {high}: was the topic recreated or truncated? Start with --reset-offsets to read it again from its earliest offset, or with a fresh --out"
    )]
    OffsetsAhead {
        topic: String,
        partition: i32,
        next: i64,
        high: i64,
    },
    #[error(
        "topic {topic} partition {partition}: the checkpoint resumes at offset {next}, but the partition now starts at {low}: offsets {next}..{low} were deleted unread (retention?). Start with --reset-offsets to read on from offset {low}, or with a fresh --out"
    )]
    OffsetsGone {
        topic: String,
        partition: i32,
        next: i64,
        low: i64,
    },
}

impl KafkaSourceError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            KafkaSourceError::BadUrl(_) => "kafka_bad_url",
            KafkaSourceError::Client(_) => "kafka_client",
            KafkaSourceError::Assign { .. } => "kafka_assign",
            KafkaSourceError::Stopped => "kafka_stopped",
            KafkaSourceError::Produce { .. } => "kafka_produce",
            KafkaSourceError::OffsetsAhead { .. } => "kafka_offsets_ahead",
            KafkaSourceError::OffsetsGone { .. } => "kafka_offsets_gone",
        }
    }
}

/// Where to read: `kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaUrl {
    pub brokers: String,
    pub topics: Vec<String>,
}

impl KafkaUrl {
    pub fn parse(url: &str) -> Result<KafkaUrl, KafkaSourceError> {
        let bad = || KafkaSourceError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("kafka://").ok_or_else(bad)?;
        let (brokers, topics) = rest.split_once('/').ok_or_else(bad)?;
        let topics: Vec<String> = topics
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let valid_topic = |t: &String| {
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if brokers.is_empty() || topics.is_empty() || !topics.iter().all(valid_topic) {
            return Err(bad());
        }
        Ok(KafkaUrl {
            brokers: brokers.to_owned(),
            topics,
        })
    }
}

/// Turns librdkafka's reports into log lines, one per kind every few seconds: a broker that
/// is down is reported again and again while librdkafka retries it.
struct Context {
    last: Mutex<HashMap<String, Instant>>,
}

impl Context {
    const QUIET: Duration = Duration::from_secs(5);

    fn report(&self, kind: &str, line: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last
            .get(kind)
            .is_some_and(|at| now.duration_since(*at) < Self::QUIET)
        {
            return;
        }
        last.insert(kind.to_owned(), now);
        eprintln!("weir: kafka: {line}");
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel::*;
        if matches!(level, Emerg | Alert | Critical | Error | Warning) {
            self.report(fac, message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let kind = match &error {
            KafkaError::Global(code) => format!("{code:?}"),
            other => format!("{other:?}"),
        };
        self.report(&kind, &format!("{reason} ({error}); retrying"));
    }
}

impl ConsumerContext for Context {}

/// A consumer reading every partition of its topics.
pub struct KafkaSource {
    consumer: BaseConsumer<Context>,
    url: KafkaUrl,
    /// Topic names handed out with each record, allocated once.
    topics: HashMap<String, Arc<str>>,
}

/// The Kafka [`Source`]: connects when it is positioned ([`Source::seek`]).
pub struct KafkaInput {
    url: KafkaUrl,
    group: String,
    reset_offsets: bool,
    consumer: Option<KafkaSource>,
}

impl KafkaInput {
    /// With `reset_offsets`, a partition whose recorded offset it no longer has is read from
    /// its earliest offset instead of stopping the run.
    pub fn new(url: KafkaUrl, group: &str, reset_offsets: bool) -> KafkaInput {
        KafkaInput {
            url,
            group: group.to_owned(),
            reset_offsets,
            consumer: None,
        }
    }
}

impl Source for KafkaInput {
    fn streams(&self) -> Vec<String> {
        self.url.topics.clone()
    }

    fn seekable(&self) -> bool {
        true
    }

    fn seek(&mut self, from: &Offsets, stop: &AtomicBool) -> Result<bool, SourceError> {
        match KafkaSource::connect_checked(&self.url, &self.group, from, stop, self.reset_offsets) {
            Ok(consumer) => {
                self.consumer = Some(consumer);
                Ok(true)
            }
            Err(KafkaSourceError::Stopped) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn poll(
        &mut self,
        max: usize,
        wait: Duration,
        out: &mut Vec<Record>,
    ) -> Result<Polled, SourceError> {
        match self.consumer.as_mut() {
            Some(consumer) => Ok(Polled::Records(consumer.poll(max, wait, out))),
            // Never positioned: stopped while waiting for the broker.
            None => Ok(Polled::End),
        }
    }

    fn commit(&mut self, upto: &Offsets) {
        if let Some(consumer) = &self.consumer {
            consumer.commit(upto);
        }
    }
}

impl KafkaSource {
    /// Connects and assigns every partition of `url`'s topics, each from its offset in `from`
    /// (the earliest for a partition not there). Waits for the broker, logging why, until it
    /// answers or `stop` is set.
    pub fn connect(
        url: &KafkaUrl,
        group: &str,
        from: &Offsets,
        stop: &AtomicBool,
    ) -> Result<KafkaSource, KafkaSourceError> {
        Self::connect_checked(url, group, from, stop, false)
    }

    /// As [`KafkaSource::connect`], first checking every recorded offset against its
    /// partition's watermarks: an offset past the end (a recreated or truncated topic) or
    /// before the start (deleted unread) stops with a message saying so, unless
    /// `reset_offsets`, which reads such a partition from its earliest offset.
    pub fn connect_checked(
        url: &KafkaUrl,
        group: &str,
        from: &Offsets,
        stop: &AtomicBool,
        reset_offsets: bool,
    ) -> Result<KafkaSource, KafkaSourceError> {
        let consumer: BaseConsumer<Context> = ClientConfig::new()
            .set("bootstrap.servers", &url.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // What librdkafka fetches ahead per partition: the bound of backpressure.
            .set("queued.max.messages.kbytes", "16384")
            .set("fetch.wait.max.ms", "50")
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "2000")
            .create_with_context(Context {
                last: Mutex::new(HashMap::new()),
            })
            .map_err(KafkaSourceError::Client)?;
        let mut assignment = TopicPartitionList::new();
        for topic in &url.topics {
            let partitions = Self::partitions(&consumer, url, topic, stop)?;
            for p in partitions {
                let offset = match from.get(&(topic.clone(), p)) {
                    Some(&next) => match Self::check_offset(&consumer, topic, p, next, stop)? {
                        Ok(()) => Offset::Offset(next),
                        Err(e) if reset_offsets => {
                            eprintln!(
                                "weir: kafka: warning: {e}; --reset-offsets: reading it from its earliest offset"
                            );
                            Offset::Beginning
                        }
                        Err(e) => return Err(e),
                    },
                    None => Offset::Beginning,
                };
                assignment
                    .add_partition_offset(topic, p, offset)
                    .map_err(|source| KafkaSourceError::Assign {
                        topics: url.topics.join(","),
                        source,
                    })?;
            }
        }
        consumer
            .assign(&assignment)
            .map_err(|source| KafkaSourceError::Assign {
                topics: url.topics.join(","),
                source,
            })?;
        Ok(KafkaSource {
            consumer,
            url: url.clone(),
            topics: HashMap::new(),
        })
    }

    /// Whether the partition still holds `next`: `Ok(Err(_))` says why not. Asks until the
    /// broker answers or `stop` is set.
    fn check_offset(
        consumer: &BaseConsumer<Context>,
        topic: &str,
        partition: i32,
        next: i64,
        stop: &AtomicBool,
    ) -> Result<Result<(), KafkaSourceError>, KafkaSourceError> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(KafkaSourceError::Stopped);
            }
            match consumer.fetch_watermarks(topic, partition, Duration::from_secs(2)) {
                Ok((_, high)) if next > high => {
                    return Ok(Err(KafkaSourceError::OffsetsAhead {
                        topic: topic.to_owned(),
                        partition,
                        next,
                        high,
                    }));
                }
                Ok((low, _)) if next < low => {
                    return Ok(Err(KafkaSourceError::OffsetsGone {
                        topic: topic.to_owned(),
                        partition,
                        next,
                        low,
                    }));
                }
                Ok(_) => return Ok(Ok(())),
                Err(e) => {
                    eprintln!(
                        "weir: kafka: cannot read the offsets of {topic} partition {partition}: {e}; retrying in 1 s"
                    );
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// The partitions of `topic`, asking the broker until it answers with at least one.
    fn partitions(
        consumer: &BaseConsumer<Context>,
        url: &KafkaUrl,
        topic: &str,
        stop: &AtomicBool,
    ) -> Result<Vec<i32>, KafkaSourceError> {
        let mut said = false;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(KafkaSourceError::Stopped);
            }
            let why = match consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) {
                Ok(metadata) => match metadata.topics().iter().find(|t| t.name() == topic) {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                        if said {
                            eprintln!("weir: kafka: {} answered for topic {topic}", url.brokers);
                        }
                        let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                        ids.sort_unstable();
                        return Ok(ids);
                    }
                    Some(t) => match t.error() {
                        Some(e) => format!("topic {topic}: {e:?}"),
                        None => format!("topic {topic} has no partitions yet"),
                    },
                    None => format!("topic {topic} does not exist yet"),
                },
                Err(e) => format!("cannot reach {}: {e}", url.brokers),
            };
            eprintln!("weir: kafka: {why}; retrying in 1 s");
            said = true;
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Appends up to `max` messages to `out`, waiting at most `wait` for the first; returns
    /// how many came. A consumer error is logged and skipped: librdkafka retries by itself.
    pub fn poll(&mut self, max: usize, wait: Duration, out: &mut Vec<Record>) -> usize {
        let mut got = 0;
        let mut timeout = wait;
        while got < max {
            match self.consumer.poll(timeout) {
                None => break,
                Some(Ok(message)) => {
                    let topic = match self.topics.get(message.topic()) {
                        Some(topic) => topic.clone(),
                        None => {
                            let topic: Arc<str> = message.topic().into();
                            self.topics
                                .insert(message.topic().to_owned(), topic.clone());
                            topic
                        }
                    };
                    out.push(Record {
                        stream: topic,
                        partition: message.partition(),
                        offset: message.offset(),
                        // A message is kept only up to MAX_INPUT_BYTES: an oversize one up to
                        // that is quarantined whole, a huge one only in part.
                        payload: message
                            .payload()
                            .map(|p| p[..p.len().min(MAX_INPUT_BYTES)].to_vec())
                            .unwrap_or_default(),
                    });
                    got += 1;
                }
                Some(Err(e)) => self
                    .consumer
                    .context()
                    .report(&format!("consume {e:?}"), &format!("while consuming: {e}")),
            }
            timeout = Duration::ZERO;
        }
        got
    }

    /// Tells the consumer group how far the checkpoint got (for lag monitoring; the
    /// checkpoint, not the group, is what a restart reads).
    pub fn commit(&self, offsets: &Offsets) {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            if self.url.topics.contains(topic) {
                let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
        }
        if list.count() > 0
            && let Err(e) = self.consumer.commit(&list, CommitMode::Async)
        {
            eprintln!("weir: kafka: cannot commit offsets to the group: {e}");
        }
    }
}

/// The key a producer should give an event line: its `order_id`, else its `user_id`, else
/// the line itself (malformed lines), so every copy of an event lands in the same partition
/// and each order's and user's events keep their order.
pub fn key_of(line: &[u8]) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Keys<'a> {
        #[serde(borrow)]
        order_id: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        user_id: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_slice::<Keys>(line) {
        Ok(Keys {
            order_id: Some(k), ..
        })
        | Ok(Keys {
            order_id: None,
            user_id: Some(k),
        }) => k.as_bytes().to_vec(),
        _ => line.to_vec(),
    }
}

/// What the broker said of each produced message.
#[derive(Default)]
struct Deliveries {
    acked: std::sync::atomic::AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                let mut first = self.first_failure.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Creates `topic` with one partition unless the broker has it. A broker that refuses (no
/// permission, or topics made by an operator) is not an error here: producing will tell.
fn ensure_topic(brokers: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let Ok(admin) = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create::<AdminClient<rdkafka::client::DefaultClientContext>>()
    else {
        return;
    };
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    // On a thread of its own: the caller may be on a tokio runtime, which cannot block on
    // another.
    std::thread::scope(|s| {
        s.spawn(|| {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(admin.create_topics([&new], &options));
            }
        });
    });
}

/// Produces `lines` to `topic` (created with one partition if the broker lacks it), keyed by
/// [`key_of`]; returns how many the broker acknowledged, which is all of them or an error.
pub fn produce(
    brokers: &str,
    topic: &str,
    lines: impl IntoIterator<Item = String>,
) -> Result<u64, KafkaSourceError> {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    ensure_topic(brokers, topic);
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        // One message per record batch: tansu 0.6 answers a fetch that starts inside a batch
        // with only the batches after it, so a consumer resuming mid-batch (as weir does
        // after a checkpoint) would miss the rest of that batch.
        .set("batch.num.messages", "1")
        .set("enable.idempotence", "false")
        .create_with_context(Deliveries::default())
        .map_err(KafkaSourceError::Client)?;
    let mut sent = 0;
    for line in lines {
        let key = key_of(line.as_bytes());
        let mut record = BaseRecord::to(topic).key(&key).payload(&line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: let deliveries drain, then try again.
                Err((KafkaError::MessageProduction(_), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(KafkaSourceError::Client(e)),
            }
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(KafkaSourceError::Client)?;
    let deliveries = producer.context();
    let acked = deliveries.acked.load(Ordering::Relaxed);
    if acked < sent {
        let first = deliveries
            .first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "no delivery report".to_owned());
        return Err(KafkaSourceError::Produce {
            topic: topic.to_owned(),
            sent,
            acked,
            first,
        });
    }
    Ok(acked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::collections::BTreeMap;

    #[test]
    fn urls_name_brokers_and_topics() {
        let url = KafkaUrl::parse("kafka://a:9092,b:9092/orders,clicks").unwrap();
        assert_eq!(url.brokers, "a:9092,b:9092");
        assert_eq!(url.topics, ["orders", "clicks"]);
        for bad in [
            "kafka://a:9092",
            "kafka://a:9092/",
            "http://a/t",
            "kafka:///t",
            "kafka://a/t t",
        ] {
            let err = KafkaUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("kafka://HOST:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn keys_keep_an_entity_in_one_partition() {
        assert_eq!(key_of(br#"{"user_id":"u1","order_id":"o9"}"#), b"o9");
        assert_eq!(key_of(br#"{"user_id":"u1","url":"/"}"#), b"u1");
        assert_eq!(key_of(b"not json"), b"not json");
    }

    /// Against librdkafka's mock cluster: every message once, per-partition order kept, and a
    /// restart from recorded offsets reads only what came after them.
    #[test]
    fn reads_every_partition_from_the_recorded_offsets() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("events", 3, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        let send = |range: std::ops::Range<usize>| {
            for i in range {
                let payload = format!("m{i}");
                let key = format!("k{}", i % 7);
                producer
                    .send(BaseRecord::to("events").key(&key).payload(&payload))
                    .unwrap();
            }
            producer.flush(Duration::from_secs(10)).unwrap();
        };
        send(0..300);
        let url =
            KafkaUrl::parse(&format!("kafka://{}/events", cluster.bootstrap_servers())).unwrap();
        let stop = AtomicBool::new(false);
        let read_all = |from: &Offsets, want: usize| {
            let mut source = KafkaSource::connect(&url, "weir-test", from, &stop).unwrap();
            let mut records = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while records.len() < want && Instant::now() < deadline {
                source.poll(1000, Duration::from_millis(100), &mut records);
            }
            // Nothing more than asked for arrives.
            source.poll(1000, Duration::from_millis(300), &mut records);
            records
        };
        let first = read_all(&Offsets::new(), 300);
        assert_eq!(first.len(), 300);
        let mut offsets = Offsets::new();
        let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for r in &first {
            let i: usize = String::from_utf8_lossy(&r.payload[1..]).parse().unwrap();
            per_key.entry(format!("k{}", i % 7)).or_default().push(i);
            offsets.insert((r.stream.to_string(), r.partition), r.offset + 1);
        }
        for (key, seq) in &per_key {
            assert!(
                seq.windows(2).all(|w| w[0] < w[1]),
                "{key} out of order: {seq:?}"
            );
        }
        send(300..400);
        let second = read_all(&offsets, 100);
        let mut got: Vec<usize> = second
            .iter()
            .map(|r| String::from_utf8_lossy(&r.payload[1..]).parse().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (300..400).collect::<Vec<_>>());
    }

    #[test]
    fn a_huge_message_is_kept_only_up_to_the_input_limit() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("big", 1, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("message.max.bytes", "8000000")
            .create()
            .unwrap();
        let huge = vec![b'x'; 3_000_000];
        producer
            .send(BaseRecord::to("big").key("k").payload(&huge))
            .unwrap();
        producer
            .send(BaseRecord::to("big").key("k").payload("small"))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        let url = KafkaUrl::parse(&format!("kafka://{}/big", cluster.bootstrap_servers())).unwrap();
        let stop = AtomicBool::new(false);
        let mut source = KafkaSource::connect(&url, "weir-test", &Offsets::new(), &stop).unwrap();
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while records.len() < 2 && Instant::now() < deadline {
            source.poll(10, Duration::from_millis(100), &mut records);
        }
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].payload.len(), MAX_INPUT_BYTES);
        assert_eq!(records[1].payload, b"small");
    }

    #[test]
    fn offsets_past_a_partitions_end_stop_the_run_unless_reset() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("events", 1, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        for i in 0..10 {
            producer
                .send(BaseRecord::to("events").key("k").payload(&format!("m{i}")))
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let url =
            KafkaUrl::parse(&format!("kafka://{}/events", cluster.bootstrap_servers())).unwrap();
        let stop = AtomicBool::new(false);
        // A checkpoint from before the topic was recreated: offset 500 of a 10-message topic.
        let from: Offsets = [(("events".to_owned(), 0), 500)].into();
        let refused = KafkaSource::connect(&url, "weir-test", &from, &stop);
        match refused {
            Err(KafkaSourceError::OffsetsAhead { next, high, .. }) => {
                assert_eq!((next, high), (500, 10));
            }
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("new messages below the checkpoint would be dropped unread"),
        }
        let mut reset =
            KafkaSource::connect_checked(&url, "weir-test", &from, &stop, true).unwrap();
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while records.len() < 10 && Instant::now() < deadline {
            reset.poll(100, Duration::from_millis(100), &mut records);
        }
        assert_eq!(records.len(), 10, "read again from the earliest offset");
        assert_eq!(records[0].offset, 0);
        // An offset inside the partition is accepted as it is.
        let inside: Offsets = [(("events".to_owned(), 0), 4)].into();
        assert!(KafkaSource::connect(&url, "weir-test", &inside, &stop).is_ok());
    }
}
