//! A minimal HTTP/1.1 server for one read-only endpoint, over `std::net`.
//!
//! Hand-written rather than a dependency: `tiny_http` has had no release since 2022 and `hyper`
//! with `tokio` adds ten crates and 13 s of build for what is one GET route. Everything here is
//! bounded: the request head (8 KiB), the time to send it and to read the answer (whole-request
//! deadlines, not per read, so a client trickling one byte a second is cut off), and the number
//! of connections served at once (a thread each; beyond the cap the answer is an immediate 503).
//! A slow or malformed client therefore holds one thread for a bounded time and never the scan.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest request head accepted (request line and headers).
    pub max_request_bytes: usize,
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
            request_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            max_connections: 16,
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

/// Serves GET requests on `listener` with `handler` until the process exits.
pub fn serve(listener: TcpListener, limits: Limits, handler: Arc<Handler>) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            // Out of fds, a connection reset before accept: nothing to do but go on.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if active.load(Ordering::Acquire) >= limits.max_connections {
            // A fresh socket's send buffer takes this without blocking.
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = write_response(
                &mut stream,
                &Response::text(503, "busy: too many connections\n"),
                Instant::now() + Duration::from_millis(100),
            );
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(active.clone());
        let handler = handler.clone();
        let spawned = std::thread::Builder::new()
            .name("shmwho-http".into())
            .spawn(move || {
                let _slot = slot;
                let _ = handle(stream, &limits, &*handler);
            });
        if spawned.is_err() {
            // The slot was dropped with the closure: the count is already back.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Gives a connection slot back when the connection's thread ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn handle(mut stream: TcpStream, limits: &Limits, handler: &Handler) -> io::Result<()> {
    let deadline = Instant::now() + limits.request_timeout;
    let head = match read_head(&mut stream, limits.max_request_bytes, deadline) {
        Ok(h) => h,
        Err(HeadError::TooLarge) => {
            return answer(
                &mut stream,
                limits,
                &Response::text(431, "request too large\n"),
            )
        }
        Err(HeadError::Io(e)) if is_timeout(&e) => {
            return answer(
                &mut stream,
                limits,
                &Response::text(408, "request timeout\n"),
            )
        }
        Err(HeadError::Io(e)) => return Err(e),
    };
    let response = match parse_head(&head) {
        None => Response::text(400, "bad request\n"),
        Some(p) if p.method != "GET" => Response {
            extra_headers: "Allow: GET\r\n",
            ..Response::text(405, "read-only: only GET is served\n")
        },
        Some(p) => {
            let path = p.target.split('?').next().unwrap_or("");
            if path != "/metrics" {
                Response::text(404, "not found: shmwho serves /metrics\n")
            } else {
                let r = handler(&Request {
                    path,
                    accept: p.accept,
                });
                return answer(&mut stream, limits, &r);
            }
        }
    };
    answer(&mut stream, limits, &response)
}

fn answer(stream: &mut TcpStream, limits: &Limits, r: &Response) -> io::Result<()> {
    let deadline = Instant::now() + limits.response_timeout;
    write_response(stream, r, deadline)?;
    // Closing with unread request bytes (a body we ignore) would reset the connection and could
    // drop the response in flight: say we are done writing, and read what is left, briefly.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
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

/// Reads until the blank line that ends the head, within `max` bytes and `deadline`.
fn read_head(s: &mut TcpStream, max: usize, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Io(io::ErrorKind::TimedOut.into()));
        }
        s.set_read_timeout(Some(left)).map_err(HeadError::Io)?;
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
        if buf.len() > max {
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
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("accept") {
            accept = value.trim();
        }
    }
    Some(Head {
        method,
        target,
        accept,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes the response in chunks, giving up at `deadline` (a reader that stalls).
fn write_response(s: &mut TcpStream, r: &Response, deadline: Instant) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        r.extra_headers,
    );
    let parts: [&[u8]; 2] = [head.as_bytes(), r.body.as_bytes()];
    for part in parts {
        for chunk in part.chunks(16 * 1024) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            s.set_write_timeout(Some(left))?;
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
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain;version=0.0.4\r\n\r\n"
            ),
            Some(Head {
                method: "GET",
                target: "/metrics",
                accept: "text/plain;version=0.0.4"
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
