//! `rdc-recorder`: the unit's daemon and its on-site tools (see `rdc_recorder::cli`).

fn main() -> std::process::ExitCode {
    rdc_recorder::cli::main()
}
