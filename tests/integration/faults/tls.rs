//! `[tls]`: gRPC and metrics serve TLS only, to clients that trust the run's CA; with
//! `client_ca`, only to clients presenting a certificate it signed; and a certificate or key
//! that is missing or not one refuses the start with a message naming the file and the fault.
//!
//! Every certificate is made here, at test time, by a throwaway CA.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use weir::serve::TlsIdentity;

use crate::common::{WeirProcess, scratch_dir, tail};

const TOKEN: &str = "tls-test-admin";

/// PEM files in a test's directory: a CA, the server and client certificates it signed, and
/// a second CA that signed nothing here.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    other_ca: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate for `names` signed by `issuer`, and its key, as PEM.
fn signed(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, &**issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki(dir: &Path) -> Pki {
    let authority = ca("weir test CA");
    let (server_cert, server_key) = signed(
        &authority,
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = signed(
        &authority,
        &["reporting"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &authority.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
        other_ca: write("other-ca.pem", &ca("another CA").pem()),
    }
}

/// A config serving on free ports with `tls` as its `[tls]` section; its paths are relative
/// to the config file, as an operator's would be.
fn config(dir: &Path, tls: &str) -> PathBuf {
    let path = dir.join("weir.toml");
    let text = format!(
        "[source]\nrate = 2000\n\n[serve]\ngrpc = \"127.0.0.1:0\"\nmetrics = \"127.0.0.1:0\"\n\n\
         [tls]\n{tls}\n[[tokens]]\ntoken = \"{TOKEN}\"\nadmin = true\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(dir: &Path, tls: &str) -> WeirProcess {
    let config = config(dir, tls);
    WeirProcess::start(
        &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
        dir,
        "weir",
    )
}

/// `weir query gmv_minute` at `addr` with the admin token and `flags`.
fn weir_query(addr: &str, flags: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["query", "gmv_minute", "--addr", addr, "--token", TOKEN])
        .args(flags)
        .env_remove("WEIR_CA")
        .env_remove("WEIR_CLIENT_CERT")
        .env_remove("WEIR_CLIENT_KEY")
        .output()
        .unwrap()
}

/// Asks until the query prints rows (before the first publication the server answers
/// UNAVAILABLE); fails on any other error.
fn query_until_rows(addr: &str, flags: &[&std::ffi::OsStr]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = weir_query(addr, flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("nothing is published yet"),
            "{stderr}"
        );
        let table = String::from_utf8(out.stdout).unwrap();
        if table.lines().count() > 1 {
            return table;
        }
        assert!(Instant::now() < deadline, "no gmv rows within a minute");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the query once and returns its stderr, asserting it failed.
fn query_fails(addr: &str, flags: &[&std::ffi::OsStr]) -> String {
    let out = weir_query(addr, flags);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the query was answered: {stderr}");
    assert!(out.stdout.is_empty(), "the query printed rows: {stderr}");
    stderr
}

/// `GET /metrics` over TLS trusting `ca`, presenting `identity` if given: the response, or
/// why there is none.
fn https_metrics(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(addr.ip().to_string()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A server that closes without close_notify still sent its whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    String::from_utf8(response).map_err(|e| e.to_string())
}

fn assert_metrics_text(response: &str) {
    assert!(response.starts_with("HTTP/1.1 200"), "{}", tail(response));
    assert!(response.contains("# TYPE"), "{}", tail(response));
}

/// With `[tls]` (no client CA), one run: the CLI queries over TLS trusting the CA, and
/// reflection and health answer there too; a client trusting another CA and a plaintext
/// client are refused; metrics answer over https only.
#[test]
fn tls_serves_grpc_and_metrics_only_to_clients_that_trust_its_ca() {
    let dir = scratch_dir("faults-tls-serving");
    let pki = pki(&dir);
    let mut run = start(&dir, "cert = \"server.pem\"\nkey = \"server.key\"\n");
    let grpc = run.grpc();
    let metrics = run.metrics().expect("metrics are on");
    a_query_over_tls_trusting_the_ca_is_answered(grpc, &pki);
    reflection_and_health_answer_over_tls(grpc, &pki);
    a_client_trusting_another_ca_is_refused(grpc, &pki);
    a_plaintext_grpc_client_is_refused(grpc);
    metrics_answer_over_https_trusting_the_ca(metrics, &pki);
    metrics_do_not_answer_plain_http(metrics);
    assert!(run.running(), "weir stopped: {}", tail(&run.log()));
    let log = run.kill();
    assert!(
        log.contains("weir: TLS on gRPC and metrics with"),
        "{}",
        tail(&log)
    );
}

fn a_query_over_tls_trusting_the_ca_is_answered(grpc: SocketAddr, pki: &Pki) {
    let table = query_until_rows(
        &format!("https://{grpc}"),
        &["--ca".as_ref(), pki.ca.as_os_str()],
    );
    assert!(
        table.starts_with("tenant_id  currency  minute_start_ms  orders"),
        "{table}"
    );
}

/// The TLS server carries every service of the plaintext one, not only `weir.v1`.
fn reflection_and_health_answer_over_tls(grpc: SocketAddr, pki: &Pki) {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    runtime().block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(&pki.ca).unwrap()));
        let channel = Channel::from_shared(format!("https://{grpc}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let response = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap()
            .unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("not a service list: {response:?}")
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for want in ["weir.v1.Views", "weir.v1.Plugins", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let status = tonic_health::pb::health_client::HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "weir.v1.Views".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn a_client_trusting_another_ca_is_refused(grpc: SocketAddr, pki: &Pki) {
    let stderr = query_fails(
        &format!("https://{grpc}"),
        &["--ca".as_ref(), pki.other_ca.as_os_str()],
    );
    assert!(stderr.contains("certificate"), "{stderr}");
}

fn a_plaintext_grpc_client_is_refused(grpc: SocketAddr) {
    use weir::serve::proto::{ListViewsRequest, views_client::ViewsClient};
    let answer = runtime().block_on(async {
        let attempt = async {
            let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
                .unwrap()
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            let request = weir::serve::client::bearer(ListViewsRequest {}, TOKEN).unwrap();
            ViewsClient::new(channel)
                .list_views(request)
                .await
                .map_err(|e| e.to_string())
        };
        tokio::time::timeout(Duration::from_secs(30), attempt).await
    });
    match answer {
        Ok(Err(_refused)) => {}
        Ok(Ok(views)) => panic!("a plaintext client was answered: {views:?}"),
        Err(_) => panic!("a plaintext client got neither an answer nor an error within 30 s"),
    }
}

fn metrics_answer_over_https_trusting_the_ca(metrics: SocketAddr, pki: &Pki) {
    let response = https_metrics(metrics, &pki.ca, None).expect("an https answer");
    assert_metrics_text(&response);
    let refused = https_metrics(metrics, &pki.other_ca, None);
    assert!(refused.is_err(), "answered a client trusting another CA");
}

fn metrics_do_not_answer_plain_http(metrics: SocketAddr) {
    let mut http = TcpStream::connect(metrics).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = write!(
        http,
        "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
    );
    let mut response = Vec::new();
    let _ = http.read_to_end(&mut response);
    assert!(
        !response.starts_with(b"HTTP/"),
        "plain http was answered: {}",
        String::from_utf8_lossy(&response)
    );
}

/// With `client_ca`, gRPC and metrics serve a client presenting a certificate that CA signed,
/// and refuse one that presents none.
#[test]
fn with_client_ca_only_clients_with_a_certificate_it_signed_are_served() {
    let dir = scratch_dir("faults-tls-mutual");
    let pki = pki(&dir);
    let mut run = start(
        &dir,
        "cert = \"server.pem\"\nkey = \"server.key\"\nclient_ca = \"ca.pem\"\n",
    );
    let addr = format!("https://{}", run.grpc());
    let metrics = run.metrics().expect("metrics are on");
    let identity = [
        "--ca".as_ref(),
        pki.ca.as_os_str(),
        "--client-cert".as_ref(),
        pki.client_cert.as_os_str(),
        "--client-key".as_ref(),
        pki.client_key.as_os_str(),
    ];
    query_until_rows(&addr, &identity);
    query_fails(&addr, &["--ca".as_ref(), pki.ca.as_os_str()]);
    let response = https_metrics(metrics, &pki.ca, Some((&pki.client_cert, &pki.client_key)))
        .expect("an https answer to a client with a certificate");
    assert_metrics_text(&response);
    let refused = https_metrics(metrics, &pki.ca, None);
    assert!(
        refused.is_err(),
        "metrics answered a client without a certificate"
    );
    assert!(run.running(), "weir stopped: {}", tail(&run.log()));
}

/// A config whose key file does not exist stops `weir run` before it serves, naming the key
/// and the file.
#[test]
fn a_missing_key_file_refuses_the_run_naming_it() {
    let dir = scratch_dir("faults-tls-missing-key");
    pki(&dir);
    let config = config(&dir, "cert = \"server.pem\"\nkey = \"missing.key\"\n");
    let process = WeirProcess::spawn(
        &["run".as_ref(), "--config".as_ref(), config.as_os_str()],
        &dir,
        "weir",
    );
    let (status, stderr) = process.wait(Duration::from_secs(120));
    assert!(!status.success(), "weir ran without its key: {stderr}");
    let missing = dir.join("missing.key");
    let named = format!("tls.key: cannot read {}", missing.display());
    assert!(stderr.contains(&named), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
    assert!(!stderr.contains("gRPC on"), "it served: {stderr}");
}

/// Files that are not what `[tls]` says they are refused, each with its own code and a
/// message naming the file: a certificate file holding no certificate, a key file holding no
/// key, broken PEM, the key of another certificate, a client CA file holding no certificate.
#[test]
fn tls_files_that_are_not_a_certificate_or_its_key_are_refused_naming_the_file() {
    let dir = scratch_dir("faults-tls-bad-files");
    let pki = pki(&dir);
    let other_key = dir.join("other.key");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let truncated = dir.join("truncated.pem");
    let text = std::fs::read_to_string(&pki.server_cert).unwrap();
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let absent = dir.join("absent.pem");

    let (cert, key) = (&pki.server_cert, &pki.server_key);
    let cases: [(&Path, &Path, Option<&Path>, &str, &Path); 7] = [
        (key, key, None, "tls_no_certificate", key),
        (cert, cert, None, "tls_no_key", cert),
        (&truncated, key, None, "tls_not_pem", &truncated),
        (cert, &other_key, None, "tls_key_mismatch", &other_key),
        (cert, key, Some(&empty), "tls_no_certificate", &empty),
        (&absent, key, None, "tls_unreadable", &absent),
        (cert, key, Some(&absent), "tls_unreadable", &absent),
    ];
    for (cert, key, client_ca, code, named) in cases {
        let error = TlsIdentity::load(cert, key, client_ca).expect_err(code);
        assert_eq!(error.code(), code, "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&named.display().to_string()),
            "{code}: {message}"
        );
    }
    TlsIdentity::load(cert, key, Some(&pki.ca)).expect("the test's own files are valid");
}
