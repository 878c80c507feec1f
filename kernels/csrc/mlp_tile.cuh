// Building blocks shared by the fused MLP kernels: the per-block register-tiled product,
// vector shared-memory access and the activations. Device code only; no torch.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "launch.cuh"
#include "mlp.h"

namespace inr {

constexpr int kThreads = 256;

// Points per block: wide layers get fewer so that weights + activations leave room for two
// blocks per SM (about 100 KB of shared memory at width 128).
template <int W>
struct TileRows {
  static constexpr int value = W >= 128 ? 64 : 128;
};

// Blocks per SM the register budget is sized for (__launch_bounds__): as many as shared memory
// allows without spilling (checked with -Xptxas -v).
template <int W>
struct FwdMinBlocks {
  static constexpr int value = W >= 128 ? 2 : W >= 64 ? 3 : 4;
};
template <int W>
struct BwdMinBlocks {
  static constexpr int value = W >= 128 ? 2 : W == 32 ? 4 : 3;
};

// How a [T points x NOUT outputs] product is split over kThreads threads: each thread owns
// TM consecutive points x TN consecutive outputs, so both operands load as vectors.
template <int T, int NOUT>
struct Tile {
  static constexpr int E = T * NOUT / kThreads;  // outputs per thread
  static_assert(E >= 1, "tile smaller than the block");
  static constexpr int TN0 = E >= 32 ? 8 : E >= 8 ? 4 : E >= 4 ? 2 : 1;
  static constexpr int TN = TN0 < NOUT ? TN0 : NOUT;
  static constexpr int TM = E / TN;
  static constexpr int TX = NOUT / TN;  // threads along the outputs
  static_assert(TN * TM == E && T % TM == 0 && TX * (T / TM) == kThreads, "bad tile split");
};

__host__ __device__ inline int round_up4(int v) { return (v + 3) & ~3; }

// The points of this block: blocks are instance-major, `per_block` points of one instance each.
struct BlockPoints {
  int inst, n0, valid;  // the instance, its first point in this block, how many points are here
  int64_t row0, rows;   // the global row (point) of n0, and the rows of all instances
  __device__ BlockPoints(int per_block, int N, int B) {
    const int tiles = (N + per_block - 1) / per_block;
    inst = blockIdx.x / tiles;
    n0 = (blockIdx.x - inst * tiles) * per_block;
    valid = min(per_block, N - n0);
    row0 = (int64_t)inst * N + n0;
    rows = (int64_t)B * N;
  }
};

// Launches kernel(a) on the B * ceil(N / per_block) blocks BlockPoints expects, with `bytes` of
// dynamic shared memory (opting in above the default 48 KB).
template <class Args>
inline cudaError_t launch_blocks(void (*kernel)(Args), const Args& a, int per_block, size_t bytes,
                                 cudaStream_t stream) {
  if (bytes > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (err != cudaSuccess) return err;
  }
  const int64_t blocks = (int64_t)a.B * ((a.N + per_block - 1) / per_block);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  INR_LAUNCH(kernel, (unsigned)blocks, kThreads, bytes, stream, a);
  return cudaGetLastError();
}

template <int N>
__device__ __forceinline__ void load_vec(float (&dst)[N], const float* src) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(src)[i];
      dst[4 * i] = v.x; dst[4 * i + 1] = v.y; dst[4 * i + 2] = v.z; dst[4 * i + 3] = v.w;
    }
  } else if constexpr (N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) {
      const float2 v = reinterpret_cast<const float2*>(src)[i];
      dst[2 * i] = v.x; dst[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) dst[i] = src[i];
  }
}

template <int N>
__device__ __forceinline__ void store_vec(float* dst, const float (&src)[N]) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i)
      reinterpret_cast<float4*>(dst)[i] = make_float4(src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]);
  } else if constexpr (N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) reinterpret_cast<float2*>(dst)[i] = make_float2(src[2 * i], src[2 * i + 1]);
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) dst[i] = src[i];
  }
}

// Block-wide copy of n floats (n a multiple of 4, both ends 16-byte aligned) into shared memory.
__device__ __forceinline__ void smem_copy(float* dst, const float* src, int n) {
  const float4* s = reinterpret_cast<const float4*>(src);
  float4* d = reinterpret_cast<float4*>(dst);
  for (int i = threadIdx.x; i < n / 4; i += kThreads) d[i] = s[i];
}

// acc[i][j] = sum_k in[p0 + i][k] * mat[k][o0 + j] for k < K (K a multiple of 4).
// in: point-major activations [T][ld]; mat: [K][NOUT]; both in shared memory.
template <int T, int NOUT>
__device__ __forceinline__ void tile_gemm(const float* in, int ld, int K, const float* mat, int p0, int o0,
                                          float (&acc)[Tile<T, NOUT>::TM][Tile<T, NOUT>::TN]) {
  using C = Tile<T, NOUT>;
#pragma unroll
  for (int i = 0; i < C::TM; ++i)
#pragma unroll
    for (int j = 0; j < C::TN; ++j) acc[i][j] = 0.f;
#pragma unroll 2
  for (int k = 0; k < K; k += 4) {
    float a[C::TM][4];
#pragma unroll
    for (int i = 0; i < C::TM; ++i) load_vec<4>(a[i], in + (p0 + i) * ld + k);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      float b[C::TN];
      load_vec<C::TN>(b, mat + (k + kk) * NOUT + o0);
#pragma unroll
      for (int i = 0; i < C::TM; ++i)
#pragma unroll
        for (int j = 0; j < C::TN; ++j) acc[i][j] = fmaf(a[i][kk], b[j], acc[i][j]);
    }
  }
}

// Accurate sinf/cosf/expf on purpose: SIREN's w0 = 30 amplifies the fast intrinsics' error.
__device__ __forceinline__ float activate(int act, float z, float w0) {
  switch (act) {
    case INR_ACT_RELU: return z > 0.f ? z : 0.f;
    case INR_ACT_SINE: return sinf(w0 * z);
    case INR_ACT_SIGMOID: return 1.f / (1.f + expf(-z));
    case INR_ACT_EXP: return expf(z);
    default: return z;
  }
}

// d act / d z of a hidden layer from what the forward saved (h = act(z), and z for sine).
__device__ __forceinline__ float hidden_grad(int act, float h, float z, float w0) {
  switch (act) {
    case INR_ACT_RELU: return h > 0.f ? 1.f : 0.f;
    case INR_ACT_SINE: return w0 * cosf(w0 * z);
    default: return 1.f;
  }
}

// d act / d z of the output layer from its output y, as torch's autograd computes it.
__device__ __forceinline__ float output_grad(int act, float y) {
  switch (act) {
    case INR_ACT_RELU: return y > 0.f ? 1.f : 0.f;
    case INR_ACT_SIGMOID: return y * (1.f - y);
    case INR_ACT_EXP: return y;
    default: return 1.f;
  }
}

// Adds the column sums of rows [0, valid) of the point-major tile buf[:, :cols] to sdb (shared),
// each element read as to_float(buf[..]). Call between barriers: buf must be complete, and sdb is
// read only after the next barrier.
template <class E, class ToFloat>
__device__ __forceinline__ void column_sums(const E* buf, int ld, int valid, int cols, float* sdb, ToFloat to_float) {
  const int c = threadIdx.x % cols, g = threadIdx.x / cols, groups = kThreads / cols;
  if (g >= groups) return;
  float s = 0.f;
  for (int p = g; p < valid; p += groups) s += to_float(buf[p * ld + c]);
  atomicAdd(&sdb[c], s);
}
__device__ __forceinline__ void column_sums(const float* buf, int ld, int valid, int cols, float* sdb) {
  column_sums(buf, ld, valid, cols, sdb, [](float v) { return v; });
}

// Moves the block's bias-gradient sums of one layer to global memory and re-zeroes them.
// Call after the barrier that follows column_sums.
__device__ __forceinline__ void flush_bias_grad(float* sdb, float* db, int cols) {
  if ((int)threadIdx.x < cols) {
    if (db) atomicAdd(db + threadIdx.x, sdb[threadIdx.x]);
    sdb[threadIdx.x] = 0.f;
  }
}

}  // namespace inr
