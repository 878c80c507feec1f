// Launchers of the tensor-core MLP kernels (mlp_tc.cuh): validate, pick (operand type, width).
#include "mlp_tc.cuh"

namespace inr {

template <class T, template <class, int> class Launch, class Args>
static cudaError_t by_width(const Args& a, cudaStream_t stream) {
  switch (a.width) {
    case 16: return Launch<T, 16>::run(a, stream);
    case 32: return Launch<T, 32>::run(a, stream);
    case 64: return Launch<T, 64>::run(a, stream);
    case 128: return Launch<T, 128>::run(a, stream);
    default: return cudaErrorInvalidValue;
  }
}
template <class T, int W>
struct TcForward {
  static cudaError_t run(const InrMlpTcFwdArgs& a, cudaStream_t s) {
    return launch_blocks(mlp_tc_forward_kernel<T, W>, a, kTcRows, tc_fwd_smem_bytes<W>(a.d_in), s);
  }
};
template <class T, int W>
struct TcBackward {
  static cudaError_t run(const InrMlpTcBwdArgs& a, cudaStream_t s) {
    return launch_blocks(mlp_tc_backward_kernel<T, W>, a, kTcRows, tc_bwd_smem_bytes<W>(a.d_in), s);
  }
};

template <class Args>
static bool tc_shape_ok(const Args& a) {
  return a.B >= 1 && a.N >= 1 && a.d_in >= 1 && a.d_in <= 64 && a.d_out >= 1 && a.d_out <= INR_MLP_MAX_D_OUT &&
         a.n_layers >= 2 && a.n_layers <= INR_MLP_MAX_LAYERS &&
         (a.precision == INR_PREC_FP16 || a.precision == INR_PREC_BF16);
}

}  // namespace inr

extern "C" cudaError_t inr_mlp_tc_forward(const InrMlpTcFwdArgs* a, cudaStream_t stream) {
  if (!a || !inr::tc_shape_ok(*a) || !a->x || !a->w0t || !a->y || (a->save_z && !a->save_h)) return cudaErrorInvalidValue;
  for (int l = 1; l < a->n_layers; ++l)
    if (!a->w[l]) return cudaErrorInvalidValue;
  return a->precision == INR_PREC_FP16 ? inr::by_width<__half, inr::TcForward>(*a, stream)
                                       : inr::by_width<__nv_bfloat16, inr::TcForward>(*a, stream);
}

extern "C" cudaError_t inr_mlp_tc_backward(const InrMlpTcBwdArgs* a, cudaStream_t stream) {
  if (!a || !inr::tc_shape_ok(*a) || !a->dy || !a->y || !a->save_h || (a->act == INR_ACT_SINE && !a->save_z) ||
      (a->dx && !a->w0))
    return cudaErrorInvalidValue;
  for (int l = 0; l < a->n_layers; ++l)
    if (!a->dz[l] || (l > 0 && !a->w[l])) return cudaErrorInvalidValue;
  return a->precision == INR_PREC_FP16 ? inr::by_width<__half, inr::TcBackward>(*a, stream)
                                       : inr::by_width<__nv_bfloat16, inr::TcBackward>(*a, stream);
}
