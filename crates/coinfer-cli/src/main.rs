//! `coinfer`: search a device–edge co-inference plan for a DNN, then serve and run it.
//!
//! ```text
//! coinfer search                      # the main job on the embedded Fashion-MNIST subset
//! coinfer search --help               # every option
//! ```

mod plots;
mod search;

use clap::{Parser, Subcommand};

/// Device–edge co-inference: split a DNN between a mobile device and an edge server.
#[derive(Parser)]
#[command(name = "coinfer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or load) the backbone and its codecs, profile, search with DDPG, run the
    /// baselines, fine-tune the best plan and write results/<run>/.
    Search(Box<search::SearchArgs>),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Search(args) => search::run(*args),
    };
    if let Err(error) = result {
        eprintln!("error: {error}");
        let mut source = error.source();
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}
