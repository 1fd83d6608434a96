//! The example charm's `dispatch` binary.

fn main() -> std::process::ExitCode {
    charm::dispatch::main(example_charm::ExampleCharm)
}
