/* Q8_0 on any CPU: half-float conversion, activation quantization, the scalar reference
 * gemm and the run-time choice of the fastest kernel this CPU (and its OS) can run. */
#include "q8_0.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__) || defined(__arm__)
#include <sys/auxv.h>
#endif

/* ---- half floats ----------------------------------------------------------------------- */

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float er_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {                          /* zero or subnormal: exactly m * 2^-24 */
        float v = (float)m * 0x1p-24f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
    return bits_f32(sign | ((e + 112) << 23) | (m << 13));
}

/* Round-to-nearest-even of the integer mantissa m shifted right by s (1 <= s <= 31). */
static uint32_t shift_rne(uint32_t m, unsigned s) {
    uint32_t q = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t er_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    if (ax > 0x7f800000u) return sign | 0x7e00;              /* NaN -> quiet NaN, as ggml */
    if (ax >= 0x477ff000u) return sign | 0x7c00;             /* rounds past 65504: inf */
    if (ax >= 0x38800000u)                                    /* normal half: rebias, round */
        return sign | (uint16_t)shift_rne(ax - (112u << 23), 13);
    unsigned e = ax >> 23;                                    /* subnormal half, units 2^-24 */
    if (e < 102) return sign;                                 /* below 2^-25: rounds to zero */
    return sign | (uint16_t)shift_rne((ax & 0x7fffffu) | 0x800000u, 126 - e);
}

float er_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* ---- activations ----------------------------------------------------------------------- */

/* Position of value j (0..7) of group g in a 32-value block: see block_q8_act. */
static int act_pos(int g, int j) { return 4 * g + (j & 3) + (j & 4) * 4; }

void er_quantize_row_act(const float *x, block_q8_act *y, int n) {
    for (int b = 0; b < n / QK8_0; b++, x += QK8_0) {
        int finite = 1;
        for (int j = 0; j < QK8_0; j++) finite &= isfinite(x[j]) != 0;
        if (!finite) {   /* keep NaN/Inf visible downstream instead of rounding it away */
            for (int g = 0; g < ER_ACT_GROUPS; g++) y[b].d[g] = NAN;
            memset(y[b].qs, 0, QK8_0);
            continue;
        }
        for (int g = 0; g < ER_ACT_GROUPS; g++) {
            float amax = 0.0f;
            for (int j = 0; j < 8; j++) amax = fmaxf(amax, fabsf(x[act_pos(g, j)]));
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            y[b].d[g] = d;
            for (int j = 0; j < 8; j++)
                y[b].qs[act_pos(g, j)] = (int8_t)roundf(x[act_pos(g, j)] * id);
        }
    }
}

/* ---- the reference kernel ---------------------------------------------------------------- */

void er_q8_0_gemm_scalar(const block_q8_0 *W, const block_q8_act *X, float *Y,
                         int k, int r0, int r1, int nt, int ldy) {
    const int nb = k / QK8_0;
    for (int t = 0; t < nt; t++) {
        const block_q8_act *x = X + (size_t)t * nb;
        for (int r = r0; r < r1; r++) {
            const block_q8_0 *w = W + (size_t)r * nb;
            float sum = 0.0f;
            for (int b = 0; b < nb; b++) {
                const float dw = er_fp16_to_fp32(w[b].d);
                for (int g = 0; g < ER_ACT_GROUPS; g++) {
                    int32_t dot = 0;
                    for (int j = 0; j < 8; j++)
                        dot += w[b].qs[act_pos(g, j)] * x[b].qs[act_pos(g, j)];
                    sum += dw * x[b].d[g] * (float)dot;
                }
            }
            Y[(size_t)t * ldy + r] = sum;
        }
    }
}

void er_q8_0_gemv_rows_scalar(const block_q8_0 *W, const int32_t *rows, int n,
                              const block_q8_act *x, float *y, int k) {
    const size_t nb = (size_t)(k / QK8_0);
    for (int i = 0; i < n; i++) er_q8_0_gemm_scalar(W + rows[i] * nb, x, y + i, k, 0, 1, 1, 1);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

#if defined(__x86_64__)
/* The CPU must have the instructions and the OS must save their register state (XCR0). */
static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void x86_features(int *avx2, int *avx512vnni, int *avxvnni) {
    unsigned a, b, c, d;
    *avx2 = *avx512vnni = *avxvnni = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    const int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !fma || !f16c) return;
    const uint64_t xcr = xcr0();
    if ((xcr & 0x6) != 0x6) return;                      /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
    *avx2 = (b >> 5) & 1;
    const int avx512 = ((b >> 16) & 1) && ((b >> 31) & 1);  /* F + VL */
    *avx512vnni = *avx2 && avx512 && ((c >> 11) & 1) && (xcr & 0xe0) == 0xe0;  /* opmask, ZMM */
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) *avxvnni = *avx2 && ((a >> 4) & 1);
}
#endif

#if defined(__aarch64__)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#elif defined(__arm__)
#define ER_HWCAP_ARM_NEON (1 << 12)
#endif

static er_q8_0_kernel kernels[8];
static int n_kernels;
static pthread_once_t kernels_once = PTHREAD_ONCE_INIT;

static void add(const char *name, er_q8_0_gemm_fn fn, er_q8_0_gemv_rows_fn rows_fn) {
    kernels[n_kernels].name = name;
    kernels[n_kernels].gemv_rows = rows_fn;
    kernels[n_kernels].quantize = er_quantize_row_act;
#if defined(__x86_64__)
    if (n_kernels > 0) kernels[n_kernels].quantize = er_quantize_row_act_avx2;  /* all need AVX2 */
#endif
    kernels[n_kernels++].gemm = fn;
}

static void find_kernels(void) {
    add("scalar", er_q8_0_gemm_scalar, er_q8_0_gemv_rows_scalar);
#if defined(__x86_64__)
    int avx2, avx512vnni, avxvnni;
    x86_features(&avx2, &avx512vnni, &avxvnni);
    if (avx2) add("avx2", er_q8_0_gemm_avx2, er_q8_0_gemv_rows_avx2);
#if defined(ER_HAVE_AVXVNNI)
    if (avxvnni) add("avxvnni", er_q8_0_gemm_avxvnni, er_q8_0_gemv_rows_avxvnni);
#endif
    if (avx512vnni) add("avx512vnni", er_q8_0_gemm_avx512vnni, er_q8_0_gemv_rows_avx512vnni);
#elif defined(__aarch64__)
    add("neon", er_q8_0_gemm_neon, er_q8_0_gemv_rows_neon);        /* ASIMD is mandatory on AArch64 */
    if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)
        add("neon_dotprod", er_q8_0_gemm_neon_dotprod, er_q8_0_gemv_rows_neon_dotprod);
#elif defined(__arm__)
    if (getauxval(AT_HWCAP) & ER_HWCAP_ARM_NEON) add("neon", er_q8_0_gemm_neon, er_q8_0_gemv_rows_neon);
#endif
}

const er_q8_0_kernel *er_q8_0_kernels(int *n) {
    pthread_once(&kernels_once, find_kernels);
    *n = n_kernels;
    return kernels;
}

const er_q8_0_kernel *er_q8_0_select(void) {
    int n;
    const er_q8_0_kernel *k = er_q8_0_kernels(&n);
    const char *want = getenv("ER_KERNEL");
    if (!want || !*want) return &k[n - 1];
    for (int i = 0; i < n; i++)
        if (strcmp(k[i].name, want) == 0) return &k[i];
    return NULL;
}
