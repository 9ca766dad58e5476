/* The benchmarks game n-body program over a flat double buffer of 5 bodies,
 * 7 doubles each: x, y, z, vx, vy, vz, mass. */
#include <math.h>
#include <stdint.h>

#define NB 5
#define STRIDE 7
#define SOLAR_MASS (4.0 * 3.141592653589793 * 3.141592653589793)

double nbody_energy(const double *b) {
    double e = 0.0;
    for (int64_t i = 0; i < NB; i++) {
        const double *bi = b + i * STRIDE;
        e += 0.5 * bi[6] * (bi[3] * bi[3] + bi[4] * bi[4] + bi[5] * bi[5]);
        for (int64_t j = i + 1; j < NB; j++) {
            const double *bj = b + j * STRIDE;
            double dx = bi[0] - bj[0], dy = bi[1] - bj[1], dz = bi[2] - bj[2];
            e -= bi[6] * bj[6] / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

void nbody_offset(double *b) {
    double px = 0.0, py = 0.0, pz = 0.0;
    for (int64_t i = 0; i < NB; i++) {
        double *bi = b + i * STRIDE;
        px += bi[3] * bi[6];
        py += bi[4] * bi[6];
        pz += bi[5] * bi[6];
    }
    b[3] = -px / SOLAR_MASS;
    b[4] = -py / SOLAR_MASS;
    b[5] = -pz / SOLAR_MASS;
}

void nbody_advance(double *b, int64_t steps, double dt) {
    for (int64_t s = 0; s < steps; s++) {
        for (int64_t i = 0; i < NB; i++) {
            double *bi = b + i * STRIDE;
            for (int64_t j = i + 1; j < NB; j++) {
                double *bj = b + j * STRIDE;
                double dx = bi[0] - bj[0], dy = bi[1] - bj[1], dz = bi[2] - bj[2];
                double d2 = dx * dx + dy * dy + dz * dz;
                double mag = dt / (d2 * sqrt(d2));
                double mj = bj[6] * mag, mi = bi[6] * mag;
                bi[3] -= dx * mj;
                bi[4] -= dy * mj;
                bi[5] -= dz * mj;
                bj[3] += dx * mi;
                bj[4] += dy * mi;
                bj[5] += dz * mi;
            }
        }
        for (int64_t i = 0; i < NB; i++) {
            double *bi = b + i * STRIDE;
            bi[0] += dt * bi[3];
            bi[1] += dt * bi[4];
            bi[2] += dt * bi[5];
        }
    }
}

/* Offset the momentum, advance `steps` steps of 0.01, return the energy. */
double nbody(double *b, int64_t steps) {
    nbody_offset(b);
    nbody_advance(b, steps, 0.01);
    return nbody_energy(b);
}
