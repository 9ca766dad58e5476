/* sum(i ^ (i >> 3) for i in range(n)) with wrapping int64 arithmetic. */
#include <stdint.h>

int64_t loop_sum(int64_t n) {
    uint64_t s = 0; /* unsigned: wrapping is defined */
    for (int64_t i = 0; i < n; i++) s += (uint64_t)(i ^ (i >> 3));
    return (int64_t)s;
}
