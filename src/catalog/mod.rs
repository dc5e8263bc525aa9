//! The lab catalog: lab.toml files under labs/, loaded and validated.

mod load;
mod model;

pub use load::{Catalog, CatalogError, LoadError, find_labs_root, line_of};
pub(crate) use load::{InvalidCheck, Kinds};
pub use model::*;
