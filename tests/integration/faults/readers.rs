//! Readers cannot stall the dataflow or outgrow a message: queries come in bounded pages
//! continued at one logical time, a page token cannot widen a tenant's scope, one token holds
//! a bounded number of subscriptions (freed when its client goes away), and `weir query`
//! pages through a view bigger than a gRPC message. (That publication never waits for a
//! reader holding a version is a unit test in `dataflow::store`.)

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic::{Code, Request};
use weir::dataflow::store::{DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS, ViewStore};
use weir::plugins::registry::RuleRegistry;
use weir::row::{Cell, Row, ViewId};
use weir::serve::api::from_row;
use weir::serve::proto::{self, views_client::ViewsClient};
use weir::serve::{Caller, ServeConfig, Server, Tokens};

const ADMIN: &str = "readers-admin";
const ACME: &str = "readers-acme";
const GLOBEX: &str = "readers-globex";
const VIEW: ViewId = ViewId::GmvMinute;

fn gmv_row(tenant: &str, currency: &str, minute: i64) -> Row {
    vec![
        Cell::from(tenant),
        Cell::from(currency),
        Cell::Int(minute),
        Cell::Int(1),
        Cell::Int(100),
        Cell::Int(0),
        Cell::Int(100),
    ]
}

/// A store whose gmv_minute holds `acme` rows for acme and `globex` rows for globex, with
/// currencies `width` characters long, published at time 0.
fn store_with(acme: i64, globex: i64, width: usize) -> Arc<ViewStore> {
    let store = Arc::new(ViewStore::new(64, 16));
    let currency = "E".repeat(width);
    let mut rows: Vec<(Row, u64, isize)> = (0..acme)
        .map(|m| (gmv_row("acme", &currency, m), 0, 1))
        .collect();
    rows.extend((0..globex).map(|m| (gmv_row("globex", &currency, m), 0, 1)));
    store.stage(VIEW, &rows);
    store.publish(0);
    store
}

fn serve(store: Arc<ViewStore>, max_subscriptions: usize) -> Server {
    let mut tokens = Tokens::default();
    tokens.insert(ADMIN, Caller::Admin).unwrap();
    tokens.insert(ACME, Caller::Tenant("acme".into())).unwrap();
    tokens
        .insert(GLOBEX, Caller::Tenant("globex".into()))
        .unwrap();
    let config = ServeConfig {
        grpc: "127.0.0.1:0".parse().unwrap(),
        metrics: None,
        tls: None,
        tokens,
        max_subscriptions_per_token: max_subscriptions,
    };
    Server::start(&config, store, Arc::new(RuleRegistry::default()))
        .unwrap()
        .0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn client(server: &Server) -> ViewsClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ViewsClient::new(channel)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    weir::serve::client::bearer(message, token).unwrap()
}

fn query(limit: u32, page_token: String) -> proto::QueryRequest {
    proto::QueryRequest {
        view: "gmv_minute".into(),
        key_prefix: vec![],
        limit,
        as_of: None,
        page_token,
    }
}

#[test]
fn a_full_view_query_comes_in_bounded_pages_that_add_up_to_the_view_at_one_time() {
    let store = store_with(12_000, 500, 3);
    let server = serve(store.clone(), 4);
    let want_at_0 = store.read(|p| p.rows(VIEW));
    runtime().block_on(async {
        let mut views = client(&server).await;
        // Asking for no limit gets the default page; asking for too much gets the maximum.
        let first = views
            .query(with_token(query(0, String::new()), ADMIN))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.rows.len(), DEFAULT_PAGE_ROWS);
        assert!(first.truncated && !first.next_page_token.is_empty());
        let huge = views
            .query(with_token(query(1_000_000, String::new()), ADMIN))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(huge.rows.len(), MAX_PAGE_ROWS);

        // Publications go on while the pages are read: rows deleted and added after time 0
        // must not show in pages that continue a time-0 answer.
        store.stage(VIEW, &[(gmv_row("acme", "EEE", 5), 1, -1)]);
        store.stage(VIEW, &[(gmv_row("acme", "ZZZ", 1), 1, 1)]);
        store.publish(1);
        let mut rows: Vec<Row> = first.rows.iter().map(|r| from_row(r).unwrap()).collect();
        let mut token = first.next_page_token;
        let mut pages = 1;
        while !token.is_empty() {
            let page = views
                .query(with_token(query(0, token), ADMIN))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                page.as_of, 0,
                "a continued page stays at its first page's time"
            );
            assert!(page.rows.len() <= DEFAULT_PAGE_ROWS);
            rows.extend(page.rows.iter().map(|r| from_row(r).unwrap()));
            token = page.next_page_token;
            pages += 1;
        }
        assert_eq!(pages, 13);
        assert_eq!(rows, want_at_0);
    });
}

#[test]
fn a_page_token_cannot_widen_a_tenants_scope_or_be_forged() {
    let store = store_with(1_500, 1_500, 3);
    let server = serve(store, 4);
    runtime().block_on(async {
        let mut views = client(&server).await;
        let acme = views
            .query(with_token(query(0, String::new()), ACME))
            .await
            .unwrap()
            .into_inner();
        assert!(
            acme.rows
                .iter()
                .all(|r| from_row(r).unwrap()[0] == Cell::from("acme"))
        );
        // globex presenting acme's token: the token belongs to acme's scope.
        let stolen = views
            .query(with_token(query(0, acme.next_page_token.clone()), GLOBEX))
            .await
            .unwrap_err();
        assert_eq!(stolen.code(), Code::InvalidArgument);
        assert!(
            stolen.message().contains("another view or key prefix"),
            "{stolen:?}"
        );
        // acme continuing its own token only ever sees acme rows, to the end.
        let mut token = acme.next_page_token;
        let mut seen = acme.rows.len();
        while !token.is_empty() {
            let page = views
                .query(with_token(query(0, token), ACME))
                .await
                .unwrap()
                .into_inner();
            for row in &page.rows {
                assert_eq!(from_row(row).unwrap()[0], Cell::from("acme"));
            }
            seen += page.rows.len();
            token = page.next_page_token;
        }
        assert_eq!(seen, 1_500);
        let forged = views
            .query(with_token(query(0, "7b7d-not-hex".into()), ADMIN))
            .await
            .unwrap_err();
        assert_eq!(forged.code(), Code::InvalidArgument);
        assert!(forged.message().contains("page token"), "{forged:?}");
    });
}

#[test]
fn one_token_holds_at_most_the_configured_subscriptions_and_a_closed_one_frees_its_slot() {
    let store = store_with(10, 10, 3);
    let server = serve(store, 3);
    runtime().block_on(async {
        let mut views = client(&server).await;
        let subscribe = || proto::SubscribeRequest {
            view: "gmv_minute".into(),
            key_prefix: vec![],
        };
        let mut open = Vec::new();
        for _ in 0..3 {
            let mut stream = views
                .subscribe(with_token(subscribe(), ACME))
                .await
                .unwrap()
                .into_inner();
            stream.message().await.unwrap().expect("the snapshot");
            open.push(stream);
        }
        let refused = views
            .subscribe(with_token(subscribe(), ACME))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert!(refused.message().contains("3 subscriptions"), "{refused:?}");
        // The cap is per token: another token is not affected.
        let mut other = views
            .subscribe(with_token(subscribe(), GLOBEX))
            .await
            .unwrap()
            .into_inner();
        other.message().await.unwrap().expect("the snapshot");
        // Closing one stream frees its slot even though nothing is published meanwhile.
        drop(open.pop());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match views.subscribe(with_token(subscribe(), ACME)).await {
                Ok(_) => break,
                Err(status) if status.code() == Code::ResourceExhausted => {
                    assert!(
                        Instant::now() < deadline,
                        "the closed stream's slot stayed taken"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => panic!("{status:?}"),
            }
        }
    });
}

#[test]
fn weir_query_pages_through_a_view_bigger_than_a_grpc_message() {
    // 25,000 rows of ~250 bytes: about 6 MiB, past tonic's 4 MiB default receive limit.
    let rows = 25_000;
    let store = store_with(rows, 0, 200);
    let server = serve(store, 4);
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["query", "gmv_minute", "--json", "--limit", "0"])
        .args(["--addr", &server.grpc_addr().to_string(), "--token", ADMIN])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "weir query failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.len() > 4 << 20,
        "the answer is {} bytes",
        stdout.len()
    );
    let minutes: Vec<i64> = stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["minute_start_ms"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(minutes, (0..rows).collect::<Vec<_>>());
    // A limit is honoured across pages too.
    let limited = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["query", "gmv_minute", "--json", "--limit", "2500"])
        .args(["--addr", &server.grpc_addr().to_string(), "--token", ADMIN])
        .output()
        .unwrap();
    assert!(limited.status.success());
    assert_eq!(
        String::from_utf8(limited.stdout).unwrap().lines().count(),
        2500
    );
}
