//! One `moto_server` per test binary (it serves SQS and DynamoDB on one port, routing by the request's
//! signing scope): started on first use on a free loopback port, polled on
//! `/moto-api/` until it answers, and stopped when the test process exits (a shell holds it and kills it
//! when the test's end of its stdin pipe closes, which happens however the process ends).

use cadre_aws::{
    create_queue_with_dead_letters, create_state_table, Credentials, DynamoDbConfig, DynamoDbStore,
    Endpoint, QueueSpec, QueueUrl, SqsConfig, SqsQueue,
};
use cadre_domain::ports::clock::SystemClock;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

struct Moto {
    url: String,
    // Held so the shell's stdin stays open for the life of the process.
    _shell: Child,
}

static MOTO: OnceLock<Moto> = OnceLock::new();
static NEXT_QUEUE: AtomicU32 = AtomicU32::new(0);

fn start() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = format!(
        "command -v moto_server >/dev/null || {{ echo 'moto_server is not on PATH; install it with: pip install \"moto[server]\" (.ci/run does)' >&2; exit 127; }}
         moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!
         read _ignored
         kill $m; wait $m"
    );
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot run sh to start moto_server");
    for _ in 0..400 {
        if let Some(status) = shell.try_wait().unwrap() {
            panic!("moto_server did not start ({status}); see the message above");
        }
        if ready(port) {
            return Moto { url: format!("http://127.0.0.1:{port}"), _shell: shell };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("moto_server did not answer on 127.0.0.1:{port}/moto-api/ within 20 s");
}

fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// The server's endpoint, with the dummy credentials and region moto accepts.
pub(crate) fn endpoint() -> Endpoint {
    let moto = MOTO.get_or_init(start);
    Endpoint { url: moto.url.clone(), region: Some("us-east-1".into()), credentials: credentials() }
}

pub(crate) fn credentials() -> Credentials {
    Credentials::Static { access_key_id: "testing".into(), secret_access_key: "testing".into() }
}

/// A fresh queue (with its dead-letter queue) named after `what`.
pub(crate) async fn fresh_queue(what: &str, fifo: bool, max_receives: u32) -> QueueUrl {
    let n = NEXT_QUEUE.fetch_add(1, Ordering::Relaxed);
    let spec =
        QueueSpec { name: format!("{what}-{n}"), fifo, max_receives, visibility_timeout_secs: 30 };
    create_queue_with_dead_letters(&endpoint(), &spec).await.unwrap()
}

/// An adapter on `url` that does not long-poll, so an empty receive answers at once.
pub(crate) async fn connect(url: QueueUrl) -> Arc<SqsQueue> {
    let mut config = SqsConfig::new(url);
    config.wait = Duration::ZERO;
    config.region = Some("us-east-1".into());
    config.credentials = credentials();
    Arc::new(SqsQueue::connect(config, Arc::new(SystemClock)).await.unwrap())
}

/// A fresh queue and an adapter on it.
pub(crate) async fn queue(what: &str, fifo: bool, max_receives: u32) -> Arc<SqsQueue> {
    connect(fresh_queue(what, fifo, max_receives).await).await
}

/// A fresh state table named after `what`, made as `terraform/aws` makes it.
pub(crate) async fn fresh_table(what: &str) -> DynamoDbConfig {
    let n = NEXT_QUEUE.fetch_add(1, Ordering::Relaxed);
    let config = DynamoDbConfig {
        table: format!("{what}-{n}"),
        endpoint_url: Some(endpoint().url),
        region: Some("us-east-1".into()),
        credentials: credentials(),
    };
    create_state_table(&config).await.unwrap();
    config
}

/// A store on a fresh state table.
pub(crate) async fn store(what: &str) -> DynamoDbStore {
    DynamoDbStore::connect(&fresh_table(what).await).await.unwrap()
}
