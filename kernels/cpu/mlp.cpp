// Fused CPU MLP (issue 3): forward and backward of `inr.nn.mlp_forward` for shared float32
// weights [out, in], biases [out], widths up to 1024 (the dispatch uses it up to 128), hidden
// activation none / relu / sine (sin(w0 z)), output none / relu / sine / sigmoid / exp.
//
// Points are processed in chunks of `chunk` rows (default 128): a chunk's activations, all layers
// together, stay in L2 (128 x 64 floats is 32 KB a layer). Each GEMM runs as 6 x 16 register tiles
// (AVX2/FMA, picked at run time where the CPU has it; the build itself has no -march flags since
// torch caches it) or as plain loops.
//
// Forward: parallel over chunks; when the caller allows the memory, it keeps every hidden layer's
// activations (saved_floats per chunk). Backward: takes those, or recomputes each chunk's forward,
// then back-propagates it; weight and bias gradients are summed per *group* of consecutive chunks (the number of groups
// depends only on N, never on the thread count), and the groups are then added in order. So any
// thread count gives bitwise-identical results. dL/dx rows are written directly (disjoint).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "cpu_features.h"
#include "pool.h"

namespace {

enum Act { kNone = 0, kRelu = 1, kSine = 2, kSigmoid = 3, kExp = 4 };
constexpr int kMaxGroups = 16;

inline int64_t pad8(int64_t v) { return (v + 7) / 8 * 8; }

struct Net {
  int L = 0;
  int64_t chunk = 128, maxp = 8;
  int64_t nw = 1;                             // weight sets: 1 (shared) or B (per instance)
  bool has_bias = false;
  std::vector<int64_t> w, wp;                 // widths and padded widths, L + 1
  std::vector<std::vector<float>> WT, Wp;     // nw x [in, out_p] (forward) and nw x [out, in_p] (backward)
  std::vector<std::vector<float>> bias;       // nw x [out_p]
  std::vector<int> act;
  std::vector<float> w0;
  // Saved activations (forward for the backward): per chunk, hidden layer l's h at hoff[l] and,
  // for sine, w0 cos(w0 z) at zoff[l]; save_floats floats per chunk in all.
  std::vector<int64_t> hoff, zoff;
  int64_t save_floats = 0;
  const float* wt(int l, int64_t b) const { return WT[l].data() + b * w[l] * wp[l + 1]; }
  const float* wpad(int l, int64_t b) const { return Wp[l].data() + b * w[l + 1] * wp[l]; }
  const float* b(int l, int64_t i) const { return bias[l].data() + i * wp[l + 1]; }
};

struct Scratch {
  std::vector<float> mem;
  std::vector<float*> h, z, g;
  std::vector<float*> hp, zp;  // per chunk: h / z of each layer, from `mem` or the saved activations
  explicit Scratch(const Net& net) : hp(net.L + 1), zp(net.L + 1) {
    const int64_t P = net.chunk;
    int64_t total = 2 * P * net.maxp;
    for (int l = 0; l <= net.L; ++l) total += 2 * P * net.wp[l];
    mem.assign(total, 0.0f);
    float* p = mem.data();
    for (int l = 0; l <= net.L; ++l) {
      h.push_back(p);
      p += P * net.wp[l];
      z.push_back(p);
      p += P * net.wp[l];
    }
    g.push_back(p);
    g.push_back(p + P * net.maxp);
  }
};

// Buffers of the double backward (double_backward_chunk): per layer input h, tangent t and per
// layer output pre-activation z, tangent zt; four adjoint buffers.
struct Scratch2 {
  std::vector<float> mem;
  std::vector<float*> h, t, z, zt, a;
  explicit Scratch2(const Net& net) {
    const int64_t P = net.chunk;
    int64_t total = 4 * P * net.maxp;
    for (int l = 0; l <= net.L; ++l) total += 4 * P * net.wp[l];
    mem.assign(total, 0.0f);
    float* p = mem.data();
    for (int l = 0; l <= net.L; ++l)
      for (auto* v : {&h, &t, &z, &zt}) {
        v->push_back(p);
        p += P * net.wp[l];
      }
    for (int k = 0; k < 4; ++k, p += P * net.maxp) a.push_back(p);
  }
};

namespace portable {
#define INR_MLP_AVX2 0
#include "mlp_impl.h"
#undef INR_MLP_AVX2
}  // namespace portable

#if INR_HAVE_AVX2_PATH
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#define INR_MLP_AVX2 1
#include "mlp_impl.h"
#undef INR_MLP_AVX2
}  // namespace avx2
#pragma GCC pop_options
#endif

std::atomic<int> g_simd{-1};  // -1: auto, 0: never, 1: where the CPU has it

using inr_cpu::cpu_has_avx2;

bool use_avx2() { return g_simd.load() != 0 && cpu_has_avx2(); }

// Shared weights: x [N, d_in], weights [out, in], biases [out]. Per-instance weights: x [B, N, d_in],
// weights [B, out, in], biases [B, out] (every layer per instance; mixed layers are not taken).
Net make_net(const torch::Tensor& x, const std::vector<torch::Tensor>& weights, const std::vector<torch::Tensor>& biases,
             const std::vector<int64_t>& acts, const std::vector<double>& w0s, int64_t chunk) {
  const int L = static_cast<int>(weights.size());
  TORCH_CHECK(L >= 1 && acts.size() == weights.size() && w0s.size() == weights.size(), "mlp_cpu: bad layer lists");
  TORCH_CHECK(biases.empty() || biases.size() == weights.size(), "mlp_cpu: biases for all layers or none");
  TORCH_CHECK(chunk >= 1 && chunk <= 4096, "mlp_cpu: chunk must be in [1, 4096]");
  const bool inst = weights[0].dim() == 3;
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.is_contiguous() && x.dim() == (inst ? 3 : 2),
              "mlp_cpu: x must be a contiguous float32 CPU tensor ", inst ? "[B, N, d_in]" : "[N, d_in]");
  Net net;
  net.L = L;
  net.chunk = chunk;
  net.nw = inst ? x.size(0) : 1;
  net.has_bias = !biases.empty();
  net.w.push_back(x.size(-1));
  const int wd = inst ? 3 : 2;
  for (int l = 0; l < L; ++l) {
    const auto& W = weights[l];
    TORCH_CHECK(W.device().is_cpu() && W.scalar_type() == torch::kFloat32 && W.dim() == wd,
                "mlp_cpu: weights must all be float32 CPU ", inst ? "[B, out, in]" : "[out, in]");
    TORCH_CHECK(!inst || W.size(0) == net.nw, "mlp_cpu: layer ", l, " has ", W.size(0), " weight sets for ", net.nw,
                " instances");
    TORCH_CHECK(W.size(-1) == net.w[l], "mlp_cpu: layer ", l, " expects ", W.size(-1), " inputs, got ", net.w[l]);
    TORCH_CHECK(W.size(-2) >= 1 && W.size(-2) <= 1024 && W.size(-1) <= 1024, "mlp_cpu: widths must be in [1, 1024]");
    net.w.push_back(W.size(-2));
    if (net.has_bias) {
      const auto& B = biases[l];
      TORCH_CHECK(B.device().is_cpu() && B.scalar_type() == torch::kFloat32 && B.dim() == wd - 1 &&
                      B.size(-1) == W.size(-2) && (!inst || B.size(0) == net.nw),
                  "mlp_cpu: bias ", l, " must be float32 CPU ", inst ? "[B, out]" : "[out]");
    }
    TORCH_CHECK(acts[l] >= kNone && acts[l] <= kExp, "mlp_cpu: bad activation code");
    TORCH_CHECK(l == L - 1 || acts[l] <= kSine, "mlp_cpu: hidden activation must be none, relu or sine");
    net.act.push_back(static_cast<int>(acts[l]));
    net.w0.push_back(static_cast<float>(w0s[l]));
  }
  for (auto v : net.w) {
    net.wp.push_back(pad8(v));
    net.maxp = std::max(net.maxp, pad8(v));
  }
  net.hoff.assign(L + 1, 0);
  net.zoff.assign(L + 1, 0);
  for (int l = 1; l < L; ++l) {
    net.hoff[l] = net.save_floats;
    net.save_floats += chunk * net.wp[l];
    net.zoff[l] = net.hoff[l];
    if (net.act[l - 1] == kSine) {
      net.zoff[l] = net.save_floats;
      net.save_floats += chunk * net.wp[l];
    }
  }
  std::vector<torch::Tensor> Wc, Bc;
  for (int l = 0; l < L; ++l) {
    const int64_t in = net.w[l], out = net.w[l + 1], ip = net.wp[l], op = net.wp[l + 1];
    Wc.push_back(weights[l].contiguous());
    if (net.has_bias) Bc.push_back(biases[l].contiguous());
    net.WT.emplace_back(net.nw * in * op, 0.0f);
    net.Wp.emplace_back(net.nw * out * ip, 0.0f);
    if (net.has_bias) net.bias.emplace_back(net.nw * op, 0.0f);
  }
  // Transposed and padded copies, one weight set per task (B of them per instance).
  auto prepare = [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int l = 0; l < L; ++l) {
        const int64_t in = net.w[l], out = net.w[l + 1], ip = net.wp[l], op = net.wp[l + 1];
        const float* w = Wc[l].data_ptr<float>() + b * out * in;
        float* wt = net.WT[l].data() + b * in * op;
        float* wpad = net.Wp[l].data() + b * out * ip;
        for (int64_t o = 0; o < out; ++o)
          for (int64_t i = 0; i < in; ++i) {
            wt[i * op + o] = w[o * in + i];
            wpad[o * ip + i] = w[o * in + i];
          }
        if (net.has_bias) std::copy_n(Bc[l].data_ptr<float>() + b * out, out, net.bias[l].data() + b * op);
      }
  };
  if (net.nw > 1)
    at::parallel_for(0, net.nw, 1, prepare);
  else
    prepare(0, 1);
  return net;
}

// Returns (y, saved): saved holds every hidden layer's activations for the backward when
// save_max_bytes allows them (else it is undefined and the backward recomputes).
std::tuple<torch::Tensor, torch::Tensor> mlp_forward(const torch::Tensor& x, const std::vector<torch::Tensor>& weights,
                                                     const std::vector<torch::Tensor>& biases,
                                                     const std::vector<int64_t>& acts, const std::vector<double>& w0s,
                                                     int64_t chunk, int64_t save_max_bytes) {
  const Net net = make_net(x, weights, biases, acts, w0s, chunk);
  const int64_t nb = net.nw, n = x.size(-2), din = net.w[0], dout = net.w[net.L];
  auto y = x.dim() == 3 ? inr_pool::empty({nb, n, dout}, x.options()) : inr_pool::empty({n, dout}, x.options());
  const int64_t nc = (n + chunk - 1) / chunk;  // chunks per instance
  torch::Tensor saved;
  if (n > 0 && net.save_floats > 0 && nb * nc * net.save_floats * 4 <= save_max_bytes)
    saved = inr_pool::empty({nb * nc, net.save_floats}, x.options());
  if (n == 0) return {y, saved};
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  float* sp = saved.defined() ? saved.data_ptr<float>() : nullptr;
  const bool simd = use_avx2();
  at::parallel_for(0, nb * nc, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> buf(2 * net.chunk * net.maxp);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / nc, r0 = (t % nc) * chunk;
      const int rows = static_cast<int>(std::min(chunk, n - r0));
      const float* xc = xp + (b * n + r0) * din;
      float* yc = yp + (b * n + r0) * dout;
      float* save = sp ? sp + t * net.save_floats : nullptr;
#if INR_HAVE_AVX2_PATH
      if (simd) {
        avx2::forward_chunk(net, b, xc, rows, yc, buf.data(), save);
        continue;
      }
#endif
      portable::forward_chunk(net, b, xc, rows, yc, buf.data(), save);
    }
  });
  return {y, saved};
}

// Weight/bias gradient accumulators of `groups` groups of chunks: per group and layer, padded dW
// [out, in_p] then db [out_p]. `tensors` adds each output's `per_out` consecutive groups in order
// (so the sum does not depend on which thread ran which group) and unpads them into dW [nout?,
// out, in] and db [nout?, out] tensors.
struct GradAcc {
  std::vector<int64_t> woff, boff;
  int64_t per_group = 0;
  std::vector<float> acc;

  GradAcc(const Net& net, int64_t groups, bool on) {
    for (int l = 0; l < net.L; ++l) {
      woff.push_back(per_group);
      per_group += net.w[l + 1] * net.wp[l];
      boff.push_back(per_group);
      per_group += net.wp[l + 1];
    }
    if (on) acc.assign(groups * per_group, 0.0f);
  }
  // Group g's dW / db pointers per layer (null when not accumulating).
  void pointers(int64_t g, std::vector<float*>& dW, std::vector<float*>& dB) {
    for (size_t l = 0; l < dW.size(); ++l) {
      dW[l] = acc.empty() ? nullptr : acc.data() + g * per_group + woff[l];
      dB[l] = acc.empty() ? nullptr : acc.data() + g * per_group + boff[l];
    }
  }
  std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> tensors(const Net& net, int64_t nout,
                                                                            int64_t per_out, bool inst,
                                                                            const torch::TensorOptions& opts) {
    for (int64_t b = 0; b < nout; ++b) {
      float* dst = acc.data() + b * per_out * per_group;
      for (int64_t g = 1; g < per_out; ++g) {
        const float* src = dst + g * per_group;
        for (int64_t i = 0; i < per_group; ++i) dst[i] += src[i];
      }
    }
    std::vector<torch::Tensor> dws, dbs;
    for (int l = 0; l < net.L; ++l) {
      const int64_t in = net.w[l], out = net.w[l + 1], ip = net.wp[l];
      auto dw = inst ? torch::empty({nout, out, in}, opts) : torch::empty({out, in}, opts);
      torch::Tensor db;
      if (net.has_bias) db = inst ? torch::empty({nout, out}, opts) : torch::empty({out}, opts);
      for (int64_t b = 0; b < nout; ++b) {
        const float* a = acc.data() + b * per_out * per_group;
        float* d = dw.data_ptr<float>() + b * out * in;
        for (int64_t o = 0; o < out; ++o)
          for (int64_t i = 0; i < in; ++i) d[o * in + i] = a[woff[l] + o * ip + i];
        if (net.has_bias) std::copy_n(a + boff[l], out, db.data_ptr<float>() + b * out);
      }
      dws.push_back(dw);
      if (net.has_bias) dbs.push_back(db);
    }
    return {dws, dbs};
  }
};

// Returns (gx or undefined, [dW_l], [db_l]) where the weight lists are empty unless need_w.
// Shared weights: dW/db summed over groups of chunks fixed by N, groups added in order. Per-instance
// weights: each instance's chunks in gpi groups (fixed by B and N), added in order per instance,
// parallel over all groups. Either way the result does not depend on the thread count.
std::tuple<torch::Tensor, std::vector<torch::Tensor>, std::vector<torch::Tensor>> mlp_backward(
    const torch::Tensor& x, const std::vector<torch::Tensor>& weights, const std::vector<torch::Tensor>& biases,
    const std::vector<int64_t>& acts, const std::vector<double>& w0s, const torch::Tensor& gy, bool need_x,
    bool need_w, int64_t chunk, const torch::Tensor& saved) {
  const Net net = make_net(x, weights, biases, acts, w0s, chunk);
  const bool inst = x.dim() == 3;
  const int64_t nb = net.nw, n = x.size(-2), din = net.w[0], dout = net.w[net.L];
  TORCH_CHECK(gy.scalar_type() == torch::kFloat32 && gy.is_contiguous() && gy.dim() == x.dim() &&
                  gy.size(-2) == n && gy.size(-1) == dout && (!inst || gy.size(0) == nb),
              "mlp_cpu: grad_out must be contiguous float32 shaped like the output");
  torch::Tensor gx;
  if (need_x) gx = inr_pool::empty(x.sizes(), x.options());
  const int64_t nc = (n + chunk - 1) / chunk;  // chunks per instance
  const int64_t total = nb * nc;
  const float* sp = nullptr;
  if (saved.defined() && saved.numel() > 0) {
    TORCH_CHECK(saved.scalar_type() == torch::kFloat32 && saved.is_contiguous() &&
                    saved.numel() == total * net.save_floats,
                "mlp_cpu: saved activations do not match this call (same chunk and shapes as the forward)");
    sp = saved.data_ptr<float>();
  }
  // Groups of chunks with their own dW/db accumulators, fixed by the shapes (never the thread
  // count). Shared weights: min(16, chunks). Per instance: each instance's chunks split into gpi
  // groups, gpi = 16 / B (at least 1), so a few instances still keep both cores busy.
  const int64_t gpi = inst ? std::max<int64_t>(1, std::min<int64_t>(nc, kMaxGroups / nb)) : 1;
  const int64_t G = !need_w ? 1 : inst ? nb * gpi : std::max<int64_t>(1, std::min<int64_t>(kMaxGroups, nc));
  GradAcc acc(net, G, need_w);
  const float* xp = x.data_ptr<float>();
  const float* gp = gy.data_ptr<float>();
  float* gxp = need_x ? gx.data_ptr<float>() : nullptr;
  const bool simd = use_avx2();
  // Chunks [tbegin, tend) of the flattened (instance, chunk) order, into group `gidx`.
  auto run_group = [&](int64_t gidx, int64_t tbegin, int64_t tend, Scratch& s) {
    std::vector<float*> dW(net.L, nullptr), dB(net.L, nullptr);
    acc.pointers(gidx, dW, dB);
    for (int64_t t = tbegin; t < tend; ++t) {
      const int64_t b = t / nc, r0 = (t % nc) * chunk, row = b * n + r0;
      const int rows = static_cast<int>(std::min(chunk, n - r0));
      float* gxc = gxp ? gxp + row * din : nullptr;
      const float* sv = sp ? sp + t * net.save_floats : nullptr;
#if INR_HAVE_AVX2_PATH
      if (simd) {
        avx2::backward_chunk(net, b, xp + row * din, gp + row * dout, rows, gxc, dW.data(), dB.data(), need_w, sv, s);
        continue;
      }
#endif
      portable::backward_chunk(net, b, xp + row * din, gp + row * dout, rows, gxc, dW.data(), dB.data(), need_w, sv,
                               s);
    }
  };
  if (n > 0) {
    if (need_w) {
      at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
        Scratch s(net);
        for (int64_t g = g0; g < g1; ++g) run_group(g, g * total / G, (g + 1) * total / G, s);
      });
    } else {  // no accumulation: any split of the chunks gives the same rows
      at::parallel_for(0, total, 1, [&](int64_t c0, int64_t c1) {
        Scratch s(net);
        run_group(0, c0, c1, s);
      });
    }
  }
  std::vector<torch::Tensor> dws, dbs;
  // Shared weights: all G groups into one output; per instance: each instance's gpi groups.
  if (need_w) std::tie(dws, dbs) = acc.tensors(net, inst ? nb : 1, inst ? gpi : G, inst, x.options());
  return {gx, dws, dbs};
}

// Double backward for losses on dL/dx (shared weights, output activation none): v = the upstream
// gradient of gx. Returns (d/dx or undefined, [d/dW_l], [d/db_l], d/dgy or undefined). Weight
// gradients are summed per group of chunks fixed by N and added in order, as mlp_backward.
std::tuple<torch::Tensor, std::vector<torch::Tensor>, std::vector<torch::Tensor>, torch::Tensor> mlp_double_backward(
    const torch::Tensor& x, const std::vector<torch::Tensor>& weights, const std::vector<torch::Tensor>& biases,
    const std::vector<int64_t>& acts, const std::vector<double>& w0s, const torch::Tensor& gy, const torch::Tensor& v,
    bool need_x, bool need_w, bool need_gy, int64_t chunk) {
  const Net net = make_net(x, weights, biases, acts, w0s, chunk);
  TORCH_CHECK(net.nw == 1 && x.dim() == 2, "mlp_cpu: the double backward takes shared weights and x [N, d]");
  TORCH_CHECK(net.act[net.L - 1] == kNone, "mlp_cpu: the double backward needs output activation none");
  const int64_t n = x.size(0), din = net.w[0], dout = net.w[net.L];
  TORCH_CHECK(gy.scalar_type() == torch::kFloat32 && gy.is_contiguous() && gy.dim() == 2 && gy.size(0) == n &&
                  gy.size(1) == dout, "mlp_cpu: gy must be contiguous float32 [N, d_out]");
  TORCH_CHECK(v.scalar_type() == torch::kFloat32 && v.is_contiguous() && v.sizes() == x.sizes(),
              "mlp_cpu: v must be contiguous float32 shaped like x");
  torch::Tensor gx2, ggy;
  if (need_x) gx2 = torch::empty(x.sizes(), x.options());
  if (need_gy) ggy = torch::empty(gy.sizes(), x.options());
  const int64_t nc = (n + chunk - 1) / chunk;
  const int64_t G = std::max<int64_t>(1, std::min<int64_t>(kMaxGroups, nc));
  GradAcc acc(net, G, need_w);
  const bool simd = use_avx2();
  if (n > 0) {
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      Scratch2 s(net);
      std::vector<float*> dW(net.L, nullptr), dB(net.L, nullptr);
      for (int64_t g = g0; g < g1; ++g) {
        acc.pointers(g, dW, dB);
        for (int64_t t = g * nc / G; t < (g + 1) * nc / G; ++t) {
          const int64_t r0 = t * chunk;
          const int rows = static_cast<int>(std::min(chunk, n - r0));
          const float* xc = x.data_ptr<float>() + r0 * din;
          const float* vc = v.data_ptr<float>() + r0 * din;
          const float* gc = gy.data_ptr<float>() + r0 * dout;
          float* gx2c = need_x ? gx2.data_ptr<float>() + r0 * din : nullptr;
          float* ggyc = need_gy ? ggy.data_ptr<float>() + r0 * dout : nullptr;
#if INR_HAVE_AVX2_PATH
          if (simd) {
            avx2::double_backward_chunk(net, xc, vc, gc, rows, dW.data(), dB.data(), need_w, gx2c, ggyc, s);
            continue;
          }
#endif
          portable::double_backward_chunk(net, xc, vc, gc, rows, dW.data(), dB.data(), need_w, gx2c, ggyc, s);
        }
      }
    });
  }
  std::vector<torch::Tensor> dws, dbs;
  if (need_w) std::tie(dws, dbs) = acc.tensors(net, 1, G, false, x.options());
  return {gx2, dws, dbs, ggy};
}

// sin and cos of a float32 tensor through the kernel's own routine (AVX2 where available, else
// libm), so tests can measure its accuracy directly.
std::tuple<torch::Tensor, torch::Tensor> sincos_tensor(const torch::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32, "sincos: float32 CPU tensor");
  auto tc = t.contiguous();
  auto s = torch::empty_like(tc), c = torch::empty_like(tc);
  const float* tp = tc.data_ptr<float>();
  float* sp = s.data_ptr<float>();
  float* cp = c.data_ptr<float>();
  const int64_t n = tc.numel();
#if INR_HAVE_AVX2_PATH
  if (use_avx2()) {
    avx2::sincos_array(tp, sp, cp, n);
    return {s, c};
  }
#endif
  for (int64_t i = 0; i < n; ++i) {
    sp[i] = std::sin(tp[i]);
    cp[i] = std::cos(tp[i]);
  }
  return {s, c};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("mlp_forward", &mlp_forward, "fused MLP forward (CPU, float32 weights shared or per instance): (y, saved)");
  m.def("mlp_backward", &mlp_backward, "fused MLP backward: (dx, [dW], [db]) (CPU); saved: the forward's or empty");
  m.def("mlp_double_backward", &mlp_double_backward,
        "double backward for losses on dL/dx: (d x, [d W], [d b], d gy) (CPU, shared weights, output none)");
  m.def("sincos", &sincos_tensor, "(sin t, cos t) by the kernel's vectorised routine (CPU float32)");
  m.def("set_simd", [](int mode) { g_simd.store(mode); }, "AVX2 path: -1 auto, 0 never, 1 where possible");
  m.def("simd_available", &cpu_has_avx2, "whether this CPU can run the AVX2/FMA path");
}
