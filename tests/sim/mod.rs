pub mod checker;
pub mod store;
pub mod world;
