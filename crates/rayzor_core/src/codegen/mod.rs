//! Machine-code generation. `target` is shared by the interpreter and every backend.

pub mod target;
