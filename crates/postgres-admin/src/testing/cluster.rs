//! A throwaway PostgreSQL cluster for tests, here and in other crates.
//!
//! The binaries come from `$POSTGRES_BIN_DIR`, else `/usr/lib/postgresql/15/bin`.
//! PostgreSQL refuses to run as root, so under root every command runs as the
//! `postgres` user through `runuser`.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::RngExt;

use crate::admin::ConnectInfo;

const SUPERUSER: &str = "operator";
const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running cluster in its own temporary directory, listening on 127.0.0.1
/// and on a unix socket in that directory. Dropping it stops the server and
/// removes the directory.
pub struct TestCluster {
    dir: PathBuf,
    port: u16,
    password: String,
    server: Option<Child>,
    /// Server settings beyond the defaults, passed as `-c name=value`.
    settings: Vec<(String, String)>,
    /// `pg_hba.conf` lines put before initdb's own.
    hba: Vec<String>,
}

impl TestCluster {
    /// Creates the cluster (`initdb`, scram over TCP, trust on the socket) and
    /// starts it on a free port, retrying if another process takes the port.
    pub fn start() -> io::Result<TestCluster> {
        TestCluster::start_with(&[], &[])
    }

    /// [`TestCluster::start`] with server `settings` (name, value) and
    /// `pg_hba.conf` lines matched before initdb's own.
    pub fn start_with(settings: &[(&str, &str)], hba: &[&str]) -> io::Result<TestCluster> {
        let password: String = (0..24)
            .map(|_| char::from(rand::rng().sample(rand::distr::Alphanumeric)))
            .collect();
        let mut cluster = TestCluster {
            dir: fresh_dir()?,
            port: 0,
            password,
            server: None,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            hba: hba.iter().map(|l| l.to_string()).collect(),
        };
        cluster.init()?;
        for _ in 0..START_ATTEMPTS {
            cluster.port = free_port()?;
            if cluster.launch()? {
                return Ok(cluster);
            }
        }
        Err(io::Error::other(format!(
            "postgres did not start in {START_ATTEMPTS} attempts; last log:\n{}",
            fs::read_to_string(cluster.dir.join("server.log")).unwrap_or_default()
        )))
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name.
    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// How to reach `dbname` over TCP as the superuser.
    pub fn connect_info(&self, dbname: &str) -> ConnectInfo {
        ConnectInfo {
            host: "127.0.0.1".into(),
            port: self.port,
            user: SUPERUSER.into(),
            password: self.password.clone(),
            dbname: dbname.into(),
            connect_timeout: Duration::from_secs(5),
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn init(&self) -> io::Result<()> {
        let pwfile = self.dir.join("pwfile");
        fs::write(&pwfile, &self.password)?;
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(&self.dir))?;
        }
        let mut initdb = as_postgres("initdb");
        initdb
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                SUPERUSER,
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
            ])
            .args(["--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let result = run(&mut initdb);
        fs::remove_file(pwfile)?;
        result?;
        if !self.hba.is_empty() {
            let path = self.data_dir().join("pg_hba.conf");
            let rest = fs::read_to_string(&path)?;
            fs::write(&path, format!("{}\n{rest}", self.hba.join("\n")))?;
        }
        Ok(())
    }

    /// Starts the server on `self.port` and waits until it accepts the
    /// superuser's login. `Ok(false)` if it exited (a port taken meanwhile).
    fn launch(&mut self) -> io::Result<bool> {
        let log = File::create(self.dir.join("server.log"))?;
        let mut postgres = as_postgres("postgres");
        postgres
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("port={}", self.port),
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(
                self.settings
                    .iter()
                    .flat_map(|(k, v)| ["-c".to_string(), format!("{k}={v}")]),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut info = self.connect_info("postgres");
        info.connect_timeout = Duration::from_secs(1);
        let server = self.server.insert(postgres.spawn()?);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if server.try_wait()?.is_some() {
                self.server = None;
                return Ok(false);
            }
            if info.connect().is_ok() {
                return Ok(true);
            }
            sleep(Duration::from_millis(20));
        }
        Err(io::Error::other(
            "postgres did not accept connections in time",
        ))
    }

    fn pg_ctl_stop(&self, mode: &str) -> bool {
        let mut stop = as_postgres("pg_ctl");
        stop.arg("stop").arg("-D").arg(self.data_dir());
        stop.args(["-m", mode, "-w", "-t", "10"]);
        run(&mut stop).is_ok()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            if !self.pg_ctl_stop("fast") && !self.pg_ctl_stop("immediate") {
                let _ = server.kill();
            }
            let _ = server.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether this process runs as root (servers are then run as `postgres`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The `postgres` user's uid and gid, for servers (PgBouncer) that refuse to
/// run as root.
pub fn postgres_ids() -> io::Result<(u32, u32)> {
    let id = |flag: &str| -> io::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| io::Error::other(format!("id {flag} postgres: {e}")))
    };
    Ok((id("-u")?, id("-g")?))
}

/// A command running a PostgreSQL binary, as the `postgres` user under root.
fn as_postgres(program: &str) -> Command {
    let bin = std::env::var_os("POSTGRES_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    let mut command = if is_root() {
        let mut runuser = Command::new("runuser");
        runuser
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        runuser
    } else {
        Command::new(bin.join(program))
    };
    command.current_dir(std::env::temp_dir());
    command
}

/// Runs a command to completion; a failure carries its output.
fn run(command: &mut Command) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// A new, empty directory under the system temp directory, private to its owner.
fn fresh_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "postgres-admin-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// A port nothing listens on right now (another process may still take it).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
