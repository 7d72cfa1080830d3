//! The C ABI: entry points only. Each checks its arguments, catches panics,
//! converts, and calls into the tracer; no logic lives here.

//!
//! Safety contract of every entry point (instead of a `# Safety` section on
//! each, which would repeat it in the C header): pointers are NULL (then the
//! call answers SPANGUARD_RESULT_NULL_ARGUMENT) or valid for what the
//! argument says (`len` bytes, one struct of its `struct_size`); a tracer
//! pointer came from `spanguard_tracer_new*` and was not freed.

// C names, as the header shows them.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod args;
mod boundary;
pub mod result;
pub mod span;
// After span: the header lists its call beside spanguard_span_set_attributes.
pub mod packed;
pub mod tracer;
pub mod types;
mod values;
