//! Request targets as clients actually send them. hyper refuses a request
//! line whose target holds a byte URIs do not allow (a raw `"` from a shell
//! script, say) with a bare 400 before any route sees it; this reader
//! percent-encodes such bytes in request lines on the way in, so the request
//! reaches the router and gets the API's own 400 naming the parameter, its
//! request id and its access-log line. Nothing else is changed: header lines
//! pass as they are, and so do bodies (skipped by `Content-Length`; after a
//! chunked body the connection is left alone).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes a request target may not hold (RFC 3986), but clients send.
fn unsafe_in_target(b: u8) -> bool {
    matches!(
        b,
        b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
    ) || b >= 0x80
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a request line; `spaces` seen so far (the target follows the first).
    RequestLine { spaces: u8 },
    /// In the header lines; `blank` when the current line is empty so far.
    Headers { blank: bool },
    /// Inside a body of this many bytes still to come.
    Body(u64),
    /// A chunked body was announced: the rest passes untouched.
    PassThrough,
}

pub struct Lenient<S> {
    inner: S,
    state: State,
    /// The current header line, for `Content-Length` / `Transfer-Encoding`.
    line: Vec<u8>,
    content_length: u64,
    chunked: bool,
    /// Rewritten bytes not yet handed to the reader.
    pending: Vec<u8>,
}

impl<S> Lenient<S> {
    pub fn new(inner: S) -> Lenient<S> {
        Lenient {
            inner,
            state: State::RequestLine { spaces: 0 },
            line: Vec::new(),
            content_length: 0,
            chunked: false,
            pending: Vec::new(),
        }
    }

    fn rewrite(&mut self, input: &[u8]) {
        for &b in input {
            match self.state {
                State::RequestLine { spaces } => {
                    if b == b'\n' {
                        self.state = State::Headers { blank: true };
                        self.line.clear();
                    } else if b == b' ' {
                        self.state = State::RequestLine { spaces: spaces + 1 };
                    } else if spaces == 1 && unsafe_in_target(b) {
                        self.pending
                            .extend_from_slice(format!("%{b:02X}").as_bytes());
                        continue;
                    }
                    self.pending.push(b);
                }
                State::Headers { blank } => {
                    self.pending.push(b);
                    match b {
                        b'\n' if blank => {
                            self.state = if self.chunked {
                                State::PassThrough
                            } else if self.content_length > 0 {
                                State::Body(self.content_length)
                            } else {
                                State::RequestLine { spaces: 0 }
                            };
                            self.content_length = 0;
                        }
                        b'\n' => {
                            self.header_line();
                            self.state = State::Headers { blank: true };
                        }
                        b'\r' => {}
                        _ => {
                            self.line.push(b);
                            self.state = State::Headers { blank: false };
                        }
                    }
                }
                State::Body(left) => {
                    self.pending.push(b);
                    self.state = if left > 1 {
                        State::Body(left - 1)
                    } else {
                        State::RequestLine { spaces: 0 }
                    };
                }
                State::PassThrough => self.pending.push(b),
            }
        }
    }

    fn header_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line).to_ascii_lowercase();
        if let Some(v) = line.strip_prefix("content-length:") {
            self.content_length = v.trim().parse().unwrap_or(0);
        } else if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            self.chunked = true;
        }
        self.line.clear();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lenient<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pending.is_empty() {
            let mut raw = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut raw);
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let got = rb.filled().to_vec();
                    if got.is_empty() {
                        return Poll::Ready(Ok(())); // end of stream
                    }
                    self.rewrite(&got);
                }
                other => return other,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Lenient<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(input: &[&[u8]]) -> String {
        let mut l = Lenient::new(());
        for part in input {
            l.rewrite(part);
        }
        String::from_utf8(l.pending).unwrap()
    }

    #[test]
    fn only_request_targets_are_encoded_and_bodies_are_skipped() {
        let got = rewritten(&[
            b"GET /v1/p/replication_records?status=\"x\" HTTP/1.1\r\nX-Q: \"kept\"\r\n\r\n",
            b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\n{\"a\"}",
            b"GET /b|c HTTP/1.1\r\n\r\n",
        ]);
        assert_eq!(
            got,
            "GET /v1/p/replication_records?status=%22x%22 HTTP/1.1\r\nX-Q: \"kept\"\r\n\r\n\
             POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\n{\"a\"}\
             GET /b%7Cc HTTP/1.1\r\n\r\n"
        );
    }

    #[test]
    fn a_request_split_anywhere_is_rewritten_the_same() {
        let whole: &[u8] = b"GET /x?a=\"1\" HTTP/1.1\r\nHost: h\r\n\r\nGET /y<z> HTTP/1.1\r\n\r\n";
        let once = rewritten(&[whole]);
        for cut in 0..whole.len() {
            assert_eq!(
                rewritten(&[&whole[..cut], &whole[cut..]]),
                once,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn after_a_chunked_body_nothing_is_touched() {
        let got = rewritten(&[
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\"\r\n0\r\n\r\nGET /\" HTTP/1.1\r\n\r\n",
        ]);
        assert!(got.ends_with("GET /\" HTTP/1.1\r\n\r\n"), "{got}");
    }
}
