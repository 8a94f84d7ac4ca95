//! One module per subcommand.

pub mod clean;
pub mod demo;
pub mod describe;
pub mod plugins;
pub mod run;
pub mod simulate;
pub mod status;
pub mod tables;
pub mod template;
