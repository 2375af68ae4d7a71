//! The HTTP/1.1 side of the server: a small reader (request line, headers, Content-Length or
//! chunked bodies), a writer that can stall or cut a body short on request, and the header
//! parsers the protocols share. Every response closes its connection.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::store::Stored;

pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }
}

/// How a response leaves: whole, or cut short by a fault.
pub(super) enum Delivery {
    Normal,
    Stall,
    Truncate,
    /// The whole body, at this many bytes per second (a throttled server).
    Trickle(usize),
}

/// A response body: a range of bytes shared with the store, so that serving a large entry
/// copies nothing and its first bytes leave at once, as from a real blob store.
#[derive(Default)]
pub(super) struct Body {
    pub(super) bytes: Arc<Stored>,
    pub(super) range: std::ops::Range<usize>,
}

impl Body {
    pub(super) fn owned(bytes: Vec<u8>) -> Body {
        let range = 0..bytes.len();
        Body { bytes: Stored::whole(bytes), range }
    }

    pub(super) fn shared(bytes: &Arc<Stored>, range: std::ops::Range<usize>) -> Body {
        Body { bytes: Arc::clone(bytes), range }
    }

    fn len(&self) -> usize {
        self.range.len()
    }

    /// The slices of the first `len` bytes.
    fn slices(&self, len: usize) -> Vec<&[u8]> {
        self.bytes.slices(self.range.start..self.range.start + len.min(self.len()))
    }
}

pub(super) struct Response {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Body,
    /// Send with `Transfer-Encoding: chunked` and no `Content-Length`.
    pub(super) chunked: bool,
    pub(super) delivery: Delivery,
}

impl Response {
    pub(super) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Body::owned(body.into()),
            chunked: false,
            delivery: Delivery::Normal,
        }
    }
    pub(super) fn json(status: u16, value: serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }
    pub(super) fn text(status: u16, text: &str) -> Response {
        Response::new(status, "text/plain", text)
    }
    pub(super) fn empty(status: u16) -> Response {
        Response {
            status,
            headers: vec![],
            body: Body::default(),
            chunked: false,
            delivery: Delivery::Normal,
        }
    }
    pub(super) fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Reads one request from `stream`, answers it with `handle`, and closes the connection. A
/// request whose method and path `slow_body` gives a rate has its body read at that many bytes
/// per second (a throttled server taking an upload).
pub(super) fn serve(
    stream: TcpStream,
    stop: &AtomicBool,
    slow_body: impl FnOnce(&str, &str) -> Option<usize>,
    handle: impl FnOnce(&mut Request) -> Response,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let Some(mut request) = read_request(&mut reader, &mut writer, stop, slow_body)? else { return Ok(()) };
    let response = handle(&mut request);
    write_response(&mut writer, response, stop)
}

pub(super) fn read_request(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    stop: &AtomicBool,
    slow_body: impl FnOnce(&str, &str) -> Option<usize>,
) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request line"));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<_> =
        read_headers(reader)?.into_iter().map(|(name, value)| (name.to_ascii_lowercase(), value)).collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, then the final empty line.
                loop {
                    let mut trailer = String::new();
                    if reader.read_line(&mut trailer)? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad length"))?;
        body.resize(len, 0);
        match slow_body(method, path) {
            // A tenth of the rate every 100 ms, until the client hangs up or the server stops.
            Some(rate) => {
                for piece in body.chunks_mut((rate / 10).max(1)) {
                    if stop.load(Ordering::SeqCst) {
                        return Err(io::Error::other("server stopped"));
                    }
                    reader.read_exact(piece)?;
                    thread::sleep(Duration::from_millis(100));
                }
            }
            None => reader.read_exact(&mut body)?,
        }
    }
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    }))
}

/// The header lines of a request or response, up to the blank line, names as sent.
pub(super) fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

pub(super) fn write_response(
    writer: &mut TcpStream,
    response: Response,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if response.chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else if response.status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    writer.write_all(head.as_bytes())?;
    let cut = match response.delivery {
        Delivery::Normal | Delivery::Trickle(_) => response.body.len(),
        Delivery::Stall | Delivery::Truncate => response.body.len() / 2,
    };
    for slice in response.body.slices(cut) {
        if let Delivery::Trickle(rate) = response.delivery {
            // A tenth of the rate every 100 ms, until the client hangs up or the server stops.
            for piece in slice.chunks((rate / 10).max(1)) {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                writer.write_all(piece)?;
                writer.flush()?;
                thread::sleep(Duration::from_millis(100));
            }
        } else if response.chunked {
            for piece in slice.chunks(64 * 1024) {
                writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                writer.write_all(piece)?;
                writer.write_all(b"\r\n")?;
            }
        } else {
            writer.write_all(slice)?;
        }
    }
    match response.delivery {
        Delivery::Normal | Delivery::Trickle(_) => {
            if response.chunked {
                writer.write_all(b"0\r\n\r\n")?;
            }
        }
        Delivery::Stall => {
            writer.flush()?;
            let until = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::SeqCst) && Instant::now() < until {
                thread::sleep(Duration::from_millis(50));
            }
        }
        Delivery::Truncate => {}
    }
    writer.flush()?;
    let _ = writer.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        411 => "Length Required",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `bytes a-b/*` (or `/total`).
pub(super) fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let range = value.strip_prefix("bytes ")?.split('/').next()?;
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

/// `bytes=a-b` or `bytes=a-`.
pub(super) fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (a, b) = value.strip_prefix("bytes=")?.split_once('-')?;
    let a = a.trim().parse().ok()?;
    let b = if b.trim().is_empty() { None } else { Some(b.trim().parse().ok()?) };
    Some((a, b))
}

pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
