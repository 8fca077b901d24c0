//! `rdc` (see `rdc_cli`).

fn main() -> std::process::ExitCode {
    rdc_cli::main()
}
