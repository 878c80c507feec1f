// Launchers of the tensor-core MLP kernels (mlp_tc.cuh): validate, pick (operand type, width).
#include "mlp_tc.cuh"

namespace inr {

template <class Kernel>
static cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;  // above 48 KB a kernel must opt in
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

static int64_t tc_blocks(int B, int N) { return (int64_t)B * ((N + kTcRows - 1) / kTcRows); }

template <class T, int W>
static cudaError_t launch_tc_forward(const InrMlpTcFwdArgs& a, cudaStream_t stream) {
  const size_t bytes = tc_fwd_smem_bytes<W>(a.d_in);
  cudaError_t err = allow_smem(mlp_tc_forward_kernel<T, W>, bytes);
  if (err != cudaSuccess) return err;
  const int64_t blocks = tc_blocks(a.B, a.N);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  INR_LAUNCH((unsigned)blocks, kThreads, bytes, stream, a, mlp_tc_forward_kernel<T, W>);
  return cudaGetLastError();
}

template <class T, int W>
static cudaError_t launch_tc_backward(const InrMlpTcBwdArgs& a, cudaStream_t stream) {
  const size_t bytes = tc_bwd_smem_bytes<W>(a.d_in);
  cudaError_t err = allow_smem(mlp_tc_backward_kernel<T, W>, bytes);
  if (err != cudaSuccess) return err;
  const int64_t blocks = tc_blocks(a.B, a.N);
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  INR_LAUNCH((unsigned)blocks, kThreads, bytes, stream, a, mlp_tc_backward_kernel<T, W>);
  return cudaGetLastError();
}

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
  static cudaError_t run(const InrMlpTcFwdArgs& a, cudaStream_t s) { return launch_tc_forward<T, W>(a, s); }
};
template <class T, int W>
struct TcBackward {
  static cudaError_t run(const InrMlpTcBwdArgs& a, cudaStream_t s) { return launch_tc_backward<T, W>(a, s); }
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
