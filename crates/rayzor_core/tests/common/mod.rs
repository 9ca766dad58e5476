//! Programs shared by the integration tests.

/// Recursive fib, a dividing function (traps) and a recursion of chosen depth (`down(n)`
/// makes n + 1 nested calls).
pub const FIB: &str = r#"
fn fib(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 2
  v2: bool = lt v0, v1
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call fib(v4)
  v6: i64 = const 2
  v7: i64 = sub v0, v6
  v8: i64 = call fib(v7)
  v9: i64 = add v5, v8
  ret v9
}

fn div(i32, i32) -> i32 {
block0(v0: i32, v1: i32):
  v2: i32 = div v0, v1
  ret v2
}

fn down(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 0
  v2: bool = eq v0, v1
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call down(v4)
  v6: i64 = add v5, v3
  ret v6
}
"#;
