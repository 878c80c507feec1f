// Fused Adam steps on the CPU (inr/train/optim.py): one pass over each parameter, all parameters
// of a step in one call.
//
// adam_dense_: torch.optim.Adam's update (no amsgrad, no weight decay) for every element:
//     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// adam_rows_: the same update for the ROWS of a [R, F] table whose gradient row is not all zero
// (the rows a hash-grid step touched); other rows are not read or written beyond their gradient.
// Each row remembers the step it was last updated (`last`); a row touched again after k skipped
// steps first decays its moments by b1^k and b2^k in closed form, so its m and v are what dense
// Adam would hold (up to rounding). Its parameter does NOT drift during the skipped steps (dense
// Adam keeps moving a row with zero gradient along its decaying momentum): this is the lazy
// variant for the parameters, exact for the moments; with every row touched it equals dense Adam.
//
// Elementwise work parallelises over elements (rows), so results do not depend on the thread
// count. The loops are compiled twice (AVX2 and baseline, picked at load time) without FMA
// contraction, so both clones round identically.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

struct Hyper {
  float lr_c1;     // lr / (1 - b1^t)
  float inv_sc2;   // 1 / sqrt(1 - b2^t)
  float b1, b2, eps;
  float a1, a2;    // 1 - b1 and 1 - b2, rounded from double as torch.optim.Adam does: 1.0f - 0.999f
                   // would be 1.3e-5 off, and v's increment with it
};

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define INR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define INR_CLONES
#endif

INR_CLONES void adam_span(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v,
                          int64_t n, Hyper h) {
  const float a1 = h.a1, a2 = h.a2;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = h.b1 * m[i] + a1 * gi;
    const float vi = h.b2 * v[i] + a2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= h.lr_c1 * mi / (std::sqrt(vi) * h.inv_sc2 + h.eps);
  }
}

// Rows [b, e) of the lazy step: rows with an all-zero gradient are skipped.
INR_CLONES int64_t adam_rows_span(float* __restrict p, const float* __restrict g, float* __restrict m,
                                  float* __restrict v, int64_t* __restrict last, int64_t b, int64_t e, int64_t nf,
                                  int64_t step, double b1d, double b2d, Hyper h) {
  const float a1 = h.a1, a2 = h.a2;
  int64_t count = 0;
  for (int64_t r = b; r < e; ++r) {
    const float* gr = g + r * nf;
    bool any = false;
    for (int64_t f = 0; f < nf; ++f) any |= gr[f] != 0.0f;
    if (!any) continue;
    float d1 = 1.0f, d2 = 1.0f;
    const int64_t skipped = step - 1 - last[r];
    if (skipped > 0) {  // the moments' decay over the skipped steps, in closed form
      d1 = static_cast<float>(std::pow(b1d, static_cast<double>(skipped)));
      d2 = static_cast<float>(std::pow(b2d, static_cast<double>(skipped)));
    }
    for (int64_t f = 0; f < nf; ++f) {
      const int64_t i = r * nf + f;
      const float gi = gr[f];
      const float mi = h.b1 * (d1 * m[i]) + a1 * gi;
      const float vi = h.b2 * (d2 * v[i]) + a2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] -= h.lr_c1 * mi / (std::sqrt(vi) * h.inv_sc2 + h.eps);
    }
    last[r] = step;
    ++count;
  }
  return count;
}

Hyper hyper(double lr, double b1, double b2, double eps, int64_t step) {
  Hyper h;
  h.lr_c1 = static_cast<float>(lr / (1.0 - std::pow(b1, static_cast<double>(step))));
  h.inv_sc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(b2, static_cast<double>(step))));
  h.b1 = static_cast<float>(b1);
  h.b2 = static_cast<float>(b2);
  h.a1 = static_cast<float>(1.0 - b1);
  h.a2 = static_cast<float>(1.0 - b2);
  h.eps = static_cast<float>(eps);
  return h;
}

void check(const torch::Tensor& t, const torch::Tensor& like, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous(),
              "adam: ", what, " must be a contiguous float32 CPU tensor");
  TORCH_CHECK(t.numel() == like.numel(), "adam: ", what, " has ", t.numel(), " elements, expected ", like.numel());
}

// One step for each parameter i (its own step count steps[i]); lr, betas and eps per call.
void adam_dense_(std::vector<torch::Tensor> params, std::vector<torch::Tensor> grads, std::vector<torch::Tensor> ms,
                 std::vector<torch::Tensor> vs, std::vector<int64_t> steps, double lr, double b1, double b2, double eps) {
  const size_t k = params.size();
  TORCH_CHECK(grads.size() == k && ms.size() == k && vs.size() == k && steps.size() == k, "adam: list lengths differ");
  // one flat index space over all parameters, so small ones share threads
  std::vector<int64_t> start(k + 1, 0);
  std::vector<Hyper> hs(k);
  for (size_t i = 0; i < k; ++i) {
    check(params[i], params[i], "param");
    check(grads[i], params[i], "grad");
    check(ms[i], params[i], "exp_avg");
    check(vs[i], params[i], "exp_avg_sq");
    TORCH_CHECK(steps[i] >= 1, "adam: step counts start at 1");
    start[i + 1] = start[i] + params[i].numel();
    hs[i] = hyper(lr, b1, b2, eps, steps[i]);
  }
  at::parallel_for(0, start[k], 1 << 14, [&](int64_t b, int64_t e) {
    size_t i = std::upper_bound(start.begin(), start.end(), b) - start.begin() - 1;
    for (; i < k && start[i] < e; ++i) {
      const int64_t lo = std::max(b, start[i]) - start[i], hi = std::min(e, start[i + 1]) - start[i];
      if (hi <= lo) continue;
      adam_span(params[i].data_ptr<float>() + lo, grads[i].data_ptr<float>() + lo, ms[i].data_ptr<float>() + lo,
                vs[i].data_ptr<float>() + lo, hi - lo, hs[i]);
    }
  });
}

// The lazy row step (see the file comment). Returns the number of rows updated.
int64_t adam_rows_(torch::Tensor param, torch::Tensor grad, torch::Tensor m, torch::Tensor v, torch::Tensor last,
                   int64_t step, double lr, double b1, double b2, double eps) {
  check(param, param, "param");
  check(grad, param, "grad");
  check(m, param, "exp_avg");
  check(v, param, "exp_avg_sq");
  TORCH_CHECK(param.dim() == 2, "adam_rows_: param [rows, features]");
  TORCH_CHECK(last.scalar_type() == torch::kInt64 && last.is_contiguous() && last.numel() == param.size(0),
              "adam_rows_: last must be int64 [rows]");
  TORCH_CHECK(step >= 1, "adam: step counts start at 1");
  const int64_t rows = param.size(0), nf = param.size(1);
  const Hyper h = hyper(lr, b1, b2, eps, step);
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* mp = m.data_ptr<float>();
  float* vp = v.data_ptr<float>();
  int64_t* lp = last.data_ptr<int64_t>();
  std::atomic<int64_t> touched{0};
  at::parallel_for(0, rows, 1 << 12, [&](int64_t b, int64_t e) {
    touched += adam_rows_span(p, g, mp, vp, lp, b, e, nf, step, b1, b2, h);
  });
  return touched.load();
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("adam_dense_", &adam_dense_, "fused Adam step over a list of float32 CPU parameters");
  m.def("adam_rows_", &adam_rows_, "lazy-row Adam step for a [rows, F] table (moments decayed in closed form)");
}
