/* ARM Q8_0 kernels: plain NEON (Cortex-A53/A72, and 32-bit ARMv7 with NEON) and the ARMv8.2
 * dot-product extension (Cortex-A55/A76). Compiled with function-level target attributes;
 * q8_0.c offers them only when AT_HWCAP says the CPU has them. */
#if defined(__aarch64__) || defined(__arm__)
#include "q8_0.h"

#include <arm_neon.h>
#include <string.h>

/* NEON is baseline on AArch64; a 32-bit build (Debian armhf: VFPv3-D16) must ask for it. */
#if defined(__aarch64__)
#define ARM_ATTR
#else
#define ARM_ATTR __attribute__((target("fpu=neon")))
#endif
#define ARM_INLINE static inline ARM_ATTR __attribute__((always_inline))

typedef int8x16x2_t arm_block;

ARM_INLINE arm_block arm_load(const int8_t *qs) {
    return (arm_block){{vld1q_s8(qs), vld1q_s8(qs + 16)}};
}

/* lane g of a block's int32 dot holds group g (see block_q8_act) */
ARM_INLINE float32x4_t arm_act_scales(const block_q8_act *b) { return vld1q_f32(b->d); }

ARM_INLINE float arm_half(uint16_t d) {
#if defined(__aarch64__)
    __fp16 h;                              /* one fcvt; AArch64 always has IEEE half */
    memcpy(&h, &d, sizeof h);
    return (float)h;
#else
    return er_fp16_to_fp32(d);
#endif
}

/* acc += dw * dx * dot, the block's exact int32 group sums in dot and the activation's group
 * scales in dx: a multiply and a multiply-add per block. */
ARM_INLINE float32x4_t arm_fma(float32x4_t acc, int32x4_t dot, float dw, float32x4_t dx) {
#if defined(__aarch64__)
    return vfmaq_f32(acc, vcvtq_f32_s32(dot), vmulq_n_f32(dx, dw));
#else
    return vmlaq_f32(acc, vcvtq_f32_s32(dot), vmulq_n_f32(dx, dw));
#endif
}

ARM_INLINE float arm_hsum(float32x4_t v) {
#if defined(__aarch64__)
    return vaddvq_f32(v);
#else
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
#endif
}

/* ---- NEON: widening multiplies. |x| <= 127 bounds each product by 127 * 128, so two of
 * them (values k and 16 + k) still fit int16 before the pairwise widening into int32; one
 * more pairwise add gathers each group's eight into its lane. */
#define KSUFFIX neon
#define KATTR ARM_ATTR
#define KR 4
#define KT 2
#if defined(__aarch64__)   /* 32 vector registers: four rows, each loaded a block ahead */
#define KRV 4
#define K_LOAD_AHEAD 1
#define K_SHORT_ACC 8
#else                      /* 16: two rows, no second set of blocks, or the loop spills */
#define KRV 2
#define K_LOAD_AHEAD 0
#define K_SHORT_ACC 4
#endif

typedef arm_block wvec_neon, xvec_neon;
typedef float scale_neon;
typedef float32x4_t xscale_neon, acc_neon;

ARM_INLINE wvec_neon load_w_neon(const block_q8_0 *b) { return arm_load(b->qs); }
ARM_INLINE xvec_neon load_x_neon(const block_q8_act *b) { return arm_load(b->qs); }
ARM_INLINE xscale_neon act_scales_neon(const block_q8_act *b) { return arm_act_scales(b); }
ARM_INLINE scale_neon half_neon(uint16_t d) { return arm_half(d); }
ARM_INLINE acc_neon zero_neon(void) { return vdupq_n_f32(0.0f); }
ARM_INLINE float hsum_neon(acc_neon a) { return arm_hsum(a); }

/* int16 lane k: the products of values h + k and 16 + h + k (h = 0 or 8) */
ARM_INLINE int16x8_t neon_dot16(int8x8_t w0, int8x8_t x0, int8x8_t w1, int8x8_t x1) {
    return vmlal_s8(vmull_s8(w0, x0), w1, x1);
}
ARM_INLINE acc_neon madd_neon(acc_neon acc, wvec_neon w, xvec_neon x, float dw, float32x4_t dx) {
    const int32x4_t lo = vpaddlq_s16(neon_dot16(vget_low_s8(w.val[0]), vget_low_s8(x.val[0]),
                                                 vget_low_s8(w.val[1]), vget_low_s8(x.val[1])));
    const int32x4_t hi = vpaddlq_s16(neon_dot16(vget_high_s8(w.val[0]), vget_high_s8(x.val[0]),
                                                 vget_high_s8(w.val[1]), vget_high_s8(x.val[1])));
#if defined(__aarch64__)
    const int32x4_t dot = vpaddq_s32(lo, hi);
#else
    const int32x4_t dot = vcombine_s32(vpadd_s32(vget_low_s32(lo), vget_high_s32(lo)),
                                       vpadd_s32(vget_low_s32(hi), vget_high_s32(hi)));
#endif
    return arm_fma(acc, dot, dw, dx);
}

#include "q8_0_tile.inc"
#undef KSUFFIX
#undef KATTR
#undef KR
#undef KT
#undef KRV
#undef K_LOAD_AHEAD
#undef K_SHORT_ACC

/* ---- NEON dot product (sdot): four int8 products summed straight into each int32 lane. */
#if defined(__aarch64__)
#define KSUFFIX neon_dotprod
#define KATTR __attribute__((target("arch=armv8.2-a+dotprod")))
#define KR 4
#define KT 4
#define KRV 4
#define K_LOAD_AHEAD 1
#define K_SHORT_ACC 8
#define DP_INLINE static inline KATTR __attribute__((always_inline))

typedef arm_block wvec_neon_dotprod, xvec_neon_dotprod;
typedef float scale_neon_dotprod;
typedef float32x4_t xscale_neon_dotprod, acc_neon_dotprod;

DP_INLINE wvec_neon_dotprod load_w_neon_dotprod(const block_q8_0 *b) { return arm_load(b->qs); }
DP_INLINE xvec_neon_dotprod load_x_neon_dotprod(const block_q8_act *b) { return arm_load(b->qs); }
DP_INLINE xscale_neon_dotprod act_scales_neon_dotprod(const block_q8_act *b) {
    return arm_act_scales(b);
}
DP_INLINE scale_neon_dotprod half_neon_dotprod(uint16_t d) { return arm_half(d); }
DP_INLINE acc_neon_dotprod zero_neon_dotprod(void) { return vdupq_n_f32(0.0f); }
DP_INLINE float hsum_neon_dotprod(acc_neon_dotprod a) { return arm_hsum(a); }
DP_INLINE acc_neon_dotprod madd_neon_dotprod(acc_neon_dotprod acc, wvec_neon_dotprod w,
                                             xvec_neon_dotprod x, float dw, float32x4_t dx) {
    int32x4_t dot = vdotq_s32(vdupq_n_s32(0), w.val[0], x.val[0]);
    return arm_fma(acc, vdotq_s32(dot, w.val[1], x.val[1]), dw, dx);
}

#include "q8_0_tile.inc"
#undef DP_INLINE
#undef KSUFFIX
#undef KATTR
#undef KR
#undef KT
#undef KRV
#undef K_LOAD_AHEAD
#undef K_SHORT_ACC
#endif /* __aarch64__ */

#endif /* __aarch64__ || __arm__ */
