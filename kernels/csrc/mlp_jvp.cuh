// Fused MLP value and input Jacobian in one pass (forward-mode tangents), and its backward.
//
// A block takes P = T / C points of one instance, C = 1 + d_in rows each: the value and its
// d_in tangents d/dx_k. Every linear layer is one product over all the tile's rows (a tangent
// row is multiplied by the same W, without the bias); the activation couples a point's rows:
//   h = act(z),  dh_k = act'(z) dz_k                         (forward)
//   gz = gh act'(z) + sum_k gdh_k act''(z) dz_k,  gdz_k = gdh_k act'(z)   (backward)
// so an eikonal loss on the Jacobian trains with one forward and one backward launch instead of
// a double backward. Layer 0 needs no product for its tangents: dz_0 / dx_k is row k of W_0^T.
// The tile's products reuse the fp32 register tile of the fused MLP (mlp_tile.cuh).
#pragma once
#include "mlp_tile.cuh"

namespace inr {

template <int W>
__host__ __device__ inline int jvp_smem_floats() {
  return TileRows<W>::value * (W + 4) + W * W + W;
}

__device__ __forceinline__ float hidden_slope(int act, float z, float w0) {
  switch (act) {
    case INR_ACT_RELU: return z > 0.f ? 1.f : 0.f;
    case INR_ACT_SINE: return w0 * cosf(w0 * z);
    default: return 1.f;
  }
}

// Activation of one (point, column) of hidden layer m: reads z and its tangents from the tile
// rows at rowp (stride ld), writes h and its tangents back there, and to save_h / save_z.
__device__ __forceinline__ void jvp_activate(const InrMlpJvpArgs& a, int m, int64_t crows, int64_t grow0,
                                             float* rowp, int ld, int o, float w0) {
  const int W = a.width;
  const float z = rowp[0];
  const float s = hidden_slope(a.act, z, w0);
  const float h = activate(a.act, z, w0);
  float* sh = a.save_h ? a.save_h + ((int64_t)m * crows + grow0) * W + o : nullptr;
  float* sz = a.save_z ? a.save_z + ((int64_t)m * crows + grow0) * W + o : nullptr;
  if (sz) sz[0] = z;
  rowp[0] = h;
  if (sh) sh[0] = h;
  for (int k = 1; k <= a.d_in; ++k) {
    const float t = rowp[k * ld];
    const float ht = s * t;
    rowp[k * ld] = ht;
    if (sz) sz[k * W] = t;
    if (sh) sh[k * W] = ht;
  }
}

// buf[r][o] = value(r, o, (buf[r][:K] mat)[o]) for the tile's T rows and W columns, in place:
// every thread finishes its part of the product before any row is overwritten.
template <int T, int W, class Value>
__device__ __forceinline__ void tile_product_in_place(float* buf, int ld, int K, const float* mat, Value&& value) {
  using HT = Tile<T, W>;
  const int o0 = (threadIdx.x % HT::TX) * HT::TN, p0 = (threadIdx.x / HT::TX) * HT::TM;
  float acc[HT::TM][HT::TN];
  tile_gemm<T, W>(buf, ld, K, mat, p0, o0, acc);
  __syncthreads();  // every thread has read buf
#pragma unroll
  for (int i = 0; i < HT::TM; ++i)
#pragma unroll
    for (int j = 0; j < HT::TN; ++j) buf[(p0 + i) * ld + o0 + j] = value(p0 + i, o0 + j, acc[i][j]);
  __syncthreads();
}

template <int W, int OUTP>
__global__ void __launch_bounds__(kThreads) mlp_jvp_forward_kernel(const InrMlpJvpArgs a) {
  constexpr int T = TileRows<W>::value;
  constexpr int ld = W + 4;
  using OT = Tile<T, OUTP>;
  INR_DYNAMIC_SHARED float4 smem_f4[];
  float* buf = reinterpret_cast<float*>(smem_f4);  // [T][ld]: the tile's rows
  float* mat = buf + T * ld;                        // one layer's W^T, at most [W][W]
  float* bias = mat + W * W;

  const int tid = threadIdx.x;
  const int C = 1 + a.d_in;
  const BlockPoints bp(T / C, a.N, a.B);  // points; each is C rows of the tile
  const int vrows = bp.valid * C;
  const int64_t crows = bp.rows * C;  // rows of one saved layer
  const int L = a.n_layers;

  // Layer 0 without a product: z = b + sum_k x_k W0^T[k], dz / dx_k = W0^T[k].
  smem_copy(mat, a.w[0] + bp.inst * a.w_stride[0], 4 * W);
  for (int e = tid; e < W; e += kThreads) bias[e] = a.b[0] ? a.b[0][bp.inst * a.b_stride[0] + e] : 0.f;
  __syncthreads();
  const float* xs = a.x + bp.inst * a.x_stride + (int64_t)bp.n0 * a.d_in;
  for (int e = tid; e < T * W; e += kThreads) {
    const int r = e / W, o = e - r * W;
    if (r >= vrows) {
      buf[r * ld + o] = 0.f;  // padding rows stay finite: they are multiplied
    } else if (r % C == 0) {
      const int p = r / C;
      float z = bias[o];
      for (int k = 0; k < a.d_in; ++k) z = fmaf(xs[p * a.d_in + k], mat[k * W + o], z);
      buf[r * ld + o] = z;
    } else {
      buf[r * ld + o] = mat[(r % C - 1) * W + o];
    }
  }
  __syncthreads();
  for (int e = tid; e < bp.valid * W; e += kThreads) {
    const int p = e / W, o = e - p * W;
    jvp_activate(a, 0, crows, (bp.row0 + p) * C, buf + p * C * ld + o, ld, o, a.w0_first);
  }

  for (int l = 1; l < L; ++l) {
    const bool last = l == L - 1;
    const int nout = last ? OUTP : W;
    __syncthreads();  // the previous activation pass is done with buf, mat and bias
    smem_copy(mat, a.w[l] + bp.inst * a.w_stride[l], W * nout);
    for (int e = tid; e < nout; e += kThreads) bias[e] = a.b[l] ? a.b[l][bp.inst * a.b_stride[l] + e] : 0.f;
    __syncthreads();
    if (!last) {
      // z: the bias on value rows only (a tangent row carries no bias)
      tile_product_in_place<T, W>(buf, ld, W, mat, [&](int r, int o, float v) {
        return r >= vrows ? 0.f : r % C == 0 ? v + bias[o] : v;
      });
      for (int e = tid; e < bp.valid * W; e += kThreads) {
        const int p = e / W, o = e - p * W;
        jvp_activate(a, l, crows, (bp.row0 + p) * C, buf + p * C * ld + o, ld, o, a.w0_hidden);
      }
    } else {  // output layer (activation none): the value row is y, tangent row k is dy / dx_k
      const int o0 = (tid % OT::TX) * OT::TN, p0 = (tid / OT::TX) * OT::TM;
      float acc[OT::TM][OT::TN];
      tile_gemm<T, OUTP>(buf, ld, W, mat, p0, o0, acc);
#pragma unroll
      for (int i = 0; i < OT::TM; ++i) {
        const int r = p0 + i;
        if (r >= vrows) continue;
        const int64_t pt = bp.row0 + r / C;
        const int c = r % C;
#pragma unroll
        for (int j = 0; j < OT::TN; ++j) {
          const int o = o0 + j;
          if (o >= a.d_out) continue;
          if (c == 0) a.y[pt * a.d_out + o] = acc[i][j] + bias[o];
          else a.jac[(pt * a.d_out + o) * a.d_in + c - 1] = acc[i][j];
        }
      }
    }
  }
}

template <int W, int DINP>
__global__ void __launch_bounds__(kThreads) mlp_jvp_backward_kernel(const InrMlpJvpBwdArgs a) {
  constexpr int T = TileRows<W>::value;
  constexpr int ld = W + 4;
  using IT = Tile<T, DINP>;
  INR_DYNAMIC_SHARED float4 smem_f4[];
  float* buf = reinterpret_cast<float*>(smem_f4);  // [T][ld]: dL/d(rows) of the current layer
  float* mat = buf + T * ld;                        // one layer's [out, in] matrix, at most [W][W]

  const int tid = threadIdx.x;
  const int C = 1 + a.d_in;
  const BlockPoints bp(T / C, a.N, a.B);  // points; each is C rows of the tile
  const int vrows = bp.valid * C;
  const int64_t crows = bp.rows * C;  // rows of one saved layer
  const int L = a.n_layers;
  const int kout = round_up4(a.d_out);

  // Output rows: the value row gets dL/dy, tangent row k gets dL/d(dy/dx_k); zero padding.
  for (int e = tid; e < T * kout; e += kThreads) {
    const int r = e / kout, o = e - r * kout;
    float g = 0.f;
    if (r < vrows && o < a.d_out) {
      const int64_t pt = bp.row0 + r / C;
      const int c = r % C;
      if (c == 0) g = a.dy[pt * a.d_out + o];
      else if (a.djac) g = a.djac[(pt * a.d_out + o) * a.d_in + c - 1];
    }
    buf[r * ld + o] = g;
  }

  for (int l = L - 1; l >= 1; --l) {
    const int K = l == L - 1 ? kout : W;
    __syncthreads();  // buf is complete; the previous pass is done with mat
    smem_copy(mat, a.w[l] + bp.inst * a.w_stride[l], K * W);
    __syncthreads();
    tile_product_in_place<T, W>(buf, ld, K, mat, [&](int r, int, float v) { return r < vrows ? v : 0.f; });
    // Through the activation of hidden layer m = l - 1.
    const int m = l - 1;
    const float w0 = m == 0 ? a.w0_first : a.w0_hidden;
    for (int e = tid; e < bp.valid * W; e += kThreads) {
      const int p = e / W, o = e - p * W;
      float* rowp = buf + p * C * ld + o;
      const int64_t saved = ((int64_t)m * crows + (bp.row0 + p) * C) * W + o;
      const float* sh = a.save_h + saved;
      const float* sz = a.save_z ? a.save_z + saved : nullptr;
      const float z = sz ? sz[0] : 0.f;
      const float s = hidden_grad(a.act, sh[0], z, w0);
      float gz = rowp[0] * s;
      if (a.act == INR_ACT_SINE) {
        const float curv = -w0 * w0 * sinf(w0 * z);
        for (int k = 1; k <= a.d_in; ++k) gz = fmaf(rowp[k * ld] * curv, sz[k * W], gz);
      }
      float* dzs = a.dz[m] + ((bp.row0 + p) * C) * W + o;
      rowp[0] = gz;
      dzs[0] = gz;
      for (int k = 1; k <= a.d_in; ++k) {
        const float g = rowp[k * ld] * s;
        rowp[k * ld] = g;
        dzs[k * W] = g;
      }
    }
  }

  // dL/dx from the value rows of layer 0 only: its tangents do not depend on x.
  if (a.dx) {
    __syncthreads();
    smem_copy(mat, a.w[0] + bp.inst * a.w_stride[0], W * DINP);
    __syncthreads();
    const int o0 = (tid % IT::TX) * IT::TN, p0 = (tid / IT::TX) * IT::TM;
    float acc[IT::TM][IT::TN];
    tile_gemm<T, DINP>(buf, ld, W, mat, p0, o0, acc);
#pragma unroll
    for (int i = 0; i < IT::TM; ++i) {
      const int r = p0 + i;
      if (r >= vrows || r % C != 0) continue;
      const int64_t pt = bp.row0 + r / C;
#pragma unroll
      for (int j = 0; j < IT::TN; ++j)
        if (o0 + j < a.d_in) a.dx[pt * a.d_in + o0 + j] = acc[i][j];
    }
  }
}

}  // namespace inr
