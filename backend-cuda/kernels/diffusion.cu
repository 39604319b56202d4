// Scheduler step (DDPM/DDIM), add_noise, guidance_combine (src/ops/diffusion.rs).
//
// All three are one pass over their buffers with a few flops per element: memory
// bound. Each has a scalar kernel and a `_vec4` one that moves 16-byte float4 words;
// the host picks `_vec4` only when every buffer address is 16-byte aligned (and, for
// add_noise, the per-sample length is a multiple of 4, so each sample starts on a
// word). The vec4 kernels do the last n mod 4 elements as scalars.
//
// Numerics as backend-cpu's src/diffusion.rs: the scheduler step's prediction-type
// algebra is folded on the host in f64 (x̂₀ = p·m + q·x; prev = a_m·m + a_x·x
// [+ c_x0·clamp(x̂₀)] [+ c_n·noise]), each coefficient rounded once to f32; inputs
// whose terms are absent are not read (x unless STEP_USE_X, noise unless STEP_NOISE),
// so a NaN there does not reach the output, as in the reference.
#include "common.cuh"

// Flags of the scheduler step.
#define STEP_X0_IS_M 1u  // prediction "sample": x̂₀ is the model output itself
#define STEP_USE_X 2u    // the sample enters x̂₀ or prev
#define STEP_CLIP 4u     // clamp x̂₀ to [−r, r] and add c_x0·x̂₀
#define STEP_NOISE 8u    // add c_n·noise
#define STEP_WRITE_X0 16u // write x̂₀ to pred_x0

struct StepCoefs {
    float p, q, a_m, a_x, c_x0, c_n, r;
    u32 flags;
};

// (prev, x̂₀) of one element; `x` and `nz` are only meaningful under their flags.
__device__ __forceinline__ float2 step_one(const StepCoefs& s, float m, float x, float nz) {
    float v = s.a_m * m;
    float x0 = m;
    if (s.flags & STEP_USE_X) {
        v += s.a_x * x;
        if (!(s.flags & STEP_X0_IS_M)) x0 = s.p * m + s.q * x;
    }
    if (s.flags & STEP_CLIP) {
        // comparisons, not fminf/fmaxf, so that a NaN x̂₀ stays NaN
        if (x0 > s.r) {
            x0 = s.r;
        } else if (x0 < -s.r) {
            x0 = -s.r;
        }
        v += s.c_x0 * x0;
    }
    if (s.flags & STEP_NOISE) v += s.c_n * nz;
    return make_float2(v, x0);
}

__device__ __forceinline__ void step_scalar(const float* __restrict__ m,
                                            const float* __restrict__ x,
                                            const float* __restrict__ nz,
                                            float* __restrict__ prev, float* __restrict__ px,
                                            u64 i, const StepCoefs& s) {
    const float xi = (s.flags & STEP_USE_X) ? x[i] : 0.0f;
    const float ni = (s.flags & STEP_NOISE) ? nz[i] : 0.0f;
    const float2 r = step_one(s, m[i], xi, ni);
    prev[i] = r.x;
    if (s.flags & STEP_WRITE_X0) px[i] = r.y;
}

#define STEP_PARAMS                                                                    \
    const float *__restrict__ m, const float *__restrict__ x,                          \
        const float *__restrict__ nz, float *__restrict__ prev, float *__restrict__ px, \
        u64 n, float p, float q, float a_m, float a_x, float c_x0, float c_n, float r,  \
        u32 flags

// One fused DDPM/DDIM update over n elements (see the file comment).
extern "C" __global__ void scheduler_step_f32(STEP_PARAMS) {
    const StepCoefs s = {p, q, a_m, a_x, c_x0, c_n, r, flags};
    GRID_STRIDE(i, n) step_scalar(m, x, nz, prev, px, i, s);
}

// The same with float4 words; every pointer 16-byte aligned (px, nz when used).
extern "C" __global__ void scheduler_step_vec4_f32(STEP_PARAMS) {
    const StepCoefs s = {p, q, a_m, a_x, c_x0, c_n, r, flags};
    const u64 words = n >> 2;
    const float4* m4 = reinterpret_cast<const float4*>(m);
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const float4* n4 = reinterpret_cast<const float4*>(nz);
    float4* prev4 = reinterpret_cast<float4*>(prev);
    float4* px4 = reinterpret_cast<float4*>(px);
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    GRID_STRIDE(i, words) {
        const float4 mv = m4[i];
        const float4 xv = (flags & STEP_USE_X) ? x4[i] : zero;
        const float4 nv = (flags & STEP_NOISE) ? n4[i] : zero;
        const float2 r0 = step_one(s, mv.x, xv.x, nv.x);
        const float2 r1 = step_one(s, mv.y, xv.y, nv.y);
        const float2 r2 = step_one(s, mv.z, xv.z, nv.z);
        const float2 r3 = step_one(s, mv.w, xv.w, nv.w);
        prev4[i] = make_float4(r0.x, r1.x, r2.x, r3.x);
        if (flags & STEP_WRITE_X0) px4[i] = make_float4(r0.y, r1.y, r2.y, r3.y);
    }
    // the last n mod 4 elements
    const u64 t = (words << 2) + (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n) step_scalar(m, x, nz, prev, px, t, s);
}

// ------------------------------------------------------------------ add_noise

// Samples per launch of add_noise: their coefficients travel as kernel parameters
// (2·256·4 = 2 KiB, well inside the 4 KiB parameter space), copied by the launch
// itself, so no host memory has to outlive the call and nothing waits.
#define NOISE_CHUNK 256

struct NoiseCoefs {
    float sa[NOISE_CHUNK];  // √ᾱ of each sample of the launch
    float sb[NOISE_CHUNK];  // √(1−ᾱ)
};

// out[s, j] = sa[s]·x0[s, j] + sb[s]·noise[s, j] for the samples s = blockIdx.y of this
// launch (the pointers start at its first sample), j < per.
extern "C" __global__ void add_noise_f32(const float* __restrict__ x0,
                                         const float* __restrict__ nz,
                                         float* __restrict__ out, u64 per, NoiseCoefs c) {
    const float a = c.sa[blockIdx.y], b = c.sb[blockIdx.y];
    const u64 base = (u64)blockIdx.y * per;
    GRID_STRIDE(j, per) {
        const u64 i = base + j;
        out[i] = a * x0[i] + b * nz[i];
    }
}

// The same with float4 words: per % 4 == 0 and every pointer 16-byte aligned.
extern "C" __global__ void add_noise_vec4_f32(const float* __restrict__ x0,
                                              const float* __restrict__ nz,
                                              float* __restrict__ out, u64 per,
                                              NoiseCoefs c) {
    const float a = c.sa[blockIdx.y], b = c.sb[blockIdx.y];
    const u64 words = per >> 2;
    const u64 base = (u64)blockIdx.y * words;
    const float4* x4 = reinterpret_cast<const float4*>(x0);
    const float4* n4 = reinterpret_cast<const float4*>(nz);
    float4* o4 = reinterpret_cast<float4*>(out);
    GRID_STRIDE(j, words) {
        const u64 i = base + j;
        const float4 xv = x4[i], nv = n4[i];
        o4[i] = make_float4(a * xv.x + b * nv.x, a * xv.y + b * nv.y, a * xv.z + b * nv.z,
                            a * xv.w + b * nv.w);
    }
}

// ------------------------------------------------------------------ guidance

// out = uncond + g·(cond − uncond)   (uncond and cond may be the same buffer)
extern "C" __global__ void guidance_combine_f32(const float* __restrict__ u,
                                                const float* __restrict__ c,
                                                float* __restrict__ out, float g, u64 n) {
    GRID_STRIDE(i, n) {
        const float ui = u[i];
        out[i] = ui + g * (c[i] - ui);
    }
}

// The same with float4 words; every pointer 16-byte aligned.
extern "C" __global__ void guidance_combine_vec4_f32(const float* __restrict__ u,
                                                     const float* __restrict__ c,
                                                     float* __restrict__ out, float g,
                                                     u64 n) {
    const u64 words = n >> 2;
    const float4* u4 = reinterpret_cast<const float4*>(u);
    const float4* c4 = reinterpret_cast<const float4*>(c);
    float4* o4 = reinterpret_cast<float4*>(out);
    GRID_STRIDE(i, words) {
        const float4 uv = u4[i], cv = c4[i];
        o4[i] = make_float4(uv.x + g * (cv.x - uv.x), uv.y + g * (cv.y - uv.y),
                            uv.z + g * (cv.z - uv.z), uv.w + g * (cv.w - uv.w));
    }
    const u64 t = (words << 2) + (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n) out[t] = u[t] + g * (c[t] - u[t]);
}
