//! Newline-delimited JSON-RPC over tokio byte streams, as the SDK's line transport.
//!
//! The SDK's own stdio transport (its `stdio` feature) reads through the `blocking` thread pool;
//! Cadre already runs tokio, so its stdin and stdout (or an in-memory pipe in tests) are bridged
//! here instead. A line that is not JSON-RPC is answered by the SDK with a JSON-RPC error.

use agent_client_protocol::Lines;
use futures::{Sink, Stream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

type LineSink = std::pin::Pin<Box<dyn Sink<String, Error = std::io::Error> + Send>>;
type LineStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<String>> + Send>>;

/// The line transport over `input` (client to agent) and `output` (agent to client).
pub(crate) fn lines<R, W>(input: R, output: W) -> Lines<LineSink, LineStream>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // Bytes, not `lines()`: a line that is not UTF-8 becomes a (malformed) string the SDK answers
    // with a parse error, instead of an I/O error that would end the connection.
    let incoming = futures::stream::unfold(BufReader::new(input), |mut reader| async move {
        loop {
            let mut bytes = Vec::new();
            match reader.read_until(b'\n', &mut bytes).await {
                Ok(0) => return None,
                Ok(_) => {
                    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        bytes.pop();
                    }
                    // Blank lines between messages are not messages.
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some((Ok(String::from_utf8_lossy(&bytes).into_owned()), reader));
                }
                Err(error) => return Some((Err(error), reader)),
            }
        }
    });
    let outgoing = futures::sink::unfold(output, |mut out, line: String| async move {
        out.write_all(line.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
        Ok::<_, std::io::Error>(out)
    });
    Lines::new(Box::pin(outgoing) as LineSink, Box::pin(incoming) as LineStream)
}
