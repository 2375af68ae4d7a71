//! The Azure-like blob host behind v2's signed URLs: Put Blob, Put Block and Put Block List
//! (with the toolkit's block-id format, docs/protocol.md §11), and `GET` honouring `Range` — or, when the
//! server is set so, ignoring it and answering `200` chunked.

use std::sync::Arc;

use super::BLOB_PREFIX;
use super::http::{Body, Request, Response, parse_range};
use super::store::{State, Stored};

impl State {
    pub(super) fn blob_url(&self, id: u64) -> String {
        format!(
            "{}{BLOB_PREFIX}{id}?sv=2020-04-08&se=2099-01-01T00%3A00%3A00Z&sp=rcw&sig={}",
            self.origin, self.signature
        )
    }

    pub(super) fn blob(&mut self, request: &mut Request, id: u64) -> Response {
        if request.param("sig").as_deref() != Some(self.signature.as_str()) {
            return blob_error(403, "AuthenticationFailed");
        }
        if request.header("authorization").is_some() {
            // Azure refuses a SAS request that also carries credentials.
            return blob_error(400, "InvalidAuthenticationInfo");
        }
        if request.method == "GET" {
            let data = self.blobs.get(&id).and_then(|b| b.data.clone());
            return match data {
                Some(data) => self.serve_bytes(request, &data),
                None => blob_error(404, "BlobNotFound"),
            };
        }
        let Some(blob) = self.blobs.get_mut(&id) else { return blob_error(404, "ContainerNotFound") };
        if request.header("x-ms-version").is_none() {
            return blob_error(400, "MissingRequiredHeader");
        }
        match request.param("comp").as_deref() {
            None => {
                if request.header("x-ms-blob-type") != Some("BlockBlob") {
                    return blob_error(400, "InvalidBlobType");
                }
                if request.header("content-length").is_none() {
                    return blob_error(411, "MissingContentLengthHeader");
                }
                blob.data = Some(Stored::whole(std::mem::take(&mut request.body)));
            }
            Some("block") => {
                let id = request.param("blockid").unwrap_or_default();
                if !valid_block_id(&id) {
                    return blob_error(400, "InvalidQueryParameterValue");
                }
                if blob.blocks.keys().next().is_some_and(|other| other.len() != id.len()) {
                    return blob_error(400, "InvalidBlobOrBlock");
                }
                if request.header("content-length").is_none() {
                    return blob_error(411, "MissingContentLengthHeader");
                }
                blob.blocks.insert(id, Arc::new(std::mem::take(&mut request.body)));
            }
            Some("blocklist") => {
                let xml = String::from_utf8_lossy(&request.body);
                let mut pieces = Vec::new();
                for id in xml_block_ids(&xml) {
                    match blob.blocks.get(&id) {
                        Some(bytes) => pieces.push(Arc::clone(bytes)),
                        None => return blob_error(400, "InvalidBlockList"),
                    }
                }
                blob.data = Some(Arc::new(Stored::new(pieces)));
                blob.blocks.clear();
            }
            Some(_) => return blob_error(400, "InvalidQueryParameterValue"),
        }
        Response::empty(201).with_header("x-ms-request-id", format!("req-{}", self.tick()))
    }

    /// An archive or blob body, honouring `Range` unless the blob host is set to ignore it.
    /// Nothing is copied: the body shares the stored bytes (copying a 700 MB entry under the
    /// state lock before sending its first byte would be the server's delay, not the client's).
    pub(super) fn serve_bytes(&self, request: &Request, data: &Arc<Stored>) -> Response {
        let shared = |status, range| {
            let mut response = Response::new(status, "application/octet-stream", Vec::new());
            response.body = Body::shared(data, range);
            response
        };
        if self.config.ignore_range {
            let mut response = shared(200, 0..data.len);
            response.headers.clear();
            response.chunked = true;
            return response;
        }
        let total = data.len as u64;
        let Some((start, end)) = request.header("range").and_then(parse_range) else {
            return shared(200, 0..data.len);
        };
        if start >= total {
            return Response::empty(416).with_header("Content-Range", format!("bytes */{total}"));
        }
        let end = end.unwrap_or(total - 1).min(total - 1);
        shared(206, start as usize..end as usize + 1)
            .with_header("Content-Range", format!("bytes {start}-{end}/{total}"))
    }
}

pub(super) fn blob_error(status: u16, code: &str) -> Response {
    Response::new(
        status,
        "application/xml",
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{code}</Message></Error>"),
    )
    .with_header("x-ms-error-code", code)
}

/// docs/protocol.md §11: base64 of exactly 48 bytes — a 36-character UUID and a 12-digit index.
pub(super) fn valid_block_id(id: &str) -> bool {
    let Some(raw) = base64_decode(id) else { return false };
    if raw.len() != 48 {
        return false;
    }
    let (uuid, index) = raw.split_at(36);
    let dashes = [8, 13, 18, 23];
    let uuid_ok = uuid
        .iter()
        .enumerate()
        .all(|(i, c)| if dashes.contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() });
    uuid_ok && index.iter().all(u8::is_ascii_digit)
}

pub(super) fn xml_block_ids(xml: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        rest = &rest[close + 1..];
        if matches!(tag, "Latest" | "Committed" | "Uncommitted")
            && let Some(end) = rest.find('<')
        {
            ids.push(rest[..end].trim().to_string());
        }
    }
    ids
}

pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}
