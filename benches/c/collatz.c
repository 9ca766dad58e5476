/* Total Collatz steps to reach 1 of every 1 <= i < n (int64; no overflow below 1e9). */
#include <stdint.h>

int64_t collatz(int64_t n) {
    int64_t total = 0;
    for (int64_t i = 1; i < n; i++) {
        int64_t x = i;
        while (x != 1) {
            total += 1;
            if (x & 1)
                x = 3 * x + 1;
            else
                x = x >> 1;
        }
    }
    return total;
}
