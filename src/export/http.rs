//! A minimal HTTP/1.1 server for one read-only endpoint, over `std::net`, with optional TLS
//! (rustls) and basic auth (`--web-config`).
//!
//! Hand-written rather than a dependency: `tiny_http` has had no release since 2022 and `hyper`
//! with `tokio` adds ten crates and 13 s of build for what is one GET route. Everything here is
//! bounded: the request head (8 KiB), the time to send its first line and the whole head
//! (deadlines, not per read, so a client trickling one byte a second is cut off), the time to
//! read the answer, and the number of connections (a thread each). When every slot is taken,
//! a new connection evicts the oldest one still waiting for its request (an idle or trickling
//! client), so idle sockets can never lock legitimate scrapers out; only when every slot is
//! busy answering is the answer an immediate 503.

use super::web::WebConfig;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request head accepted (request line and headers).
    pub max_request_bytes: usize,
    /// Time a client has to send its request line (after the TLS handshake, when there is one).
    pub request_line_timeout: Duration,
    /// Time a client has to send its whole request head.
    pub request_timeout: Duration,
    /// Time a client has to read the whole response.
    pub response_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 8192,
            request_line_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// What the handler sees of a request.
#[derive(Debug)]
pub struct Request<'a> {
    pub path: &'a str,
    /// The `Accept` header, empty when absent.
    pub accept: &'a str,
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Further header lines, each ending in `\r\n`.
    pub extra_headers: &'static str,
    pub body: Arc<String>,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra_headers: "",
            body: Arc::new(body.to_string()),
        }
    }
}

pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

const LANDING: &str = "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>shmwho exporter</title></head>\n<body>\n<h1>shmwho exporter</h1>\n<p>Shared memory of this host, measured from the kernel: <a href=\"/metrics\">/metrics</a></p>\n</body>\n</html>\n";

/// What a connection's thread is doing; only a connection still waiting for its request is
/// evicted first (it has cost the server nothing yet), then one stuck reading its answer.
const WAITING: u8 = 0;
const HANDLING: u8 = 1;
const ANSWERING: u8 = 2;

struct Conn {
    id: u64,
    since: Instant,
    phase: Arc<AtomicU8>,
    /// A second handle on the socket, to shut it down from the accept loop.
    socket: TcpStream,
}

#[derive(Default)]
struct Table {
    conns: Mutex<Vec<Conn>>,
    /// Threads alive, including evicted ones on their way out.
    active: AtomicUsize,
}

impl Table {
    fn conns(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shuts down the oldest connection waiting for its request, else the oldest one
    /// answering; its thread sees the socket close at once and leaves. False when every
    /// connection is running a scan.
    fn evict_one(&self) -> bool {
        let mut conns = self.conns();
        let pick = |phase: u8| {
            conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.phase.load(Ordering::Acquire) == phase)
                .min_by_key(|(_, c)| c.since)
                .map(|(i, _)| i)
        };
        let Some(i) = pick(WAITING).or_else(|| pick(ANSWERING)) else {
            return false;
        };
        let c = conns.swap_remove(i);
        let _ = c.socket.shutdown(Shutdown::Both);
        true
    }
}

/// Gives a connection slot back when the connection's thread ends, however it ends.
struct Slot {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.conns().retain(|c| c.id != self.id);
        self.table.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves GET and HEAD requests on `listener` with `handler` until the process exits.
pub fn serve(
    listener: TcpListener,
    limits: Limits,
    web: Arc<WebConfig>,
    handler: Arc<Handler>,
) -> io::Result<()> {
    let table = Arc::new(Table::default());
    let mut next_id = 0u64;
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            // Out of fds, a connection reset before accept: nothing to do but go on.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let active = table.active.load(Ordering::Acquire);
        // Evicted threads leave within moments; the second bound holds under a flood of
        // connections that evict each other faster than that.
        if active >= limits.max_connections
            && (!table.evict_one() || active >= 2 * limits.max_connections)
        {
            if web.tls.is_none() {
                // A fresh socket's send buffer takes this without blocking.
                let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                let _ = write_plain_503(&mut stream);
            }
            continue;
        }
        let Ok(socket) = stream.try_clone() else {
            continue;
        };
        next_id += 1;
        let phase = Arc::new(AtomicU8::new(WAITING));
        table.conns().push(Conn {
            id: next_id,
            since: Instant::now(),
            phase: phase.clone(),
            socket,
        });
        table.active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot {
            table: table.clone(),
            id: next_id,
        };
        let handler = handler.clone();
        let web = web.clone();
        let spawned = std::thread::Builder::new()
            .name("shmwho-http".into())
            .spawn(move || {
                let _slot = slot;
                let _ = handle(stream, &limits, &web, &*handler, &phase);
            });
        if spawned.is_err() {
            // The slot was dropped with the closure: the count is already back.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

fn write_plain_503(stream: &mut TcpStream) -> io::Result<()> {
    let mut s = Stream::Plain(stream.try_clone()?);
    write_response(
        &mut s,
        &Response::text(503, "busy: too many connections\n"),
        false,
        Instant::now() + Duration::from_millis(100),
    )
}

/// A connection, in the clear or over TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

fn handle(
    stream: TcpStream,
    limits: &Limits,
    web: &WebConfig,
    handler: &Handler,
    phase: &AtomicU8,
) -> io::Result<()> {
    let start = Instant::now();
    let mut stream = match &web.tls {
        None => Stream::Plain(stream),
        Some(config) => {
            let conn = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
            // The handshake runs inside the first read, under the request line's deadline.
            Stream::Tls(Box::new(rustls::StreamOwned::new(conn, stream)))
        }
    };
    let head = match read_head(&mut stream, limits, start) {
        Ok(h) => h,
        Err(HeadError::TooLarge) => {
            phase.store(ANSWERING, Ordering::Release);
            return answer(
                &mut stream,
                limits,
                &Response::text(431, "request too large\n"),
                false,
            );
        }
        Err(HeadError::Io(e)) if is_timeout(&e) => {
            phase.store(ANSWERING, Ordering::Release);
            return answer(
                &mut stream,
                limits,
                &Response::text(408, "request timeout\n"),
                false,
            );
        }
        Err(HeadError::Io(e)) => return Err(e),
    };
    let (response, head_only) = respond(&head, web, handler, phase);
    phase.store(ANSWERING, Ordering::Release);
    answer(&mut stream, limits, &response, head_only)
}

/// The answer to a request head, and whether it is to a HEAD request (headers only). The
/// connection stays evictable until its credentials have passed: a flood of wrong passwords,
/// each costing a bcrypt check, cannot take the slots a scraper needs.
fn respond(head: &[u8], web: &WebConfig, handler: &Handler, phase: &AtomicU8) -> (Response, bool) {
    let Some(p) = parse_head(head) else {
        return (Response::text(400, "bad request\n"), false);
    };
    let head_only = p.method == "HEAD";
    if let Some(auth) = &web.auth {
        if !auth.check(p.authorization) {
            let r = Response {
                extra_headers: "WWW-Authenticate: Basic realm=\"shmwho\", charset=\"UTF-8\"\r\n",
                ..Response::text(401, "unauthorized\n")
            };
            return (r, head_only);
        }
    }
    phase.store(HANDLING, Ordering::Release);
    if p.method != "GET" && p.method != "HEAD" {
        let r = Response {
            extra_headers: "Allow: GET, HEAD\r\n",
            ..Response::text(405, "read-only: only GET and HEAD are served\n")
        };
        return (r, false);
    }
    let path = p.target.split('?').next().unwrap_or("");
    let r = match path {
        "/" => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            extra_headers: "",
            body: Arc::new(LANDING.to_string()),
        },
        "/metrics" => handler(&Request {
            path,
            accept: p.accept,
        }),
        _ => Response::text(404, "not found: shmwho serves /metrics\n"),
    };
    (r, head_only)
}

fn answer(s: &mut Stream, limits: &Limits, r: &Response, head_only: bool) -> io::Result<()> {
    let deadline = Instant::now() + limits.response_timeout;
    write_response(s, r, head_only, deadline)?;
    if let Stream::Tls(t) = s {
        t.conn.send_close_notify();
        let _ = t.flush();
    }
    // Closing with unread request bytes (a body we ignore) would reset the connection and could
    // drop the response in flight: say we are done writing, and read what is left, briefly.
    let mut tcp = s.tcp();
    let _ = tcp.shutdown(Shutdown::Write);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match tcp.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    Ok(())
}

enum HeadError {
    TooLarge,
    Io(io::Error),
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads until the blank line that ends the head, within `max_request_bytes`, the request
/// line's deadline until a first line has arrived, and the head's deadline.
fn read_head(s: &mut Stream, limits: &Limits, start: Instant) -> Result<Vec<u8>, HeadError> {
    let head_deadline = start + limits.request_timeout;
    let line_deadline = (start + limits.request_line_timeout).min(head_deadline);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let deadline = if buf.contains(&b'\n') {
            head_deadline
        } else {
            line_deadline
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Io(io::ErrorKind::TimedOut.into()));
        }
        s.tcp()
            .set_read_timeout(Some(left))
            .map_err(HeadError::Io)?;
        let n = match s.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HeadError::Io(e)),
        };
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf[from..]) {
            buf.truncate(from + end);
            return Ok(buf);
        }
        if buf.len() > limits.max_request_bytes {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Index just past `\r\n\r\n` (or a bare `\n\n`, which some clients send).
fn find_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if b[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
struct Head<'a> {
    method: &'a str,
    target: &'a str,
    accept: &'a str,
    /// The `Authorization` header, empty when absent.
    authorization: &'a str,
}

fn parse_head(head: &[u8]) -> Option<Head<'_>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut request = lines.next()?.split(' ');
    let (method, target, version) = (request.next()?, request.next()?, request.next()?);
    if request.next().is_some()
        || !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return None;
    }
    let mut accept = "";
    let mut authorization = "";
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("accept") {
            accept = value.trim();
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = value.trim();
        }
    }
    Some(Head {
        method,
        target,
        accept,
        authorization,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes the response in chunks (only its head when `head_only`), giving up at `deadline`
/// (a reader that stalls).
fn write_response(
    s: &mut Stream,
    r: &Response,
    head_only: bool,
    deadline: Instant,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        r.extra_headers,
    );
    let body: &[u8] = if head_only { b"" } else { r.body.as_bytes() };
    for part in [head.as_bytes(), body] {
        for chunk in part.chunks(16 * 1024) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            s.tcp().set_write_timeout(Some(left))?;
            s.write_all(chunk)?;
        }
    }
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        assert_eq!(
            parse_head(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain;version=0.0.4\r\nauthorization:  Basic YTpi \r\n\r\n"
            ),
            Some(Head {
                method: "GET",
                target: "/metrics",
                accept: "text/plain;version=0.0.4",
                authorization: "Basic YTpi",
            })
        );
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.0\n\n").unwrap().target,
            "/metrics?x=1"
        );
        for bad in [
            &b"\x00\x01garbage\r\n\r\n"[..],
            b"GET /metrics\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2 extra\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /m\xff HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), None, "{bad:?}");
        }
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
