// Tensor-core fused MLP (see InrMlpTcFwdArgs in mlp.h): one block = 128 points of one instance,
// 8 warps of 16 rows each. A layer is, per warp, its 16 rows of activations (fp16/bf16 in shared
// memory) times the layer's weights (staged in shared memory per layer) in 16x16x16 WMMA tiles
// with fp32 accumulators. Each 16x16 result goes through a per-warp fp32 staging tile, so the
// bias, the activation and the conversion need no knowledge of the fragments' register layout.
// A warp loads all of its row fragments before it overwrites those rows with the next layer.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <type_traits>

#include "mlp_tile.cuh"

namespace inr {

constexpr int kTcRows = 128;  // points per block: 8 warps x 16 rows

template <class T>
struct Operand;
template <>
struct Operand<__half> {
  static __device__ __forceinline__ __half from(float v) { return __float2half_rn(v); }
  static __device__ __forceinline__ float to(__half v) { return __half2float(v); }
};
template <>
struct Operand<__nv_bfloat16> {
  static __device__ __forceinline__ __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
  static __device__ __forceinline__ float to(__nv_bfloat16 v) { return __bfloat162float(v); }
};

// Row stride (elements) of the operand tiles: +8 staggers banks and keeps every 16-row / 16-column
// fragment pointer 32-byte aligned, as WMMA requires.
template <int W>
struct TcLd {
  static constexpr int value = W + 8;
};

// Shared memory of the forward, in bytes: activations [128][ld] and one layer's weights [W][ld]
// (operand type), per-warp staging tiles, bias [W], x [128][kin] and W_0^T [kin][W] (fp32).
template <int W>
__host__ __device__ inline size_t tc_fwd_smem_bytes(int d_in) {
  const int kin = round_up4(d_in);
  return 2 * (size_t)(kTcRows + W) * TcLd<W>::value + 4 * (size_t)(8 * 256 + W + kTcRows * kin + kin * W);
}
// The backward's: dL/dz [128][ld] and weights [W][ld] (operand type), staging, W_0 [W][kin] and
// the block's bias-gradient sums [W] (fp32).
template <int W>
__host__ __device__ inline size_t tc_bwd_smem_bytes(int d_in) {
  const int kin = round_up4(d_in);
  return 2 * (size_t)(kTcRows + W) * TcLd<W>::value + 4 * (size_t)(8 * 256 + W * kin + W);
}

// Copies `rows` rows of W operand elements (packed, 16-byte aligned) to shared rows of stride ld.
template <class T, int W>
__device__ __forceinline__ void stage_weights(T* dst, const T* src, int rows) {
  constexpr int V = W / 8;  // 16-byte vectors per row
  for (int e = threadIdx.x; e < rows * V; e += kThreads) {
    const int r = e / V, c = e - r * V;
    reinterpret_cast<float4*>(dst + r * TcLd<W>::value)[c] = reinterpret_cast<const float4*>(src + r * W)[c];
  }
}

// One layer for one warp: its 16 rows of `in` (KB 16-column blocks; all loaded into registers
// first, so the epilogue may overwrite them) times the staged weights, n_blocks x 16 output
// columns. Each 16x16 result goes through the warp's fp32 staging tile `st`, then
// epilogue(r, o, value) runs for each of its elements (row r of the warp's 16, output column o).
// BLayout says how the staged torch-layout rows [out][in] read as B: col_major gives W^T
// (the forward), row_major gives W (the backward).
template <class T, int W, int KB, class BLayout, class Epilogue>
__device__ __forceinline__ void warp_layer(const T* in, const T* wmat, float* st, int n_blocks, Epilogue&& epilogue) {
  using namespace nvcuda;
  constexpr int ld = TcLd<W>::value;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> af[KB];
#pragma unroll
  for (int k = 0; k < KB; ++k) wmma::load_matrix_sync(af[k], in + warp * 16 * ld + k * 16, ld);
  __syncwarp();  // the warp's rows are in registers: they may be overwritten now
  for (int n = 0; n < n_blocks; ++n) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.f);
#pragma unroll
    for (int k = 0; k < KB; ++k) {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, BLayout> bf;
      const bool transposed = std::is_same<BLayout, wmma::col_major>::value;
      wmma::load_matrix_sync(bf, transposed ? wmat + n * 16 * ld + k * 16 : wmat + k * 16 * ld + n * 16, ld);
      wmma::mma_sync(acc, af[k], bf, acc);
    }
    wmma::store_matrix_sync(st, acc, 16, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 256; e += 32) epilogue(e / 16, n * 16 + e % 16, st[e]);
    __syncwarp();  // the staging tile is free again
  }
}

template <class T, int W>
__global__ void __launch_bounds__(kThreads) mlp_tc_forward_kernel(const InrMlpTcFwdArgs a) {
  using namespace nvcuda;
  constexpr int R = kTcRows, NW = W / 16, ld = TcLd<W>::value;
  INR_DYNAMIC_SHARED __align__(128) float4 smem_f4[];
  T* act = reinterpret_cast<T*>(smem_f4);
  T* wmat = act + R * ld;
  float* stage = reinterpret_cast<float*>(wmat + W * ld);
  float* bias = stage + 8 * 256;
  const int kin = round_up4(a.d_in);
  float* xs = bias + W;
  float* w0s = xs + R * kin;

  const int tid = threadIdx.x, warp = tid / 32;
  const BlockPoints bp(R, a.N, a.B);
  T* save_h = reinterpret_cast<T*>(a.save_h);

  // Layer 0 in fp32 on the CUDA cores.
  const float* xg = a.x + bp.inst * a.x_stride + (int64_t)bp.n0 * a.d_in;
  for (int e = tid; e < R * kin; e += kThreads) {
    const int p = e / kin, k = e - p * kin;
    xs[e] = (p < bp.valid && k < a.d_in) ? xg[p * a.d_in + k] : 0.f;
  }
  smem_copy(w0s, a.w0t + bp.inst * a.w0t_stride, kin * W);
  for (int e = tid; e < W; e += kThreads) bias[e] = a.b[0] ? a.b[0][bp.inst * a.b_stride[0] + e] : 0.f;
  __syncthreads();
  for (int e = tid; e < R * W; e += kThreads) {
    const int p = e / W, o = e - p * W;
    float z = bias[o];
    for (int k = 0; k < a.d_in; ++k) z = fmaf(xs[p * kin + k], w0s[k * W + o], z);
    const T h = Operand<T>::from(activate(a.act, z, a.w0_first));
    act[p * ld + o] = h;
    if (save_h && p < bp.valid) {
      save_h[(bp.row0 + p) * W + o] = h;
      if (a.save_z) a.save_z[(bp.row0 + p) * W + o] = z;
    }
  }

  float* st = stage + warp * 256;
  for (int l = 1; l < a.n_layers; ++l) {
    const bool last = l == a.n_layers - 1;
    const int nout = last ? 16 : W;
    __syncthreads();  // every warp is done with wmat, bias and (layer 1) the rows layer 0 wrote
    stage_weights<T, W>(wmat, reinterpret_cast<const T*>(a.w[l]) + bp.inst * a.w_stride[l], nout);
    for (int e = tid; e < nout; e += kThreads) bias[e] = a.b[l] ? a.b[l][bp.inst * a.b_stride[l] + e] : 0.f;
    __syncthreads();

    // B[k][n] = W_l[n][k]: the torch-layout rows read as a column-major B.
    warp_layer<T, W, NW, wmma::col_major>(act, wmat, st, nout / 16, [&](int r, int o, float acc) {
      const int p = warp * 16 + r;
      const float z = acc + bias[o];
      if (!last) {
        const T h = Operand<T>::from(activate(a.act, z, a.w0_hidden));
        act[p * ld + o] = h;
        if (save_h && p < bp.valid) {
          const int64_t i = ((int64_t)l * bp.rows + bp.row0 + p) * W + o;
          save_h[i] = h;
          if (a.save_z) a.save_z[i] = z;
        }
      } else if (p < bp.valid && o < a.d_out) {
        a.y[(bp.row0 + p) * a.d_out + o] = activate(a.out_act, z, a.w0_hidden);
      }
    });
  }
}

template <class T, int W>
__global__ void __launch_bounds__(kThreads) mlp_tc_backward_kernel(const InrMlpTcBwdArgs a) {
  using namespace nvcuda;
  constexpr int R = kTcRows, NW = W / 16, ld = TcLd<W>::value;
  INR_DYNAMIC_SHARED __align__(128) float4 smem_f4[];
  T* g = reinterpret_cast<T*>(smem_f4);  // dL/dz of the current layer, [R][ld]
  T* wmat = g + R * ld;
  float* stage = reinterpret_cast<float*>(wmat + W * ld);
  const int kin = round_up4(a.d_in);
  float* w0s = stage + 8 * 256;
  float* sdb = w0s + W * kin;  // this block's bias-gradient sums of one layer

  const int tid = threadIdx.x, warp = tid / 32;
  const BlockPoints bp(R, a.N, a.B);
  const int L = a.n_layers;
  const T* save_h = reinterpret_cast<const T*>(a.save_h);
  // Bias gradients sum the operand-type dz, the values the weight gradients multiply.
  const auto to_float = [](T v) { return Operand<T>::to(v); };
  if (tid < W) sdb[tid] = 0.f;

  // Output layer: dz = dy * act'(y), 16 columns (zero past d_out and past the valid points).
  T* dz_last = reinterpret_cast<T*>(a.dz[L - 1]);
  for (int e = tid; e < R * 16; e += kThreads) {
    const int p = e / 16, o = e - p * 16;
    T v = Operand<T>::from(0.f);
    if (p < bp.valid && o < a.d_out) {
      const int64_t i = (bp.row0 + p) * a.d_out + o;
      v = Operand<T>::from(a.dy[i] * output_grad(a.out_act, a.y[i]));
      dz_last[i] = v;
    }
    g[p * ld + o] = v;
  }

  float* st = stage + warp * 256;
  for (int l = L - 1; l >= 1; --l) {
    const int K = l == L - 1 ? 16 : W;  // rows of W_l
    const int cols = l == L - 1 ? a.d_out : W;
    __syncthreads();  // g is complete; every warp is done with wmat
    stage_weights<T, W>(wmat, reinterpret_cast<const T*>(a.w[l]) + bp.inst * a.w_stride[l], K);
    if (a.db[l]) column_sums(g, ld, bp.valid, cols, sdb, to_float);  // g = dz_l, before it is overwritten
    __syncthreads();
    flush_bias_grad(sdb, a.db[l] ? a.db[l] + bp.inst * a.db_stride[l] : nullptr, cols);

    // Through the activation of hidden layer m = l - 1, back into g and out to dz[m].
    const int m = l - 1;
    const float w0 = m == 0 ? a.w0_first : a.w0_hidden;
    T* dz = reinterpret_cast<T*>(a.dz[m]);
    auto epilogue = [&](int r, int o, float acc) {
      const int p = warp * 16 + r;
      T v = Operand<T>::from(0.f);
      if (p < bp.valid) {
        const int64_t i = ((int64_t)m * bp.rows + bp.row0 + p) * W + o;
        const float z = a.save_z ? a.save_z[i] : 0.f;
        v = Operand<T>::from(acc * hidden_grad(a.act, Operand<T>::to(save_h[i]), z, w0));
        dz[(bp.row0 + p) * W + o] = v;
      }
      g[p * ld + o] = v;
    };
    // B[k][n] = W_l[k][n]: the torch-layout rows read as a row-major B.
    if (K == 16) warp_layer<T, W, 1, wmma::row_major>(g, wmat, st, NW, epilogue);
    else warp_layer<T, W, NW, wmma::row_major>(g, wmat, st, NW, epilogue);
  }

  // Layer 0's bias gradient, and dL/dx = dz_0 W_0 in fp32 on the CUDA cores.
  __syncthreads();  // every warp's rows of g (= dz_0) are written
  if (a.db[0]) column_sums(g, ld, bp.valid, W, sdb, to_float);
  if (a.dx) smem_copy(w0s, a.w0 + bp.inst * a.w0_stride, W * kin);
  __syncthreads();
  flush_bias_grad(sdb, a.db[0] ? a.db[0] + bp.inst * a.db_stride[0] : nullptr, W);
  if (a.dx) {
    for (int e = tid; e < R * a.d_in; e += kThreads) {
      const int p = e / a.d_in, k = e - p * a.d_in;
      if (p >= bp.valid) continue;
      float s = 0.f;
      for (int o = 0; o < W; ++o) s = fmaf(Operand<T>::to(g[p * ld + o]), w0s[o * kin + k], s);
      a.dx[(bp.row0 + p) * a.d_in + k] = s;
    }
  }
}

}  // namespace inr
