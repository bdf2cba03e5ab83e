use clap::Parser;

// Allocation is a visible share of a request's CPU time (form fields, claims, the answer's
// JSON, actix's own buffers); mimalloc's thread-local free lists take about half the time
// of glibc's malloc here (`bench/compare.sh`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
