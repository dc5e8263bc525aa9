use clap::Parser;
use vlab::supervisor::{self, Supervisor};

fn main() {
    // Before any child starts: Ctrl-C kills everything vlab started, and orphans come back to be reaped.
    let _supervisor = Supervisor::install().inspect_err(|e| eprintln!("vlab: {e}")).ok();
    let cli = vlab::cli::Cli::parse();
    let code = match vlab::app::run(cli) {
        Ok(code) => code,
        Err(e) if !supervisor::interrupted() => {
            eprintln!("vlab: {e:#}");
            2
        }
        Err(_) => 130,
    };
    supervisor::exit(code);
}
