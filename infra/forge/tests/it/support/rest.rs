//! A scripted HTTP server: each expected request (method and path with query) gets a canned answer,
//! and every request is recorded (method, path, headers, body) for exact assertions.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// One canned answer.
#[derive(Clone)]
pub(crate) struct Route {
    method: Method,
    path: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Route {
    /// Answers `method path` (path with its query, exactly as sent) with `status` and a JSON body.
    pub(crate) fn json(method: &str, path: &str, status: u16, body: Value) -> Route {
        Route {
            method: method.parse().unwrap(),
            path: path.to_owned(),
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    /// Answers with a plain-text body.
    pub(crate) fn text(method: &str, path: &str, status: u16, body: &str) -> Route {
        Route {
            method: method.parse().unwrap(),
            path: path.to_owned(),
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.to_owned(),
        }
    }

    /// Adds a response header; `{base}` in its value becomes the server's URL.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Value>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// `METHOD path`.
    pub(crate) fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct Script {
    routes: Vec<Route>,
    seen: Vec<Recorded>,
    base: String,
}

/// The running server.
pub(crate) struct RestServer {
    pub(crate) base: String,
    script: Arc<Mutex<Script>>,
}

impl RestServer {
    pub(crate) async fn start(routes: Vec<Route>) -> RestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script { routes, seen: Vec::new(), base: base.clone() }));
        let app = Router::new().fallback(answer).with_state(script.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        RestServer { base, script }
    }

    /// Every request received so far.
    pub(crate) fn seen(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().seen.clone()
    }

    /// Canned answers not yet used.
    pub(crate) fn unused(&self) -> Vec<String> {
        self.script
            .lock()
            .unwrap()
            .routes
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// Takes the first unused route matching the request (so one path can answer differently over time).
async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let mut script = script.lock().unwrap();
    script.seen.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body: serde_json::from_slice(&body).ok(),
    });
    let Some(i) = script.routes.iter().position(|r| r.method == method && r.path == path) else {
        return (StatusCode::IM_A_TEAPOT, format!("unexpected request {method} {path}"))
            .into_response();
    };
    let route = script.routes.remove(i);
    let mut response = (StatusCode::from_u16(route.status).unwrap(), route.body).into_response();
    for (name, value) in route.headers {
        let value = value.replace("{base}", &script.base);
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}
