//! `parkmate`: parses the command line and hands over to the library. Nothing else lives here.

fn main() -> std::process::ExitCode {
    parkmate_server::cli::main()
}
