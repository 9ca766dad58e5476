/* c = a @ b for n x n row-major double matrices; returns the sum of c. */
#include <stdint.h>

double matmul(const double *a, const double *b, double *c, int64_t n) {
    double total = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
            c[i * n + j] = s;
            total += s;
        }
    return total;
}
