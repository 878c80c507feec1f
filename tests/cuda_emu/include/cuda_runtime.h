// CPU emulation of the device side of CUDA C++ that the kernels use (tests only; see ../__init__.py).
// Every CUDA thread of a block is a fiber (ucontext) on one host thread; __syncthreads and
// __syncwarp switch fibers, so barrier placement, shared-memory phases and index arithmetic
// behave as on a GPU, and a barrier that can never complete aborts with a message. Between
// barriers the threads run in a fresh random order each time, so a read that a missing barrier
// leaves unordered after another thread's write sees the stale or the NaN-poisoned value.
// Blocks run one at a time, so a kernel's static __shared__ array is a function-local static
// (it keeps the previous block's values; only the dynamic shared memory is NaN-poisoned).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

#include "cuda_runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __restrict__
#define __align__(n) __attribute__((aligned(n)))

struct uint3 { unsigned x = 0, y = 0, z = 0; };
struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace emu {
enum State { kRunnable, kAtBlockBarrier, kAtWarpBarrier, kExited };
struct Fiber {
  ucontext_t ctx;
  State state = kRunnable;
};
struct Scheduler {
  ucontext_t main;
  std::vector<Fiber> fibers;
  std::vector<char> stacks;
  unsigned current = 0;
};
inline Scheduler sched;
constexpr size_t kStack = 256 * 1024;

inline void wait(State s) {
  Fiber& f = sched.fibers[sched.current];
  f.state = s;
  swapcontext(&f.ctx, &sched.main);
}
}  // namespace emu

inline void __syncthreads() { emu::wait(emu::kAtBlockBarrier); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::wait(emu::kAtWarpBarrier); }
inline float atomicAdd(float* p, float v) {  // fibers never interleave inside a call
  const float old = *p;
  *p = old + v;
  return old;
}
template <class T>
inline T __ldg(const T* p) { return *p; }

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <class F>
inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return cudaSuccess; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }

// The kernels' dynamic shared memory (`INR_DYNAMIC_SHARED float4 smem_f4[]` in namespace inr).
namespace inr {
constexpr size_t kEmuSmemBytes = 256 * 1024;
alignas(128) inline float4 smem_f4[kEmuSmemBytes / sizeof(float4)];
}  // namespace inr

namespace emu {
// The body every fiber of the current launch runs: kernel(args...).
inline void (*body)(const void*) = nullptr;
inline const void* body_args = nullptr;
inline void entry() {
  body(body_args);
  sched.fibers[sched.current].state = kExited;
}  // returns to uc_link = the scheduler

// Releases every fiber waiting at a barrier that is complete: a warp barrier when all of the
// warp's live lanes wait at it, the block barrier when all live threads do. False if none is.
inline bool release_barriers(unsigned threads) {
  bool any = false, block_done = true;
  for (unsigned w = 0; w * 32 < threads; ++w) {
    bool done = true, waiting = false;
    for (unsigned t = 32 * w; t < std::min(threads, 32 * w + 32); ++t) {
      const State s = sched.fibers[t].state;
      if (s == kAtWarpBarrier) waiting = true;
      else if (s != kExited) done = false;
    }
    if (waiting && done) {
      for (unsigned t = 32 * w; t < std::min(threads, 32 * w + 32); ++t)
        if (sched.fibers[t].state == kAtWarpBarrier) sched.fibers[t].state = kRunnable;
      any = true;
    }
  }
  bool waiting = false;
  for (unsigned t = 0; t < threads; ++t) {
    const State s = sched.fibers[t].state;
    if (s == kAtBlockBarrier) waiting = true;
    else if (s != kExited) block_done = false;
  }
  if (waiting && block_done) {
    for (unsigned t = 0; t < threads; ++t)
      if (sched.fibers[t].state == kAtBlockBarrier) sched.fibers[t].state = kRunnable;
    any = true;
  }
  return any;
}

// Runs kernel(args...) on `blocks` blocks of `threads` threads (x fastest, as CUDA numbers them),
// one block at a time. Dynamic shared memory is filled with NaN before each block, so reading a
// value no thread wrote shows in the results.
template <class Kernel, class... Args>
void launch(Kernel kernel, unsigned blocks, dim3 threads, size_t smem_bytes, const Args&... args) {
  if (smem_bytes > inr::kEmuSmemBytes) {
    std::fprintf(stderr, "cuda emu: %zu bytes of shared memory requested\n", smem_bytes);
    std::abort();
  }
  auto call = [&]() { kernel(args...); };
  body = [](const void* c) { (*static_cast<const decltype(call)*>(c))(); };
  body_args = &call;
  const unsigned n = threads.x * threads.y * threads.z;
  float* smem = reinterpret_cast<float*>(inr::smem_f4);
  sched.fibers.assign(n, Fiber{});
  sched.stacks.resize(n * kStack);
  gridDim = dim3(blocks);
  blockDim = threads;
  std::vector<unsigned> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::mt19937 rng(12345u + blocks);
  for (unsigned b = 0; b < blocks; ++b) {
    std::fill(smem, smem + smem_bytes / sizeof(float), std::nanf(""));
    blockIdx = {b, 0, 0};
    for (unsigned t = 0; t < n; ++t) {
      Fiber& f = sched.fibers[t];
      f.state = kRunnable;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = sched.stacks.data() + t * kStack;
      f.ctx.uc_stack.ss_size = kStack;
      f.ctx.uc_link = &sched.main;
      makecontext(&f.ctx, &entry, 0);
    }
    for (;;) {
      bool ran = false;
      std::shuffle(order.begin(), order.end(), rng);
      for (unsigned t : order) {
        if (sched.fibers[t].state != kRunnable) continue;
        sched.current = t;
        threadIdx = {t % threads.x, (t / threads.x) % threads.y, t / (threads.x * threads.y)};
        swapcontext(&sched.main, &sched.fibers[t].ctx);
        ran = true;
      }
      if (ran || release_barriers(n)) continue;
      bool all_exited = true;
      for (const Fiber& f : sched.fibers) all_exited = all_exited && f.state == kExited;
      if (all_exited) break;
      std::fprintf(stderr, "cuda emu: block %u deadlocked at a barrier not every live thread reaches\n", b);
      std::abort();
    }
  }
}
}  // namespace emu
