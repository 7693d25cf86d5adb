//! The API's accept loop, with the limits that keep a flood of clients from exhausting
//! the agent (security review F3): a cap on open connections (overall and per client
//! address), a header-read timeout (slowloris), an idle timeout, and a TLS handshake
//! timeout. Request-level limits (body and handler timeouts, load shedding) are router
//! layers (see `server.rs`). Connections beyond a cap are closed at once, before any
//! byte is read.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Whether the connection presented a client certificate that `api.tls.client_ca`
/// signed (added to every request).
#[derive(Debug, Clone, Copy)]
pub struct ClientCert(pub bool);

/// The limits of the accept loop (see [`Limits::default`] for the values the agent uses).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most, over all clients.
    pub max_connections: usize,
    /// Open connections at most from one client address.
    pub max_per_client: usize,
    /// A client must send a request's whole header within this time.
    pub header_timeout: Duration,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// A TLS client must finish its handshake within this time.
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    /// 512 connections, 64 per client address, 10 s for a header, 30 s idle, 10 s for
    /// a TLS handshake.
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_per_client: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Serve `app` on `listener` (through `tls` when given) in a background task.
#[cfg(test)]
pub fn spawn(listener: TcpListener, tls: Option<TlsAcceptor>, app: Router, limits: Limits) {
    tokio::spawn(accept_loop(listener, tls, app, limits));
}

/// Serve `app` on `listener` (through `tls` when given) on a thread of its own, with
/// its own single-threaded runtime, for the rest of the process: however many clients
/// come, they take time from this thread only, never from the agent's HA loop or its
/// lease keeper. Idle, the thread sleeps in `epoll_wait` and costs nothing.
pub fn spawn_on_own_thread(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("pgbaton-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accept_loop(listener, tls, app, limits).await,
                    Err(e) => tracing::error!("HTTP API: cannot use the listening socket: {e}"),
                }
            })
        })?;
    Ok(())
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, app: Router, limits: Limits) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let per_client: Clients = Arc::default();
    let mut last_complaint: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, say: back off instead of spinning.
                if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("HTTP API: cannot accept a connection: {e}");
                    last_complaint = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            complain(
                &mut last_complaint,
                "the connection cap",
                limits.max_connections,
                peer,
            );
            continue;
        };
        let Some(slot) = ClientSlot::take(&per_client, peer.ip(), limits.max_per_client) else {
            complain(
                &mut last_complaint,
                "the per-client cap",
                limits.max_per_client,
                peer,
            );
            continue;
        };
        let app = app.clone();
        let tls = tls.clone();
        let open = open.clone();
        let busy = move || open.available_permits() < limits.max_connections / 2;
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            match tls {
                None => serve_connection(stream, peer, false, app, limits, busy).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
                        Ok(Ok(s)) => {
                            // With api.tls.client_ca, rustls has verified any certificate
                            // presented; whether there was one is decided per request.
                            let cert = s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .is_some_and(|c| !c.is_empty());
                            serve_connection(s, peer, cert, app, limits, busy).await
                        }
                        Ok(Err(e)) => tracing::debug!("HTTP API: TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("HTTP API: TLS handshake with {peer} timed out"),
                    }
                }
            }
        });
    }
}

fn complain(last: &mut Option<Instant>, what: &str, cap: usize, peer: SocketAddr) {
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
        tracing::warn!(
            "HTTP API: closing new connections from {peer} and others: {what} ({cap}) is reached (a flood of clients?)"
        );
        *last = Some(Instant::now());
    }
}

/// How long a connection may go without an answer while more than half the
/// connection slots are taken: idle and slow clients then make room for new ones.
const BUSY_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serve HTTP/1.1 on one accepted connection until the client closes it, it stays
/// idle for `idle_timeout`, or a header takes longer than `header_timeout`. While
/// `busy()` (more than half the slots taken), a connection that got no answer for
/// [`BUSY_IDLE_TIMEOUT`] is closed, so idle and slow clients cannot hold every slot.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    client_cert: bool,
    app: Router,
    limits: Limits,
    busy: impl Fn() -> bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Activity {
        inner: stream,
        start,
        last: last.clone(),
        answered: answered.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(ClientCert(client_cert));
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tick.tick() => {
                let seen = Duration::from_millis(last.load(Ordering::Relaxed));
                let answer = Duration::from_millis(answered.load(Ordering::Relaxed));
                let age = start.elapsed();
                let idle = age.saturating_sub(seen) >= limits.idle_timeout;
                let crowded = age.saturating_sub(answer) >= BUSY_IDLE_TIMEOUT && busy();
                if idle || crowded {
                    conn.as_mut().graceful_shutdown();
                    break;
                }
            }
        }
    }
    // Let a request in flight finish, but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
}

type Clients = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One connection counted against its client address; released on drop.
struct ClientSlot {
    clients: Clients,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(clients: &Clients, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut map = clients.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            clients: clients.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.clients.lock() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

/// A stream that records when bytes last moved either way, and when bytes were last
/// written (an answer), in ms since `start`, for the idle timeouts.
struct Activity<S> {
    inner: S,
    start: Instant,
    last: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
}

impl<S> Activity<S> {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis().min(u128::from(u64::MAX)) as u64
    }

    fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
            self.answered.store(self.now_ms(), Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
