//! Just enough HTTP/1.1 (RFC 9112) for a scrape endpoint: one request per connection, `GET`
//! only, no request body, `Connection: close`.
//!
//! A client gets [`HEAD_TIMEOUT`] to send its request head of at most [`MAX_HEAD`] octets; a
//! slow, oversized or garbage request closes only that connection, and at most
//! [`MAX_CONNECTIONS`] are served at once (further ones wait in the kernel's accept queue).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time allowed for the request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// A response.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Accepts connections on `listener` until `stop` changes or its sender is dropped;
/// `handler(path)` answers each `GET`. On stop, connections in flight are cancelled and
/// waited for, so nothing `handler` holds outlives the returned future.
pub async fn serve<H, F>(listener: TcpListener, handler: H, mut stop: watch::Receiver<bool>)
where
    H: Fn(String) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let next = async {
            let permit = slots.clone().acquire_owned().await;
            (permit, listener.accept().await)
        };
        tokio::select! {
            _ = stop.changed() => break,
            (permit, accepted) = next => {
                let Ok(permit) = permit else { break };
                match accepted {
                    Ok((stream, _)) => {
                        let handler = handler.clone();
                        connections.spawn(async move {
                            connection(stream, handler).await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
    connections.shutdown().await;
}

async fn connection<H, F>(mut stream: TcpStream, handler: H)
where
    H: Fn(String) -> F,
    F: Future<Output = Response>,
{
    let response = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Response::text(408, "request head too slow\n"),
        Ok(Err(status)) => Response::text(status, format!("{}\n", reason(status))),
        Ok(Ok((method, path))) if method == "GET" => handler(path).await,
        Ok(Ok(_)) => Response::text(405, "only GET\n"),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        if response.status == 405 {
            "Allow: GET\r\n"
        } else {
            ""
        },
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(response.body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads the request head; returns the method and the path (query removed), or the status
/// code to refuse it with.
async fn read_head(stream: &mut TcpStream) -> Result<(String, String), u16> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_end(&buf) {
            buf.truncate(end);
            break;
        }
        if buf.len() >= MAX_HEAD {
            return Err(431);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    parse_request_line(&buf).ok_or(400)
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// `METHOD SP request-target SP HTTP-version` (RFC 9112 §3).
fn parse_request_line(head: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some((method.to_string(), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a"),
            Some(("GET".into(), "/metrics".into()))
        );
        assert_eq!(
            parse_request_line(b"POST / HTTP/1.0"),
            Some(("POST".into(), "/".into()))
        );
        assert_eq!(parse_request_line(b"GET /metrics"), None);
        assert_eq!(parse_request_line(b"GET metrics HTTP/1.1"), None);
        assert_eq!(parse_request_line(b"GET /a b HTTP/1.1"), None);
        assert_eq!(parse_request_line(b"\xff\xfe"), None);
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n\r\n"), Some(14));
    }
}
