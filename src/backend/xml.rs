//! The XML of S3 and STS answers: both services say what went wrong, and STS hands out
//! credentials, in small XML documents of which only a few fields are ever read. The S3 backend
//! and the credential chain both read them here.

/// The text of the first `<name>…</name>` element in `xml`, unescaped.
pub(crate) fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let text = &xml[start..end];
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// `Code: Message` of an S3 (or STS) error answer, or the text itself.
pub(crate) fn error_message(text: &str) -> String {
    match (xml_field(text, "Code"), xml_field(text, "Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ if text.trim().is_empty() => "(no body)".to_string(),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_read() {
        let text = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The bucket &amp; all</Message></Error>";
        assert_eq!(error_message(text), "NoSuchBucket: The bucket & all");
        assert_eq!(xml_field("<UploadId>a/b</UploadId>", "UploadId").as_deref(), Some("a/b"));
        // Go's encoder (versitygw, MinIO) writes quotes as numeric references.
        assert_eq!(xml_field("<ETag>&#34;e-2&#34;</ETag>", "ETag").as_deref(), Some("\"e-2\""));
        assert_eq!(error_message(""), "(no body)");
    }
}
