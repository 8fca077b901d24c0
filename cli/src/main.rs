//! `rdc`: the officer's tool (issue 4; not built yet).

fn main() {
    eprintln!(
        "rdc: remote retrieval is not built yet (issue 4); use `rdc-recorder store` on the unit"
    );
    std::process::exit(2);
}
