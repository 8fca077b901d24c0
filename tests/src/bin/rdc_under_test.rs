//! The `rdc` tool, built inside the test crate so end-to-end tests can run it as a process.

fn main() -> std::process::ExitCode {
    rdc_cli::main()
}
