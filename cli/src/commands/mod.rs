//! One module per subcommand (or family of them).

pub mod build;
pub mod container;
pub mod image;
pub mod parse;
pub mod registry;
pub mod run;
