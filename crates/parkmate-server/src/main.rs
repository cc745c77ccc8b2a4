//! `parkmate`: parses the command line and hands over to the library. Nothing else lives here.

// mimalloc rather than glibc's malloc: handshakes allocate and free kilobytes per socket while
// long-lived socket state is allocated around them, and glibc kept those freed pages resident
// (fragmentation), which made the server's memory per idle socket depend on how fast clients
// arrived. Measured in BENCHMARKS.md (idle memory).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    parkmate_server::cli::main()
}
