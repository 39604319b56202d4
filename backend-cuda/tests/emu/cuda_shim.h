// A minimal CUDA-on-CPU emulation for running backend-cuda's kernels without a GPU
// (tests/emulate_kernels.rs): the kernel sources are compiled as C++ against this
// header, and `launch` runs a grid with one cooperative fiber per CUDA thread on one
// OS thread. Blocks run one after another, so a function-local `static` stands in for
// __shared__; __syncthreads is a block barrier and __shfl_xor_sync exchanges through a
// per-warp buffer between two warp barriers (a deadlock, e.g. a barrier not reached by
// every thread, is detected and aborts). Floating point is the host's: the __f*_rn
// intrinsics round as written, sqrtf/logf are the C library's, sincospif goes through
// double. What this checks: indexing, bounds, synchronisation, reduction structure and
// formulas. What it cannot: the GPU's memory model, timing, and the device's own
// math-library rounding (the conformance suite on a GPU does).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <cstdio>
#include <cstdlib>
#include <setjmp.h>
#include <ucontext.h>

using std::isfinite;
using std::isinf;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

struct dim3s { unsigned x = 1, y = 1, z = 1; };
inline dim3s threadIdx, blockIdx;
inline dim3s blockDim, gridDim;

struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline float2 make_float2(float a, float b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline void sincospif(float x, float* s, float* c) {
    const double a = M_PI * (double)x;
    *s = (float)std::sin(a);
    *c = (float)std::cos(a);
}

// ------------------------------------------------------------------ fibers
//
// A fiber starts with makecontext/swapcontext; after that every switch is a
// _setjmp/_longjmp pair (no signal-mask system calls).

struct Fiber {
    ucontext_t ctx;
    jmp_buf jb;
    char* stack = nullptr;
    dim3s tid;
    bool done = false, started = false;
};
constexpr size_t FIBER_STACK = 128 * 1024;
inline std::vector<Fiber> g_fibers;
inline ucontext_t g_sched;
inline jmp_buf g_sched_jb;
inline Fiber* g_cur = nullptr;
inline bool g_progress = false;

inline void fiber_yield() {
    if (!_setjmp(g_cur->jb)) _longjmp(g_sched_jb, 1);
}

// Waits until `expected` fibers have arrived (one phase per round).
struct Barrier {
    unsigned expected = 0, arrived = 0, phase = 0;
    void wait() {
        const unsigned my = phase;
        if (++arrived == expected) {
            arrived = 0;
            ++phase;
            g_progress = true;
            return;
        }
        while (phase == my) fiber_yield();
    }
};

struct BlockSync {
    Barrier block;
    std::vector<Barrier> warp;
    std::vector<std::array<uint64_t, 32>> buf;
};
inline BlockSync* g_sync = nullptr;

inline void __syncthreads() { g_sync->block.wait(); }

// Every lane of the warp must take part (as the kernels' full masks promise).
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int o) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    const unsigned lin = threadIdx.x + threadIdx.y * blockDim.x;
    const unsigned w = lin / 32, lane = lin % 32;
    Barrier& b = g_sync->warp[w];
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    g_sync->buf[w][lane] = bits;
    b.wait();
    const uint64_t got = g_sync->buf[w][lane ^ (unsigned)o];
    b.wait();
    T r;
    std::memcpy(&r, &got, sizeof(T));
    return r;
}

inline const std::function<void()>* g_kernel = nullptr;

inline void fiber_main() {
    (*g_kernel)();
    g_cur->done = true;
    g_progress = true;
    _longjmp(g_sched_jb, 1);
}

// Runs `kernel` (a closure calling the kernel function) over grid.x blocks of
// block.x × block.y threads, one block after another.
inline void launch(dim3s grid, dim3s block, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = block;
    g_kernel = &kernel;
    const unsigned nt = block.x * block.y;
    if (nt == 0 || nt % 32 != 0 || grid.x == 0) {
        fprintf(stderr, "launch: empty grid or a block that is not whole warps\n");
        exit(3);
    }
    if (g_fibers.size() < nt) {
        const size_t old = g_fibers.size();
        g_fibers.resize(nt);
        for (size_t i = old; i < nt; ++i) g_fibers[i].stack = (char*)malloc(FIBER_STACK);
    }
    for (unsigned bx = 0; bx < grid.x; ++bx) {
        BlockSync s;
        s.block.expected = nt;
        s.warp.resize(nt / 32);
        for (Barrier& w : s.warp) w.expected = 32;
        s.buf.resize(nt / 32);
        g_sync = &s;
        blockIdx = {bx, 0, 0};
        for (unsigned i = 0; i < nt; ++i) {
            Fiber& f = g_fibers[i];
            f.done = false;
            f.started = false;
            f.tid = {i % block.x, i / block.x, 0};
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = f.stack;
            f.ctx.uc_stack.ss_size = FIBER_STACK;
            f.ctx.uc_link = nullptr;
            makecontext(&f.ctx, fiber_main, 0);
        }
        for (;;) {
            bool all_done = true;
            g_progress = false;
            for (unsigned i = 0; i < nt; ++i) {
                Fiber& f = g_fibers[i];
                if (f.done) continue;
                all_done = false;
                g_cur = &f;
                threadIdx = f.tid;
                if (!_setjmp(g_sched_jb)) {
                    if (!f.started) {
                        f.started = true;
                        swapcontext(&g_sched, &f.ctx);
                    } else {
                        _longjmp(f.jb, 1);
                    }
                }
            }
            if (all_done) break;
            if (!g_progress) {
                fprintf(stderr, "launch: deadlock in block %u (a barrier not every thread reaches)\n", bx);
                exit(4);
            }
        }
        g_sync = nullptr;
    }
}

// ------------------------------------------------------------------ test helpers

inline int g_fails = 0;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            if (++g_fails <= 20) {                                        \
                printf("FAIL %s:%d: ", __FILE__, __LINE__);               \
                printf(__VA_ARGS__);                                      \
                printf("\n");                                             \
            }                                                             \
        }                                                                 \
    } while (0)

// xorshift32 in [-1, 1).
inline uint32_t g_rng = 0x9e3779b9u;
inline double rnd() {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return (g_rng & 0xffffff) / 8388608.0 - 1.0;
}

// A 64-byte aligned buffer of n floats shifted by `shift` floats (shift 1 misaligns
// it for float4), followed by 16 sentinel values (-9) to catch overruns.
inline float* buffer(size_t n, int shift) {
    float* p = (float*)aligned_alloc(64, ((n + 32) * 4 + 63) / 64 * 64);
    for (size_t i = 0; i < n + 32; ++i) p[i] = -9.0f;
    return p + shift;
}

inline bool same_bits(float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, 4) == 0;
}
