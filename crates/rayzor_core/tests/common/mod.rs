//! Programs shared by the integration tests.

/// Recursive `fib`, dividing functions `div`/`rem` on i32 (they trap) and a recursion of
/// chosen depth (`down(n)` makes n + 1 nested calls). The text is that of the run-test
/// files, whose directives state what each function computes.
pub const FIB: &str = concat!(
    include_str!("../../../../tests/mir/fib.mir"),
    include_str!("../../../../tests/mir/divrem_i32.mir"),
    include_str!("../../../../tests/mir/call_depth.mir"),
);
