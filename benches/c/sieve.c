/* Sieve of Eratosthenes over a caller-provided byte buffer of n flags:
 * returns the number of primes below n. */
#include <stdint.h>
#include <string.h>

int64_t sieve(uint8_t *flags, int64_t n) {
    if (n < 2) return 0;
    memset(flags, 1, (size_t)n);
    flags[0] = 0;
    flags[1] = 0;
    for (int64_t i = 2; i * i < n; i++)
        if (flags[i])
            for (int64_t j = i * i; j < n; j += i) flags[j] = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) count += flags[i];
    return count;
}
