//! The real PostgreSQL server the connector tests run against: the
//! throw-away cluster `scripts/pg.sh start` runs on a loopback port (the
//! test command starts it and exports `WEFT_TEST_PG_*`; a test run without
//! those variables starts it itself, idempotently). Each test gets fresh
//! databases of its own, so tests run in parallel.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio_postgres::{Client, NoTls};

/// Where the cluster listens and its roles.
#[derive(Debug, Clone, Default)]
pub struct PgServer {
    /// `127.0.0.1`.
    pub host: String,
    /// Its loopback port.
    pub port: u16,
    /// The SCRAM-SHA-256 superuser.
    pub user: String,
    /// Its password.
    pub password: String,
    /// A superuser whose password is stored as md5.
    pub md5_user: String,
    /// Its password.
    pub md5_password: String,
    /// A superuser that may only log in over TLS.
    pub tls_user: String,
    /// The CA that signed the server's certificate (for `localhost` only).
    pub ca_file: String,
    /// A CA that signed nothing the server holds.
    pub other_ca_file: String,
    /// The server binaries (`pg_ctl` for restarts).
    pub bin: String,
    /// The cluster's data directory.
    pub data_dir: String,
}

fn from_env(vars: &HashMap<String, String>) -> Result<PgServer> {
    let get = |k: &str| {
        vars.get(k)
            .cloned()
            .with_context(|| format!("{k} is not set"))
    };
    let socket_dir = get("WEFT_TEST_PG_SOCKET_DIR")?;
    Ok(PgServer {
        host: get("WEFT_TEST_PG_HOST")?,
        port: get("WEFT_TEST_PG_PORT")?.parse()?,
        user: get("WEFT_TEST_PG_USER")?,
        password: get("WEFT_TEST_PG_PASSWORD")?,
        md5_user: get("WEFT_TEST_PG_MD5_USER")?,
        md5_password: get("WEFT_TEST_PG_MD5_PASSWORD")?,
        tls_user: get("WEFT_TEST_PG_TLS_USER")?,
        ca_file: get("WEFT_TEST_PG_CA_FILE")?,
        other_ca_file: get("WEFT_TEST_PG_OTHER_CA_FILE")?,
        bin: get("WEFT_TEST_PG_BIN")?,
        data_dir: socket_dir.trim_end_matches("/sock").to_owned() + "/data",
    })
}

/// The test cluster, started on first use when the test command has not.
pub fn server() -> Result<&'static PgServer> {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let vars: HashMap<String, String> = std::env::vars().collect();
            if vars.contains_key("WEFT_TEST_PG_PORT") {
                from_env(&vars)
            } else {
                pg_sh("start", None)
            }
            .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("no test PostgreSQL: {e}"))
}

/// A cluster of a test's own, for faults that would disturb the shared one
/// (a restart); stopped and removed when dropped.
pub struct PrivateServer {
    /// The cluster.
    pub server: PgServer,
    dir: String,
}

impl PrivateServer {
    /// Starts a cluster in a directory named after `name`.
    pub fn start(name: &str) -> Result<Self> {
        let dir = format!("{}-{name}-{}", default_dir(), std::process::id());
        let server = pg_sh("start", Some(&dir))?;
        Ok(PrivateServer { server, dir })
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = pg_sh("stop", Some(&self.dir));
    }
}

/// pg.sh's default cluster directory.
fn default_dir() -> String {
    format!("/tmp/weft-pg-{}", uid())
}

fn uid() -> String {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Runs `scripts/pg.sh <command>` (in `dir` when given); the cluster it
/// reports.
fn pg_sh(command: &str, dir: Option<&str>) -> Result<PgServer> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh");
    let mut cmd = std::process::Command::new(script);
    cmd.arg(command);
    if let Some(dir) = dir {
        cmd.env("WEFT_PG_DIR", dir);
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {script}"))?;
    if !out.status.success() {
        bail!(
            "{script} {command} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let vars: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (k, v) = line.trim_start_matches("export ").split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect();
    if command == "stop" {
        return Ok(PgServer::default());
    }
    from_env(&vars)
}

impl PgServer {
    /// `host:port`, as a grant names it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A connector config for `database` as the SCRAM user.
    pub fn config(&self, database: &str) -> Value {
        json!({
            "host": self.host,
            "port": self.port,
            "database": database,
            "user": self.user,
            "password": self.password,
        })
    }

    /// A client of `database` as the SCRAM superuser.
    pub async fn connect(&self, database: &str) -> Result<Client> {
        let (client, connection) = tokio_postgres::Config::new()
            .host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(database)
            .connect(NoTls)
            .await
            .with_context(|| format!("connecting to {database} at {}", self.address()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A new, empty database whose name starts with `prefix`.
    pub async fn database(&self, prefix: &str) -> Result<String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("database prefix {prefix:?} must be a plain identifier");
        }
        let admin = self.connect("postgres").await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(name)
    }

    /// Restarts the server (fast: open sessions are cut), waiting until it
    /// accepts connections again.
    pub fn restart(&self) -> Result<()> {
        // The new server's output goes to the log, not to our pipe, which
        // it would hold open for ever.
        let log = self.data_dir.trim_end_matches("/data").to_owned() + "/server.log";
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60", "-l", &log])
    }

    /// Runs `pg_ctl` (as the cluster's owner when root) with `args`.
    pub fn pg_ctl(&self, args: &[&str]) -> Result<()> {
        let pg_ctl = format!("{}/pg_ctl", self.bin);
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &pg_ctl]);
            c
        } else {
            std::process::Command::new(&pg_ctl)
        };
        let out = cmd.args(["-D", &self.data_dir]).args(args).output()?;
        if !out.status.success() {
            bail!(
                "pg_ctl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

fn is_root() -> bool {
    uid() == "0"
}

/// `count(*)` and an order-independent checksum of `table`'s rows.
pub async fn fingerprint(client: &Client, table: &str) -> Result<(i64, i64)> {
    let row = client
        .query_one(
            &format!("SELECT count(*), coalesce(sum(hashtext(t::text)), 0)::bigint FROM {table} t"),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
