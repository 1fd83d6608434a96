//! The hook-tool shim: installed under every tool's name (`relation-get`,
//! `status-set`, ...), it forwards the call to the local model's agent over
//! `$JUJU_AGENT_SOCKET_ADDRESS` and replays the answer. Run under its own
//! name, it starts a hook's process for the agent
//! (`local_model::agent::enter_hook`); run as `pebble`, as every workload
//! container has it at `/charm/bin/pebble`, it is the `pebble` a workload
//! calls (`local_model::pebble_cli`).

use local_model::protocol::{Request, Response};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let tool = argv
        .next()
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .unwrap_or_default();
    // Checked first: in a container, the shim is mounted as `pebble`, which
    // is then its own name too.
    if tool == "pebble" {
        return local_model::pebble_cli::run(&argv.collect::<Vec<_>>());
    }
    let own_name = local_model::cli::this_binary()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if own_name.as_deref() == Some(tool.as_str()) {
        return local_model::agent::enter_hook(&argv.collect::<Vec<_>>());
    }
    let (Ok(socket), Ok(context)) = (
        std::env::var("JUJU_AGENT_SOCKET_ADDRESS"),
        std::env::var("JUJU_CONTEXT_ID"),
    ) else {
        eprintln!("ERROR {tool} must be run inside a hook");
        return ExitCode::from(1);
    };
    let mut stdin = String::new();
    if !std::io::stdin().is_terminal() {
        let _ = std::io::stdin().read_to_string(&mut stdin);
    }
    let request = Request {
        context,
        tool,
        args: argv.collect(),
        stdin,
    };
    match call(&socket, &request) {
        Ok(response) => {
            print!("{}", response.stdout);
            eprint!("{}", response.stderr);
            ExitCode::from(u8::try_from(response.code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("ERROR cannot reach the agent at {socket}: {e}");
            ExitCode::from(1)
        }
    }
}

fn call(socket: &str, request: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}
