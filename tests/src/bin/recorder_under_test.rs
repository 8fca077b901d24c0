//! The recorder, built inside the test crate so end-to-end tests can run it as a process
//! (cargo gives integration tests the paths of their own package's binaries only).

fn main() -> std::process::ExitCode {
    rdc_recorder::cli::main()
}
