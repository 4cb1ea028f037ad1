//! A client that stops reading. Once its socket buffers are full, hyper
//! stops asking the response for more and nothing on the server side runs
//! for that connection again until TCP gives up, which can take many
//! minutes: a change feed left in a stalled tab, or behind a hung proxy,
//! would hold its stream slot all that time. This wrapper of a connection's
//! socket fails a write that has been waiting longer than the send timeout
//! (nginx's `send_timeout`: the time between two successful writes, not the
//! length of the response), so hyper closes the connection and the response
//! — the stream's slot with it — is dropped.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::metrics::Metrics;

pub struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write waits for the client; reset by any progress.
    waiting: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
    peer: std::net::SocketAddr,
}

impl<S> SendTimeout<S> {
    pub fn new(
        inner: S,
        timeout: Duration,
        metrics: Arc<Metrics>,
        peer: std::net::SocketAddr,
    ) -> SendTimeout<S> {
        SendTimeout {
            inner,
            timeout,
            waiting: None,
            metrics,
            peer,
        }
    }

    /// Passes `polled` on, timing how long the client has accepted nothing.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        let timeout = self.timeout;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if waiting.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.waiting = None;
        self.metrics.client_stalled();
        tracing::info!(peer = %self.peer, timeout_secs = self.timeout.as_secs(), "client accepted no output within the send timeout; connection closed");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client accepted no output within the send timeout",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.timed(cx, polled)
    }
}
