/* Total escape-time iterations over a w x h grid of [-2, 1] x [-1, 1]. */
#include <stdint.h>

int64_t mandelbrot(int64_t w, int64_t h, int64_t maxit) {
    int64_t total = 0;
    for (int64_t py = 0; py < h; py++) {
        double ci = (double)py * 2.0 / (double)h - 1.0;
        for (int64_t px = 0; px < w; px++) {
            double cr = (double)px * 3.0 / (double)w - 2.0;
            double zr = 0.0, zi = 0.0;
            int64_t k = 0;
            while (k < maxit) {
                double zr2 = zr * zr, zi2 = zi * zi;
                if (zr2 + zi2 > 4.0) break;
                zi = 2.0 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
                k++;
            }
            total += k;
        }
    }
    return total;
}
