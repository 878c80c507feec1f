// Torch binding of the fused MLP and hash-grid kernels: checks tensors, turns them into the raw
// pointers of mlp.h / hashgrid.h and launches on the current stream. An empty tensor stands for "absent" (null).
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <vector>

#include "hashgrid.h"
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

// The fields every Args struct of mlp.h starts with.
template <class Args>
void set_shape(Args& a, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width, size_t n_layers,
               int64_t act, double w0_first, double w0_hidden) {
  TORCH_CHECK(n_layers >= 2 && n_layers <= INR_MLP_MAX_LAYERS, "inr mlp: bad layer count");
  a.B = (int)B; a.N = (int)N; a.d_in = (int)d_in; a.d_out = (int)d_out; a.width = (int)width;
  a.n_layers = (int)n_layers; a.act = (int)act;
  a.w0_first = (float)w0_first; a.w0_hidden = (float)w0_hidden;
}

// float32 weights (with their instance strides) of every layer.
template <class Args>
void set_weights(Args& a, const std::vector<at::Tensor>& w) {
  for (size_t l = 0; l < w.size(); ++l) {
    check(w[l], "weight", true);
    a.w[l] = cptr(w[l]); a.w_stride[l] = instance_stride(w[l], 2);
  }
}

// float32 per-layer vectors (biases, or bias gradients to accumulate into) with their instance
// strides; null where a layer has none.
template <class Ptr>
void set_layer_vectors(Ptr* ptrs, int64_t* strides, const std::vector<at::Tensor>& t, int n_layers,
                       const char* name) {
  TORCH_CHECK(t.size() == (size_t)n_layers, "inr mlp: bad layer count");
  for (size_t l = 0; l < t.size(); ++l) {
    check(t[l], name, false);
    ptrs[l] = mptr(t[l]); strides[l] = instance_stride(t[l], 1);
  }
}
template <class Args>
void set_biases(Args& a, const std::vector<at::Tensor>& b) {
  set_layer_vectors(a.b, a.b_stride, b, a.n_layers, "bias");
}
template <class Args>
void set_bias_grads(Args& a, const std::vector<at::Tensor>& db) {
  set_layer_vectors(a.db, a.db_stride, db, a.n_layers, "bias grad");
}

// Runs a launcher of mlp.h on the current stream of `on`'s device; a failure raises.
template <class Args>
void run(cudaError_t (*launch)(const Args*, cudaStream_t), const Args& a, const at::Tensor& on, const char* what) {
  const c10::cuda::CUDAGuard guard(on.device());
  const cudaError_t err = launch(&a, c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "inr mlp ", what, ": ", cudaGetErrorString(err));
}

void mlp_forward(const at::Tensor& x, int64_t x_stride, const std::vector<at::Tensor>& w,
                 const std::vector<at::Tensor>& b, const at::Tensor& y, const at::Tensor& save_h,
                 const at::Tensor& save_z, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width,
                 int64_t act, int64_t out_act, double w0_first, double w0_hidden) {
  check(x, "x", false);
  check(y, "y", false);
  check(save_h, "save_h", true);
  check(save_z, "save_z", true);
  InrMlpFwdArgs a{};
  set_shape(a, B, N, d_in, d_out, width, w.size(), act, w0_first, w0_hidden);
  a.out_act = (int)out_act;
  a.x = cptr(x); a.x_stride = x_stride;
  set_weights(a, w);
  set_biases(a, b);
  a.y = mptr(y); a.save_h = mptr(save_h); a.save_z = mptr(save_z);
  run(inr_mlp_forward, a, x, "forward");
}

void mlp_backward(const at::Tensor& dy, const at::Tensor& y, const at::Tensor& save_h, const at::Tensor& save_z,
                  const std::vector<at::Tensor>& w, const std::vector<at::Tensor>& dz, const at::Tensor& dx,
                  const std::vector<at::Tensor>& db, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width, int64_t act, int64_t out_act,
                  double w0_first, double w0_hidden) {
  TORCH_CHECK(w.size() == dz.size(), "inr mlp: bad layer count");
  check(dy, "dy", false);
  check(y, "y", false);
  check(save_h, "save_h", true);
  check(save_z, "save_z", true);
  check(dx, "dx", false);
  InrMlpBwdArgs a{};
  set_shape(a, B, N, d_in, d_out, width, w.size(), act, w0_first, w0_hidden);
  a.out_act = (int)out_act;
  a.dy = cptr(dy); a.y = cptr(y); a.save_h = cptr(save_h); a.save_z = cptr(save_z);
  set_weights(a, w);
  for (size_t l = 0; l < w.size(); ++l) {
    check(dz[l], "dz", true);
    a.dz[l] = mptr(dz[l]);
  }
  set_bias_grads(a, db);
  a.dx = mptr(dx);
  run(inr_mlp_backward, a, dy, "backward");
}

void mlp_jvp_forward(const at::Tensor& x, int64_t x_stride, const std::vector<at::Tensor>& w,
                     const std::vector<at::Tensor>& b, const at::Tensor& y, const at::Tensor& jac,
                     const at::Tensor& save_h, const at::Tensor& save_z, int64_t B, int64_t N, int64_t d_in,
                     int64_t d_out, int64_t width, int64_t act, double w0_first, double w0_hidden) {
  check(x, "x", false);
  check(y, "y", false);
  check(jac, "jac", false);
  check(save_h, "save_h", true);
  check(save_z, "save_z", true);
  InrMlpJvpArgs a{};
  set_shape(a, B, N, d_in, d_out, width, w.size(), act, w0_first, w0_hidden);
  a.x = cptr(x); a.x_stride = x_stride;
  set_weights(a, w);
  set_biases(a, b);
  a.y = mptr(y); a.jac = mptr(jac); a.save_h = mptr(save_h); a.save_z = mptr(save_z);
  run(inr_mlp_jvp_forward, a, x, "value-and-jacobian forward");
}

void mlp_jvp_backward(const at::Tensor& dy, const at::Tensor& djac, const at::Tensor& save_h,
                      const at::Tensor& save_z, const std::vector<at::Tensor>& w, const std::vector<at::Tensor>& dz,
                      const at::Tensor& dx, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width,
                      int64_t act, double w0_first, double w0_hidden) {
  TORCH_CHECK(dz.size() + 1 == w.size(), "inr mlp: bad layer count");
  check(dy, "dy", false);
  check(djac, "djac", false);
  check(save_h, "save_h", false);
  check(save_z, "save_z", false);
  check(dx, "dx", false);
  InrMlpJvpBwdArgs a{};
  set_shape(a, B, N, d_in, d_out, width, w.size(), act, w0_first, w0_hidden);
  a.dy = cptr(dy); a.djac = cptr(djac); a.save_h = cptr(save_h); a.save_z = cptr(save_z);
  set_weights(a, w);
  for (size_t l = 0; l < dz.size(); ++l) {
    check(dz[l], "dz", false);
    a.dz[l] = mptr(dz[l]);
  }
  a.dx = mptr(dx);
  run(inr_mlp_jvp_backward, a, dy, "value-and-jacobian backward");
}

// Tensors in the tensor-core kernels' operand type (fp16 or bf16) for `precision`, or empty.
void check_operand(const at::Tensor& t, const char* name, int64_t precision) {
  if (!t.numel()) return;
  const at::ScalarType want = precision == INR_PREC_FP16 ? at::kHalf : at::kBFloat16;
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == want && t.is_contiguous(), "inr mlp: ", name,
              " must be a contiguous ", precision == INR_PREC_FP16 ? "float16" : "bfloat16", " CUDA tensor");
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0, "inr mlp: ", name, " must be 16-byte aligned");
}

void* vptr(const at::Tensor& t) { return t.numel() ? t.data_ptr() : nullptr; }

// The tensor-core shape: set_shape's fields, the output activation and the operand precision.
template <class Args>
void set_tc_shape(Args& a, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width, size_t n_layers,
                  int64_t act, int64_t out_act, int64_t precision, double w0_first, double w0_hidden) {
  TORCH_CHECK(precision == INR_PREC_FP16 || precision == INR_PREC_BF16, "inr mlp: precision must be fp16 or bf16");
  set_shape(a, B, N, d_in, d_out, width, n_layers, act, w0_first, w0_hidden);
  a.out_act = (int)out_act; a.precision = (int)precision;
}

// Layers >= 1 in the operand type (layer 0 is passed apart, in fp32).
template <class Args>
void set_operand_weights(Args& a, const std::vector<at::Tensor>& w, int64_t precision) {
  for (size_t l = 1; l < w.size(); ++l) {
    check_operand(w[l], "weight", precision);
    a.w[l] = vptr(w[l]); a.w_stride[l] = instance_stride(w[l], 2);
  }
}

void mlp_tc_forward(const at::Tensor& x, int64_t x_stride, const at::Tensor& w0t, const std::vector<at::Tensor>& w,
                    const std::vector<at::Tensor>& b, const at::Tensor& y, const at::Tensor& save_h,
                    const at::Tensor& save_z, int64_t B, int64_t N, int64_t d_in, int64_t d_out, int64_t width,
                    int64_t act, int64_t out_act, int64_t precision, double w0_first, double w0_hidden) {
  check(x, "x", false);
  check(w0t, "layer 0 weight", true);
  check(y, "y", false);
  check_operand(save_h, "save_h", precision);
  check(save_z, "save_z", false);
  InrMlpTcFwdArgs a{};
  set_tc_shape(a, B, N, d_in, d_out, width, w.size(), act, out_act, precision, w0_first, w0_hidden);
  a.x = cptr(x); a.x_stride = x_stride;
  a.w0t = cptr(w0t); a.w0t_stride = instance_stride(w0t, 2);
  set_operand_weights(a, w, precision);
  set_biases(a, b);
  a.y = mptr(y); a.save_h = vptr(save_h); a.save_z = mptr(save_z);
  run(inr_mlp_tc_forward, a, x, "tensor-core forward");
}

void mlp_tc_backward(const at::Tensor& dy, const at::Tensor& y, const at::Tensor& save_h, const at::Tensor& save_z,
                     const at::Tensor& w0, const std::vector<at::Tensor>& w, const std::vector<at::Tensor>& dz,
                     const at::Tensor& dx, const std::vector<at::Tensor>& db, int64_t B, int64_t N, int64_t d_in,
                     int64_t d_out, int64_t width, int64_t act, int64_t out_act, int64_t precision, double w0_first,
                     double w0_hidden) {
  TORCH_CHECK(w.size() == dz.size(), "inr mlp: bad layer count");
  check(dy, "dy", false);
  check(y, "y", false);
  check_operand(save_h, "save_h", precision);
  check(save_z, "save_z", false);
  check(w0, "layer 0 weight", true);
  check(dx, "dx", false);
  InrMlpTcBwdArgs a{};
  set_tc_shape(a, B, N, d_in, d_out, width, w.size(), act, out_act, precision, w0_first, w0_hidden);
  a.dy = cptr(dy); a.y = cptr(y); a.save_h = vptr(save_h); a.save_z = cptr(save_z);
  a.w0 = cptr(w0); a.w0_stride = instance_stride(w0, 2);
  set_operand_weights(a, w, precision);
  for (size_t l = 0; l < dz.size(); ++l) {
    check_operand(dz[l], "dz", precision);
    a.dz[l] = vptr(dz[l]);
  }
  set_bias_grads(a, db);
  a.dx = mptr(dx);
  run(inr_mlp_tc_backward, a, dy, "tensor-core backward");
}

// ---- hash grid (hashgrid.h) ------------------------------------------------------------------

// Geometry from python lists: dims = (n_dims, n_feat, interpolation, n_inst, n_per, x_stride,
// table_stride); per level scales[l] and ints[4l..4l+3] = (res, size, hashed, offset).
InrHashgridGeom hashgrid_geom(const std::vector<int64_t>& dims, const std::vector<double>& scales,
                              const std::vector<int64_t>& ints) {
  TORCH_CHECK(dims.size() == 7, "inr hashgrid: dims must have 7 entries");
  const size_t L = scales.size();
  TORCH_CHECK(L >= 1 && L <= INR_HG_MAX_LEVELS && ints.size() == 4 * L, "inr hashgrid: bad level lists");
  InrHashgridGeom g{};
  g.n_dims = (int)dims[0]; g.n_feat = (int)dims[1]; g.interpolation = (int)dims[2];
  g.n_inst = dims[3]; g.n_per = dims[4]; g.x_stride = dims[5]; g.table_stride = dims[6];
  g.n_levels = (int)L;
  for (size_t l = 0; l < L; ++l) {
    g.levels[l].scale = (float)scales[l];
    g.levels[l].res = (uint32_t)ints[4 * l];
    g.levels[l].size = (uint32_t)ints[4 * l + 1];
    g.levels[l].hashed = (uint32_t)ints[4 * l + 2];
    g.levels[l].offset = ints[4 * l + 3];
  }
  return g;
}

// Rows of one table: every level's rows end by then.
int64_t hashgrid_rows(const InrHashgridGeom& g) {
  int64_t rows = 0;
  for (int l = 0; l < g.n_levels; ++l) rows = std::max(rows, g.levels[l].offset + (int64_t)g.levels[l].size);
  return rows;
}

// A float32 CUDA tensor of exactly `numel` elements, aligned for row vectors (or empty = null).
void hg_check(const at::Tensor& t, const char* name, int64_t numel, int64_t align, bool optional) {
  if (optional && !t.numel()) return;
  TORCH_CHECK(t.is_cuda() && t.scalar_type() == at::kFloat && t.is_contiguous(), "inr hashgrid: ", name,
              " must be a contiguous float32 CUDA tensor");
  TORCH_CHECK(t.numel() == numel, "inr hashgrid: ", name, " has ", t.numel(), " elements, expected ", numel);
  TORCH_CHECK(reinterpret_cast<uintptr_t>(t.data_ptr()) % align == 0, "inr hashgrid: ", name, " must be ",
              align, "-byte aligned");
}

struct HgShapes {
  int64_t x, table, out, dx;
  int64_t align;
};

HgShapes hg_shapes(const InrHashgridGeom& g) {
  const int64_t points = g.n_inst * g.n_per;
  HgShapes s;
  s.x = (g.x_stride ? g.n_inst : 1) * g.n_per * g.n_dims;
  s.table = (g.table_stride ? g.n_inst : 1) * hashgrid_rows(g) * g.n_feat;
  s.out = points * g.n_levels * g.n_feat;
  s.dx = points * g.n_dims;
  s.align = g.n_feat >= 4 ? 16 : 4 * g.n_feat;
  TORCH_CHECK(!g.x_stride || g.x_stride == g.n_per * g.n_dims, "inr hashgrid: x_stride must be 0 or n_per * n_dims");
  TORCH_CHECK(!g.table_stride || g.table_stride == hashgrid_rows(g) * g.n_feat,
              "inr hashgrid: table_stride must be 0 or rows * n_feat");
  return s;
}

void hashgrid_forward(const at::Tensor& x, const at::Tensor& table, const at::Tensor& out,
                      const std::vector<int64_t>& dims, const std::vector<double>& scales,
                      const std::vector<int64_t>& ints) {
  const InrHashgridGeom g = hashgrid_geom(dims, scales, ints);
  const HgShapes s = hg_shapes(g);
  hg_check(x, "x", s.x, 4, false);
  hg_check(table, "table", s.table, s.align, false);
  hg_check(out, "out", s.out, s.align, false);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaError_t err = inr_hashgrid_forward(&g, x.data_ptr<float>(), table.data_ptr<float>(),
                                               out.data_ptr<float>(), c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "inr hashgrid forward: ", cudaGetErrorString(err));
}

void hashgrid_backward(const at::Tensor& x, const at::Tensor& table, const at::Tensor& dout, const at::Tensor& dtable,
                       const at::Tensor& dx, const std::vector<int64_t>& dims, const std::vector<double>& scales,
                       const std::vector<int64_t>& ints) {
  const InrHashgridGeom g = hashgrid_geom(dims, scales, ints);
  const HgShapes s = hg_shapes(g);
  hg_check(x, "x", s.x, 4, false);
  hg_check(table, "table", s.table, s.align, false);
  hg_check(dout, "dout", s.out, s.align, false);
  hg_check(dtable, "dtable", s.table, s.align, true);
  hg_check(dx, "dx", s.dx, 4, true);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaError_t err = inr_hashgrid_backward(&g, x.data_ptr<float>(), table.data_ptr<float>(),
                                                dout.data_ptr<float>(), mptr(dtable), mptr(dx),
                                                c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "inr hashgrid backward: ", cudaGetErrorString(err));
}

void hashgrid_backward_backward(const at::Tensor& x, const at::Tensor& table, const at::Tensor& dout,
                                const at::Tensor& ggx, const at::Tensor& ggtable, const at::Tensor& d_dout,
                                const at::Tensor& dtable, const at::Tensor& dx, const std::vector<int64_t>& dims,
                                const std::vector<double>& scales, const std::vector<int64_t>& ints) {
  const InrHashgridGeom g = hashgrid_geom(dims, scales, ints);
  const HgShapes s = hg_shapes(g);
  hg_check(x, "x", s.x, 4, false);
  hg_check(table, "table", s.table, s.align, false);
  hg_check(dout, "dout", s.out, s.align, false);
  hg_check(ggx, "ggx", s.x, 4, true);
  hg_check(ggtable, "ggtable", s.table, s.align, true);
  hg_check(d_dout, "d_dout", s.out, s.align, true);
  hg_check(dtable, "dtable", s.table, s.align, true);
  hg_check(dx, "dx", s.dx, 4, true);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaError_t err = inr_hashgrid_backward_backward(
      &g, x.data_ptr<float>(), table.data_ptr<float>(), dout.data_ptr<float>(), cptr(ggx), cptr(ggtable),
      mptr(d_dout), mptr(dtable), mptr(dx), c10::cuda::getCurrentCUDAStream());
  TORCH_CHECK(err == cudaSuccess, "inr hashgrid backward-backward: ", cudaGetErrorString(err));
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mlp_forward", &mlp_forward, "fused MLP forward (see kernels/csrc/mlp.h)");
  m.def("mlp_backward", &mlp_backward, "fused MLP backward through the layers (see kernels/csrc/mlp.h)");
  m.def("mlp_jvp_forward", &mlp_jvp_forward, "fused MLP value and input Jacobian (see kernels/csrc/mlp.h)");
  m.def("mlp_jvp_backward", &mlp_jvp_backward, "backward of mlp_jvp_forward (see kernels/csrc/mlp.h)");
  m.def("mlp_tc_forward", &mlp_tc_forward, "tensor-core MLP forward, fp16/bf16 operands (see kernels/csrc/mlp.h)");
  m.def("mlp_tc_backward", &mlp_tc_backward, "tensor-core MLP backward through the layers, with bias gradients (see kernels/csrc/mlp.h)");
  m.def("din_pad", &inr_mlp_din_pad, "column padding of the layer-0 matrix the backward expects");
  m.def("dout_pad", &inr_mlp_dout_pad, "column padding of the last layer's matrix the forward expects");
  m.def("hashgrid_forward", &hashgrid_forward, "hash-grid encoding forward (see kernels/csrc/hashgrid.h)");
  m.def("hashgrid_backward", &hashgrid_backward, "hash-grid backward: table (accumulated) and x gradients");
  m.def("hashgrid_backward_backward", &hashgrid_backward_backward, "hash-grid backward of the backward");
}
