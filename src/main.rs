//! The `zerobox` binary: a thin shell around `zerobox::cli::main`, which owns
//! parsing, errors and exit codes.
fn main() {
    let code = zerobox::cli::main(std::env::args_os().collect());
    std::process::exit(code);
}
