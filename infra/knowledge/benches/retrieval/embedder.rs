//! A minimal [`Embedder`] over an OpenAI-compatible `POST /v1/embeddings` endpoint, for the evaluation.
//!
//! Why not `cadre-model`'s `OpenAiEmbeddings` behind `EmbedGateway`: an infra crate must not depend on
//! another (dev-dependencies included would couple this crate's test build to a crate in flux), and the
//! evaluation measures retrieval, not the gateway's retries and accounting. One blocking HTTP/1.1
//! request per call on the blocking pool, `Connection: close`, no TLS: it only talks to a local server
//! (`eval/embed_server.py`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use async_trait::async_trait;
use cadre_domain::ports::knowledge::{EmbedError, EmbedPurpose, Embedder};

/// The embedding server at `http://HOST:PORT/PATH`.
#[derive(Debug, Clone)]
pub(crate) struct HttpEmbedder {
    host: String,
    port: u16,
    path: String,
    model: String,
    dimensions: usize,
}

impl HttpEmbedder {
    /// Parses `http://host:port/v1` (the API root; `/embeddings` is appended).
    pub(crate) fn new(url: &str, model: &str, dimensions: usize) -> Result<HttpEmbedder, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("embedding url {url:?} is not http://HOST:PORT/v1; only plain http to a local server is supported")
        })?;
        let (authority, root) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
        let port =
            port.parse().map_err(|_| format!("embedding url {url:?} has a bad port {port:?}"))?;
        let root = root.trim_end_matches('/');
        let path =
            if root.is_empty() { "/embeddings".to_owned() } else { format!("/{root}/embeddings") };
        Ok(HttpEmbedder { host: host.to_owned(), port, path, model: model.to_owned(), dimensions })
    }

    fn post(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body =
            serde_json::json!({ "model": self.model, "input": texts, "encoding_format": "float" })
                .to_string();
        let unavailable = |what: &str, e: std::io::Error| {
            EmbedError::Unavailable(format!("{what} {}:{}: {e}", self.host, self.port))
        };
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .map_err(|e| unavailable("connect to", e))?;
        // A cold batch of 32 chunks of 256 tokens takes tens of seconds in numpy on a busy machine.
        stream
            .set_read_timeout(Some(Duration::from_secs(900)))
            .map_err(|e| unavailable("configure", e))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).map_err(|e| unavailable("send to", e))?;
        stream.write_all(body.as_bytes()).map_err(|e| unavailable("send to", e))?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).map_err(|e| unavailable("read from", e))?;
        let split = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| EmbedError::Malformed("the reply has no end of headers".into()))?;
        let head = String::from_utf8_lossy(&reply[..split]);
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = &reply[split + 4..];
        match status {
            200 => {}
            429 => return Err(EmbedError::RateLimited { retry_after_ms: None }),
            500..=599 => {
                return Err(EmbedError::Unavailable(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(body)
                )))
            }
            _ => {
                return Err(EmbedError::Refused(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(body)
                )))
            }
        }
        parse_reply(body, texts.len(), self.dimensions)
    }
}

/// `{"data": [{"embedding": [...], "index": i}]}`, put in `index` order and checked for shape.
fn parse_reply(body: &[u8], texts: usize, dimensions: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| EmbedError::Malformed(format!("the reply is not JSON: {e}")))?;
    let data = value
        .get("data")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| EmbedError::Malformed("the reply has no `data` array".into()))?;
    let mut out: Vec<Option<Vec<f32>>> = vec![None; texts];
    for (position, datum) in data.iter().enumerate() {
        let index = datum
            .get("index")
            .and_then(serde_json::Value::as_u64)
            .and_then(|i| usize::try_from(i).ok())
            .unwrap_or(position);
        #[allow(clippy::cast_possible_truncation)]
        let vector: Vec<f32> = datum
            .get("embedding")
            .and_then(serde_json::Value::as_array)
            .map(|v| v.iter().filter_map(serde_json::Value::as_f64).map(|x| x as f32).collect())
            .unwrap_or_default();
        if vector.len() != dimensions {
            return Err(EmbedError::Malformed(format!(
                "vector {index} has {} dimensions, expected {dimensions}",
                vector.len()
            )));
        }
        match out.get_mut(index) {
            Some(slot) => *slot = Some(vector),
            None => {
                return Err(EmbedError::Malformed(format!("index {index} for {texts} texts")));
            }
        }
    }
    out.into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| EmbedError::Malformed(format!("{} vectors for {texts} texts", data.len())))
}

#[async_trait]
impl Embedder for HttpEmbedder {
    fn model_id(&self) -> String {
        self.model.clone()
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    async fn embed(
        &self,
        texts: &[String],
        _purpose: EmbedPurpose,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        // all-MiniLM-L6-v2 embeds queries and documents alike: the purpose changes nothing here.
        let (me, texts) = (self.clone(), texts.to_vec());
        tokio::task::spawn_blocking(move || me.post(&texts))
            .await
            .map_err(|e| EmbedError::Unavailable(format!("embedding task failed: {e}")))?
    }
}
