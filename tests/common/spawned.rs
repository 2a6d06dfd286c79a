//! Long-running runs of the binary (lab, export), and HTTP and metrics helpers.

#[allow(unused_imports)]
use super::*;

/// A spawned process: SIGTERM on drop (the lab cleans up on it), then SIGKILL if it lingers;
/// always reaped.
pub struct Spawned {
    pub child: std::process::Child,
    /// The first line it printed on stdout.
    pub first_line: String,
}

impl Spawned {
    /// Starts `shmwho args` and waits for its first stdout line (the lab's ground truth, the
    /// exporter's address). Panics with its stderr if it exits first.
    pub fn start(args: &[&str]) -> Spawned {
        Spawned::start_from(std::path::Path::new(bin()), &[], args)
    }

    /// [`Spawned::start`] of the binary at `path` (a copy of shmwho), with `env` added to
    /// its environment.
    pub fn start_from(path: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Spawned {
        use std::io::BufRead as _;
        let mut child = {
            let _g = lock();
            std::process::Command::new(path)
                .envs(env.iter().copied())
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn shmwho")
        };
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let n = std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or(0);
        let mut s = Spawned {
            child,
            first_line: line,
        };
        if n == 0 {
            s.stop();
            let mut err = String::new();
            if let Some(mut e) = s.child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut err);
            }
            panic!("shmwho {args:?} exited before printing: {err}");
        }
        s
    }

    pub fn pid(&self) -> i64 {
        self.child.id() as i64
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.first_line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.first_line))
    }

    /// SIGTERM, up to 10 s for a clean exit, then SIGKILL; reaped either way.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `shmwho export --listen 127.0.0.1:0 ARGS`, and the `host:port` it serves on.
pub fn start_exporter(args: &[&str]) -> (Spawned, String) {
    let mut all = vec!["export", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let s = Spawned::start(&all);
    let addr = s
        .first_line
        .trim()
        .strip_prefix("shmwho: serving http://")
        .or_else(|| s.first_line.trim().strip_prefix("shmwho: serving https://"))
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line: {}", s.first_line))
        .to_string();
    (s, addr)
}

/// One HTTP exchange: sends `request` as is, reads until the server closes.
/// Returns (status, head, body).
pub fn http_raw(addr: &str, request: &[u8]) -> (u16, String, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(request).expect("send request");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read response");
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_string(), body.to_string())
}

pub fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes(),
    )
}

/// One sample of a metrics text.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: String,
}

/// Samples of an OpenMetrics or Prometheus text; label values unescaped (`\\`, `\"`, `\n`).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let Some(brace) = line.find('{') else {
            let (name, value) = line.split_once(' ').expect("name value");
            out.push(Sample {
                name: name.into(),
                labels: Default::default(),
                value: value.trim().into(),
            });
            continue;
        };
        let name = &line[..brace];
        let mut labels = std::collections::BTreeMap::new();
        let mut it = line[brace + 1..].chars().peekable();
        loop {
            if it.peek() == Some(&'}') {
                it.next();
                break;
            }
            let key: String = it.by_ref().take_while(|&c| c != '=').collect();
            assert_eq!(it.next(), Some('"'), "label value in {line}");
            let mut val = String::new();
            loop {
                match it.next().expect("unterminated label value") {
                    '\\' => match it.next().expect("escape") {
                        'n' => val.push('\n'),
                        c => val.push(c),
                    },
                    '"' => break,
                    c => val.push(c),
                }
            }
            labels.insert(key.trim_start_matches(',').to_string(), val);
            if it.peek() == Some(&',') {
                it.next();
            }
        }
        let value: String = it.collect();
        out.push(Sample {
            name: name.into(),
            labels,
            value: value.trim().into(),
        });
    }
    out
}

/// The value of the object series with this kind, device and id.
pub fn object_metric(
    samples: &[Sample],
    metric: &str,
    kind: &str,
    dev: &str,
    id: &str,
) -> Option<u64> {
    samples
        .iter()
        .find(|s| {
            s.name == metric
                && s.labels.get("kind").map(String::as_str) == Some(kind)
                && s.labels.get("dev").map(String::as_str) == Some(dev)
                && s.labels.get("id").map(String::as_str) == Some(id)
        })
        .map(|s| s.value.parse().expect("integer value"))
}

/// Writes a self-signed certificate for 127.0.0.1 and localhost (`server.crt`, `server.key`)
/// and a web config in exporter-toolkit's format with one bcrypt user into `dir`; returns the
/// config's path.
pub fn write_web_config(dir: &Path, user: &str, password: &str) -> PathBuf {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("self-signed certificate");
    std::fs::write(dir.join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), ck.signing_key.serialize_pem()).unwrap();
    // Cost 4, the least bcrypt allows: the test checks the scheme, not the cost.
    let hash = bcrypt::hash(password, 4).unwrap();
    let web = dir.join("web.yml");
    // Relative file names: exporter-toolkit reads them from the config's directory.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  {user}: '{hash}'\n"
        ),
    )
    .unwrap();
    web
}

/// An `Authorization` header value for basic auth.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// One HTTPS exchange trusting only `ca_pem`; Err when TLS fails. (status, head, body).
pub fn https_raw(
    addr: &str,
    ca_pem: &str,
    request: &[u8],
) -> Result<(u16, String, String), String> {
    use rustls::pki_types::pem::PemObject as _;
    use std::io::{Read as _, Write as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name)
        .map_err(|e| e.to_string())?;
    let sock = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(request).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    tls.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, head.to_string(), body.to_string()))
}
