use clap::Parser;

fn main() {
    let cli = vlab::cli::Cli::parse();
    let code = match vlab::app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vlab: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
