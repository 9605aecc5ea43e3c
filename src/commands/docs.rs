//! `tbuild completions SHELL` and `tbuild man`: generated from the clap definition in
//! `crate::cli`, so neither can drift from the flags the parser accepts.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Error;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "tbuild", &mut std::io::stdout());
    Ok(())
}

/// The manual page (roff): the top-level page, then for every subcommand (`tbuild cache gc`,
/// ...) a section with its description, synopsis and options.
pub fn man() -> Result<(), Error> {
    let mut command = Cli::command();
    // Gives each subcommand its full bin name (`tbuild cache gc`) for its synopsis.
    command.build();
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page).expect("rendering into memory");
    for sub in visible(&command) {
        render_subcommand(sub, &mut page);
    }
    std::io::stdout().write_all(&page).map_err(|err| Error::Usage(format!("cannot write the manual page: {err}")))
}

fn visible(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

fn render_subcommand(command: &clap::Command, page: &mut Vec<u8>) {
    let name = command.get_bin_name().unwrap_or(command.get_name()).to_string();
    let man = clap_mangen::Man::new(command.clone());
    writeln!(page, ".SH \"{}\"", name.to_uppercase()).expect("in memory");
    man.render_description_section(page).expect("in memory");
    man.render_synopsis_section(page).expect("in memory");
    man.render_options_section(page).expect("in memory");
    for sub in visible(command) {
        render_subcommand(sub, page);
    }
}
