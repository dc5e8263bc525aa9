use clap::Parser;
use vlab::supervisor::{self, Supervisor};

fn main() {
    // Before any child starts: Ctrl-C kills everything vlab started, and orphans come back to be reaped.
    let supervisor = match Supervisor::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vlab: {e}");
            std::process::exit(2);
        }
    };
    let cli = vlab::cli::Cli::parse();
    let code = match vlab::app::run(cli) {
        Ok(code) => code,
        Err(e) if !supervisor::interrupted() => {
            eprintln!("vlab: {e:#}");
            2
        }
        Err(_) => 130,
    };
    supervisor.exit(code);
}
