//! `suyuan`: the command-line front of suyuan-node. Everything it prints is printed in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
