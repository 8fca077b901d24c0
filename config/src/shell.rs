//! Shell completions and man pages, made from a binary's clap command (both `rdc` and
//! `rdc-recorder` use these; the .deb installs what they make).

use std::path::Path;

/// Prints `shell`'s completions for `cmd` to stdout.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) {
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
}

/// Writes `cmd`'s man pages into `dir`: `NAME.1`, and `NAME-SUB.1` for each subcommand, down
/// the tree. Returns the files written.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    write_page(cmd, dir, &mut out)?;
    Ok(out)
}

fn write_page(
    cmd: clap::Command,
    dir: &Path,
    out: &mut Vec<std::path::PathBuf>,
) -> std::io::Result<()> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    let p = dir.join(format!("{name}.1"));
    std::fs::write(&p, buf)?;
    out.push(p);
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub = sub
            .clone()
            .display_name(format!("{name}-{}", sub.get_name()))
            .name(format!("{name}-{}", sub.get_name()));
        write_page(sub, dir, out)?;
    }
    Ok(())
}

/// Panics, naming each, unless clap accepts `cmd`'s definition and every argument and
/// subcommand in it has help text: the test both binaries run on their command line.
pub fn assert_documented(cmd: clap::Command) {
    cmd.clone().debug_assert();
    let missing = undocumented(&cmd);
    assert!(
        missing.is_empty(),
        "without help text:\n{}",
        missing.join("\n")
    );
}

/// Every argument and subcommand of `cmd`'s tree without help text, as `rdc fetch --to`: what a
/// test asserts is empty, so every flag says what it is for.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    walk(cmd, cmd.get_name(), &mut out);
    out
}

fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for a in cmd.get_arguments() {
        if a.is_hide_set() || matches!(a.get_id().as_str(), "help" | "version") {
            continue;
        }
        if a.get_help().is_none() && a.get_long_help().is_none() {
            let name = a
                .get_long()
                .map(|l| format!("--{l}"))
                .unwrap_or_else(|| a.get_id().as_str().to_uppercase());
            out.push(format!("{path} {name}"));
        }
    }
    for s in cmd.get_subcommands() {
        if s.is_hide_set() || s.get_name() == "help" {
            continue;
        }
        let p = format!("{path} {}", s.get_name());
        if s.get_about().is_none() && s.get_long_about().is_none() {
            out.push(p.clone());
        }
        walk(s, &p, out);
    }
}
