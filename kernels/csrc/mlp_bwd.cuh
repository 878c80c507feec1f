// Fused MLP backward through the layers: one block = one tile of T points of one instance.
// It carries dL/dz from the output back to the input in shared memory and writes every layer's
// dL/dz (the weight gradients are then dz^T h products, done by the caller with cuBLAS, as
// tiny-cuda-nn does) and dL/dx. Bias gradients (column sums of dz) are reduced here: per block
// in shared memory, then one global atomic per column.
#pragma once
#include "mlp_tile.cuh"

namespace inr {

// Shared memory of the backward (floats): dz tile [T][W + 4], one layer's matrix, bias sums [W].
template <int W, int DINP>
__host__ __device__ inline int bwd_smem_floats() {
  return TileRows<W>::value * (W + 4) + W * (W > DINP ? W : DINP) + W;
}

template <int W, int DINP>
__global__ void __launch_bounds__(kThreads, BwdMinBlocks<W>::value) mlp_backward_kernel(const InrMlpBwdArgs a) {
  constexpr int T = TileRows<W>::value;
  constexpr int ld = W + 4;
  using HT = Tile<T, W>;
  using IT = Tile<T, DINP>;
  INR_DYNAMIC_SHARED float4 smem_f4[];
  float* buf = reinterpret_cast<float*>(smem_f4);  // dL/dz of the current layer, [T][ld]
  float* mat = buf + T * ld;
  float* sdb = mat + W * (W > DINP ? W : DINP);  // this block's bias-gradient sums of one layer

  const int tid = threadIdx.x;
  const BlockPoints bp(T, a.N, a.B);
  const int L = a.n_layers;

  // Output layer: dz = dy * act'(y); zero in the padding so the products below stay finite.
  const int kout = round_up4(a.d_out);
  if (tid < W) sdb[tid] = 0.f;
  {
    const float* dys = a.dy + bp.row0 * a.d_out;
    const float* ys = a.y + bp.row0 * a.d_out;
    float* dzs = a.dz[L - 1] + bp.row0 * a.d_out;
    for (int e = tid; e < T * kout; e += kThreads) {
      const int p = e / kout, o = e - p * kout;
      float g = 0.f;
      if (p < bp.valid && o < a.d_out) {
        const int i = p * a.d_out + o;
        g = dys[i] * output_grad(a.out_act, ys[i]);
        dzs[i] = g;
      }
      buf[p * ld + o] = g;
    }
  }

  // Hidden layers: dz_{l-1} = (dz_l W_l) * act'(z_{l-1}).
  for (int l = L - 1; l >= 1; --l) {
    const int K = l == L - 1 ? kout : W;
    const int cols = l == L - 1 ? a.d_out : W;
    smem_copy(mat, a.w[l] + bp.inst * a.w_stride[l], K * W);
    __syncthreads();
    if (a.db[l]) column_sums(buf, ld, bp.valid, cols, sdb);
    const int o0 = (tid % HT::TX) * HT::TN, p0 = (tid / HT::TX) * HT::TM;
    float acc[HT::TM][HT::TN];
    tile_gemm<T, W>(buf, ld, K, mat, p0, o0, acc);
    __syncthreads();  // every thread has read buf and mat, and added to sdb
    flush_bias_grad(sdb, a.db[l] ? a.db[l] + bp.inst * a.db_stride[l] : nullptr, cols);
    const float w0 = l - 1 == 0 ? a.w0_first : a.w0_hidden;
    const int64_t off = ((int64_t)(l - 1) * bp.rows + bp.row0) * W;
    float* dzs = a.dz[l - 1] + bp.row0 * W;
#pragma unroll
    for (int i = 0; i < HT::TM; ++i) {
      const int p = p0 + i;
      float g[HT::TN];
      if (p < bp.valid) {
        float h[HT::TN], z[HT::TN];
        load_vec<HT::TN>(h, a.save_h + off + (int64_t)p * W + o0);
        if (a.save_z) load_vec<HT::TN>(z, a.save_z + off + (int64_t)p * W + o0);
#pragma unroll
        for (int j = 0; j < HT::TN; ++j) g[j] = acc[i][j] * hidden_grad(a.act, h[j], a.save_z ? z[j] : 0.f, w0);
        store_vec<HT::TN>(dzs + (int64_t)p * W + o0, g);
      } else {
#pragma unroll
        for (int j = 0; j < HT::TN; ++j) g[j] = 0.f;
      }
      store_vec<HT::TN>(buf + p * ld + o0, g);
    }
  }

  // Input: dx = dz_0 W_0, with W_0 padded to DINP columns; and the first layer's bias sums.
  if (a.dx) smem_copy(mat, a.w[0] + bp.inst * a.w_stride[0], W * DINP);
  __syncthreads();
  if (a.db[0]) column_sums(buf, ld, bp.valid, W, sdb);
  if (a.dx) {
    const int o0 = (tid % IT::TX) * IT::TN, p0 = (tid / IT::TX) * IT::TM;
    float acc[IT::TM][IT::TN];
    tile_gemm<T, DINP>(buf, ld, W, mat, p0, o0, acc);
    float* dxs = a.dx + bp.row0 * a.d_in;
#pragma unroll
    for (int i = 0; i < IT::TM; ++i)
#pragma unroll
      for (int j = 0; j < IT::TN; ++j) {
        const int p = p0 + i, k = o0 + j;
        if (p < bp.valid && k < a.d_in) dxs[p * a.d_in + k] = acc[i][j];
      }
  }
  __syncthreads();
  flush_bias_grad(sdb, a.db[0] ? a.db[0] + bp.inst * a.db_stride[0] : nullptr, W);
}

}  // namespace inr
