/* Elementwise and small-vector operations of the Gemma 3 step (all f32 unless named). */
#ifndef ER_OPS_H
#define ER_OPS_H

#include <stdint.h>

/* GGML type ids the decoder accepts for weights. */
enum { ER_F32 = 0, ER_F16 = 1, ER_Q8_0 = 8, ER_BF16 = 30 };

void er_rmsnorm(const float *x, const float *w, float *y, int n, float eps);

/* cos/sin of pos * scale * base^(-2i/d) for i < d/2, computed as ggml does (iterated powers). */
void er_rope_angles(float *cs, float *sn, int pos, int d, float base, float scale);
/* NEOX rotation: pairs (x[i], x[i + d/2]). */
void er_rope_neox(float *x, const float *cs, const float *sn, int d);

/* gate[i] = gelu_tanh(gate[i]) * up[i], gelu read from an fp16-indexed table as llama.cpp
 * does (256 KiB, built on first use). */
void er_geglu(float *gate, const float *up, int n);

void er_softmax(float *x, int n);

/* Dense float weights (F32/F16/BF16): Y[t*ldy + r] = W[r] . X[t*k ..], rows [r0, r1). */
void er_gemm_float(const void *W, int type, const float *X, float *Y, int k,
                   int r0, int r1, int nt, int ldy);
/* One row of a float or Q8_0 matrix, dequantized to f32 (embedding lookup). */
void er_dequant_row(const void *W, int type, int row, int k, float *out);

/* Round a row to fp16 (nearest even, as ggml). */
void er_fp32_to_fp16_row(const float *x, uint16_t *y, int n);

/* KV rows: stored as f16 (kv_f32 = 0) or f32. */
void er_kv_store(void *dst, const float *src, int n, int kv_f32);
float er_kv_dot(const void *k, const float *q, int n, int kv_f32);
void er_kv_axpy(float *y, const void *v, float a, int n, int kv_f32);
/* The same for m rows at once, read once for the g query heads that share them (grouped-query
 * attention), bit for bit what the calls one row and one head at a time give: head h's query
 * is q + h * n and out[h * ldo + j] = er_kv_dot(k[j], q + h * n, ...); head h's output y + h * n
 * gets er_kv_axpy(y + h * n, v[j], a[h * lda + j], ...) for j = 0, 1, ... */
void er_kv_dots(const void *const *k, int m, const float *q, int g, int n, int kv_f32,
                float *out, int ldo);
void er_kv_axpys(float *y, const void *const *v, const float *a, int lda, int g, int m, int n,
                 int kv_f32);

#endif
