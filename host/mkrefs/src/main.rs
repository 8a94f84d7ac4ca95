//! The `mkrefs` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    mkrefs::app::main()
}
