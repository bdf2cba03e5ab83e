use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tollgate::cli::Cli::parse();
    match tollgate::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line, the whole cause chain (each cause once), no backtrace.
            eprintln!("error: {}", tollgate::cli::error_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}
