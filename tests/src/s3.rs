//! An S3-compatible server for tests: moto's S3 (PyPI) served by gunicorn
//! with threaded workers over HTTPS, on a free loopback port, with a
//! certificate from a throwaway CA for `localhost`. pgBackRest keeps its
//! connections open between requests and checks the certificate by DNS
//! name, which moto's own development server and an IP address would not
//! satisfy (`docs/backups.md`).

use base64::Engine;
use local_model::controller::Controller;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The WSGI module gunicorn serves: moto's S3 alone.
const APP: &str = "from moto.moto_server.werkzeug_app import DomainDispatcherApplication, \
                   create_backend_app\napp = DomainDispatcherApplication(create_backend_app)\n";

/// A running server; dropping it stops it.
pub struct S3Server {
    child: Child,
    port: u16,
    ca: PathBuf,
}

impl S3Server {
    /// Starts a server whose files (CA, certificate, key, app) live under
    /// `dir`, and waits until it answers.
    pub fn start(dir: &Path) -> S3Server {
        std::fs::create_dir_all(dir).unwrap();
        let ca = make_certificates(dir);
        std::fs::write(dir.join("s3app.py"), APP).unwrap();
        let python = crate::ops_python();
        let gunicorn = python.with_file_name("gunicorn");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(gunicorn)
            .current_dir(dir)
            .args(["-k", "gthread", "--threads", "8", "--keep-alive", "30"])
            .args(["--certfile", "server.pem", "--keyfile", "server.key"])
            .args(["-b", &format!("127.0.0.1:{port}"), "s3app:app"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("s3.log")).unwrap())
            .spawn()
            .expect("gunicorn starts");
        let server = S3Server { child, port, ca };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !server.answers() {
            assert!(
                Instant::now() < deadline,
                "the S3 server did not answer: {}",
                std::fs::read_to_string(dir.join("s3.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// The endpoint URL clients are given.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The CA that signed the server's certificate, as PEM.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.ca).unwrap()
    }

    /// Makes a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.curl(&["-X", "PUT", &format!("{}/{bucket}", self.endpoint())]);
        assert_eq!(status, "200", "creating bucket {bucket}");
    }

    /// Deploys `s3-provider` (the test charm on the published data-platform
    /// S3 library) as `app`, pointing at this server's `bucket` under `path`
    /// (path-style URIs, the test keys, this server's CA), and relates it to
    /// the PostgreSQL application `postgresql`.
    pub fn provide(
        &self,
        c: &mut Controller,
        scratch: &Path,
        (app, postgresql): (&str, &str),
        (bucket, path): (&str, &str),
    ) {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem());
        let provider = crate::python_charm(scratch, "s3-provider");
        let endpoint = self.endpoint();
        let config = [
            ("endpoint", endpoint.as_str()),
            ("bucket", bucket),
            ("path", path),
            ("s3-uri-style", "path"),
            ("access-key", "test-access"),
            ("secret-key", "test-secret"),
            ("tls-ca-chain", ca.as_str()),
        ];
        c.deploy(&provider, app, 1, &config).unwrap();
        c.integrate(
            &format!("{postgresql}:s3-parameters"),
            &format!("{app}:s3-credentials"),
        )
        .unwrap();
    }

    /// From now on the server checks every request's keys (moto's IAM):
    /// answers an access key and secret it accepts, a user's allowed
    /// everything. Requests signed with any other keys are refused, as a real
    /// S3 refuses them.
    pub fn require_keys(&self) -> (String, String) {
        let iam = |args: &[&str]| {
            let out = Command::new("curl")
                .args(["-s", "-f", "--cacert"])
                .arg(&self.ca)
                // moto routes an unsigned request by its body; a signature's
                // scope names the service (not checked yet).
                .args([
                    "-H",
                    "Authorization: AWS4-HMAC-SHA256 \
                     Credential=setup/20261206/us-east-1/iam/aws4_request, \
                     SignedHeaders=host, Signature=0",
                    "-d",
                    "Version=2010-05-08",
                ])
                .args(args)
                .arg(format!("{}/", self.endpoint()))
                .output()
                .expect("curl runs");
            assert!(out.status.success(), "IAM {args:?}: {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        iam(&["-d", "Action=CreateUser", "-d", "UserName=backups"]);
        iam(&[
            "-d",
            "Action=PutUserPolicy",
            "-d",
            "UserName=backups",
            "-d",
            "PolicyName=everything",
            "--data-urlencode",
            r#"PolicyDocument={"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ]);
        let created = iam(&["-d", "Action=CreateAccessKey", "-d", "UserName=backups"]);
        let field = |name: &str| {
            let open = format!("<{name}>");
            let start = created.find(&open).expect(name) + open.len();
            let end = created[start..].find('<').expect(name) + start;
            created[start..end].to_string()
        };
        let keys = (field("AccessKeyId"), field("SecretAccessKey"));
        let reset = format!("{}/moto-api/reset-auth", self.endpoint());
        // moto reads the count from the raw body, not a form.
        let plain = "Content-Type: text/plain";
        assert_eq!(
            self.curl(&["-X", "POST", "-H", plain, "-d", "0", &reset]),
            "200"
        );
        keys
    }

    fn answers(&self) -> bool {
        self.curl(&[&format!("{}/", self.endpoint())]) == "200"
    }

    /// curl's HTTP status for a request (`000` when none came back).
    fn curl(&self, args: &[&str]) -> String {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&self.ca)
            .args(args)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for `localhost` signed by it, with the
/// `openssl` command, both valid 30 days (the backups test moves a
/// workload's clock days ahead); answers the CA's path.
fn make_certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509", "-days", "30", "-subj", "/CN=test S3 CA"],
            &key[..],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-subj", "/CN=localhost"],
            &key[..],
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    dir.join("ca.pem")
}
