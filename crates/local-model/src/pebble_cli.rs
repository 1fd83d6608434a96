//! The `pebble` a workload runs: every sandboxed container has the hook-tool
//! shim at `/charm/bin/pebble`, as Juju mounts its Pebble there, and the shim
//! run by that name answers what workloads ask of it,
//! `pebble notify [--repeat-after <duration>] <key> [<name>=<value> ...]`,
//! through the container's Pebble socket (`$PEBBLE_SOCKET`, else Juju's and
//! Pebble's default places).

use pebble_api::{Notify, Pebble, PebbleClient};
use std::process::ExitCode;

/// Where a container's Pebble listens when `PEBBLE_SOCKET` does not say.
const SOCKETS: [&str; 2] = [
    "/charm/container/pebble.socket",
    "/var/lib/pebble/default/.pebble.socket",
];

/// `pebble notify`'s arguments, read as Pebble reads them.
fn parse_notify(args: &[String]) -> Result<Notify, String> {
    let mut notify = Notify::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if let Some(after) = word.strip_prefix("--repeat-after=") {
            notify.repeat_after = Some(after.to_string());
        } else if word == "--repeat-after" {
            let after = words.next().ok_or("--repeat-after needs a duration")?;
            notify.repeat_after = Some(after.clone());
        } else if notify.key.is_empty() {
            notify.key = word.clone();
        } else {
            let (name, value) = word
                .split_once('=')
                .ok_or_else(|| format!("data must be in name=value form, got {word:?}"))?;
            notify.data.insert(name.to_string(), value.to_string());
        }
    }
    if notify.key.is_empty() {
        return Err("the notice's key is required".into());
    }
    Ok(notify)
}

/// Runs `pebble <args>`: `notify` records a custom notice and prints its id
/// as Pebble does; anything else is refused.
pub fn run(args: &[String]) -> ExitCode {
    let Some((command, rest)) = args.split_first() else {
        eprintln!("error: a command is required (this pebble knows \"notify\")");
        return ExitCode::from(1);
    };
    if command != "notify" {
        eprintln!("error: unknown command {command:?} (this pebble knows \"notify\")");
        return ExitCode::from(1);
    }
    let notify = match parse_notify(rest) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let sockets: Vec<String> = std::env::var("PEBBLE_SOCKET")
        .into_iter()
        .chain(SOCKETS.map(String::from))
        .collect();
    let mut failure = String::from("no Pebble socket");
    for socket in sockets {
        match PebbleClient::new(&socket).notify(&notify) {
            Ok(id) => {
                println!("Recorded notice {id}");
                return ExitCode::SUCCESS;
            }
            Err(e) => failure = format!("{socket}: {e}"),
        }
    }
    eprintln!("error: cannot record the notice {}: {failure}", notify.key);
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn notify_reads_its_key_data_and_repeat() {
        let n = parse_notify(&words("--repeat-after 1h example.com/x id=7 role=primary")).unwrap();
        assert_eq!(n.key, "example.com/x");
        assert_eq!(n.repeat_after.as_deref(), Some("1h"));
        assert_eq!(
            n.data,
            BTreeMap::from([("id".into(), "7".into()), ("role".into(), "primary".into())])
        );
        assert!(parse_notify(&words("example.com/x novalue")).is_err());
        assert!(parse_notify(&[]).is_err());
    }
}
