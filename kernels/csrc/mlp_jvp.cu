// Launchers of the value-and-Jacobian MLP kernels (mlp_jvp.cuh): validate, pick the instantiation.
#include "mlp_jvp.cuh"

namespace inr {

// A block holds TileRows<W> rows: 1 + d_in of them per point.
template <int W, int OUTP>
static cudaError_t launch_jvp_forward(const InrMlpJvpArgs& a, cudaStream_t stream) {
  return launch_blocks(mlp_jvp_forward_kernel<W, OUTP>, a, TileRows<W>::value / (1 + a.d_in),
                       sizeof(float) * (size_t)jvp_smem_floats<W>(), stream);
}

template <int W>
static cudaError_t launch_jvp_backward(const InrMlpJvpBwdArgs& a, cudaStream_t stream) {
  return launch_blocks(mlp_jvp_backward_kernel<W, 4>, a, TileRows<W>::value / (1 + a.d_in),
                       sizeof(float) * (size_t)jvp_smem_floats<W>(), stream);
}

}  // namespace inr

static bool jvp_shape_ok(int B, int N, int d_in, int d_out, int n_layers, int act) {
  return B >= 1 && N >= 1 && d_in >= 1 && d_in <= INR_MLP_JVP_MAX_D_IN && d_out >= 1 &&
         d_out <= INR_MLP_MAX_D_OUT && n_layers >= 2 && n_layers <= INR_MLP_MAX_LAYERS &&
         (act == INR_ACT_RELU || act == INR_ACT_SINE || act == INR_ACT_NONE);
}

extern "C" cudaError_t inr_mlp_jvp_forward(const InrMlpJvpArgs* a, cudaStream_t stream) {
  if (!a || !jvp_shape_ok(a->B, a->N, a->d_in, a->d_out, a->n_layers, a->act) || !a->x || !a->y || !a->jac ||
      (a->save_z && !a->save_h) || (a->save_h && a->act == INR_ACT_SINE && !a->save_z))
    return cudaErrorInvalidValue;
  const bool small = inr_mlp_dout_pad(a->d_out) != 16;
  switch (a->width) {
    case 16: return small ? inr::launch_jvp_forward<16, 4>(*a, stream) : inr::launch_jvp_forward<16, 16>(*a, stream);
    case 32: return small ? inr::launch_jvp_forward<32, 4>(*a, stream) : inr::launch_jvp_forward<32, 16>(*a, stream);
    case 64: return small ? inr::launch_jvp_forward<64, 4>(*a, stream) : inr::launch_jvp_forward<64, 16>(*a, stream);
    case 128: return small ? inr::launch_jvp_forward<128, 4>(*a, stream) : inr::launch_jvp_forward<128, 16>(*a, stream);
    default: return cudaErrorInvalidValue;
  }
}

extern "C" cudaError_t inr_mlp_jvp_backward(const InrMlpJvpBwdArgs* a, cudaStream_t stream) {
  if (!a || !jvp_shape_ok(a->B, a->N, a->d_in, a->d_out, a->n_layers, a->act) || !a->dy || !a->save_h ||
      (a->act == INR_ACT_SINE && !a->save_z) || inr_mlp_din_pad(a->d_in) != 4)
    return cudaErrorInvalidValue;
  for (int l = 0; l < a->n_layers; ++l)
    if (!a->w[l] || (l < a->n_layers - 1 && !a->dz[l])) return cudaErrorInvalidValue;
  switch (a->width) {
    case 16: return inr::launch_jvp_backward<16>(*a, stream);
    case 32: return inr::launch_jvp_backward<32>(*a, stream);
    case 64: return inr::launch_jvp_backward<64>(*a, stream);
    case 128: return inr::launch_jvp_backward<128>(*a, stream);
    default: return cudaErrorInvalidValue;
  }
}
