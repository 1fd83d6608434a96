//! The etcd charm's `dispatch` binary.

fn main() -> std::process::ExitCode {
    charm::dispatch::main(etcd_charm::EtcdCharm)
}
