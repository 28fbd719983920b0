#include "ops.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "q8_0.h"

void er_rmsnorm(const float *x, const float *w, float *y, int n, float eps) {
    double ss = 0.0;                         /* ggml accumulates in double */
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

void er_rope_angles(float *cs, float *sn, int pos, int d, float base, float scale) {
    const float step = powf(base, -2.0f / (float)d);
    float theta = (float)pos * scale;
    for (int i = 0; i < d / 2; i++) {
        cs[i] = cosf(theta);
        sn[i] = sinf(theta);
        theta *= step;
    }
}

void er_rope_neox(float *x, const float *cs, const float *sn, int d) {
    const int h = d / 2;
    for (int i = 0; i < h; i++) {
        const float a = x[i], b = x[i + h];
        x[i] = a * cs[i] - b * sn[i];
        x[i + h] = a * sn[i] + b * cs[i];
    }
}

/* gelu_tanh of every fp16 value, rounded to fp16: llama.cpp evaluates gelu through such a
 * table, so reading it gives its numbers, and a lookup is far cheaper than tanhf. */
static float gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_init(void) {
    const float c = 0.79788456080286535588f;  /* sqrt(2/pi) */
    for (uint32_t h = 0; h < (1u << 16); h++) {
        const float x = er_fp16_to_fp32((uint16_t)h);
        const float g = 0.5f * x * (1.0f + tanhf(c * x * (1.0f + 0.044715f * x * x)));
        gelu_table[h] = er_fp16_to_fp32(er_fp32_to_fp16(g));
    }
}

void er_geglu(float *gate, const float *up, int n) {
    pthread_once(&gelu_once, gelu_init);
    uint16_t h[256];
    for (int i0 = 0; i0 < n; i0 += 256) {
        const int m = n - i0 < 256 ? n - i0 : 256;
        er_fp32_to_fp16_row(gate + i0, h, m);
        /* at decode the weight stream has evicted the table between layers: request all
         * the entries first, so their misses overlap instead of coming one by one */
        for (int i = 0; i < m; i++) __builtin_prefetch(&gelu_table[h[i]]);
        for (int i = 0; i < m; i++) {
            const float x = gate[i0 + i];
            const float g = x <= -10.0f ? 0.0f : x >= 10.0f ? x : gelu_table[h[i]];
            gate[i0 + i] = g * up[i0 + i];
        }
    }
}

void er_softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static inline float load_float(const void *W, int type, size_t i) {
    switch (type) {
    case ER_F16: return er_fp16_to_fp32(((const uint16_t *)W)[i]);
    case ER_BF16: return er_bf16_to_fp32(((const uint16_t *)W)[i]);
    default: return ((const float *)W)[i];
    }
}

void er_gemm_float(const void *W, int type, const float *X, float *Y, int k,
                   int r0, int r1, int nt, int ldy) {
    for (int r = r0; r < r1; r++) {
        for (int t = 0; t < nt; t++) {
            const float *x = X + (size_t)t * k;
            float s = 0.0f;
            if (type == ER_F32) {
                const float *w = (const float *)W + (size_t)r * k;
                for (int i = 0; i < k; i++) s += w[i] * x[i];
            } else {
                for (int i = 0; i < k; i++) s += load_float(W, type, (size_t)r * k + i) * x[i];
            }
            Y[(size_t)t * ldy + r] = s;
        }
    }
}

void er_dequant_row(const void *W, int type, int row, int k, float *out) {
    if (type == ER_Q8_0) {
        const block_q8_0 *b = (const block_q8_0 *)W + (size_t)row * (k / QK8_0);
        for (int i = 0; i < k / QK8_0; i++) {
            const float d = er_fp16_to_fp32(b[i].d);
            for (int j = 0; j < QK8_0; j++) out[i * QK8_0 + j] = d * b[i].qs[j];
        }
        return;
    }
    for (int i = 0; i < k; i++) out[i] = load_float(W, type, (size_t)row * k + i);
}

/* ---- KV rows ------------------------------------------------------------------------- */

#if defined(__x86_64__)
#include <immintrin.h>
/* The end of an f16 . f32 dot: the lanes of acc summed, then elements [i, n) one by one. */
__attribute__((target("avx2,fma,f16c")))
static inline float dot_f16_finish(__m256 acc, const uint16_t *k, const float *q, int i, int n) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    float r = _mm_cvtss_f32(s);
    for (; i < n; i++) r += er_fp16_to_fp32(k[i]) * q[i];
    return r;
}

__attribute__((target("avx2,fma,f16c")))
static float dot_f16_f16c(const uint16_t *k, const float *q, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))),
                              _mm256_loadu_ps(q + i), acc);
    return dot_f16_finish(acc, k, q, i, n);
}

/* Four rows at a time: four independent chains (one alone waits on each fma's latency), each
 * the single-row chain above. */
__attribute__((target("avx2,fma,f16c")))
static void dots_f16_f16c(const void *const *rows, int m, const float *q, int n, float *out) {
    int j = 0;
    for (; j + 4 <= m; j += 4) {
        const uint16_t *k[4] = {rows[j], rows[j + 1], rows[j + 2], rows[j + 3]};
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                         _mm256_setzero_ps()};
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m256 qv = _mm256_loadu_ps(q + i);
            for (int r = 0; r < 4; r++)
                acc[r] = _mm256_fmadd_ps(
                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k[r] + i))), qv, acc[r]);
        }
        for (int r = 0; r < 4; r++) out[j + r] = dot_f16_finish(acc[r], k[r], q, i, n);
    }
    for (; j < m; j++) out[j] = dot_f16_f16c(rows[j], q, n);
}

__attribute__((target("avx2,fma,f16c")))
static void axpy_f16_f16c(float *y, const uint16_t *v, float a, int n) {
    const __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(
            va, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i))), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * er_fp16_to_fp32(v[i]);
}

/* y += a[j] * v[j] for j in order, each element exactly as m calls of axpy_f16_f16c leave it;
 * a strip of 64 elements stays in registers across all the rows instead of going through
 * memory once per row. */
__attribute__((target("avx2,fma,f16c")))
static void axpys_f16_f16c(float *y, const void *const *v, const float *a, int m, int n) {
    enum { W = 8 };                           /* vectors per strip */
    int i = 0;
    for (; i + 8 * W <= n; i += 8 * W) {
        __m256 acc[W];
        for (int r = 0; r < W; r++) acc[r] = _mm256_loadu_ps(y + i + 8 * r);
        for (int j = 0; j < m; j++) {
            const uint16_t *vj = (const uint16_t *)v[j] + i;
            const __m256 va = _mm256_set1_ps(a[j]);
            for (int r = 0; r < W; r++)
                acc[r] = _mm256_fmadd_ps(
                    va, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vj + 8 * r))), acc[r]);
        }
        for (int r = 0; r < W; r++) _mm256_storeu_ps(y + i + 8 * r, acc[r]);
    }
    for (int j = 0; j < m; j++) axpy_f16_f16c(y + i, (const uint16_t *)v[j] + i, a[j], n - i);
}

/* G heads (2 or 4) against two rows at a time: each K vector converted once for all G
 * queries; every (row, head) chain is the single-row one above. */
__attribute__((target("avx2,fma,f16c"), always_inline))
static inline void dots_heads_f16c_g(const void *const *rows, int m, const float *q, int n,
                                     float *out, int ldo, const int G) {
    int j = 0;
    for (; j + 2 <= m; j += 2) {
        const uint16_t *k[2] = {rows[j], rows[j + 1]};
        __m256 acc[2][4];
        for (int r = 0; r < 2; r++)
            for (int h = 0; h < G; h++) acc[r][h] = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            const __m256 k0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k[0] + i)));
            const __m256 k1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k[1] + i)));
            for (int h = 0; h < G; h++) {
                const __m256 qv = _mm256_loadu_ps(q + (size_t)h * n + i);
                acc[0][h] = _mm256_fmadd_ps(k0, qv, acc[0][h]);
                acc[1][h] = _mm256_fmadd_ps(k1, qv, acc[1][h]);
            }
        }
        for (int r = 0; r < 2; r++)
            for (int h = 0; h < G; h++)
                out[(size_t)h * ldo + j + r] =
                    dot_f16_finish(acc[r][h], k[r], q + (size_t)h * n, i, n);
    }
    for (; j < m; j++)
        for (int h = 0; h < G; h++)
            out[(size_t)h * ldo + j] = dot_f16_f16c(rows[j], q + (size_t)h * n, n);
}

__attribute__((target("avx2,fma,f16c")))
static void dots_heads_f16c(const void *const *rows, int m, const float *q, int g, int n,
                            float *out, int ldo) {
    if (g == 4) { dots_heads_f16c_g(rows, m, q, n, out, ldo, 4); return; }
    if (g == 2) { dots_heads_f16c_g(rows, m, q, n, out, ldo, 2); return; }
    for (int h = 0; h < g; h++) dots_f16_f16c(rows, m, q + (size_t)h * n, n, out + (size_t)h * ldo);
}

/* G heads (2 or 4): a strip of 16 elements of every head's output stays in registers across
 * the rows, each V vector converted once for all G; every element's chain is axpy_f16_f16c's. */
__attribute__((target("avx2,fma,f16c"), always_inline))
static inline void axpys_heads_f16c_g(float *y, const void *const *v, const float *a, int lda,
                                      int m, int n, const int G) {
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 acc[4][2];
        for (int h = 0; h < G; h++)
            for (int r = 0; r < 2; r++) acc[h][r] = _mm256_loadu_ps(y + (size_t)h * n + i + 8 * r);
        for (int j = 0; j < m; j++) {
            const uint16_t *vj = (const uint16_t *)v[j] + i;
            const __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)vj));
            const __m256 v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vj + 8)));
            for (int h = 0; h < G; h++) {
                const __m256 va = _mm256_set1_ps(a[(size_t)h * lda + j]);
                acc[h][0] = _mm256_fmadd_ps(va, v0, acc[h][0]);
                acc[h][1] = _mm256_fmadd_ps(va, v1, acc[h][1]);
            }
        }
        for (int h = 0; h < G; h++)
            for (int r = 0; r < 2; r++) _mm256_storeu_ps(y + (size_t)h * n + i + 8 * r, acc[h][r]);
    }
    for (int h = 0; h < G; h++)
        for (int j = 0; j < m; j++)
            axpy_f16_f16c(y + (size_t)h * n + i, (const uint16_t *)v[j] + i, a[(size_t)h * lda + j],
                          n - i);
}

__attribute__((target("avx2,fma,f16c")))
static void axpys_heads_f16c(float *y, const void *const *v, const float *a, int lda, int g,
                             int m, int n) {
    if (g == 4) { axpys_heads_f16c_g(y, v, a, lda, m, n, 4); return; }
    if (g == 2) { axpys_heads_f16c_g(y, v, a, lda, m, n, 2); return; }
    for (int h = 0; h < g; h++) axpys_f16_f16c(y + (size_t)h * n, v, a + (size_t)h * lda, m, n);
}

__attribute__((target("avx2,fma,f16c")))
static void to_f16_f16c(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = er_fp32_to_fp16(x[i]);
}

static int have_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                             __builtin_cpu_supports("f16c");
    return cached;
}
#endif

#if defined(__aarch64__)
/* AArch64 converts halves in hardware (baseline NEON), eight at a time. */
#include <arm_neon.h>

static float dot_f16_neon(const uint16_t *k, const float *q, int n) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(k + i));
        a0 = vfmaq_f32(a0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(q + i));
        a1 = vfmaq_f32(a1, vcvt_high_f32_f16(h), vld1q_f32(q + i + 4));
    }
    float r = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) r += er_fp16_to_fp32(k[i]) * q[i];
    return r;
}

static void axpy_f16_neon(float *y, const uint16_t *v, float a, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(v + i));
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vcvt_f32_f16(vget_low_f16(h)), a));
        vst1q_f32(y + i + 4, vfmaq_n_f32(vld1q_f32(y + i + 4), vcvt_high_f32_f16(h), a));
    }
    for (; i < n; i++) y[i] += a * er_fp16_to_fp32(v[i]);
}

/* G query heads sharing one K/V head: each K row's halves converted once for all of them,
 * every (row, head) sum the chain of dot_f16_neon. */
static void dots_heads_neon(const void *const *rows, int m, const float *q, int g, int n,
                            float *out, int ldo) {
    enum { G_MAX = 4 };
    for (int h0 = 0; h0 < g; h0 += G_MAX) {
        const int G = g - h0 < G_MAX ? g - h0 : G_MAX;
        const float *qh = q + (size_t)h0 * n;
        for (int j = 0; j < m; j++) {
            const uint16_t *k = rows[j];
            float32x4_t a0[G_MAX], a1[G_MAX];
            for (int h = 0; h < G; h++) a0[h] = a1[h] = vdupq_n_f32(0.0f);
            int i = 0;
            for (; i + 8 <= n; i += 8) {
                const float16x8_t kh = vreinterpretq_f16_u16(vld1q_u16(k + i));
                const float32x4_t lo = vcvt_f32_f16(vget_low_f16(kh)), hi = vcvt_high_f32_f16(kh);
                for (int h = 0; h < G; h++) {
                    a0[h] = vfmaq_f32(a0[h], lo, vld1q_f32(qh + (size_t)h * n + i));
                    a1[h] = vfmaq_f32(a1[h], hi, vld1q_f32(qh + (size_t)h * n + i + 4));
                }
            }
            for (int h = 0; h < G; h++) {
                float r = vaddvq_f32(vaddq_f32(a0[h], a1[h]));
                for (int e = i; e < n; e++) r += er_fp16_to_fp32(k[e]) * qh[(size_t)h * n + e];
                out[(size_t)(h0 + h) * ldo + j] = r;
            }
        }
    }
}

/* G heads' outputs, a strip of 16 elements each, stay in registers across the rows; each V
 * vector converted once for all of them; every element's chain is axpy_f16_neon's. */
static void axpys_heads_neon(float *y, const void *const *v, const float *a, int lda, int g,
                             int m, int n) {
    enum { G_MAX = 4 };
    for (int h0 = 0; h0 < g; h0 += G_MAX) {
        const int G = g - h0 < G_MAX ? g - h0 : G_MAX;
        float *yh = y + (size_t)h0 * n;
        const float *ah = a + (size_t)h0 * lda;
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            float32x4_t acc[G_MAX][4];
            for (int h = 0; h < G; h++)
                for (int r = 0; r < 4; r++) acc[h][r] = vld1q_f32(yh + (size_t)h * n + i + 4 * r);
            for (int j = 0; j < m; j++) {
                const uint16_t *vj = (const uint16_t *)v[j] + i;
                const float16x8_t v0 = vreinterpretq_f16_u16(vld1q_u16(vj));
                const float16x8_t v1 = vreinterpretq_f16_u16(vld1q_u16(vj + 8));
                const float32x4_t f[4] = {vcvt_f32_f16(vget_low_f16(v0)), vcvt_high_f32_f16(v0),
                                          vcvt_f32_f16(vget_low_f16(v1)), vcvt_high_f32_f16(v1)};
                for (int h = 0; h < G; h++) {
                    const float ahj = ah[(size_t)h * lda + j];
                    for (int r = 0; r < 4; r++) acc[h][r] = vfmaq_n_f32(acc[h][r], f[r], ahj);
                }
            }
            for (int h = 0; h < G; h++)
                for (int r = 0; r < 4; r++) vst1q_f32(yh + (size_t)h * n + i + 4 * r, acc[h][r]);
        }
        for (int h = 0; h < G; h++)
            for (int j = 0; j < m; j++)
                axpy_f16_neon(yh + (size_t)h * n + i, (const uint16_t *)v[j] + i,
                              ah[(size_t)h * lda + j], n - i);
    }
}

static void to_f16_neon(const float *x, uint16_t *y, int n) {   /* round to nearest even */
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const float16x8_t h = vcombine_f16(vcvt_f16_f32(vld1q_f32(x + i)),
                                           vcvt_f16_f32(vld1q_f32(x + i + 4)));
        vst1q_u16(y + i, vreinterpretq_u16_f16(h));
    }
    for (; i < n; i++) y[i] = er_fp32_to_fp16(x[i]);
}
#endif

void er_fp32_to_fp16_row(const float *x, uint16_t *y, int n) {
#if defined(__x86_64__)
    if (have_f16c()) { to_f16_f16c(x, y, n); return; }
#elif defined(__aarch64__)
    to_f16_neon(x, y, n);
    return;
#endif
    for (int i = 0; i < n; i++) y[i] = er_fp32_to_fp16(x[i]);
}

void er_kv_store(void *dst, const float *src, int n, int kv_f32) {
    if (kv_f32) memcpy(dst, src, (size_t)n * sizeof(float));
    else er_fp32_to_fp16_row(src, dst, n);
}

float er_kv_dot(const void *k, const float *q, int n, int kv_f32) {
    float s = 0.0f;
    if (kv_f32) {
        const float *kf = k;
        for (int i = 0; i < n; i++) s += kf[i] * q[i];
        return s;
    }
#if defined(__x86_64__)
    if (have_f16c()) return dot_f16_f16c(k, q, n);
#elif defined(__aarch64__)
    return dot_f16_neon(k, q, n);
#endif
    const uint16_t *kh = k;
    for (int i = 0; i < n; i++) s += er_fp16_to_fp32(kh[i]) * q[i];
    return s;
}

void er_kv_axpy(float *y, const void *v, float a, int n, int kv_f32) {
    if (kv_f32) {
        const float *vf = v;
        for (int i = 0; i < n; i++) y[i] += a * vf[i];
        return;
    }
#if defined(__x86_64__)
    if (have_f16c()) { axpy_f16_f16c(y, v, a, n); return; }
#elif defined(__aarch64__)
    axpy_f16_neon(y, v, a, n);
    return;
#endif
    const uint16_t *vh = v;
    for (int i = 0; i < n; i++) y[i] += a * er_fp16_to_fp32(vh[i]);
}

void er_kv_dots(const void *const *k, int m, const float *q, int g, int n, int kv_f32,
                float *out, int ldo) {
#if defined(__x86_64__)
    if (!kv_f32 && have_f16c()) { dots_heads_f16c(k, m, q, g, n, out, ldo); return; }
#elif defined(__aarch64__)
    if (!kv_f32) { dots_heads_neon(k, m, q, g, n, out, ldo); return; }
#endif
    for (int h = 0; h < g; h++)
        for (int j = 0; j < m; j++)
            out[(size_t)h * ldo + j] = er_kv_dot(k[j], q + (size_t)h * n, n, kv_f32);
}

void er_kv_axpys(float *y, const void *const *v, const float *a, int lda, int g, int m, int n,
                 int kv_f32) {
#if defined(__x86_64__)
    if (!kv_f32 && have_f16c()) { axpys_heads_f16c(y, v, a, lda, g, m, n); return; }
#elif defined(__aarch64__)
    if (!kv_f32) { axpys_heads_neon(y, v, a, lda, g, m, n); return; }
#endif
    for (int h = 0; h < g; h++)
        for (int j = 0; j < m; j++)
            er_kv_axpy(y + (size_t)h * n, v[j], a[(size_t)h * lda + j], n, kv_f32);
}
