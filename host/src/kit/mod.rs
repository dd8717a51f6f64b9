//! The plugin authoring kit: [`scaffold`] makes a plugin crate from a
//! template (`plugin new`), [`cases`] runs a component on cases and compares
//! what it returns with what they expect (`plugin test`), and [`pack`] turns
//! a component into the ConfigMap the operator loads (`plugin pack`). Each
//! checks a component exactly as the operator does: the same runtime, the
//! same loading, the same pipeline and output policy.

pub mod cases;
pub mod pack;
pub mod scaffold;
