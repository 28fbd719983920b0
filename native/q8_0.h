/* Q8_0: the GGUF block layout (fp16 scale + 32 int8 = 34 bytes) and its dot-product kernels.
 *
 * Shape legend for the kernels:  k = values per row (a multiple of 32), nb = k / 32 blocks,
 * W = weight rows (packed, straight from the mapping), X = nt activation rows quantized to
 * activation blocks (below), Y[t * ldy + r] = dot(W[r], X[t]).
 */
#ifndef ER_Q8_0_H
#define ER_Q8_0_H

#include <stddef.h>
#include <stdint.h>

#define QK8_0 32

typedef struct {
    uint16_t d;          /* fp16 scale */
    int8_t qs[QK8_0];
} block_q8_0;

_Static_assert(sizeof(block_q8_0) == 34, "Q8_0 block must match the GGUF layout");

/* An activation block: 32 int8 in four groups of eight, each group with its own f32 scale.
 * Group g holds values 4g..4g+3 and 16+4g..19+4g -- the products every kernel sums into one
 * int32 lane (on x86 two lanes, g and g + 4) -- so its scales enter as a vector where one
 * scale per block entered as a broadcast, at no extra arithmetic on x86 or with dot products
 * on ARM. Rounding activations is nearly all of the logit error against exact arithmetic, and
 * groups of eight cut it to ~0.6x Q8_0's one scale per 32 (docs/PARITY.md). */
#define ER_ACT_GROUPS 4

typedef struct {
    float d[ER_ACT_GROUPS];
    int8_t qs[QK8_0];
} block_q8_act;

_Static_assert(sizeof(block_q8_act) == 48, "activation blocks are 16-byte multiples");

float er_fp16_to_fp32(uint16_t h);
uint16_t er_fp32_to_fp16(float f);           /* round to nearest even, as ggml */
float er_bf16_to_fp32(uint16_t h);

/* Activation quantization, per group as llama.cpp's Q8_0 reference does it per block:
 * d = amax / 127 (kept f32), q = round(x * (1 / d)) half away from zero. n is a multiple of 32.
 * A block holding NaN or Inf gets every d = NaN (and q = 0) on every path, so the dot
 * products, and the logits, say so. */
void er_quantize_row_act(const float *x, block_q8_act *y, int n);
#if defined(__x86_64__)
void er_quantize_row_act_avx2(const float *x, block_q8_act *y, int n);
#endif

/* The hot function: rows [r0, r1) of W against all nt rows of X.
 * W may hold any int8; X must come from er_quantize_row_act (|q| <= 127), which the
 * AVX2 and plain-NEON kernels rely on to keep their int16 pair sums from saturating. */
typedef void (*er_q8_0_gemm_fn)(const block_q8_0 *W, const block_q8_act *X, float *Y,
                                int k, int r0, int r1, int nt, int ldy);

/* Constrained decoding: y[i] = W[rows[i]] . x (one token) for i < n; rows need not be sorted
 * or distinct. Each y[i] is bit for bit what the same kernel's gemm gives for that row. */
typedef void (*er_q8_0_gemv_rows_fn)(const block_q8_0 *W, const int32_t *rows, int n,
                                     const block_q8_act *x, float *y, int k);

typedef struct {
    const char *name;    /* "scalar", "avx2", "avx512vnni", "avxvnni", "neon", "neon_dotprod" */
    er_q8_0_gemm_fn gemm;
    er_q8_0_gemv_rows_fn gemv_rows;
    void (*quantize)(const float *x, block_q8_act *y, int n);   /* same bytes as the reference */
} er_q8_0_kernel;

/* The kernels this CPU can run, best last; *n receives the count. "scalar" is always first. */
const er_q8_0_kernel *er_q8_0_kernels(int *n);

/* The kernel to use: ER_KERNEL=<name> forces one (NULL if it is unknown or unsupported here),
 * otherwise the best available. */
const er_q8_0_kernel *er_q8_0_select(void);

/* The readable definition every fast kernel is tested against. */
void er_q8_0_gemm_scalar(const block_q8_0 *W, const block_q8_act *X, float *Y,
                         int k, int r0, int r1, int nt, int ldy);
void er_q8_0_gemv_rows_scalar(const block_q8_0 *W, const int32_t *rows, int n,
                              const block_q8_act *x, float *y, int k);

/* ISA kernels: each is defined only on its architecture (q8_0_x86.c, q8_0_arm.c) and
 * offered by er_q8_0_kernels only when the CPU and OS support it. */
#define ER_GEMM_DECL(isa)                                                                        \
    void er_q8_0_gemm_##isa(const block_q8_0 *W, const block_q8_act *X, float *Y, int k,       \
                            int r0, int r1, int nt, int ldy);                                   \
    void er_q8_0_gemv_rows_##isa(const block_q8_0 *W, const int32_t *rows, int n,              \
                                 const block_q8_act *x, float *y, int k)
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 12) || \
                             (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define ER_HAVE_AVXVNNI 1   /* the compiler knows the VEX-encoded VNNI (Alder Lake, Zen 5) */
#endif
#if defined(__x86_64__)
ER_GEMM_DECL(avx2);
ER_GEMM_DECL(avx512vnni);
#if defined(ER_HAVE_AVXVNNI)
ER_GEMM_DECL(avxvnni);
#endif
#elif defined(__aarch64__)
ER_GEMM_DECL(neon);
ER_GEMM_DECL(neon_dotprod);
#elif defined(__arm__)
ER_GEMM_DECL(neon);
#endif
#undef ER_GEMM_DECL

#endif
