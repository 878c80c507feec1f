// Torch binding of the fused MLP kernels: checks tensors, turns them into the raw pointers of
// mlp.h and launches on the current stream. An empty tensor stands for "absent" (null).
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

#include "mlp.h"

namespace {

const float* cptr(const at::Tensor& t) { return t.numel() ? t.data_ptr<float>() : nullptr; }
float* mptr(const at::Tensor& t) { return t.numel() ? t.data_ptr<float>() : nullptr; }

void check(const at::Tensor& t, const char* name, bool vec_aligned) {
  if (!t.numel()) return;
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kFloat && t.is_contiguous(), "inr mlp: ", name,
              " must be a contiguous float32 CUDA tensor");
  TORCH_CHECK(!vec_aligned || reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0, "inr mlp: ", name,
              " must be 16-byte aligned");
}

// Instance stride in floats of a per-layer tensor: 0 when it has no instance dimension.
int64_t instance_stride(const at::Tensor& t, int64_t unbatched_dim) {
  return t.dim() > unbatched_dim ? t.numel() / t.size(0) : 0;
}

void mlp_forward(const at::Tensor& x, int64_t x_stride, const std::vector<at::Tensor>& w,
                 const std::vector<at::Tensor>& b, const at::Tensor& y, const at::Tensor& save_h,
                 const at::Tensor& save_z, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width,
                 int64_t act, int64_t out_act, double w0_first, double w0_hidden) {
  TORCH_CHECK(w.size() == b.size() && w.size() >= 2 && w.size() <= INR_MLP_MAX_LAYERS, "inr mlp: bad layer count");
  check(x, "x", false);
  check(y, "y", false);
  check(save_h, "save_h", true);
  check(save_z, "save_z", true);
  InrMlpFwdArgs a{};
  a.B = (int)B; a.N = (int)N; a.d_in = (int)d_in; a.d_out = (int)d_out; a.width = (int)width;
  a.n_layers = (int)w.size(); a.act = (int)act; a.out_act = (int)out_act;
  a.w0_first = (float)w0_first; a.w0_hidden = (float)w0_hidden;
  a.x = cptr(x); a.x_stride = x_stride;
  for (size_t l = 0; l < w.size(); ++l) {
    check(w[l], "weight", true);
    check(b[l], "bias", false);
    a.w[l] = cptr(w[l]); a.w_stride[l] = instance_stride(w[l], 2);
    a.b[l] = cptr(b[l]); a.b_stride[l] = instance_stride(b[l], 1);
  }
  a.y = mptr(y); a.save_h = mptr(save_h); a.save_z = mptr(save_z);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaError_t err = inr_mlp_forward(&a, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "inr mlp forward: ", cudaGetErrorString(err));
}

void mlp_backward(const at::Tensor& dy, const at::Tensor& y, const at::Tensor& save_h, const at::Tensor& save_z,
                  const std::vector<at::Tensor>& w, const std::vector<at::Tensor>& dz, const at::Tensor& dx,
                  const std::vector<at::Tensor>& db, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width, int64_t act, int64_t out_act,
                  double w0_first, double w0_hidden) {
  TORCH_CHECK(w.size() == dz.size() && w.size() == db.size() && w.size() >= 2 && w.size() <= INR_MLP_MAX_LAYERS, "inr mlp: bad layer count");
  check(dy, "dy", false);
  check(y, "y", false);
  check(save_h, "save_h", true);
  check(save_z, "save_z", true);
  check(dx, "dx", false);
  InrMlpBwdArgs a{};
  a.B = (int)B; a.N = (int)N; a.d_in = (int)d_in; a.d_out = (int)d_out; a.width = (int)width;
  a.n_layers = (int)w.size(); a.act = (int)act; a.out_act = (int)out_act;
  a.w0_first = (float)w0_first; a.w0_hidden = (float)w0_hidden;
  a.dy = cptr(dy); a.y = cptr(y); a.save_h = cptr(save_h); a.save_z = cptr(save_z);
  for (size_t l = 0; l < w.size(); ++l) {
    check(w[l], "weight", true);
    check(dz[l], "dz", true);
    a.w[l] = cptr(w[l]); a.w_stride[l] = instance_stride(w[l], 2);
    a.dz[l] = mptr(dz[l]);
    check(db[l], "bias grad", false);
    a.db[l] = mptr(db[l]); a.db_stride[l] = instance_stride(db[l], 1);
  }
  a.dx = mptr(dx);
  const c10::cuda::CUDAGuard guard(dy.device());
  const cudaError_t err = inr_mlp_backward(&a, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "inr mlp backward: ", cudaGetErrorString(err));
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mlp_forward", &mlp_forward, "fused MLP forward (see kernels/csrc/mlp.h)");
  m.def("mlp_backward", &mlp_backward, "fused MLP backward through the layers (see kernels/csrc/mlp.h)");
  m.def("din_pad", &inr_mlp_din_pad, "column padding of the layer-0 matrix the backward expects");
  m.def("dout_pad", &inr_mlp_dout_pad, "column padding of the last layer's matrix the forward expects");
}
