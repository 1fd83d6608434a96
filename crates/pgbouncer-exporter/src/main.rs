//! `pgbouncer-exporter`: serves `/metrics` for every PgBouncer process of a
//! unit, and `/` as a health check.
//!
//! ```text
//! pgbouncer-exporter --listen ADDR:PORT --port 6432 --user USER \
//!     --password-file FILE --socket-dir DIR [--socket-dir DIR ...]
//! ```
//!
//! The password is read from `FILE` (mode 0600), never from the command line.

use anyhow::{bail, Context as _};
use pgbouncer_exporter::{Console, Process};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    listen: String,
    console: Console,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut listen = None;
    let mut port = 6432;
    let mut user = None;
    let mut password_file = None;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?),
            "--port" => port = value()?.parse().context("--port: not a port number")?,
            "--user" => user = Some(value()?),
            "--password-file" => password_file = Some(PathBuf::from(value()?)),
            "--socket-dir" => dirs.push(PathBuf::from(value()?)),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let processes = dirs
        .into_iter()
        .zip(0..)
        .map(|(socket_dir, index)| Process { index, socket_dir })
        .collect::<Vec<_>>();
    if processes.is_empty() {
        bail!("at least one --socket-dir is needed");
    }
    Ok(Args {
        listen: listen.context("--listen is needed")?,
        console: Console::new(
            port,
            user.context("--user is needed")?,
            password_file.context("--password-file is needed")?,
            processes,
        ),
    })
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn serve(mut stream: TcpStream, console: &Mutex<Console>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    {
        let mut reader = BufReader::new(&stream);
        if reader.read_line(&mut line).is_err() {
            return;
        }
        // The headers: read and ignored.
        let mut header = String::new();
        while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
            header.clear();
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("");
    match path.split('?').next() {
        Some("/metrics") => {
            let started = Instant::now();
            let (mut page, errors) = match console.lock() {
                Ok(mut c) => c.scrape(),
                Err(poisoned) => poisoned.into_inner().scrape(),
            };
            for e in errors {
                eprintln!("pgbouncer-exporter: {e}");
            }
            page.add(
                "pgbouncer_exporter_scrape_duration_seconds",
                "How long asking every process took.",
                "gauge",
                vec![],
                started.elapsed().as_secs_f64(),
            );
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                page.render().as_bytes(),
            );
        }
        Some("/") => respond(&mut stream, "200 OK", "text/plain", b"pgbouncer-exporter\n"),
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found\n"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let listener = TcpListener::bind(&args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("pgbouncer-exporter: serving /metrics on {}", args.listen);
    let console = Arc::new(Mutex::new(args.console));
    for stream in listener.incoming().flatten() {
        let console = Arc::clone(&console);
        std::thread::spawn(move || serve(stream, &console));
    }
    Ok(())
}
