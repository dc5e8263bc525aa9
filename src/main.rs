use clap::Parser;

fn main() {
    let cli = vlab::cli::Cli::parse();
    let code = match vlab::app::run(cli) {
        Ok(code) => code,
        Err(e) if !vlab::cleanup::interrupted() => {
            eprintln!("vlab: {e:#}");
            2
        }
        Err(_) => 130,
    };
    vlab::cleanup::exit(code);
}
