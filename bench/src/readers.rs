//! Reader load on the gRPC API, for measuring what readers cost the dataflow: clients paging
//! through whole views back to back, and clients holding subscriptions on whole views and
//! draining them, each on its own connection and with its own token, until stopped.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tonic::transport::Channel;
use weir::serve::proto::subscribe_response::Kind;
use weir::serve::proto::views_client::ViewsClient;
use weir::serve::proto::{QueryRequest, SubscribeRequest};

/// The views readers read: the ones that grow with the input, so a whole-view read is the
/// most a reader can ask of the store.
pub const VIEWS: [&str; 4] = ["sessions", "gmv_minute", "payment_status", "inventory"];

/// Whole-view answers and subscription snapshots are single messages until the server pages
/// them, and outgrow tonic's 4 MiB default receive limit on a large run.
const MAX_MESSAGE: usize = 1 << 30;

/// After a refused call, so that a client waiting for the first publication does not spin.
const BACKOFF: Duration = Duration::from_millis(10);

/// The token of reader `i`. Each reader has its own, so a per-token cap on subscriptions
/// limits no reader but its own.
pub fn token(i: usize) -> String {
    format!("bench-reader-{i}")
}

/// What the readers did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub queriers: usize,
    pub subscribers: usize,
    /// Full-view queries paged through to their last page.
    pub queries: u64,
    pub pages: u64,
    /// Rows in every page received, including those of queries cut short.
    pub rows: u64,
    /// Wall time of each completed full-view query, first page to last, in milliseconds.
    pub query_ms: Vec<f64>,
    /// Query pages and subscribe calls the server refused (nothing published yet, a page
    /// token no longer retained, a subscription cap); a refused query is given up and the
    /// next starts from its first page, a refused subscriber subscribes again.
    pub refused: u64,
    /// Of those, the ones answered before the first publication, which say nothing about
    /// readers under load.
    pub unpublished: u64,
    /// Subscription snapshots received, and their rows.
    pub snapshots: u64,
    pub snapshot_rows: u64,
    /// Updates in `Changes` messages, and the messages.
    pub updates: u64,
    pub change_messages: u64,
    /// Subscriptions opened again after their stream ended while the run went on.
    pub resubscribes: u64,
    /// Of those, the streams the server ended because the subscriber fell behind.
    pub fell_behind: u64,
}

impl Stats {
    fn refuse(&mut self, status: &tonic::Status) {
        self.refused += 1;
        // The API's answer while nothing is published.
        if status.code() == tonic::Code::Unavailable {
            self.unpublished += 1;
        }
    }

    fn absorb(&mut self, other: Stats) {
        self.queries += other.queries;
        self.pages += other.pages;
        self.rows += other.rows;
        self.query_ms.extend(other.query_ms);
        self.refused += other.refused;
        self.unpublished += other.unpublished;
        self.snapshots += other.snapshots;
        self.snapshot_rows += other.snapshot_rows;
        self.updates += other.updates;
        self.change_messages += other.change_messages;
        self.resubscribes += other.resubscribes;
        self.fell_behind += other.fell_behind;
    }
}

/// Readers running against a server until [`Load::stop`].
pub struct Load {
    stop: watch::Sender<bool>,
    thread: JoinHandle<Stats>,
}

impl Load {
    /// Starts `clients` readers on `addr`, reader `i` presenting [`token`]`(i)`: the first
    /// half page through whole views (`page_rows` rows a page, 0 for the server's default),
    /// the rest subscribe to whole views. The views are spread over the readers of each kind.
    ///
    /// All readers share one thread, so the load generator takes at most one core from the
    /// pipeline it measures.
    pub fn start(addr: SocketAddr, clients: usize, page_rows: u32) -> Load {
        let (stop, stopped) = watch::channel(false);
        let queriers = clients.div_ceil(2);
        let thread = std::thread::Builder::new()
            .name("bench-readers".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let tasks: Vec<_> = (0..clients)
                        .map(|i| {
                            let stopped = stopped.clone();
                            if i < queriers {
                                tokio::spawn(query_loop(addr, i, i, page_rows, stopped))
                            } else {
                                tokio::spawn(subscribe_loop(addr, i, i - queriers, stopped))
                            }
                        })
                        .collect();
                    let mut stats = Stats {
                        queriers,
                        subscribers: clients - queriers,
                        ..Stats::default()
                    };
                    for task in tasks {
                        stats.absorb(task.await.expect("a reader"));
                    }
                    stats
                })
            })
            .expect("the reader thread");
        Load { stop, thread }
    }

    /// Stops every reader (a call in flight is abandoned) and sums what they did.
    pub fn stop(self) -> Stats {
        self.stop.send_replace(true);
        self.thread.join().expect("the readers")
    }
}

async fn connect(addr: SocketAddr) -> ViewsClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connect");
    ViewsClient::new(channel).max_decoding_message_size(MAX_MESSAGE)
}

fn request<T>(message: T, token: &str) -> tonic::Request<T> {
    weir::serve::client::bearer(message, token).expect("an ASCII token")
}

/// Until stopped: one view after another, each paged through from its first page, every
/// later page asked for with the previous page's token.
async fn query_loop(
    addr: SocketAddr,
    reader: usize,
    first_view: usize,
    page_rows: u32,
    mut stopped: watch::Receiver<bool>,
) -> Stats {
    let token = token(reader);
    let mut client = connect(addr).await;
    let mut stats = Stats::default();
    for next in first_view.. {
        let view = VIEWS[next % VIEWS.len()];
        let started = Instant::now();
        let mut page_token = String::new();
        loop {
            if *stopped.borrow() {
                return stats;
            }
            let page = QueryRequest {
                view: view.to_owned(),
                key_prefix: vec![],
                limit: page_rows,
                as_of: None,
                page_token: std::mem::take(&mut page_token),
            };
            let answer = tokio::select! {
                _ = stopped.changed() => return stats,
                answer = client.query(request(page, &token)) => answer,
            };
            match answer {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    stats.pages += 1;
                    stats.rows += answer.rows.len() as u64;
                    if answer.next_page_token.is_empty() {
                        stats.queries += 1;
                        stats.query_ms.push(started.elapsed().as_secs_f64() * 1e3);
                        break;
                    }
                    page_token = answer.next_page_token;
                }
                Err(status) => {
                    stats.refuse(&status);
                    tokio::time::sleep(BACKOFF).await;
                    break;
                }
            }
        }
    }
    stats
}

/// Until stopped: a subscription to one whole view, drained as fast as it arrives, and
/// opened again whenever the server ends it.
async fn subscribe_loop(
    addr: SocketAddr,
    reader: usize,
    view: usize,
    mut stopped: watch::Receiver<bool>,
) -> Stats {
    let token = token(reader);
    let view = VIEWS[view % VIEWS.len()];
    let mut client = connect(addr).await;
    let mut stats = Stats::default();
    while !*stopped.borrow() {
        let subscribe = SubscribeRequest {
            view: view.to_owned(),
            key_prefix: vec![],
        };
        let answer = tokio::select! {
            _ = stopped.changed() => return stats,
            answer = client.subscribe(request(subscribe, &token)) => answer,
        };
        let mut stream = match answer {
            Ok(stream) => stream.into_inner(),
            Err(status) => {
                stats.refuse(&status);
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        loop {
            let message = tokio::select! {
                _ = stopped.changed() => return stats,
                message = stream.message() => message,
            };
            match message {
                Ok(Some(message)) => match message.kind {
                    Some(Kind::Snapshot(snapshot)) => {
                        stats.snapshots += 1;
                        stats.snapshot_rows += snapshot.rows.len() as u64;
                    }
                    Some(Kind::Changes(changes)) => {
                        stats.change_messages += 1;
                        stats.updates += changes.updates.len() as u64;
                    }
                    None => {}
                },
                Ok(None) => break,
                Err(status) => {
                    if status.code() == tonic::Code::ResourceExhausted {
                        stats.fell_behind += 1;
                    }
                    break;
                }
            }
        }
        stats.resubscribes += 1;
    }
    stats
}
