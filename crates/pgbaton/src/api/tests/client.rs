//! A minimal HTTP/1.1 client for the tests (one request per connection).

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Send `method path` to 127.0.0.1:`port` with `headers` and an optional body. Unsafe
/// methods and bodies get `Content-Type: application/json` unless `headers` name one.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    request_from("127.0.0.1", port, method, path, headers, body).await
}

/// Like [`request`], from the loopback source address `src` (e.g. `127.0.3.1`), so
/// tests can stand for different clients.
pub async fn request_from(
    src: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    let from: std::net::SocketAddr = format!("{src}:0").parse().expect("source address");
    socket.bind(from).expect("bind the source address");
    let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let mut s = socket.connect(to).await.expect("connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_type = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let safe = ["GET", "HEAD", "OPTIONS"].contains(&method);
    if !has_type && (body.is_some() || !safe) {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    } else if !safe {
        req.push_str("Content-Length: 0\r\n\r\n");
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    parse(&String::from_utf8_lossy(&raw))
}

/// Shorthand for a GET.
pub async fn get(port: u16, path: &str) -> Reply {
    request(port, "GET", path, &[], None).await
}

fn parse(text: &str) -> Reply {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
