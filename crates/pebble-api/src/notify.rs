//! Recording a custom notice from a script inside the container (which runs
//! the charm's `<container>-pebble-custom-notice` hook): with Juju's
//! `pebble` when the container has it, else by a POST to the Pebble socket
//! inside the container. Patroni's role-change callback and the timers
//! share these lines.

/// Shell lines that record the notice `key` with `data` and end the script.
/// `key` and each `data` item are shell words (`data` items read
/// `name=value`), expanded by the shell: `"$1"`, `role="$2"`. They hold no
/// secret.
pub fn notify_lines(key: &str, data: &[&str]) -> String {
    let args = data.join(" ");
    format!(
        r#"if [ -x /charm/bin/pebble ]; then
    exec /charm/bin/pebble notify {key} {args}
fi
exec python3 - {key} {args} <<'EOF'
import json, os, socket, sys
key = sys.argv[1]
data = dict(arg.split("=", 1) for arg in sys.argv[2:])
body = json.dumps({{"action": "add", "type": "custom", "key": key, "data": data}}).encode()
head = "POST /v1/notices HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
head += "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
sockets = [os.environ.get("PEBBLE_SOCKET"), "/charm/container/pebble.socket",
           "/var/lib/pebble/default/.pebble.socket"]
for path in filter(None, sockets):
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(head.encode() + body)
            if s.recv(4096).split(b" ", 2)[1:2] == [b"200"]:
                sys.exit(0)
    except OSError:
        pass
sys.exit("cannot record the notice " + key)
EOF
"#
    )
}
