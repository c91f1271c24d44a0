//! A git remote that accepts pushes over HTTP: `git http-backend` (CGI) behind a small axum server,
//! refusing any request whose `Authorization` header is not the expected one.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

struct Backend {
    program: PathBuf,
    root: PathBuf,
    expected_auth: String,
    seen_auth: Mutex<Vec<String>>,
}

/// The running remote: repositories under `root` are served at `{base}/NAME.git`.
pub(crate) struct GitHttpServer {
    pub(crate) base: String,
    backend: Arc<Backend>,
}

impl GitHttpServer {
    /// Serves the repositories under `root`, accepting only `Authorization: {expected_auth}`.
    pub(crate) async fn start(root: &Path, expected_auth: &str) -> GitHttpServer {
        let exec_path = super::git(Path::new("."), &["--exec-path"]);
        let program = PathBuf::from(exec_path.trim()).join("git-http-backend");
        assert!(
            program.exists(),
            "{} is missing; the push tests need git's http-backend (Debian: package git)",
            program.display()
        );
        let backend = Arc::new(Backend {
            program,
            root: root.to_path_buf(),
            expected_auth: expected_auth.to_owned(),
            seen_auth: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(cgi).with_state(backend.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        GitHttpServer { base, backend }
    }

    /// Every `Authorization` header received (empty string for a request without one).
    pub(crate) fn seen_auth(&self) -> Vec<String> {
        self.backend.seen_auth.lock().unwrap().clone()
    }
}

async fn cgi(
    State(backend): State<Arc<Backend>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header =
        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let auth = header("authorization");
    backend.seen_auth.lock().unwrap().push(auth.clone());
    if auth != backend.expected_auth {
        return (StatusCode::UNAUTHORIZED, [("www-authenticate", "Basic realm=\"git\"")], "no")
            .into_response();
    }
    let mut command = tokio::process::Command::new(&backend.program);
    command
        .env("GIT_PROJECT_ROOT", &backend.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "cadre-test")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = async move {
        let _ = stdin.write_all(&body).await;
        drop(stdin);
    };
    let (_, output) = tokio::join!(feed, child.wait_with_output());
    let output = output.unwrap();
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        let err = String::from_utf8_lossy(&output.stderr).into_owned();
        return (StatusCode::INTERNAL_SERVER_ERROR, err).into_response();
    };
    let head = String::from_utf8_lossy(&out[..at]).into_owned();
    let mut status = StatusCode::OK;
    let mut response_headers = Vec::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim().to_owned();
        if name.eq_ignore_ascii_case("status") {
            status = StatusCode::from_u16(value[..3].parse().unwrap()).unwrap();
        } else {
            response_headers.push((name.to_owned(), value));
        }
    }
    let mut response = (status, out[at + sep..].to_vec()).into_response();
    for (name, value) in response_headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}
