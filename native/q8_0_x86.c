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

/* lane i of a block's int32 dot holds values 4i..4i+3: group i % 4 (see block_q8_act) */
X86_INLINE __m256 x86_act_scales(const block_q8_act *b) {
    return _mm256_broadcast_ps((const __m128 *)b->d);
}

X86_INLINE __m256 x86_zero(void) { return _mm256_setzero_ps(); }

/* acc += dw * dx * dot, with the block's exact int32 lane sums in dot and the activation's
 * group scales in dx: a multiply and an fma per block, (dot * dw) * dx in every x86 path
 * (the prefill tile too), so they agree bit for bit. */
X86_INLINE __m256 x86_fma(__m256 acc, __m256i dot, __m256 dw, __m256 dx) {
    return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(dot), dw), dx, acc);
}

/* The prefill tiles skip the convert: for |n| < 2^22 the float whose bits are
 * X86_BIAS_BITS + n is exactly X86_BIAS + n, and fmsub(that, dw, X86_BIAS * dw) is n * dw
 * rounded once, as convert-then-multiply rounds it (X86_BIAS * dw is exact for an fp16 dw,
 * and the fma rounds the exact difference once): the same bits for every finite scale. A
 * lane sums four products, |n| <= 4 * 128 * 127, and the offset rides along in the integer
 * sum (VNNI starts its lanes from it; AVX2 adds it). A non-finite scale gives NaN here where
 * the convert may give Inf: either way the logits are not finite, which the caller refuses. */
#define X86_BIAS 12582912.0f          /* 1.5 * 2^23 */
#define X86_BIAS_BITS 0x4B400000

/* n consecutive blocks' fp16 scales as floats, and times X86_BIAS, for a prefill tile */
X86_INLINE void x86_scales(const block_q8_0 *w, int n, float *dw, float *cw) {
    for (int i = 0; i < n; i++) {
        dw[i] = _cvtsh_ss(w[i].d);
        cw[i] = dw[i] * X86_BIAS;
    }
}

/* A prefill tile reads its R consecutive rows block by block. The first tile over them also
 * sweeps the next row group (next: the R rows after them, NULL for none), R blocks' worth of
 * bytes per block it reads, so that group streams in behind the compute instead of on demand
 * (+7% for a 256-token prefill, -11% for a 6-token eval on the Xeon of docs/BENCHMARKS.md). */
X86_INLINE void x86_prefetch_rows(const block_q8_0 *next, int R, int b) {
    if (!next) return;
    const char *p = (const char *)(next + (size_t)b * R);
    for (int l = 0; l < R * (int)sizeof(block_q8_0); l += 64) __builtin_prefetch(p + l, 0, 3);
}

X86_INLINE float x86_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

X86_INLINE __m256i x86_load(const int8_t *qs) { return _mm256_loadu_si256((const __m256i *)qs); }

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

/* The largest |value| of each 128-bit half, in all four of its lanes. */
X86_INLINE __m256 x86_half_max(__m256 m) {
    m = _mm256_max_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm256_max_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(1, 0, 3, 2)));
}

__attribute__((target(X86_BASE)))
void er_quantize_row_act_avx2(const float *x, block_q8_act *y, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    for (int b = 0; b < n / QK8_0; b++, x += QK8_0) {
        __m256 v[4], a[4], bad = zero;
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            a[i] = _mm256_andnot_ps(sign, v[i]);
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(a[i], _mm256_set1_ps(INFINITY), _CMP_NLT_UQ));
        }
        if (_mm256_movemask_ps(bad)) {   /* NaN or Inf: see q8_0.h */
            _mm_storeu_ps(y[b].d, _mm_set1_ps(NAN));
            _mm256_storeu_si256((__m256i *)y[b].qs, _mm256_setzero_si256());
            continue;
        }
        /* values 0..7 and 16..23 hold groups 0 (low halves) and 1 (high); 8..15 and 24..31
         * groups 2 and 3 */
        __m256 d[2], id[2];
        for (int h = 0; h < 2; h++) {
            const __m256 amax = x86_half_max(_mm256_max_ps(a[h], a[h + 2]));
            d[h] = _mm256_div_ps(amax, _mm256_set1_ps(127.0f));
            id[h] = _mm256_and_ps(_mm256_cmp_ps(d[h], zero, _CMP_NEQ_OQ),
                                  _mm256_div_ps(_mm256_set1_ps(1.0f), d[h]));
        }
        __m128 dg[2];   /* (d0, d1, ..), (d2, d3, ..): one lane of each half */
        for (int h = 0; h < 2; h++)
            dg[h] = _mm_unpacklo_ps(_mm256_castps256_ps128(d[h]), _mm256_extractf128_ps(d[h], 1));
        _mm_storeu_ps(y[b].d, _mm_movelh_ps(dg[0], dg[1]));
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = x86_round_away(_mm256_mul_ps(v[i], id[i & 1]));
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
/* Prefill (five or more tokens) has its own tile. Per (row, token, block) the work is six
 * vector operations (sign, maddubs, madd, bias add, scale, fma; the bias add replaces a
 * convert and can run on a third port, see X86_BIAS), so what decides the speed is everything
 * else: here the fp16 scales of a row group are converted to floats once per call rather than
 * once per use (three operations each), the tile is PF_R rows x PF_T tokens (8 accumulators;
 * each pair re-reads its activation block and scales from L1 rather than the compiler holding
 * them in registers across rows, which spilled accumulators; 3 x 4, 2 x 3, 2 x 5 and 2 x 6
 * were 3-7% slower on a Xeon), and at most pf_tokens() tokens run per pass over the weights,
 * so their blocks stay in L2. Per (row, token) the result is madd_avx2's: the same bits. */
#define PF_R 2
#define PF_T 4
#define PF_MAX_TOKENS 64
#define PF_X_BYTES (192 * 1024)     /* activation blocks per pass: well inside a 512 KiB L2 */
#define PF_MAX_NB 1024              /* weight scales converted per row (4 KiB of stack each) */

static inline int pf_tokens(int nb) {
    const int fit = (int)(PF_X_BYTES / ((size_t)nb * sizeof(block_q8_act))) / PF_T * PF_T;
    return fit < PF_T ? PF_T : fit < PF_MAX_TOKENS ? fit : PF_MAX_TOKENS;
}

X86_INLINE void pf_tile(const block_q8_0 *w, const float *dw, const float *cw,
                        const block_q8_0 *next, const block_q8_act *x, float *y, int nb,
                        int ldy, const int R, const int T) {
    const __m256i ones = _mm256_set1_epi16(1), bias = _mm256_set1_epi32(X86_BIAS_BITS);
    __m256 acc[PF_R][PF_T];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) acc[i][j] = x86_zero();
    for (int b = 0; b < nb; b++) {
        x86_prefetch_rows(next, R, b);
        for (int i = 0; i < R; i++) {
            const __m256i wq = x86_load(w[(size_t)i * nb + b].qs), wa = _mm256_abs_epi8(wq);
            const __m256 sw = _mm256_broadcast_ss(dw + i * nb + b);
            const __m256 sc = _mm256_broadcast_ss(cw + i * nb + b);
            /* hide from the compiler that every row reads the same activations: kept in
             * registers across rows, they would push accumulators onto the stack */
            const block_q8_act *xb = x + b;
            __asm__ volatile("" : "+r"(xb));
            for (int j = 0; j < T; j++) {
                const block_q8_act *xj = xb + (size_t)j * nb;
                const __m256i xs = _mm256_sign_epi8(x86_load(xj->qs), wq);
                const __m256i dot = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_maddubs_epi16(wa, xs), ones), bias);
                acc[i][j] = _mm256_fmadd_ps(_mm256_fmsub_ps(_mm256_castsi256_ps(dot), sw, sc),
                                            x86_act_scales(xj), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) y[(size_t)j * ldy + i] = x86_hsum(acc[i][j]);
}

/* R rows (given scales) against n tokens: whole token groups, then the rest. */
X86_INLINE void pf_rows(const block_q8_0 *w, const float *dw, const float *cw,
                        const block_q8_0 *next, const block_q8_act *X, float *y, int nb, int n,
                        int ldy, const int R) {
    int t = 0;
    for (; t + PF_T <= n; t += PF_T)
        pf_tile(w, dw, cw, t ? NULL : next, X + (size_t)t * nb, y + (size_t)t * ldy, nb, ldy,
                R, PF_T);
    const block_q8_act *x = X + (size_t)t * nb;
    y += (size_t)t * ldy;
    next = t ? NULL : next;
    switch (n - t) {
    case 3: pf_tile(w, dw, cw, next, x, y, nb, ldy, R, 3); break;
    case 2: pf_tile(w, dw, cw, next, x, y, nb, ldy, R, 2); break;
    case 1: pf_tile(w, dw, cw, next, x, y, nb, ldy, R, 1); break;
    default: break;
    }
}

/* Rows [r0, r1) against nt >= 5 tokens (fewer take the short passes); 0 (nothing done) when
 * a row is too long for the scale buffer, and the general tile runs instead. */
__attribute__((target(X86_BASE)))
static int prefill_avx2(const block_q8_0 *W, const block_q8_act *X, float *Y, int k, int r0,
                        int r1, int nt, int ldy) {
    const int nb = k / QK8_0;
    if (nb > PF_MAX_NB) return 0;
    float dw[PF_R * PF_MAX_NB], cw[PF_R * PF_MAX_NB];
    const int step = pf_tokens(nb);
    for (int t0 = 0; t0 < nt; t0 += step) {
        const int n = nt - t0 < step ? nt - t0 : step;
        const block_q8_act *x = X + (size_t)t0 * nb;
        for (int r = r0; r < r1; r += PF_R) {
            const int m = r1 - r < PF_R ? r1 - r : PF_R;
            const block_q8_0 *w = W + (size_t)r * nb;
            float *y = Y + (size_t)t0 * ldy + r;
            const block_q8_0 *next = r + m < r1 ? w + (size_t)m * nb : NULL;
            x86_scales(w, m * nb, dw, cw);
            switch (m) {
            case 2: pf_rows(w, dw, cw, next, x, y, nb, n, ldy, 2); break;
            default: pf_rows(w, dw, cw, next, x, y, nb, n, ldy, 1); break;
            }
        }
    }
    return 1;
}
_Static_assert(PF_R == 2 && PF_T == 4, "prefill_avx2 dispatches tiles of 1..2 rows, 1..4 tokens");

#define KSUFFIX avx2
#define KATTR __attribute__((target(X86_BASE)))
#define KR 2
#define KT 4
#define KRV 4
#define K_LOAD_AHEAD 0
#define K_SHORT_ACC 6
#define K_PREFILL prefill_avx2

typedef struct { __m256i abs, sgn; } wvec_avx2;
typedef __m256i xvec_avx2;
typedef __m256 scale_avx2, xscale_avx2, acc_avx2;

X86_INLINE wvec_avx2 load_w_avx2(const block_q8_0 *b) {
    __m256i w = x86_load(b->qs);
    return (wvec_avx2){_mm256_abs_epi8(w), w};
}
X86_INLINE xvec_avx2 load_x_avx2(const block_q8_act *b) { return x86_load(b->qs); }
X86_INLINE xscale_avx2 act_scales_avx2(const block_q8_act *b) { return x86_act_scales(b); }
X86_INLINE scale_avx2 half_avx2(uint16_t d) { return x86_scale(d); }
X86_INLINE acc_avx2 zero_avx2(void) { return x86_zero(); }
X86_INLINE float hsum_avx2(acc_avx2 a) { return x86_hsum(a); }
X86_INLINE acc_avx2 madd_avx2(acc_avx2 acc, wvec_avx2 w, xvec_avx2 x, scale_avx2 dw, xscale_avx2 dx) {
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
#undef K_SHORT_ACC
#undef K_PREFILL

/* ---- AVX-512 VNNI prefill: two tokens per 512-bit register ---------------------------------
 * The template's 256-bit VNNI tile spends four vector operations per (row, token, block): the
 * dot, a convert, the scale multiply and the fma, all on the two ports that take 256-bit
 * vector work. Here a 512-bit register holds two tokens, one per half: each weight block is
 * broadcast to both halves, and the token pair's activations come from a copy of the pass's
 * activation blocks laid out pair by pair, with the VNNI bias (q8_0_vnni.inc, plus the
 * X86_BIAS offset that replaces the convert) and each token's group scales in lane order,
 * made once per pass instead of once per row. Three operations per (row, token pair, block)
 * remain. Each lane goes through the 256-bit path's float operations in the same order, and
 * each half is summed as x86_hsum sums a 256-bit accumulator: the same bits as every other
 * x86 path. */
#define X86_512 X86_BASE ",avx512f,avx512vl,avx512vnni"
#define X86_512_INLINE static inline __attribute__((always_inline, target(X86_512)))
#define PAIR_R 4              /* weight rows per tile */
#define PAIR_P 4              /* token pairs per tile: 16 accumulators of 32 registers */
#define PAIR_MAX 32     /* tokens per pass over the weights: at most 64 */
#define PAIR_X_BYTES (96 * 1024)   /* the pass's activation copy, on the stack; L2-resident */

typedef struct {
    int8_t q[2 * QK8_0];    /* the first token's quants, then the second's */
    int32_t bias[16];       /* X86_BIAS_BITS - 128 x each lane's four quants */
    float d[16];            /* the lanes' group scales: each token's four, twice */
} __attribute__((aligned(64))) act_pair;

/* Tokens t0 + 2p and t0 + 2p + 1 of X (the second absent past the last token: zeros, never
 * stored) into pairs[b * npairs + p] for every block b. */
X86_512_INLINE void pair_pack(const block_q8_act *X, int nb, int nt, int t0, int npairs,
                            act_pair *pairs) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int p = 0; p < npairs; p++) {
        const block_q8_act *a = X + (size_t)(t0 + 2 * p) * nb;
        const block_q8_act *b2 = t0 + 2 * p + 1 < nt ? a + nb : NULL;
        for (int b = 0; b < nb; b++) {
            act_pair *o = pairs + (size_t)b * npairs + p;
            const __m256i qa = x86_load(a[b].qs);
            const __m256i qb = b2 ? x86_load(b2[b].qs) : _mm256_setzero_si256();
            const __m256 da = x86_act_scales(a + b);
            const __m256 db = b2 ? x86_act_scales(b2 + b) : _mm256_setzero_ps();
            const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
            _mm512_store_si512(o->q, q);
            _mm512_store_si512(o->bias, _mm512_sub_epi32(_mm512_set1_epi32(X86_BIAS_BITS),
                               _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, q)));
            _mm512_store_ps(o->d, _mm512_castpd_ps(_mm512_insertf64x4(
                _mm512_castpd256_pd512(_mm256_castps_pd(da)), _mm256_castps_pd(db), 1)));
        }
    }
}

/* R rows (scales dw[i * nb + b]) x P pairs starting at pairs + p0; y[t * ldy + i] receives
 * row i . token t, t counted from the pass's first token; n is the pass's token count. */
X86_512_INLINE void pair_tile(const block_q8_0 *w, const float *dw, const float *cw,
                            const block_q8_0 *next, const act_pair *pairs,
                            int npairs, int p0, float *y, int nb, int ldy, int n,
                            const int R, const int P) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 acc[PAIR_R][PAIR_P];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < P; j++) acc[i][j] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m512i wv[PAIR_R];
        __m512 sw[PAIR_R], sc[PAIR_R];
        for (int i = 0; i < R; i++) {
            wv[i] = _mm512_xor_si512(_mm512_broadcast_i64x4(x86_load(w[(size_t)i * nb + b].qs)),
                                     flip);
            sw[i] = _mm512_set1_ps(dw[i * nb + b]);
            sc[i] = _mm512_set1_ps(cw[i * nb + b]);
        }
        x86_prefetch_rows(next, R, b);
        const act_pair *xb = pairs + (size_t)b * npairs + p0;
        for (int j = 0; j < P; j++) {
            const __m512i q = _mm512_load_si512(xb[j].q), bias = _mm512_load_si512(xb[j].bias);
            const __m512 dx = _mm512_load_ps(xb[j].d);
            for (int i = 0; i < R; i++) {
                const __m512i dot = _mm512_dpbusd_epi32(bias, wv[i], q);
                const __m512 t = _mm512_fmsub_ps(_mm512_castsi512_ps(dot), sw[i], sc[i]);
                acc[i][j] = _mm512_fmadd_ps(t, dx, acc[i][j]);
            }
        }
    }
    for (int j = 0; j < P; j++) {
        const int t = 2 * (p0 + j);
        for (int i = 0; i < R; i++) {
            const __m512d a = _mm512_castps_pd(acc[i][j]);
            y[(size_t)t * ldy + i] = x86_hsum(_mm256_castpd_ps(_mm512_castpd512_pd256(a)));
            if (t + 1 < n) {
                const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(a, 1));
                y[(size_t)(t + 1) * ldy + i] = x86_hsum(hi);
            }
        }
    }
}

/* R rows against all of a pass's pairs: whole pair groups, then the rest. */
X86_512_INLINE void pair_rows(const block_q8_0 *w, const float *dw, const float *cw,
                            const block_q8_0 *next, const act_pair *pairs,
                            int npairs, float *y, int nb, int ldy, int n, const int R) {
    int p = 0;
    for (; p + PAIR_P <= npairs; p += PAIR_P)
        pair_tile(w, dw, cw, p ? NULL : next, pairs, npairs, p, y, nb, ldy, n, R, PAIR_P);
    next = p ? NULL : next;
    switch (npairs - p) {
    case 3: pair_tile(w, dw, cw, next, pairs, npairs, p, y, nb, ldy, n, R, 3); break;
    case 2: pair_tile(w, dw, cw, next, pairs, npairs, p, y, nb, ldy, n, R, 2); break;
    case 1: pair_tile(w, dw, cw, next, pairs, npairs, p, y, nb, ldy, n, R, 1); break;
    default: break;
    }
}

/* Rows [r0, r1) against nt >= 5 tokens; 0 (nothing done) when two tokens' activations do not
 * fit the pass buffer, and the general tile runs instead. */
__attribute__((target(X86_512)))
static int prefill_avx512vnni(const block_q8_0 *W, const block_q8_act *X, float *Y, int k,
                              int r0, int r1, int nt, int ldy) {
    enum { CAP = PAIR_X_BYTES / sizeof(act_pair) };   /* the most blocks a row may have */
    const int nb = k / QK8_0, fit = CAP / nb;           /* pairs per pass */
    if (fit < 1) return 0;
    const int step = 2 * (fit < PAIR_MAX ? fit : PAIR_MAX);
    act_pair pairs[CAP];
    float dw[PAIR_R * CAP], cw[PAIR_R * CAP];
    for (int t0 = 0; t0 < nt; t0 += step) {
        const int n = nt - t0 < step ? nt - t0 : step, npairs = (n + 1) / 2;
        pair_pack(X, nb, nt, t0, npairs, pairs);
        for (int r = r0; r < r1; r += PAIR_R) {
            const int m = r1 - r < PAIR_R ? r1 - r : PAIR_R;
            const block_q8_0 *w = W + (size_t)r * nb;
            float *y = Y + (size_t)t0 * ldy + r;
            const block_q8_0 *next = r + m < r1 ? w + (size_t)m * nb : NULL;
            x86_scales(w, m * nb, dw, cw);
            switch (m) {
            case 4: pair_rows(w, dw, cw, next, pairs, npairs, y, nb, ldy, n, 4); break;
            case 3: pair_rows(w, dw, cw, next, pairs, npairs, y, nb, ldy, n, 3); break;
            case 2: pair_rows(w, dw, cw, next, pairs, npairs, y, nb, ldy, n, 2); break;
            default: pair_rows(w, dw, cw, next, pairs, npairs, y, nb, ldy, n, 1); break;
            }
        }
    }
    return 1;
}
_Static_assert(PAIR_R == 4 && PAIR_P == 4, "prefill_avx512vnni dispatches 1..4 rows, 1..4 pairs");

/* ---- AVX-512 VNNI (EVEX, 32 registers) ---------------------------------------------------- */
#define KSUFFIX avx512vnni
#define KATTR __attribute__((target(X86_512)))
#define KR 4
#define KT 4
#define KRV 4
#define K_LOAD_AHEAD 0
#define K_SHORT_ACC 12
#define VNNI_DPBUSD _mm256_dpbusd_epi32
#define K_PREFILL prefill_avx512vnni
#include "q8_0_vnni.inc"
#undef KSUFFIX
#undef KATTR
#undef KR
#undef KT
#undef KRV
#undef K_LOAD_AHEAD
#undef K_SHORT_ACC
#undef VNNI_DPBUSD
#undef K_PREFILL

/* ---- AVX-VNNI (VEX, 16 registers) --------------------------------------------------------- */
#if defined(ER_HAVE_AVXVNNI)
#define KSUFFIX avxvnni
#define KATTR __attribute__((target(X86_BASE ",avxvnni")))
#define KR 2
#define KT 4
#define KRV 4
#define K_LOAD_AHEAD 0
#define K_SHORT_ACC 6
#define VNNI_DPBUSD _mm256_dpbusd_avx_epi32
#include "q8_0_vnni.inc"
#undef KSUFFIX
#undef KATTR
#undef KR
#undef KT
#undef KRV
#undef K_LOAD_AHEAD
#undef K_SHORT_ACC
#undef VNNI_DPBUSD
#endif

#endif /* __x86_64__ */
