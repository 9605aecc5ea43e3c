use clap::Parser;

fn main() {
    // SAFETY: first thing, before any thread exists (see the function's doc).
    unsafe { tbuild::source::init_git() };
    let cli = tbuild::cli::Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TBUILD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(tbuild::report::colour_on_stderr())
        .without_time()
        .init();
    let code = match tbuild::run(cli) {
        Ok(()) => tbuild::exit::OK,
        Err(err) => {
            eprintln!("{} {err}", tbuild::report::Palette::for_stderr().error());
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            err.exit_code()
        }
    };
    std::process::exit(code);
}
