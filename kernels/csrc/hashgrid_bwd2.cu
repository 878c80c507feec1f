// Hash-grid backward of the backward (for losses on dL/dx, e.g. eikonal terms). With
// w_c the corner weights, T the table, g = dout, ggx / ggT the upstream gradients of dx / dtable:
//   d_dout[l]  = sum_c w_c ggT[c] + (grad w_c . ggx) T[c]
//   dtable[c] += g (grad w_c . ggx)
//   dx        += sum_c (g . ggT[c]) grad w_c + (g . T[c]) (Hess w_c) ggx
// One thread per (point, level), as the forward; dx summed over levels in shared memory.
#include "hashgrid_common.cuh"

namespace inr_hg {

template <int D, int F>
__global__ void __launch_bounds__(kMaxThreads) backward_backward_kernel(
    const InrHashgridGeom g, const float* __restrict__ x, const float* __restrict__ table,
    const float* __restrict__ dout, const float* __restrict__ ggx, const float* __restrict__ ggtable,
    float* __restrict__ d_dout, float* dtable, float* __restrict__ dx) {
  __shared__ InrHashgridLevel lvs[INR_HG_MAX_LEVELS];
  __shared__ float red[kMaxThreads * D];
  stage_levels(g, lvs);
  const PointLevel<D> pl = point_level<D, F>(g, lvs, x);
  float hx[D] = {};
  if (pl.valid) {
    const InrHashgridLevel& lv = pl.lv;
    const float* xp = pl.xp;
    const int64_t row0 = pl.row0;
    const int64_t out_at = pl.p * (g.n_levels * F) + pl.l * F;
    float go[F] = {}, gg[D] = {};
    if (dtable || dx) load_row<F>(dout + out_at, go);
    if (ggx) {
      const float* gp = ggx + (xp - x);  // same layout as x
#pragma unroll
      for (int j = 0; j < D; ++j) gg[j] = gp[j];
    }
    Cell<D> c;
    locate<D>(xp, lv, g.interpolation == INR_HG_SMOOTHSTEP, c);
    float acc[F] = {};
#pragma unroll
    for (int corner = 0; corner < (1 << D); ++corner) {
      const int64_t at = row0 + (int64_t)corner_row<D>(c, lv, corner) * F;
      float q[D], dw[D], dwg = 0.0f;  // q_j = d (axis weight j) / d x_j; dw = grad w_c
#pragma unroll
      for (int j = 0; j < D; ++j) {
        q[j] = axis_sign(corner, j) * c.ds[j];
        dw[j] = q[j] * weight_except<D>(c, corner, j, -1);
        dwg = fmaf(dw[j], gg[j], dwg);
      }
      float v[F] = {}, u[F] = {};
      if (ggx && (d_dout || dx)) load_row<F>(table + at, v);
      if (ggtable && (d_dout || dx)) load_row<F>(ggtable + at, u);
      if (d_dout) {
        const float w = weight_except<D>(c, corner, -1, -1);
#pragma unroll
        for (int f = 0; f < F; ++f) acc[f] += w * u[f] + dwg * v[f];
      }
      if (dtable && ggx) {
        float t[F];
#pragma unroll
        for (int f = 0; f < F; ++f) t[f] = go[f] * dwg;
        atomic_add_row<F>(dtable + at, t);
      }
      if (dx) {
        float gu = 0.0f, gv = 0.0f;
#pragma unroll
        for (int f = 0; f < F; ++f) {
          gu = fmaf(go[f], u[f], gu);
          gv = fmaf(go[f], v[f], gv);
        }
#pragma unroll
        for (int j = 0; j < D; ++j) {
          // (Hess w_c ggx)_j = s''_j W_{-j} gg_j + q_j sum_{i != j} q_i W_{-ij} gg_i
          float h = axis_sign(corner, j) * c.d2s[j] * weight_except<D>(c, corner, j, -1) * gg[j];
#pragma unroll
          for (int i = 0; i < D; ++i)
            if (i != j) h = fmaf(q[j] * q[i] * weight_except<D>(c, corner, i, j), gg[i], h);
          hx[j] += gu * dw[j] + gv * h;
        }
      }
    }
    if (d_dout) store_row<F>(d_dout + out_at, acc);
  }
  if (dx) reduce_levels<D>(red, hx, pl.valid, pl.p, dx);
}

}  // namespace inr_hg

extern "C" cudaError_t inr_hashgrid_backward_backward(const InrHashgridGeom* g, const float* x, const float* table,
                                                      const float* dout, const float* ggx, const float* ggtable,
                                                      float* d_dout, float* dtable, float* dx, cudaStream_t stream) {
  using namespace inr_hg;
  if (!geometry_ok(g) || !x || !table || !dout) return cudaErrorInvalidValue;
  if (!d_dout && !(dtable && ggx) && !dx) return cudaSuccess;
  const unsigned blocks = n_blocks(g);
  if (!blocks) return cudaErrorInvalidValue;
  const dim3 block(g->n_levels, points_per_block(g->n_levels));
  return dispatch(g, [&](auto Dc, auto Fc) {
    const auto kernel = backward_backward_kernel<decltype(Dc)::value, decltype(Fc)::value>;
    INR_LAUNCH(kernel, blocks, block, 0, stream, *g, x, table, dout, ggx, ggtable, d_dout, dtable, dx);
    return cudaGetLastError();
  });
}
