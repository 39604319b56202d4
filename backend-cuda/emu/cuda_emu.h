// CPU emulation of the CUDA C subset that backend-cuda's kernels use, for running the
// real kernel sources (kernels/*.cu) on a machine without a GPU (src/emu.rs compiles
// each family with g++ as `-include cuda_emu.h <family>.cu` plus cuda_emu_entry.h).
//
// Execution model:
// - The blocks of a grid run one after another on the launching OS thread.
// - The threads of a block are fibers (cooperative user-level threads, one stack
//   each) on that same OS thread. A fiber runs until it reaches a barrier
//   (__syncthreads, __syncwarp, or a warp collective) or returns; the scheduler then
//   runs the next one. A block barrier releases when every thread of the block that
//   has not exited waits at it; a warp barrier when every lane of its mask that has
//   not exited waits at it. A block whose threads wait at barriers that can never
//   release is reported as a deadlock (an error, not a hang).
// - `__shared__` variables are `static thread_local`: one copy per OS thread, and only
//   one block runs on an OS thread at a time, so each block sees its own storage
//   (uninitialised on the GPU; here it keeps the previous block's values, which a
//   correct kernel never reads). Launches on different OS threads (parallel tests)
//   do not share anything.
// - threadIdx is per fiber; blockIdx, blockDim, gridDim are per OS thread.
// - Atomics are plain read-modify-writes: only one fiber runs at a time.
// - Math functions map to the C library in float (rsqrtf = 1/sqrtf, __expf = expf,
//   __fdividef = a/b, ...): results differ from the GPU's in the last bits, as the
//   GPU's own intrinsics do from the correctly rounded values.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <type_traits>

using std::isfinite;
using std::isinf;
using std::isnan;

#ifndef __global__
#define __global__
#endif
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __align__(n) alignas(n)

// ------------------------------------------------------------------ vector types

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct uint3 {
    unsigned x, y, z;
};
struct alignas(8) float2 {
    float x, y;
};
struct float3 {
    float x, y, z;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(8) int2 {
    int x, y;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float3 make_float3(float a, float b, float c) { return {a, b, c}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline int2 make_int2(int a, int b) { return {a, b}; }
inline int4 make_int4(int a, int b, int c, int d) { return {a, b, c, d}; }

// ------------------------------------------------------------------ the scheduler state

namespace emu {

enum State : int { RUNNING = 0, AT_BLOCK = 1, AT_WARP = 2, DONE = 3 };

struct Fiber {
    void* sp;          // saved stack pointer while switched out
    uint3 tid;         // threadIdx
    unsigned linear;   // linear thread index in the block
    int state;
    unsigned mask;     // lanes of the warp barrier it waits at
    char* stack;
};

struct Warp {
    uint64_t slot[32]; // values exchanged by a collective
};

inline thread_local Fiber* current;
inline thread_local uint3 block_idx;
inline thread_local dim3 block_dim, grid_dim;
inline thread_local Warp* warps;

// Switch from the running fiber to the scheduler (defined in cuda_emu_entry.h).
inline void yield_to_scheduler();

inline void wait_block() {
    current->state = AT_BLOCK;
    yield_to_scheduler();
}

inline void wait_warp(unsigned mask) {
    current->state = AT_WARP;
    current->mask = mask;
    yield_to_scheduler();
}

inline unsigned lane() { return current->linear & 31u; }
inline unsigned warp() { return current->linear >> 5; }

template <class T>
inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "warp collectives on types of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof(T));
    return b;
}

template <class T>
inline T from_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof(T));
    return v;
}

// Every lane of `mask` publishes `v`; returns the value of lane `src` (a lane of the
// mask, else the caller's own value).
template <class T>
inline T exchange(unsigned mask, T v, unsigned src) {
    Warp& w = warps[warp()];
    const unsigned me = lane();
    w.slot[me] = to_bits(v);
    wait_warp(mask);
    const T r = (src < 32 && (mask >> src) & 1u) ? from_bits<T>(w.slot[src]) : v;
    wait_warp(mask); // nobody overwrites a slot before every lane has read
    return r;
}

} // namespace emu

#define threadIdx (::emu::current->tid)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)
static const int warpSize = 32;

// ------------------------------------------------------------------ synchronisation

inline void __syncthreads() { emu::wait_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::wait_warp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    const unsigned l = emu::lane(), w = (unsigned)width;
    return emu::exchange(mask, v, (l & ~(w - 1u)) | ((unsigned)src & (w - 1u)));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int m, int width = 32) {
    const unsigned l = emu::lane(), w = (unsigned)width, s = l ^ (unsigned)m;
    return emu::exchange(mask, v, (s / w == l / w) ? s : l);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
    const unsigned l = emu::lane(), w = (unsigned)width, s = l + d;
    return emu::exchange(mask, v, (s / w == l / w) ? s : l);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
    const unsigned l = emu::lane(), w = (unsigned)width;
    return emu::exchange(mask, v, (l % w >= d) ? l - d : l);
}

inline unsigned __ballot_sync(unsigned mask, int p) {
    emu::Warp& w = emu::warps[emu::warp()];
    w.slot[emu::lane()] = p != 0;
    emu::wait_warp(mask);
    unsigned r = 0;
    for (unsigned i = 0; i < 32; ++i)
        if (((mask >> i) & 1u) && w.slot[i]) r |= 1u << i;
    emu::wait_warp(mask);
    return r;
}
inline int __any_sync(unsigned mask, int p) { return __ballot_sync(mask, p) != 0; }
inline int __all_sync(unsigned mask, int p) {
    return (__ballot_sync(mask, p) & mask) == mask;
}
inline unsigned __activemask() { return 0xffffffffu; }

// ------------------------------------------------------------------ atomics

template <class T>
inline T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
    const T old = *p;
    *p = old < v ? v : old;
    return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
    const T old = *p;
    *p = v < old ? v : old;
    return old;
}
template <class T>
inline T atomicExch(T* p, T v) {
    const T old = *p;
    *p = v;
    return old;
}
template <class T>
inline T atomicCAS(T* p, T cmp, T v) {
    const T old = *p;
    if (old == cmp) *p = v;
    return old;
}

// ------------------------------------------------------------------ math and bits

template <class T>
inline T __ldg(const T* p) { return *p; }

inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }

// sin(πx), cos(πx) with exact zeros at the integers (resp. half-integers): the
// argument is reduced exactly to r ∈ [−1, 1] (x − 2·round(x/2)), the rest in double.
inline float sinpif(float x) {
    if (!isfinite(x)) return x - x;
    const float r = x - 2.0f * rintf(0.5f * x);
    if (r == 0.0f || r == 1.0f || r == -1.0f) return copysignf(0.0f, x);
    return (float)sin(3.14159265358979323846 * (double)r);
}
inline float cospif(float x) {
    if (!isfinite(x)) return x - x;
    const float r = fabsf(x - 2.0f * rintf(0.5f * x));
    if (r == 0.5f) return 0.0f;
    return (float)cos(3.14159265358979323846 * (double)r);
}
inline void sincospif(float x, float* s, float* c) {
    *s = sinpif(x);
    *c = cospif(x);
}

// CUDA's device min/max overloads.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

#define __trap() __builtin_trap()
