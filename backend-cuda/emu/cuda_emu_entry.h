// The launch entry of one emulated kernel family (see cuda_emu.h): included after the
// family's source, with EMU_KERNELS(X) defined as X(name) for each of its
// `extern "C" __global__` kernels (src/emu.rs finds them in the preprocessed source).
//
// extern "C" int brain_emu_launch(name, dims, args, sizes, nargs, err, err_len):
//   dims = grid x, y, z, block x, y, z, dynamic shared bytes; args = cuLaunchKernel's
//   array of pointers to the argument values; sizes = the byte size of each as the
//   caller pushed it. Returns 0, or non-zero with a message in err: unknown kernel,
//   wrong argument count or size (a kernel/host mismatch), bad launch dimensions, or a
//   deadlock at a barrier.
#pragma once

#include <stdio.h>
#include <stdlib.h>

#include <tuple>
#include <utility>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace emu {

constexpr size_t STACK_BYTES = 256 * 1024;

struct Scheduler {
    void* main_sp = nullptr;
    std::vector<Fiber> fibers;
    std::vector<char*> stacks; // reused across blocks and launches on this OS thread
    std::vector<Warp> warp_slots;
    void (*body)(void*) = nullptr;
    void* body_ctx = nullptr;
#if !defined(__x86_64__)
    ucontext_t main_ctx;
    std::vector<ucontext_t> ctxs;
#endif
};

inline thread_local Scheduler* sched;

#if defined(__x86_64__)
// switch_stack(&save, next): push the callee-saved registers, store the stack pointer
// in *save, load `next`, pop and return into whatever that stack was switched out at.
extern "C" void brain_emu_switch(void** save, void* next);
asm(R"(
    .text
    .p2align 4
    .hidden brain_emu_switch
    .globl brain_emu_switch
    .type brain_emu_switch,@function
brain_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size brain_emu_switch, .-brain_emu_switch
)");
#endif

[[noreturn]] inline void fiber_main() {
    sched->body(sched->body_ctx);
    current->state = DONE;
    yield_to_scheduler();
    __builtin_trap(); // a finished fiber is never resumed
}

#if defined(__x86_64__)
inline void yield_to_scheduler() { brain_emu_switch(&current->sp, sched->main_sp); }

inline void start_fiber(Fiber& f) {
    // A fresh stack that "returns" into fiber_main with the ABI's alignment: the
    // return-address slot at a 16-byte boundary (rsp ≡ 8 mod 16 at entry).
    uintptr_t top = ((uintptr_t)(f.stack + STACK_BYTES)) & ~(uintptr_t)15;
    void** sp = (void**)top;
    *--sp = nullptr;                 // fiber_main's (never used) return address
    *--sp = (void*)&fiber_main;      // where the first switch returns to
    for (int i = 0; i < 6; ++i) *--sp = nullptr; // rbp rbx r12 r13 r14 r15
    --sp;                            // mxcsr and x87 control word
    uint32_t mxcsr;
    uint16_t fpcw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpcw));
    memcpy((char*)sp, &mxcsr, 4);
    memcpy((char*)sp + 4, &fpcw, 2);
    f.sp = sp;
}

inline void resume(Fiber& f) { brain_emu_switch(&sched->main_sp, f.sp); }
#else
inline void yield_to_scheduler() {
    Scheduler& s = *sched;
    swapcontext(&s.ctxs[current->linear], &s.main_ctx);
}

extern "C" inline void brain_emu_fiber_start() { fiber_main(); }

inline void start_fiber(Fiber& f) {
    Scheduler& s = *sched;
    ucontext_t& c = s.ctxs[f.linear];
    getcontext(&c);
    c.uc_stack.ss_sp = f.stack;
    c.uc_stack.ss_size = STACK_BYTES;
    c.uc_link = nullptr;
    makecontext(&c, (void (*)())brain_emu_fiber_start, 0);
}

inline void resume(Fiber& f) { swapcontext(&sched->main_ctx, &sched->ctxs[f.linear]); }
#endif

// Run one block to completion; false (with a message) on a deadlock.
inline bool run_block(unsigned nt, char* err, size_t err_len) {
    Scheduler& s = *sched;
    const dim3 b = block_dim;
    for (unsigned t = 0; t < nt; ++t) {
        Fiber& f = s.fibers[t];
        f.linear = t;
        f.tid = {t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
        f.state = RUNNING;
        f.mask = 0;
        f.stack = s.stacks[t];
        start_fiber(f);
    }
    const unsigned nwarps = (nt + 31) / 32;
    unsigned live = nt;
    while (live > 0) {
        for (unsigned t = 0; t < nt; ++t) {
            Fiber& f = s.fibers[t];
            if (f.state != RUNNING) continue;
            current = &f;
            resume(f);
            current = nullptr;
            if (f.state == DONE) --live;
        }
        if (live == 0) break;
        // Everyone is waiting or done: release what can be released.
        bool released = false;
        for (unsigned w = 0; w < nwarps; ++w) {
            const unsigned first = w * 32, last = first + 32 < nt ? first + 32 : nt;
            bool any = false, ready = true;
            for (unsigned t = first; t < last && ready; ++t) {
                const Fiber& f = s.fibers[t];
                if (f.state != AT_WARP) continue;
                any = true;
                for (unsigned l = 0; l < 32; ++l) {
                    if (!((f.mask >> l) & 1u)) continue;
                    const unsigned u = first + l;
                    if (u < nt && s.fibers[u].state != AT_WARP && s.fibers[u].state != DONE) {
                        ready = false;
                        break;
                    }
                }
            }
            if (any && ready) {
                for (unsigned t = first; t < last; ++t)
                    if (s.fibers[t].state == AT_WARP) s.fibers[t].state = RUNNING;
                released = true;
            }
        }
        if (!released) {
            bool all_block = true;
            for (unsigned t = 0; t < nt; ++t) {
                const int st = s.fibers[t].state;
                if (st != AT_BLOCK && st != DONE) all_block = false;
            }
            if (all_block) {
                for (unsigned t = 0; t < nt; ++t)
                    if (s.fibers[t].state == AT_BLOCK) s.fibers[t].state = RUNNING;
                released = true;
            }
        }
        if (!released) {
            unsigned at_block = 0, at_warp = 0;
            for (unsigned t = 0; t < nt; ++t) {
                at_block += s.fibers[t].state == AT_BLOCK;
                at_warp += s.fibers[t].state == AT_WARP;
            }
            snprintf(err, err_len,
                     "deadlock in block (%u, %u, %u): %u thread(s) at __syncthreads, %u at a "
                     "warp barrier whose lanes never all arrive, %u exited",
                     block_idx.x, block_idx.y, block_idx.z, at_block, at_warp, nt - live);
            return false;
        }
    }
    return true;
}

template <class F>
inline bool run_grid(const unsigned* dims, F& body, char* err, size_t err_len) {
    static thread_local Scheduler s;
    const dim3 g{dims[0], dims[1], dims[2]}, b{dims[3], dims[4], dims[5]};
    const unsigned long long nt = (unsigned long long)b.x * b.y * b.z;
    if (g.x == 0 || g.y == 0 || g.z == 0 || nt == 0 || nt > 1024 || b.z > 64 ||
        g.y > 65535 || g.z > 65535) {
        snprintf(err, err_len, "invalid launch dimensions grid (%u, %u, %u) block (%u, %u, %u)",
                 g.x, g.y, g.z, b.x, b.y, b.z);
        return false;
    }
    if (dims[6] != 0) {
        snprintf(err, err_len, "dynamic shared memory (%u bytes) is not emulated", dims[6]);
        return false;
    }
    sched = &s;
    while (s.stacks.size() < nt) {
        char* st = (char*)malloc(STACK_BYTES);
        if (!st) {
            snprintf(err, err_len, "out of host memory for fiber stacks");
            return false;
        }
        s.stacks.push_back(st);
    }
    s.fibers.resize(nt);
    s.warp_slots.resize((nt + 31) / 32);
#if !defined(__x86_64__)
    s.ctxs.resize(nt);
#endif
    warps = s.warp_slots.data();
    s.body = [](void* c) { (*static_cast<F*>(c))(); };
    s.body_ctx = &body;
    grid_dim = g;
    block_dim = b;
    for (unsigned z = 0; z < g.z; ++z)
        for (unsigned y = 0; y < g.y; ++y)
            for (unsigned x = 0; x < g.x; ++x) {
                block_idx = {x, y, z};
                if (!run_block((unsigned)nt, err, err_len)) return false;
            }
    return true;
}

template <class T>
inline T arg(void* p) {
    T v;
    memcpy((void*)&v, p, sizeof(T));
    return v;
}

template <class... A, size_t... I>
inline int launch(void (*fn)(A...), const unsigned* dims, void** args, const size_t* sizes,
                  size_t nargs, char* err, size_t err_len, std::index_sequence<I...>) {
    constexpr size_t n = sizeof...(A);
    constexpr size_t want[n + 1] = {sizeof(std::decay_t<A>)..., 0};
    if (nargs != n) {
        snprintf(err, err_len, "the kernel takes %zu argument(s), the launch passed %zu", n,
                 nargs);
        return 2;
    }
    for (size_t i = 0; i < n; ++i)
        if (sizes[i] != want[i]) {
            snprintf(err, err_len,
                     "argument %zu is %zu byte(s) in the kernel, %zu in the launch", i,
                     want[i], sizes[i]);
            return 2;
        }
    std::tuple<std::decay_t<A>...> values{arg<std::decay_t<A>>(args[I])...};
    auto body = [&]() { fn(std::get<I>(values)...); };
    return run_grid(dims, body, err, err_len) ? 0 : 3;
}

template <class... A>
inline int launch(void (*fn)(A...), const unsigned* dims, void** args, const size_t* sizes,
                  size_t nargs, char* err, size_t err_len) {
    return launch(fn, dims, args, sizes, nargs, err, err_len, std::index_sequence_for<A...>{});
}

typedef int (*Launcher)(const unsigned*, void**, const size_t*, size_t, char*, size_t);

struct Entry {
    const char* name;
    Launcher run;
};

} // namespace emu

#define EMU_ENTRY(k)                                                                       \
    {#k, [](const unsigned* d, void** a, const size_t* s, size_t n, char* e, size_t el) {     \
         return ::emu::launch(&k, d, a, s, n, e, el);                                      \
     }},

static const ::emu::Entry brain_emu_kernels[] = {EMU_KERNELS(EMU_ENTRY){nullptr, nullptr}};

extern "C" __attribute__((visibility("default"))) int
brain_emu_launch(const char* name, const unsigned* dims, void** args, const size_t* sizes,
                 size_t nargs, char* err, size_t err_len) {
    for (const ::emu::Entry* e = brain_emu_kernels; e->name; ++e)
        if (strcmp(e->name, name) == 0) return e->run(dims, args, sizes, nargs, err, err_len);
    snprintf(err, err_len, "no kernel named %s in this family", name);
    return 1;
}
