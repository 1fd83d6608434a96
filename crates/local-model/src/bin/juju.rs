//! The local model's `juju`: Juju's CLI verbs against a model on this machine
//! (see `local_model::cli`).

fn main() -> std::process::ExitCode {
    local_model::cli::main(std::env::args().skip(1).collect())
}
