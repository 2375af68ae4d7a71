//! Where the S3 backend's credentials come from: the chain CI runners actually use, in the
//! AWS SDKs' order. `config.rs` only records which source the job's environment names (it
//! makes no request); the S3 backend resolves it on first use, so a source that fails (a
//! missing profile, an STS refusal) is a warning and a miss like any other cache trouble.
//!
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`).
//! 2. Web identity: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, as EKS (IRSA) and
//!    `aws-actions/configure-aws-credentials` set them: one unsigned STS
//!    `AssumeRoleWithWebIdentity` call gives temporary keys.
//! 3. `AWS_PROFILE` (else `default`) in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
//!    else `~/.aws/credentials`).
//!
//! Every secret read here is masked in the job log (`::add-mask::`) before anything else can
//! print it, and is held as a [`Secret`], whose `Debug` prints `***`.

use std::path::{Path, PathBuf};

use super::http::{Fail, Http, encode_component};
use super::{BackendError, Secret};

/// Which credentials a job's environment offers, as `config.rs` found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Keys { access_key: String, secret: Secret, session_token: Option<Secret> },
    WebIdentity { role_arn: String, token_file: PathBuf, session_name: String, sts_endpoint: String },
    Profile { name: String, file: PathBuf },
}

/// Keys ready for signing.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key: String,
    pub secret: Secret,
    pub session_token: Option<Secret>,
}

impl CredentialSource {
    /// The source the environment names (see the module comment for the order).
    pub fn from_env(
        get: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
        region: &str,
    ) -> CredentialSource {
        if let (Some(access_key), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            return CredentialSource::Keys {
                access_key,
                secret: Secret(secret),
                session_token: get("AWS_SESSION_TOKEN").map(Secret),
            };
        }
        if let (Some(role_arn), Some(token_file)) = (get("AWS_ROLE_ARN"), get("AWS_WEB_IDENTITY_TOKEN_FILE"))
        {
            let sts_endpoint = get("AWS_ENDPOINT_URL_STS")
                .or_else(|| get("AWS_ENDPOINT_URL"))
                .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
            return CredentialSource::WebIdentity {
                role_arn,
                token_file: PathBuf::from(token_file),
                session_name: get("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "uv-nox-cache".into()),
                sts_endpoint,
            };
        }
        let file = get("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".aws").join("credentials")))
            .unwrap_or_else(|| PathBuf::from(".aws/credentials"));
        CredentialSource::Profile { name: get("AWS_PROFILE").unwrap_or_else(|| "default".into()), file }
    }

    /// A short description for logs, naming no secret.
    pub fn describe(&self) -> String {
        match self {
            CredentialSource::Keys { session_token: Some(_), .. } => {
                "AWS_ACCESS_KEY_ID with a session token".into()
            }
            CredentialSource::Keys { .. } => "AWS_ACCESS_KEY_ID".into(),
            CredentialSource::WebIdentity { role_arn, .. } => format!("web identity for {role_arn}"),
            CredentialSource::Profile { name, file } if file.is_file() => {
                format!("profile `{name}` of {}", file.display())
            }
            CredentialSource::Profile { file, .. } => format!(
                "none found (no AWS_ACCESS_KEY_ID, no web identity, no {}): set them on the runner",
                file.display()
            ),
        }
    }

    /// The keys, fetched from STS or read from the profile file when needed.
    pub(crate) fn resolve(&self, http: &Http) -> Result<Keys, BackendError> {
        let keys = match self {
            CredentialSource::Keys { access_key, secret, session_token } => Keys {
                access_key: access_key.clone(),
                secret: secret.clone(),
                session_token: session_token.clone(),
            },
            CredentialSource::Profile { name, file } => profile(name, file)?,
            CredentialSource::WebIdentity { role_arn, token_file, session_name, sts_endpoint } => {
                web_identity(http, role_arn, token_file, session_name, sts_endpoint)?
            }
        };
        crate::runner::add_mask(keys.secret.expose());
        if let Some(token) = &keys.session_token {
            crate::runner::add_mask(token.expose());
        }
        Ok(keys)
    }
}

fn credentials_error(message: String) -> BackendError {
    BackendError::Credentials { message }
}

/// `[name]` of an AWS shared credentials file (INI: `key = value`, `#`/`;` comments).
fn profile(name: &str, file: &Path) -> Result<Keys, BackendError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        credentials_error(format!(
            "no AWS_ACCESS_KEY_ID, no web identity, and the shared credentials file {} cannot be read ({e}); \
             set the keys or AWS_PROFILE on the runner",
            file.display()
        ))
    })?;
    let mut in_section = false;
    let (mut access_key, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            in_section = section == name || section.strip_prefix("profile ").map(str::trim) == Some(name);
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        if !in_section {
            continue;
        }
        let v = v.trim().to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => access_key = Some(v),
            "aws_secret_access_key" => secret = Some(Secret(v)),
            "aws_session_token" => token = Some(Secret(v)),
            _ => {}
        }
    }
    match (access_key, secret) {
        (Some(access_key), Some(secret)) => Ok(Keys { access_key, secret, session_token: token }),
        _ => Err(credentials_error(format!(
            "the profile `{name}` of {} has no aws_access_key_id and aws_secret_access_key",
            file.display()
        ))),
    }
}

/// One unsigned STS `AssumeRoleWithWebIdentity` call with the token file's contents.
fn web_identity(
    http: &Http,
    role_arn: &str,
    token_file: &Path,
    session_name: &str,
    endpoint: &str,
) -> Result<Keys, BackendError> {
    let op = "sts";
    let token = std::fs::read_to_string(token_file).map_err(|e| {
        credentials_error(format!("AWS_WEB_IDENTITY_TOKEN_FILE {} cannot be read: {e}", token_file.display()))
    })?;
    let token = Secret(token.trim().to_string());
    crate::runner::add_mask(token.expose());
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&DurationSeconds=3600&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        encode_component(role_arn),
        encode_component(session_name),
        encode_component(token.expose())
    );
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let (status, bytes) = http.retry(op, || {
        let result = http
            .request("POST", &url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/xml")
            .send(body.as_bytes());
        let response = http.check(op, &url, result)?;
        let status = response.status().as_u16();
        Ok::<_, Fail>((status, http.body_bytes(op, &url, response)?))
    })?;
    let text = String::from_utf8_lossy(&bytes).replace(token.expose(), "***");
    if !(200..300).contains(&status) {
        return Err(credentials_error(format!(
            "STS refused AssumeRoleWithWebIdentity for {role_arn} ({status}): {}",
            http.clip(super::xml::error_message(&text).as_bytes())
        )));
    }
    let field = |name: &str| super::xml::xml_field(&text, name);
    match (field("AccessKeyId"), field("SecretAccessKey")) {
        (Some(access_key), Some(secret)) => {
            Ok(Keys { access_key, secret: Secret(secret), session_token: field("SessionToken").map(Secret) })
        }
        _ => Err(credentials_error(format!(
            "the STS answer for {role_arn} holds no AccessKeyId and SecretAccessKey"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The log line names where the credentials come from: a profile only when its file is there.
    #[test]
    fn a_profile_whose_file_is_missing_is_described_as_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        let source = CredentialSource::Profile { name: "default".into(), file: file.clone() };
        let missing = source.describe();
        assert!(missing.starts_with("none found") && !missing.contains("profile `default`"), "{missing}");
        std::fs::write(&file, "[default]\n").unwrap();
        assert_eq!(source.describe(), format!("profile `default` of {}", file.display()));
    }

    #[test]
    fn the_chain_prefers_keys_then_web_identity_then_a_profile() {
        let env: HashMap<&str, &str> = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
        ]
        .into();
        let get = |n: &str| env.get(n).map(|v| v.to_string());
        let source = CredentialSource::from_env(&get, None, "eu-west-1");
        assert!(matches!(&source, CredentialSource::Keys { access_key, .. } if access_key == "AKID"));
        assert!(!format!("{source:?}").contains("s3cr3t"));

        let get = |n: &str| {
            env.get(n)
                .filter(|_| n.starts_with("AWS_ROLE") || n.contains("TOKEN_FILE"))
                .map(|v| v.to_string())
        };
        let source = CredentialSource::from_env(&get, None, "eu-west-1");
        assert!(
            matches!(&source, CredentialSource::WebIdentity { sts_endpoint, .. } if sts_endpoint == "https://sts.eu-west-1.amazonaws.com"),
            "{source:?}"
        );

        let source = CredentialSource::from_env(&|_| None, Some(Path::new("/home/r")), "us-east-1");
        assert_eq!(
            source,
            CredentialSource::Profile {
                name: "default".into(),
                file: PathBuf::from("/home/r/.aws/credentials")
            }
        );
    }

    #[test]
    fn profiles_are_read_from_the_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n# a comment\n[ci]\n\
             aws_access_key_id=C\naws_secret_access_key=D\naws_session_token = E\n",
        )
        .unwrap();
        let ci = profile("ci", &file).unwrap();
        assert_eq!((ci.access_key.as_str(), ci.secret.expose()), ("C", "D"));
        assert_eq!(ci.session_token.map(|t| t.0), Some("E".into()));
        assert_eq!(profile("default", &file).unwrap().access_key, "A");
        let error = profile("nope", &file).unwrap_err().to_string();
        assert!(error.contains("`nope`"), "{error}");
    }
}
