#include "ops.h"

#include <math.h>
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

static inline float round_f16(float x) { return er_fp16_to_fp32(er_fp32_to_fp16(x)); }

void er_geglu(float *gate, const float *up, int n) {
    const float c = 0.79788456080286535588f;  /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        const float x = gate[i];
        float g;
        if (x <= -10.0f) g = 0.0f;
        else if (x >= 10.0f) g = x;
        else {
            /* llama.cpp reads gelu from an fp16 table: round input and output to fp16 too */
            const float h = round_f16(x);
            g = round_f16(0.5f * h * (1.0f + tanhf(c * h * (1.0f + 0.044715f * h * h))));
        }
        gate[i] = g * up[i];
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
__attribute__((target("avx2,fma,f16c")))
static float dot_f16_f16c(const uint16_t *k, const float *q, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))),
                              _mm256_loadu_ps(q + i), acc);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    float r = _mm_cvtss_f32(s);
    for (; i < n; i++) r += er_fp16_to_fp32(k[i]) * q[i];
    return r;
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

static int have_f16c(void) {
    static int cached = -1;
    if (cached < 0) cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                             __builtin_cpu_supports("f16c");
    return cached;
}
#endif

void er_kv_store(void *dst, const float *src, int n, int kv_f32) {
    if (kv_f32) { memcpy(dst, src, (size_t)n * sizeof(float)); return; }
    uint16_t *d = dst;
    for (int i = 0; i < n; i++) d[i] = er_fp32_to_fp16(src[i]);
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
#endif
    const uint16_t *vh = v;
    for (int i = 0; i < n; i++) y[i] += a * er_fp16_to_fp32(vh[i]);
}
