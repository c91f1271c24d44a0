//! A guard in front of `tower-lsp`'s transport: its decoder ends the whole stream at the first body that
//! is not a JSON-RPC message, which would turn one malformed request into a dead server. Frames are
//! checked here first; a bad one is answered with a JSON-RPC error (`-32700` parse error, `-32600`
//! invalid request) written between the server's own frames, and the server never sees it.

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Largest body accepted; larger frames are refused, not buffered.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// One frame's body, or why there is none.
enum Frame {
    Body(Vec<u8>),
    /// Headers without a usable Content-Length: the headers are dropped, reading goes on.
    BadHeader(String),
}

async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Option<Frame>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_header = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_header {
                break;
            }
            continue;
        }
        saw_header = true;
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length =
                    Some(value.trim().parse().map_err(|_| format!("bad Content-Length {value:?}")));
            }
        }
    }
    match length {
        Some(Ok(n)) if n <= MAX_BODY => {
            let mut body = vec![0; n];
            reader.read_exact(&mut body).await?;
            Ok(Some(Frame::Body(body)))
        }
        Some(Ok(n)) => Ok(Some(Frame::BadHeader(format!("a {n}-byte message is over the limit")))),
        Some(Err(why)) => Ok(Some(Frame::BadHeader(why))),
        None => Ok(Some(Frame::BadHeader("no Content-Length header".to_owned()))),
    }
}

/// Why a body is not a message `tower-lsp` can decode, with the id to answer to when there is one.
fn check(body: &[u8]) -> Result<(), (i64, String, Value)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| (-32700, format!("parse error: {e}"), Value::Null))?;
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let id_ok = matches!(&id, Value::Null | Value::String(_)) || id.as_i64().is_some();
    let reply_id = if id_ok { id.clone() } else { Value::Null };
    let invalid = |why: &str| (-32600, format!("invalid request: {why}"), reply_id.clone());
    let Some(object) = value.as_object() else { return Err(invalid("not a JSON object")) };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("\"jsonrpc\" must be \"2.0\""));
    }
    if !id_ok {
        return Err(invalid("\"id\" must be a number or a string"));
    }
    match object.get("method") {
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(invalid("\"method\" must be a string")),
        None if object.contains_key("result") || object.contains_key("error") => Ok(()),
        None => Err(invalid("neither a request nor a response")),
    }
}

fn is_exit(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|v| v.get("method").and_then(Value::as_str) == Some("exit"))
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Copies well-formed frames from `input` to `server`; answers the others through `errors`. Returns
/// at the end of `input` (dropping `server`, which ends the server's input too).
pub(crate) async fn filter_input<I, S>(
    input: I,
    mut server: S,
    errors: mpsc::UnboundedSender<Vec<u8>>,
) where
    I: AsyncRead + Unpin,
    S: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(input);
    loop {
        let frame = match read_frame(&mut reader).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, "the client's input ended");
                return;
            }
        };
        let reply = match frame {
            Frame::Body(body) => match check(&body) {
                Ok(()) => {
                    if server.write_all(&framed(&body)).await.is_err()
                        || server.flush().await.is_err()
                    {
                        return;
                    }
                    // After `exit` nothing more is read: ending the server's input ends the server,
                    // which `tower-lsp` would otherwise only notice at the client's next message.
                    if is_exit(&body) {
                        return;
                    }
                    continue;
                }
                Err((code, message, id)) => (code, message, id),
            },
            Frame::BadHeader(why) => (-32700, format!("parse error: {why}"), Value::Null),
        };
        let (code, message, id) = reply;
        tracing::warn!(code, message = %message, "malformed message from the client");
        let error =
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
        if errors.send(framed(error.to_string().as_bytes())).is_err() {
            return;
        }
    }
}

/// Writes the server's frames and the guard's error frames to `output`, whole frames at a time.
/// Returns when the server's output ends.
pub(crate) async fn merge_output<S, O>(
    server: S,
    mut errors: mpsc::UnboundedReceiver<Vec<u8>>,
    mut output: O,
) where
    S: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(server);
    loop {
        let bytes = tokio::select! {
            frame = read_frame(&mut reader) => match frame {
                Ok(Some(Frame::Body(body))) => framed(&body),
                Ok(Some(Frame::BadHeader(why))) => {
                    tracing::error!(why = %why, "the server wrote a frame without a length; dropped");
                    continue;
                }
                Ok(None) | Err(_) => return,
            },
            Some(error) = errors.recv() => error,
        };
        if output.write_all(&bytes).await.is_err() || output.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn only_json_rpc_messages_pass() {
        assert!(check(br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","id":"a","result":null}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","method":"exit"}"#).is_ok());
        assert_eq!(check(b"{oops").unwrap_err().0, -32700);
        let (code, _, id) = check(br#"{"jsonrpc":"2.0","id":7,"method":3}"#).unwrap_err();
        assert_eq!((code, id), (-32600, serde_json::json!(7)));
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","id":{"x":1},"method":"m"}"#).unwrap_err().2,
            serde_json::Value::Null
        );
        assert_eq!(check(br#"[1,2]"#).unwrap_err().0, -32600);
        assert_eq!(check(br#"{"id":1,"method":"m"}"#).unwrap_err().0, -32600);
    }
}
