//! A raw TCP client that hangs up at a chosen moment: mid-request, or after sending if no
//! complete answer came in time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::send::{acknowledged_status, classify, path, Reply};
use crate::http::Request;

/// When a [`hang_up`] client drops its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// After writing only this many bytes of the request.
    MidRequest(usize),
    /// After writing the whole request, if no complete answer came within this long.
    AfterSend(Duration),
}

/// Sends `request` over a raw connection to `base_url` (`http://host:port`) and hangs up as
/// `cut` says. Returns the answer if a complete one arrived first.
pub async fn hang_up(base_url: &str, request: &Request, cut: Cut) -> Reply {
    let addr: SocketAddr = base_url
        .trim_start_matches("http://")
        .parse()
        .expect("base URL is http://ip:port");
    let body = serde_json::json!({ "email": request.email }).to_string();
    let raw = format!(
        "POST {} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        path(request.kind),
        body.len()
    );
    let mut stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => return Reply::Failed(format!("connect: {e}")),
    };
    let limit = match cut {
        Cut::MidRequest(bytes) => {
            let bytes = bytes.min(raw.len().saturating_sub(1));
            let _ = stream.write_all(&raw.as_bytes()[..bytes]).await;
            return Reply::Failed(format!("hung up after {bytes} request bytes"));
        }
        Cut::AfterSend(limit) => limit,
    };
    if let Err(e) = stream.write_all(raw.as_bytes()).await {
        return Reply::Failed(format!("write: {e}"));
    }
    let mut answer = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => parse_raw(&answer, acknowledged_status(request.kind)),
        Ok(Err(e)) => Reply::Failed(format!("read: {e}")),
        Err(_) => Reply::Failed(format!("hung up after {}ms", limit.as_millis())),
    }
}

fn parse_raw(answer: &[u8], acknowledged: u16) -> Reply {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Reply::Failed(format!("incomplete answer: {text:?}"));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status else {
        return Reply::Failed(format!("no status line: {head:?}"));
    };
    if status == acknowledged && body.is_empty() {
        return Reply::Failed(format!("status {status} without body"));
    }
    classify(status, body, None, acknowledged)
}

#[cfg(test)]
mod tests {
    use super::{parse_raw, Reply};

    #[test]
    fn raw_answers() {
        let ok = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\r\n{\"user_id\":1,\"task_id\":\"ABC\"}";
        assert_eq!(
            parse_raw(ok, 201),
            Reply::Acknowledged {
                task_id: "abc".to_owned()
            }
        );
        let conflict = b"HTTP/1.1 409 Conflict\r\n\r\n{}";
        assert_eq!(parse_raw(conflict, 201).status(), Some(409));
        assert!(matches!(parse_raw(b"HTTP/1.1 2", 201), Reply::Failed(_)));
    }
}
