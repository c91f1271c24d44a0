//! Server-sent events, as both streaming wire formats use them: `data: {json}` lines, events separated
//! by a blank line (`\r\n\r\n` from Gemini, `\n\n` from OpenAI-compatible servers).
//!
//! Only `data` fields matter to the providers; `event`, `id`, `retry` and comments are skipped. An
//! event whose blank line never came is handed out at the end only if its last line was complete, so a
//! body cut in the middle of a line is never mistaken for a whole frame.

/// Splits a byte stream into the `data` of each event.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    /// Bytes of a line not yet ended by `\n`.
    partial: Vec<u8>,
    /// The `data` lines of the event being read, joined by `\n`.
    data: Option<String>,
}

impl SseDecoder {
    /// Feeds `bytes` and returns the data of every event they complete, in order.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                events.extend(self.data.take());
            } else {
                self.line(&String::from_utf8_lossy(&line));
            }
        }
        self.partial.extend_from_slice(rest);
        events
    }

    /// At the end of the body: the last event's data when its lines were complete but its blank line
    /// never came; `Err(())` when the body stopped in the middle of a line.
    pub(crate) fn finish(mut self) -> Result<Option<String>, ()> {
        if self.partial.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(());
        }
        Ok(self.data.take())
    }

    fn line(&mut self, line: &str) {
        let Some(value) = line.strip_prefix("data:") else { return };
        let value = value.strip_prefix(' ').unwrap_or(value);
        match &mut self.data {
            Some(data) => {
                data.push('\n');
                data.push_str(value);
            }
            None => self.data = Some(value.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines_in_either_line_ending_and_across_chunks() {
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.push(b"data: {\"a\":1}\r\n\r\nda"), ["{\"a\":1}"]);
        assert!(decoder.push(b"ta: {\"b\"").is_empty());
        assert_eq!(
            decoder.push(b":2}\n\n: a comment\nevent: x\ndata:[DONE]\n\n"),
            ["{\"b\":2}", "[DONE]"]
        );
        assert_eq!(decoder.finish(), Ok(None));
    }

    #[test]
    fn multi_line_data_is_joined_and_a_complete_last_event_is_kept() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"data: one\ndata: two\n").is_empty());
        assert_eq!(decoder.finish(), Ok(Some("one\ntwo".to_owned())));
    }

    #[test]
    fn a_body_cut_inside_a_line_is_an_error() {
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(b"data: {\"candidates\": [{\"con").is_empty());
        assert_eq!(decoder.finish(), Err(()));
    }
}
