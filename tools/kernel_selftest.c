/* Standalone check of the Q8_0 kernels, for targets where the Python extension is not at hand
 * (cross-compiled and run under qemu-user by tools/kernel_selftest.sh).
 *
 * Every kernel the CPU offers is run on random data and compared with the scalar reference
 * (within float reassociation) and with itself one row at a time and by row list (exactly);
 * names given on the command line must be among the offered kernels. Exit status 1 on any
 * mismatch or missing kernel. Build: cc -O2 -Inative tools/kernel_selftest.c native/q8_0*.c -lm -lpthread */
#include "q8_0.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}
static float uniform(void) { return (float)next() / 4294967296.0f * 2.0f - 1.0f; }

/* Weights: any int8 (including -128) and scales of mixed magnitude. */
static void random_weights(block_q8_0 *w, size_t nblocks) {
    for (size_t i = 0; i < nblocks; i++) {
        w[i].d = er_fp32_to_fp16(uniform() * 0.02f);
        for (int j = 0; j < QK8_0; j++) w[i].qs[j] = (int8_t)(next() & 0xff);
    }
}

/* Activations come from the quantizer, as in the runtime; one row is all zeros. */
static void random_acts(block_q8_act *x, int nt, int k) {
    float *f = malloc(sizeof(float) * (size_t)k);
    for (int t = 0; t < nt; t++) {
        const float scale = t == 1 ? 0.0f : 1.0f + 10.0f * (float)t;
        for (int i = 0; i < k; i++) f[i] = uniform() * scale;
        er_quantize_row_act(f, x + (size_t)t * (k / QK8_0), k);
    }
    free(f);
}

/* Bound for float reassociation (kernels sum lane partials in their own order): a few
 * ulps of the sum of the absolute products. */
static double tolerance(const block_q8_0 *w, const block_q8_act *x, int nb) {
    double s = 0;
    for (int b = 0; b < nb; b++) {
        float dx = 0;
        long abs_dot = 0;
        for (int g = 0; g < ER_ACT_GROUPS; g++) dx = fmaxf(dx, fabsf(x[b].d[g]));
        for (int j = 0; j < QK8_0; j++) abs_dot += abs(w[b].qs[j] * x[b].qs[j]);
        s += fabs((double)er_fp16_to_fp32(w[b].d) * dx) * (double)abs_dot;
    }
    return 1e-5 * s + 1e-30;
}

/* Rows [1, rows - 1) into a wider Y (ldy = rows + 3): checks r0/r1/ldy and that nothing
 * outside the asked rows is written. */
static int check_shape(const er_q8_0_kernel *kern, int rows, int k, int nt) {
    const int nb = k / QK8_0, ldy = rows + 3, r0 = rows > 2 ? 1 : 0, r1 = rows > 2 ? rows - 1 : rows;
    block_q8_0 *w = malloc(sizeof(block_q8_0) * (size_t)rows * nb);
    block_q8_act *x = malloc(sizeof(block_q8_act) * (size_t)nt * nb);
    float *ref = malloc(sizeof(float) * (size_t)nt * ldy), *y = malloc(sizeof(float) * (size_t)nt * ldy);
    random_weights(w, (size_t)rows * nb);
    random_acts(x, nt, k);
    for (int i = 0; i < nt * ldy; i++) ref[i] = y[i] = -12345.0f;
    er_q8_0_gemm_scalar(w, x, ref, k, r0, r1, nt, ldy);
    kern->gemm(w, x, y, k, r0, r1, nt, ldy);
    int bad = 0;
    for (int t = 0; t < nt && !bad; t++)
        for (int r = 0; r < ldy && !bad; r++) {
            const size_t i = (size_t)t * ldy + r;
            const int inside = r >= r0 && r < r1;
            const double tol = inside ? tolerance(w + (size_t)r * nb, x + (size_t)t * nb, nb) : 0;
            if (!(fabs((double)y[i] - ref[i]) <= tol)) {
                fprintf(stderr, "FAIL %s rows=%d k=%d nt=%d: Y[t=%d, r=%d] = %.9g, scalar %.9g\n",
                        kern->name, rows, k, nt, t, r, y[i], ref[i]);
                bad = 1;
            }
        }
    free(w); free(x); free(ref); free(y);
    return bad;
}

/* Row grouping must not change any result: the whole range equals the rows computed one at a
 * time bit for bit, and the sparse-row gemv (unsorted, repeated rows) equals the dense gemm. */
static int check_exact(const er_q8_0_kernel *kern, int rows, int k, int nt) {
    const int nb = k / QK8_0, r0 = rows > 2 ? 1 : 0, r1 = rows > 2 ? rows - 1 : rows;
    block_q8_0 *w = malloc(sizeof(block_q8_0) * (size_t)rows * nb);
    block_q8_act *x = malloc(sizeof(block_q8_act) * (size_t)nt * nb);
    float *all = malloc(sizeof(float) * (size_t)nt * rows), *one = malloc(sizeof(float) * (size_t)nt * rows);
    float *sparse = malloc(sizeof(float) * (size_t)rows);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)rows);
    random_weights(w, (size_t)rows * nb);
    random_acts(x, nt, k);
    memset(all, 0, sizeof(float) * (size_t)nt * rows);
    memset(one, 0, sizeof(float) * (size_t)nt * rows);
    kern->gemm(w, x, all, k, r0, r1, nt, rows);
    for (int r = r0; r < r1; r++) kern->gemm(w, x, one, k, r, r + 1, nt, rows);
    int bad = memcmp(all, one, sizeof(float) * (size_t)nt * rows) != 0;
    for (int i = 0; i < rows; i++) ids[i] = (int32_t)(next() % (uint32_t)rows);
    kern->gemv_rows(w, ids, rows, x, sparse, k);
    kern->gemm(w, x, one, k, 0, rows, 1, rows);
    for (int i = 0; i < rows; i++) bad |= memcmp(&sparse[i], &one[ids[i]], sizeof(float)) != 0;
    if (bad) fprintf(stderr, "FAIL %s rows=%d k=%d nt=%d: grouped rows differ from single rows\n",
                     kern->name, rows, k, nt);
    free(w); free(x); free(all); free(one); free(sparse); free(ids);
    return bad;
}

/* Half floats: every non-NaN fp16 survives fp16 -> fp32 -> fp16, and ties round to even. */
static int check_fp16(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = er_fp16_to_fp32((uint16_t)h);
        if (!isnan(f) && er_fp32_to_fp16(f) != h) {
            fprintf(stderr, "FAIL fp16 round trip 0x%04x\n", h);
            return 1;
        }
    }
    /* 1 + 2^-11 lies halfway between 1 and the next half; even mantissa (1.0) wins. */
    if (er_fp32_to_fp16(1.0f + 0x1p-11f) != 0x3c00 || er_fp32_to_fp16(1.0f + 3 * 0x1p-11f) != 0x3c02) {
        fprintf(stderr, "FAIL fp16 ties-to-even\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int n, fails = check_fp16();
    const er_q8_0_kernel *kernels = er_q8_0_kernels(&n);
    printf("kernels:");
    for (int i = 0; i < n; i++) printf(" %s", kernels[i].name);
    printf("\n");
    for (int a = 1; a < argc; a++) {
        int found = 0;
        for (int i = 0; i < n; i++) found |= strcmp(kernels[i].name, argv[a]) == 0;
        if (!found) {
            fprintf(stderr, "FAIL kernel %s is not offered on this CPU\n", argv[a]);
            fails++;
        }
    }
    static const int rows[] = {1, 2, 3, 4, 5, 6, 7, 9, 13, 67}, ks[] = {32, 96, 640, 2048};
    static const int nts[] = {1, 2, 3, 4, 5, 7, 64};
    for (int i = 1; i < n; i++) {
        int kf = 0;
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++)
            for (size_t kk = 0; kk < sizeof ks / sizeof *ks; kk++)
                for (size_t t = 0; t < sizeof nts / sizeof *nts; t++)
                    kf += check_shape(&kernels[i], rows[r], ks[kk], nts[t]) +
                          check_exact(&kernels[i], rows[r], ks[kk], nts[t]);
        printf("%-14s %s\n", kernels[i].name, kf ? "FAILED" : "ok");
        fails += kf;
    }
    return fails ? 1 : 0;
}
