//! Shell completions and the man page, generated from the clap definition
//! so they never drift from `--help`.

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell, out: &mut impl Write) {
    clap_complete::generate(shell, &mut Cli::command(), "rolewatch", out);
}

/// The man page of `rolewatch` with its subcommands, in roff.
pub fn man(out: &mut impl Write) -> io::Result<()> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    // Each subcommand's own options, as `rolewatch help SUB` shows them.
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        writeln!(out, ".SH \"{}\"", format!("rolewatch {}", sub.get_name()).to_uppercase())?;
        let sub_man = clap_mangen::Man::new(sub.clone().bin_name(format!("rolewatch {}", sub.get_name())));
        sub_man.render_synopsis_section(out)?;
        sub_man.render_options_section(out)?;
    }
    man.render_version_section(out)?;
    Ok(())
}
