// Fused MLP forward: one block = one tile of T points of one instance. The tile's activations
// stay in shared memory across all layers; each layer's weights are staged into shared memory.
#pragma once
#include "mlp_tile.cuh"

namespace inr {

// Shared memory of the forward (floats): activations [T][ld], one layer's matrix, its bias.
__host__ __device__ inline int fwd_ld(int W, int d_in) { return (W > round_up4(d_in) ? W : round_up4(d_in)) + 4; }
__host__ __device__ inline int fwd_mat_floats(int W, int d_in) { return (W > round_up4(d_in) ? W : round_up4(d_in)) * W; }
template <int W>
__host__ __device__ inline int fwd_smem_floats(int d_in) {
  return TileRows<W>::value * fwd_ld(W, d_in) + fwd_mat_floats(W, d_in) + W;
}

// OUTP: the output layer's padded width (d_out <= OUTP).
template <int W, int OUTP>
__global__ void __launch_bounds__(kThreads, FwdMinBlocks<W>::value) mlp_forward_kernel(const InrMlpFwdArgs a) {
  constexpr int T = TileRows<W>::value;
  using HT = Tile<T, W>;
  using OT = Tile<T, OUTP>;
  INR_DYNAMIC_SHARED float4 smem_f4[];
  const int kin = round_up4(a.d_in);
  const int ld = fwd_ld(W, a.d_in);
  float* buf = reinterpret_cast<float*>(smem_f4);
  float* mat = buf + T * ld;
  float* bias = mat + fwd_mat_floats(W, a.d_in);

  const int tid = threadIdx.x;
  const BlockPoints bp(T, a.N, a.B);

  // Input tile, zero-padded to kin columns and T points (padding must be finite: it is multiplied).
  const float* xs = a.x + bp.inst * a.x_stride + (int64_t)bp.n0 * a.d_in;
  for (int e = tid; e < T * kin; e += kThreads) {
    const int p = e / kin, k = e - p * kin;
    buf[p * ld + k] = (p < bp.valid && k < a.d_in) ? xs[p * a.d_in + k] : 0.f;
  }

  for (int l = 0; l < a.n_layers; ++l) {
    const bool last = l == a.n_layers - 1;
    const int K = l == 0 ? kin : W;
    const int nout = last ? OUTP : W;
    smem_copy(mat, a.w[l] + bp.inst * a.w_stride[l], K * nout);
    for (int e = tid; e < nout; e += kThreads) bias[e] = a.b[l] ? a.b[l][bp.inst * a.b_stride[l] + e] : 0.f;
    __syncthreads();

    if (!last) {
      const int o0 = (tid % HT::TX) * HT::TN, p0 = (tid / HT::TX) * HT::TM;
      float acc[HT::TM][HT::TN];
      tile_gemm<T, W>(buf, ld, K, mat, p0, o0, acc);
      float bj[HT::TN];  // read before the barrier: after it, fast threads overwrite bias for layer l + 1
      load_vec<HT::TN>(bj, bias + o0);
      __syncthreads();  // every thread has read buf and bias before they are overwritten
      const float w0 = l == 0 ? a.w0_first : a.w0_hidden;
      const int64_t off = ((int64_t)l * bp.rows + bp.row0) * W;
#pragma unroll
      for (int i = 0; i < HT::TM; ++i) {
        const int p = p0 + i;
        float z[HT::TN], h[HT::TN];
#pragma unroll
        for (int j = 0; j < HT::TN; ++j) {
          z[j] = acc[i][j] + bj[j];
          h[j] = activate(a.act, z[j], w0);
        }
        store_vec<HT::TN>(buf + p * ld + o0, h);
        if (a.save_h && p < bp.valid) {
          store_vec<HT::TN>(a.save_h + off + (int64_t)p * W + o0, h);
          if (a.save_z) store_vec<HT::TN>(a.save_z + off + (int64_t)p * W + o0, z);
        }
      }
    } else {
      const int o0 = (tid % OT::TX) * OT::TN, p0 = (tid / OT::TX) * OT::TM;
      float acc[OT::TM][OT::TN];
      tile_gemm<T, OUTP>(buf, ld, K, mat, p0, o0, acc);
      float* ys = a.y + bp.row0 * a.d_out;
#pragma unroll
      for (int i = 0; i < OT::TM; ++i)
#pragma unroll
        for (int j = 0; j < OT::TN; ++j) {
          const int p = p0 + i, o = o0 + j;
          if (p < bp.valid && o < a.d_out) ys[p * a.d_out + o] = activate(a.out_act, acc[i][j] + bias[o], a.w0_hidden);
        }
    }
  }
}

}  // namespace inr
