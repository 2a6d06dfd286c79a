//! `--web-config FILE`: TLS and basic auth in the format of Prometheus' exporter-toolkit, so a
//! file written for node_exporter works here too:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt      # PEM; relative paths are relative to this file's directory
//!   key_file: server.key
//! basic_auth_users:
//!   prometheus: $2y$10$...     # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! Keys this implementation does not support are refused rather than ignored: a setting the
//! operator believes in (say, client certificates) must not silently be off.

use anyhow::{bail, Context as _};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// What the server enforces.
#[derive(Default)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<BasicAuth>,
}

pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--web-config {}", path.display()))?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("--web-config {}", path.display()))
}

/// Parses the file's text; relative file names are taken from `base`.
fn parse(text: &str, base: &Path) -> anyhow::Result<WebConfig> {
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_norway::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{e} (supported: tls_server_config.cert_file, tls_server_config.key_file, \
                 basic_auth_users)"
            )
        })?
    };
    let tls = match file.tls_server_config {
        None => None,
        Some(t) => Some(Arc::new(tls_config(
            &base.join(&t.cert_file),
            &base.join(&t.key_file),
        )?)),
    };
    let auth = match file.basic_auth_users {
        None => None,
        Some(users) if users.is_empty() => None,
        Some(users) => Some(BasicAuth::new(users)?),
    };
    Ok(WebConfig { tls, auth })
}

fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cert_file {}: {e}", cert.display()))?;
    if chain.is_empty() {
        bail!("cert_file {}: no PEM certificate in it", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("key_file {}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and key do not make a TLS identity")
}

/// Users and their bcrypt hashes. A bcrypt check costs tens of milliseconds by design;
/// credentials that passed once are remembered (a bounded set) so that a scrape every few
/// seconds does not pay it each time.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Checked against when the user is unknown, so that the answer takes as long as for a
    /// known user with a wrong password.
    dummy: String,
    passed: Mutex<HashSet<(String, String)>>,
}

const PASSED_CACHE: usize = 64;

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> anyhow::Result<BasicAuth> {
        for (user, hash) in &users {
            if user.contains(':') {
                bail!(
                    "basic_auth_users: user {user:?} contains ':', which basic auth cannot carry"
                );
            }
            hash.parse::<bcrypt::HashParts>()
                .map_err(|e| anyhow::anyhow!("basic_auth_users: {user}: not a bcrypt hash: {e}"))?;
        }
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy = bcrypt::hash("shmwho: no such user", cost).context("bcrypt")?;
        Ok(BasicAuth {
            users,
            dummy,
            passed: Mutex::new(HashSet::new()),
        })
    }

    /// Whether an `Authorization` header value carries a known user and their password.
    pub fn check(&self, authorization: &str) -> bool {
        let Some((user, password)) = decode_basic(authorization) else {
            return false;
        };
        let key = (user.clone(), password.clone());
        if self
            .passed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return true;
        }
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        let ok = bcrypt::verify(&password, hash).unwrap_or(false) && known;
        if ok {
            let mut passed = self.passed.lock().unwrap_or_else(|e| e.into_inner());
            if passed.len() >= PASSED_CACHE {
                passed.clear();
            }
            passed.insert(key);
        }
        ok
    }
}

/// `Basic BASE64(user:password)` → (user, password).
fn decode_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, creds) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn basic_auth_users() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        // exporter-toolkit's files usually carry htpasswd's $2y$ prefix.
        let y = hash.replacen("$2b$", "$2y$", 1);
        let c = parse(
            &format!("basic_auth_users:\n  alice: '{hash}'\n  bob: {y}\n"),
            Path::new("."),
        )
        .unwrap();
        assert!(c.tls.is_none());
        let auth = c.auth.unwrap();
        assert!(auth.check(&basic("alice", "s3cret")));
        assert!(auth.check(&basic("alice", "s3cret")), "from the cache");
        assert!(auth.check(&basic("bob", "s3cret")));
        assert!(!auth.check(&basic("alice", "wrong")));
        assert!(!auth.check(&basic("mallory", "s3cret")));
        assert!(!auth.check("Bearer x"));
        assert!(!auth.check("Basic !!!"));
        assert!(!auth.check(""));

        // A hash made by htpasswd -nbBC 5 "" s3cret (apache2-utils).
        let c = parse(
            "basic_auth_users:\n  carol: $2y$05$ZnfJrFtDlTAYslX9ZEAe5ehFVLIJWVynnOTAS75yYYeP2BWCXR0y6\n",
            Path::new("."),
        )
        .unwrap();
        assert!(c.auth.unwrap().check(&basic("carol", "s3cret")));
    }

    #[test]
    fn refuses_what_it_does_not_do() {
        for (text, want) in [
            ("basic_auth_users:\n  alice: plaintext\n", "not a bcrypt hash"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client_auth_type",
            ),
            ("http_server_config:\n  http2: false\n", "http_server_config"),
            ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n", "/nonexistent.crt"),
            ("- a list\n", "supported"),
        ] {
            let err = format!("{:#}", parse(text, Path::new("/")).err().expect(text));
            assert!(err.contains(want), "{text}: {err}");
        }
        let empty = parse("", Path::new(".")).unwrap();
        assert!(empty.tls.is_none() && empty.auth.is_none());
    }
}
