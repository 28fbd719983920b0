/* x86-64 Q8_0 kernels: AVX2, AVX-512 VNNI (256-bit VL form) and AVX-VNNI.
 *
 * Each is compiled with function-level target attributes, so this file builds with the
 * baseline flags and q8_0.c decides at run time which of them the CPU may call. */
#if defined(__x86_64__)
#include "q8_0.h"

#include <immintrin.h>
#include <math.h>

/* ---- shared by every x86 kernel (AVX2 + FMA + F16C is a subset of each target) --------- */

#define X86_BASE "avx2,fma,f16c"
#define X86_INLINE static inline __attribute__((always_inline, target(X86_BASE)))

X86_INLINE __m256 x86_scale(uint16_t d) { return _mm256_set1_ps(_cvtsh_ss(d)); }

X86_INLINE __m256 x86_zero(void) { return _mm256_setzero_ps(); }

/* acc += dw * dx * dot, with the block's exact int32 lane sums in dot: one fma per block.
 * (dot * dw) * dx rather than dot * (dw * dx): GCC turns a product of two broadcasts into a
 * scalar multiply plus a broadcast, one more uop per row x token pair. */
X86_INLINE __m256 x86_fma(__m256 acc, __m256i dot, __m256 dw, __m256 dx) {
    return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(dot), dw), dx, acc);
}

X86_INLINE float x86_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

X86_INLINE __m256i x86_load(const block_q8_0 *b) {
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* ---- activation quantization (every x86 kernel has AVX2) ------------------------------- */

/* round half away from zero, exactly as roundf: trunc, then step out where |frac| >= 0.5
 * (v - trunc(v) is exact, so no double rounding) */
X86_INLINE __m256i x86_round_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 absf = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    const __m256 far = _mm256_cmp_ps(absf, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_cvtps_epi32(_mm256_add_ps(t, _mm256_and_ps(far, step)));
}

__attribute__((target(X86_BASE)))
void er_quantize_row_q8_0_avx2(const float *x, block_q8_0 *y, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int b = 0; b < n / QK8_0; b++, x += QK8_0) {
        __m256 v[4], m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            const __m256 a = _mm256_andnot_ps(sign, v[i]);
            m = _mm256_max_ps(m, a);
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, _mm256_set1_ps(INFINITY), _CMP_NLT_UQ));
        }
        if (_mm256_movemask_ps(bad)) {   /* NaN or Inf: see q8_0.h */
            y[b].d = ER_FP16_NAN;
            _mm256_storeu_si256((__m256i *)y[b].qs, _mm256_setzero_si256());
            continue;
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float d = _mm_cvtss_f32(h) / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = er_fp32_to_fp16(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = x86_round_away(_mm256_mul_ps(v[i], vid));
        /* packs work per 128-bit lane: restore element order with one permute */
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]),
                                             _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)y[b].qs,
                            _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

/* ---- AVX2 --------------------------------------------------------------------------------
 * maddubs multiplies unsigned by signed bytes, so the weight sign moves onto the activation:
 * |w| * (x * sign(w)). |x| <= 127 keeps both the negation and the int16 pair sums exact. */
#define KSUFFIX avx2
#define KATTR __attribute__((target(X86_BASE)))
#define KR 2
#define KT 4
#define KRV 4
#define K_LOAD_AHEAD 0

typedef struct { __m256i abs, sgn; } wvec_avx2;
typedef __m256i xvec_avx2;
typedef __m256 scale_avx2, acc_avx2;

X86_INLINE wvec_avx2 load_w_avx2(const block_q8_0 *b) {
    __m256i w = x86_load(b);
    return (wvec_avx2){_mm256_abs_epi8(w), w};
}
X86_INLINE xvec_avx2 load_x_avx2(const block_q8_0 *b) { return x86_load(b); }
X86_INLINE scale_avx2 half_avx2(uint16_t d) { return x86_scale(d); }
X86_INLINE acc_avx2 zero_avx2(void) { return x86_zero(); }
X86_INLINE float hsum_avx2(acc_avx2 a) { return x86_hsum(a); }
X86_INLINE acc_avx2 madd_avx2(acc_avx2 acc, wvec_avx2 w, xvec_avx2 x, scale_avx2 dw, scale_avx2 dx) {
    __m256i p16 = _mm256_maddubs_epi16(w.abs, _mm256_sign_epi8(x, w.sgn));
    return x86_fma(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)), dw, dx);
}

#include "q8_0_tile.inc"
#undef KSUFFIX
#undef KATTR
#undef KR
#undef KT
#undef KRV
#undef K_LOAD_AHEAD

/* ---- AVX-512 VNNI (EVEX, 32 registers) ---------------------------------------------------- */
#define KSUFFIX avx512vnni
#define KATTR __attribute__((target(X86_BASE ",avx512f,avx512vl,avx512vnni")))
#define KR 4
#define KT 4
#define KRV 4
#define K_LOAD_AHEAD 0
#define VNNI_DPBUSD _mm256_dpbusd_epi32
#include "q8_0_vnni.inc"
#undef KSUFFIX
#undef KATTR
#undef KR
#undef KT
#undef KRV
#undef K_LOAD_AHEAD
#undef VNNI_DPBUSD

/* ---- AVX-VNNI (VEX, 16 registers) --------------------------------------------------------- */
#if defined(ER_HAVE_AVXVNNI)
#define KSUFFIX avxvnni
#define KATTR __attribute__((target(X86_BASE ",avxvnni")))
#define KR 2
#define KT 4
#define KRV 4
#define K_LOAD_AHEAD 0
#define VNNI_DPBUSD _mm256_dpbusd_avx_epi32
#include "q8_0_vnni.inc"
#undef KSUFFIX
#undef KATTR
#undef KR
#undef KT
#undef KRV
#undef K_LOAD_AHEAD
#undef VNNI_DPBUSD
#endif

#endif /* __x86_64__ */
