//! Connections, below the routes: the accept loop, caps on open connections (per peer address
//! and in total), the header-read and keep-alive idle timeouts, and AWS-form answers for what
//! hyper refuses by itself (an over-long URI, over-large headers, a malformed request).
//!
//! Before this, `axum::serve` ran hyper with no timer: a connection that never sent a complete
//! request head stayed open forever, before any authentication, and enough of them used up the
//! process's file descriptors for everyone.
//!
//! The timeouts (a per-connection watchdog, not hyper's `header_read_timeout`: hyper's timer runs
//! whenever it waits for a head, so on a keep-alive connection it would also be the idle limit —
//! one number for two different things):
//! - a new connection must complete its first request head within `header_read_timeout`;
//! - after a response, the connection may stay quiet for `idle_timeout`; once a byte of the next
//!   request arrives, its head must be complete within `header_read_timeout`;
//! - while a request is in flight — its body still arriving (PutMedia) or its response still
//!   going out (a fragment to a slow player) — neither applies: a request ends when its response
//!   body has been written and flushed.
//!
//! Expired connections are closed (no response: there is no request to answer).
//!
//! Over a cap, a new connection gets `503 ServiceUnavailableException` written straight to the
//! socket and is closed at once; refusals are logged at warn at most every
//! [`REFUSAL_LOG_INTERVAL`]. The total cap is kept under the open-file limit
//! ([`effective_max_connections`]); `openkvs serve` raises the soft limit to the hard one first
//! ([`raise_nofile_limit`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// Limits on connections; `openkvs serve` sets them from flags, environment and config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to send a complete request head, from the connection opening or from
    /// the first byte of a request on a kept-alive connection. Default 10 s: a head is a few KiB,
    /// which any working link sends in well under a second.
    pub header_read_timeout: Duration,
    /// Time a kept-alive connection may stay quiet between requests. Default 60 s (AWS load
    /// balancers' default): longer than any HLS player's reload interval, and SDKs reconnect
    /// transparently when it passes.
    pub idle_timeout: Duration,
    /// Open connections at most, all peers together; also kept under the open-file limit
    /// ([`effective_max_connections`]). Default 16384.
    pub max_connections: usize,
    /// Open connections at most from one peer IP address. Default 1024: generous, because a fleet
    /// of cameras behind one NAT address shares it (each camera holds a PutMedia connection and
    /// sometimes a control-plane one).
    pub max_connections_per_ip: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 16_384,
            max_connections_per_ip: 1024,
        }
    }
}

/// File descriptors kept free for everything that is not a client socket: the catalog (SQLite
/// database, WAL and shared-memory files of each pooled connection), directory fsyncs, the
/// refusal path (a refused connection is accepted, answered and closed).
pub const RESERVED_FDS: u64 = 128;

/// How often at most a refusal (or an accept error) is logged at warn; the count of those in
/// between is logged with the next one.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, as servers that hold many
/// sockets do. Returns the soft limit in effect afterwards (`None`: unlimited or not known).
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::debug!(
                    from = ?limit.current,
                    to = ?limit.maximum,
                    "raised the soft open-file limit to the hard limit"
                ),
                // macOS refuses an unlimited soft limit; the old one stays.
                Err(e) => tracing::debug!(error = %e, "the soft open-file limit was not raised"),
            }
        }
        nofile_limit()
    }
    #[cfg(not(unix))]
    None
}

/// The soft open-file limit now (`None`: unlimited or not known).
pub fn nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    None
}

/// The total cap actually applied: `configured`, but at most half of the descriptors left after
/// [`RESERVED_FDS`], because a connection can hold a second one (a PutMedia connection appends
/// to its stream's open segment file).
pub fn effective_max_connections(configured: usize, nofile: Option<u64>) -> usize {
    let budget = nofile.map_or(u64::MAX, |n| n.saturating_sub(RESERVED_FDS) / 2);
    configured
        .min(usize::try_from(budget).unwrap_or(usize::MAX))
        .max(1)
}

/// Accepts connections on `listener` and serves `app` on each until `shutdown` is cancelled;
/// then stops accepting, lets every connection finish its request in flight (idle ones close at
/// once) and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let nofile = nofile_limit();
    let max_total = effective_max_connections(limits.max_connections, nofile);
    if max_total < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            applied = max_total,
            open_file_limit = nofile,
            "the open-file limit allows fewer connections than configured; raise the hard limit \
             (`ulimit -Hn`, systemd LimitNOFILE=) to serve more"
        );
    }
    let admission = Arc::new(Admission::new(
        max_total,
        limits.max_connections_per_ip.min(max_total),
    ));
    tracing::info!(
        max_connections = max_total,
        max_connections_per_ip = admission.max_per_ip,
        header_read_timeout = ?limits.header_read_timeout,
        idle_timeout = ?limits.idle_timeout,
        "connection limits"
    );
    let limits = Arc::new(limits);
    let mut refusals = RateLimitedWarn::default();
    let mut accept_errors = RateLimitedWarn::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or memory: the connection waits in the
                // backlog; try again shortly instead of spinning.
                accept_errors.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "accept error; retrying in 50 ms")
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match admission.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                refusals.warn(|suppressed| {
                    tracing::warn!(
                        %peer,
                        suppressed,
                        "refusing a connection: {} (this warning at most every {:?})",
                        refusal.log_reason(),
                        REFUSAL_LOG_INTERVAL
                    )
                });
                refuse(tcp, &refusal.error());
                continue;
            }
        };
        // TCP_NODELAY: acks and playlists are small writes; with Nagle they wait for the peer's
        // delayed ACK (~40 ms), which made PERSISTED acks arrive 40 ms late.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        tokio::spawn(serve_connection(
            tcp,
            peer,
            app.clone(),
            limits.clone(),
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    admission.all_closed().await;
    Ok(())
}

/// Accept errors that concern one connection only (it was reset before we took it).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Writes `error` as a raw HTTP/1.1 response and closes the connection, without waiting: a
/// refused connection must cost next to nothing. A client that had already sent its request
/// may see the close as a reset instead of reading the answer.
fn refuse(tcp: TcpStream, error: &ApiError) {
    use std::io::{Read, Write};
    let answer = error.render_http1(&crate::wire::new_request_id());
    // A plain non-blocking write: a fresh socket's send buffer takes a few hundred bytes.
    let Ok(mut tcp) = tcp.into_std() else { return };
    let _ = tcp.write(&answer);
    let _ = tcp.shutdown(std::net::Shutdown::Write);
    // Read what already arrived, so the close sends a FIN, not a reset that may discard the answer.
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        match tcp.read(&mut sink) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// Logs at most once per [`REFUSAL_LOG_INTERVAL`], with how many were not logged since.
#[derive(Default)]
struct RateLimitedWarn {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedWarn {
    fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Counts open connections, per peer address and in total.
struct Admission {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<OpenConnections>,
    closed: tokio::sync::Notify,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
enum Refusal {
    PerIp(usize),
    Total(usize),
}

impl Refusal {
    fn error(&self) -> ApiError {
        ApiError::TooManyConnections(match self {
            Refusal::PerIp(_) => {
                "Too many open connections from your address. Please retry the request.".into()
            }
            Refusal::Total(_) => {
                "The server has too many open connections. Please retry the request.".into()
            }
        })
    }

    fn log_reason(&self) -> String {
        match self {
            Refusal::PerIp(max) => {
                format!("the peer address has {max} open connections (max_connections_per_ip)")
            }
            Refusal::Total(max) => format!("{max} connections are open (max_connections)"),
        }
    }
}

impl Admission {
    fn new(max_total: usize, max_per_ip: usize) -> Self {
        Admission {
            max_total,
            max_per_ip,
            open: Mutex::new(OpenConnections::default()),
            closed: tokio::sync::Notify::new(),
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        // An IPv4 peer of a dual-stack listener counts as its IPv4 address.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let from_ip = open.per_ip.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::PerIp(self.max_per_ip));
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Permit {
            admission: self.clone(),
            ip,
        })
    }

    /// Resolves once no connection is open.
    async fn all_closed(&self) {
        loop {
            // Created before the check, so a close in between still wakes it.
            let closed = self.closed.notified();
            if self.open.lock().map(|o| o.total == 0).unwrap_or(true) {
                return;
            }
            closed.await;
        }
    }
}

/// One open connection's place in [`Admission`]; released when dropped.
struct Permit {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
        if open.total == 0 {
            self.admission.closed.notify_waiters();
        }
    }
}

/// Serves one connection until it ends, its watchdog expires, or shutdown has let its request in
/// flight finish.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Arc<ConnectionLimits>,
    shutdown: CancellationToken,
    _permit: Permit,
) {
    let activity = Arc::new(Mutex::new(Activity::new(Instant::now())));
    let io = hyper_util::rt::TokioIo::new(TrackedIo {
        tcp,
        activity: activity.clone(),
        answer: None,
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let in_flight = RequestInFlight::begin(activity.clone());
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = tower_service::Service::call(&mut app.clone(), request);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| TrackedBody {
                    body,
                    _in_flight: in_flight,
                }))
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut watchdog = std::pin::pin!(watchdog(activity, limits));
    let mut draining = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            reason = &mut watchdog => {
                tracing::debug!(%peer, "closing the connection: {reason}");
                return;
            }
            () = shutdown.cancelled(), if !draining => {
                // Finishes the request in flight, then closes; an idle connection closes now.
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Where a connection is between requests, for its watchdog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head to complete, since the connection opened or the head's first byte.
    Head(Instant),
    /// Kept alive between requests, no byte of the next one yet, since the last response ended.
    Idle(Instant),
    /// A request is being served (body in, response out).
    Busy,
    /// The response body ended and its last bytes are being flushed; `Some`: a byte of the next
    /// request arrived meanwhile (pipelining).
    Ending(Option<Instant>),
}

struct Activity {
    phase: Phase,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Activity {
            phase: Phase::Head(now),
        }
    }

    /// Bytes arrived from the client.
    fn on_read(&mut self, now: Instant) {
        self.phase = match self.phase {
            Phase::Idle(_) => Phase::Head(now),
            Phase::Ending(None) => Phase::Ending(Some(now)),
            other => other,
        };
    }

    /// Everything written so far reached the socket.
    fn on_flush(&mut self, now: Instant) {
        self.phase = match self.phase {
            Phase::Ending(None) => Phase::Idle(now),
            Phase::Ending(Some(head)) => Phase::Head(head),
            other => other,
        };
    }

    /// When the connection expires, unless something happens first; `None` while busy.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        match self.phase {
            Phase::Head(since) => Some((
                since + limits.header_read_timeout,
                "no complete request head within the header read timeout",
            )),
            Phase::Idle(since) => Some((since + limits.idle_timeout, "idle timeout")),
            Phase::Busy | Phase::Ending(_) => None,
        }
    }

    /// Whether a write now can only be hyper's own answer to a request it could not parse: no
    /// request is being served and the last response is out.
    fn between_requests(&self) -> bool {
        matches!(self.phase, Phase::Head(_) | Phase::Idle(_))
    }
}

fn lock(activity: &Mutex<Activity>) -> std::sync::MutexGuard<'_, Activity> {
    activity.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves, with the reason, when the connection has been waiting for a head or idle too long.
async fn watchdog(activity: Arc<Mutex<Activity>>, limits: Arc<ConnectionLimits>) -> &'static str {
    // The phase changes without telling the watchdog, so it looks again at least this often: a
    // new deadline is never nearer than this to the change that set it, so none is overslept.
    let recheck = limits
        .header_read_timeout
        .min(limits.idle_timeout)
        .max(Duration::from_millis(100));
    loop {
        let now = Instant::now();
        let deadline = lock(&activity).deadline(&limits);
        let wake = match deadline {
            Some((at, reason)) if at <= now => return reason,
            Some((at, _)) => at.min(now + recheck),
            None => now + recheck,
        };
        tokio::time::sleep_until(wake).await;
    }
}

/// Marks a request in flight from the service call until its response body is dropped (written
/// to the end, or the connection gone).
struct RequestInFlight(Arc<Mutex<Activity>>);

impl RequestInFlight {
    fn begin(activity: Arc<Mutex<Activity>>) -> Self {
        lock(&activity).phase = Phase::Busy;
        RequestInFlight(activity)
    }
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        lock(&self.0).phase = Phase::Ending(None);
    }
}

/// A response body that keeps its request marked in flight.
struct TrackedBody<B> {
    body: B,
    _in_flight: RequestInFlight,
}

impl<B: HttpBody + Unpin> HttpBody for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client socket, telling the watchdog when request bytes arrive and responses are flushed,
/// and replacing hyper's own empty error answers (400/414/431 for a request it could not parse)
/// with the AWS form.
struct TrackedIo {
    tcp: TcpStream,
    activity: Arc<Mutex<Activity>>,
    /// Our answer replacing hyper's, and how much of it is written. Once set, hyper's remaining
    /// writes are dropped: hyper closes the connection after such an answer.
    answer: Option<(Vec<u8>, usize)>,
}

impl TrackedIo {
    /// If `first` is hyper answering a request it could not parse, our answer in its place.
    fn replacement(&self, first: &[u8]) -> Option<(Vec<u8>, usize)> {
        // The cheap test first: this runs on every write of every response.
        let status = first.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
        if !lock(&self.activity).between_requests() {
            return None;
        }
        let error = match status {
            b"414" => ApiError::UriTooLong,
            b"431" => ApiError::HeadersTooLarge,
            b"400" => ApiError::MalformedRequest,
            _ => return None,
        };
        let request_id = crate::wire::new_request_id();
        tracing::debug!(
            request_id,
            status = %String::from_utf8_lossy(status),
            "request refused by the HTTP parser"
        );
        Some((error.render_http1(&request_id), 0))
    }

    /// Writes the rest of our replacement answer, if any.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((answer, written)) = &mut self.answer {
            while *written < answer.len() {
                let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &answer[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.tcp).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            lock(&self.activity).on_read(Instant::now());
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.answer.is_none() && !buf.is_empty() {
            self.answer = self.replacement(buf);
        }
        if self.answer.is_some() {
            ready!(self.poll_answer(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.answer.is_none() {
            if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
                self.answer = self.replacement(first);
            }
        }
        if self.answer.is_some() {
            ready!(self.poll_answer(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_answer(cx))?;
        ready!(Pin::new(&mut self.tcp).poll_flush(cx))?;
        lock(&self.activity).on_flush(Instant::now());
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_answer(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_cap_stays_under_the_open_file_limit() {
        assert_eq!(effective_max_connections(16_384, None), 16_384);
        assert_eq!(effective_max_connections(16_384, Some(1_048_576)), 16_384);
        // 1024 descriptors: 128 reserved, two per connection.
        assert_eq!(effective_max_connections(16_384, Some(1024)), 448);
        assert_eq!(effective_max_connections(100, Some(1024)), 100);
        assert_eq!(effective_max_connections(16_384, Some(10)), 1);
    }

    #[test]
    fn admission_counts_per_address_and_in_total() {
        let a = Arc::new(Admission::new(3, 2));
        let one: IpAddr = "10.0.0.1".parse().unwrap();
        let two: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = a.admit(one).ok().unwrap();
        let _p2 = a.admit(one).ok().unwrap();
        assert!(matches!(a.admit(one), Err(Refusal::PerIp(2))));
        // The same address written as IPv4-mapped IPv6 is the same peer.
        assert!(a.admit("::ffff:10.0.0.1".parse().unwrap()).is_err());
        let _p3 = a.admit(two).ok().unwrap();
        assert!(matches!(a.admit(two), Err(Refusal::Total(3))));
        drop(p1);
        assert!(a.admit(one).is_ok());
    }

    #[test]
    fn phases_and_deadlines() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..Default::default()
        };
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let activity = Arc::new(Mutex::new(Activity::new(t0)));
        let deadline = || lock(&activity).deadline(&limits).map(|(at, _)| at);
        assert_eq!(
            deadline(),
            Some(s(10)),
            "a new connection has the header timeout"
        );
        lock(&activity).on_read(s(1));
        assert_eq!(
            deadline(),
            Some(s(10)),
            "bytes of the head do not extend it"
        );
        let request = RequestInFlight::begin(activity.clone());
        assert_eq!(deadline(), None, "no timeout while a request is in flight");
        lock(&activity).on_flush(s(100));
        assert_eq!(deadline(), None);
        drop(request);
        assert_eq!(
            deadline(),
            None,
            "the response's tail is still being written"
        );
        lock(&activity).on_flush(s(200));
        assert_eq!(deadline(), Some(s(260)), "kept alive: the idle timeout");
        assert!(lock(&activity).between_requests());
        lock(&activity).on_read(s(230));
        assert_eq!(
            deadline(),
            Some(s(240)),
            "a next head: the header timeout again"
        );
    }

    #[tokio::test]
    async fn the_watchdog_sees_a_nearer_deadline_set_while_it_sleeps() {
        let limits = Arc::new(ConnectionLimits {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_millis(200),
            ..Default::default()
        });
        let activity = Arc::new(Mutex::new(Activity::new(Instant::now())));
        let dog = tokio::spawn(watchdog(activity.clone(), limits));
        // The watchdog starts on the 60 s header deadline; a request and its response follow.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(RequestInFlight::begin(activity.clone()));
        lock(&activity).on_flush(Instant::now());
        let reason = tokio::time::timeout(Duration::from_secs(10), dog)
            .await
            .expect("closed on the idle deadline, not the header one")
            .unwrap();
        assert_eq!(reason, "idle timeout");
    }
}
