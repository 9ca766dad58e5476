/* Recursive Fibonacci over int64. */
#include <stdint.h>

int64_t fib(int64_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
