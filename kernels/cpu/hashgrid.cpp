// Multiresolution hash-grid encoding on the CPU (tiny-cuda-nn semantics, see
// inr/encodings/hashgrid.py): forward, and backward to the table and to x.
//
// x [N, D] float32 in [0, 1] (the Python side checks), table [R, F] float32 shared by all points,
// output [N, L*F] level-major. Per level: pos = x * scale + 0.5 rounded ONCE to float32 (computed
// exactly in double, then rounded: the same as tcnn's fmaf and the PyTorch path), cell =
// floor(pos), frac = pos - cell; rows are dense (x + y*res + z*res^2) or XOR-hashed, in uint32
// arithmetic, then `% size` plus the level's row offset.
//
// Forward and the x-gradient parallelise over points. The table gradient parallelises over
// LEVELS: each level owns disjoint table rows, so no two threads ever add into the same row, and
// every row accumulates its points in index order: deterministic and race-free. Levels are
// dealt out round-robin to G = min(L, threads) groups (coarse levels fit in cache, fine ones do
// not, so interleaving balances the groups). With x-gradients each group writes a private
// [N, D] partial sum; partials are added in group order afterwards.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr uint32_t kPrimes[3] = {1u, 2654435761u, 805459861u};

struct Level {
  double scale;     // float32 value of tcnn's scale, widened
  float scale_f;
  uint32_t res;
  uint32_t size;
  uint32_t mask;    // size - 1 when size is a power of two, else 0
  int64_t offset;
  bool hashed;
  bool pow2;
};

std::vector<Level> make_levels(const torch::Tensor& scales, const torch::Tensor& meta) {
  // scales: float64 [L]; meta: int64 [L, 4] = (res, size, offset, hashed)
  auto s = scales.accessor<double, 1>();
  auto m = meta.accessor<int64_t, 2>();
  std::vector<Level> lv(s.size(0));
  for (int64_t l = 0; l < s.size(0); ++l) {
    Level& v = lv[l];
    v.scale = s[l];
    v.scale_f = static_cast<float>(s[l]);
    v.res = static_cast<uint32_t>(m[l][0]);
    v.size = static_cast<uint32_t>(m[l][1]);
    v.offset = m[l][2];
    v.hashed = m[l][3] != 0;
    v.pow2 = (v.size & (v.size - 1)) == 0;
    v.mask = v.pow2 ? v.size - 1 : 0;
  }
  return lv;
}

// Per point and level: the 2^D corner rows and the per-axis weight pairs (1 - s, s).
template <int D, bool SMOOTH>
struct Corners {
  static constexpr int C = 1 << D;
  int64_t row[C];
  float pair[D][2];
  float dsdx[D];  // d s / d x (scale * ds/dfrac)

  inline void compute(const float* xi, const Level& lv) {
    // per axis, the two corner terms (cell + b) * k, k = prime (hashed) or res^j (dense)
    uint32_t term[D][2];
    uint32_t stride = 1;
    for (int j = 0; j < D; ++j) {
      const float pos = static_cast<float>(static_cast<double>(xi[j]) * lv.scale + 0.5);
      // pos >= 0.5 for x in [0, 1] (the Python side checks), so truncation is floor (and needs
      // no SSE4.1 roundss, which a portable build cannot assume)
      const int32_t ci = static_cast<int32_t>(pos);
      const float f = pos - static_cast<float>(ci);
      const uint32_t k = lv.hashed ? kPrimes[j] : stride;
      stride *= lv.res;
      term[j][0] = static_cast<uint32_t>(ci) * k;
      term[j][1] = term[j][0] + k;
      float s = f;
      float ds = 1.0f;
      if (SMOOTH) {
        s = f * f * (3.0f - 2.0f * f);
        ds = 6.0f * f * (1.0f - f);
      }
      pair[j][0] = 1.0f - s;
      pair[j][1] = s;
      dsdx[j] = ds * lv.scale_f;
    }
    for (int c = 0; c < C; ++c) {
      uint32_t idx = term[0][c & 1];
      if (lv.hashed) {
        for (int j = 1; j < D; ++j) idx ^= term[j][(c >> j) & 1];
      } else {
        for (int j = 1; j < D; ++j) idx += term[j][(c >> j) & 1];
      }
      if (lv.pow2) idx &= lv.mask;
      else if (idx >= lv.size) idx %= lv.size;
      row[c] = lv.offset + static_cast<int64_t>(idx);
    }
  }

  inline float weight(int c) const {
    float w = pair[0][c & 1];
    for (int j = 1; j < D; ++j) w *= pair[j][(c >> j) & 1];
    return w;
  }
};

template <int D, int F, bool SMOOTH>
void forward_impl(const float* x, const float* table, float* out, int64_t n, const std::vector<Level>& levels,
                  const int32_t* perm) {
  const int L = static_cast<int>(levels.size());
  const Level* lvp = levels.data();
  at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
    Corners<D, SMOOTH> cr;
    for (int64_t k = begin; k < end; ++k) {
      const int64_t i = perm != nullptr ? perm[k] : k;
      const float* xi = x + i * D;
      float* oi = out + i * static_cast<int64_t>(L) * F;
      for (int l = 0; l < L; ++l) {
        cr.compute(xi, lvp[l]);
        float acc[F];
        for (int f = 0; f < F; ++f) acc[f] = 0.0f;
        for (int c = 0; c < Corners<D, SMOOTH>::C; ++c) {
          const float w = cr.weight(c);
          const float* v = table + cr.row[c] * F;
          for (int f = 0; f < F; ++f) acc[f] += w * v[f];
        }
        for (int f = 0; f < F; ++f) oi[l * F + f] = acc[f];
      }
    }
  });
}

// d <g, out_l> / d x_j for one point and level, added into gx[D].
template <int D, int F, bool SMOOTH>
inline void add_x_grad(const Corners<D, SMOOTH>& cr, const float* table, const float* g, float* gx) {
  constexpr int C = 1 << D;
  float dot[C];
  for (int c = 0; c < C; ++c) {
    const float* v = table + cr.row[c] * F;
    float a = 0.0f;
    for (int f = 0; f < F; ++f) a += v[f] * g[f];
    dot[c] = a;
  }
  for (int j = 0; j < D; ++j) {
    float acc = 0.0f;
    for (int c = 0; c < C; ++c) {
      float w = 1.0f;
      for (int k = 0; k < D; ++k)
        if (k != j) w *= cr.pair[k][(c >> k) & 1];
      acc += ((c >> j) & 1) ? w * dot[c] : -w * dot[c];
    }
    gx[j] += acc * cr.dsdx[j];
  }
}

template <int D, int F, bool SMOOTH>
void backward_impl(const float* x, const float* table, const float* gout, float* gtable, float* gx,
                   int64_t n, const std::vector<Level>& levels, const int32_t* perm) {
  const int L = static_cast<int>(levels.size());
  const Level* lvp = levels.data();
  const int64_t LF = static_cast<int64_t>(L) * F;
  if (gtable == nullptr) {  // x-gradient only: parallel over points, no partials
    at::parallel_for(0, n, 1024, [&](int64_t begin, int64_t end) {
      Corners<D, SMOOTH> cr;
      for (int64_t k = begin; k < end; ++k) {
        const int64_t i = perm != nullptr ? perm[k] : k;
        float acc[D] = {};
        for (int l = 0; l < L; ++l) {
          cr.compute(x + i * D, lvp[l]);
          add_x_grad<D, F, SMOOTH>(cr, table, gout + i * LF + l * F, acc);
        }
        for (int j = 0; j < D; ++j) gx[i * D + j] = acc[j];
      }
    });
    return;
  }
  const int G = std::max(1, std::min(L, at::get_num_threads()));
  std::vector<float> partial;
  if (gx != nullptr && G > 1) partial.assign(static_cast<size_t>(G - 1) * n * D, 0.0f);
  at::parallel_for(0, G, 1, [&](int64_t gbegin, int64_t gend) {
    Corners<D, SMOOTH> cr;
    for (int64_t grp = gbegin; grp < gend; ++grp) {
      float* gxg = gx == nullptr ? nullptr : (grp == 0 ? gx : partial.data() + (grp - 1) * n * D);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t i = perm != nullptr ? perm[k] : k;
        const float* xi = x + i * D;
        const float* gi = gout + i * LF;
        for (int l = static_cast<int>(grp); l < L; l += G) {
          cr.compute(xi, lvp[l]);
          const float* g = gi + l * F;
          for (int c = 0; c < Corners<D, SMOOTH>::C; ++c) {
            const float w = cr.weight(c);
            float* dst = gtable + cr.row[c] * F;
            for (int f = 0; f < F; ++f) dst[f] += w * g[f];
          }
          if (gxg != nullptr) add_x_grad<D, F, SMOOTH>(cr, table, g, gxg + i * D);
        }
      }
    }
  });
  if (gx != nullptr) {
    for (int grp = 1; grp < G; ++grp) {
      const float* p = partial.data() + static_cast<int64_t>(grp - 1) * n * D;
      at::parallel_for(0, n * D, 16384, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) gx[k] += p[k];
      });
    }
  }
}

template <template <int, int, bool> class Fn, typename... Args>
void dispatch(int d, int64_t nf, bool smooth, Args&&... args) {
#define INR_CASE(DD, FF)                                                  \
  if (d == DD && nf == FF) {                                              \
    if (smooth) Fn<DD, FF, true>::run(args...);                           \
    else Fn<DD, FF, false>::run(args...);                                 \
    return;                                                               \
  }
  INR_CASE(2, 1) INR_CASE(2, 2) INR_CASE(2, 4) INR_CASE(2, 8)
  INR_CASE(3, 1) INR_CASE(3, 2) INR_CASE(3, 4) INR_CASE(3, 8)
#undef INR_CASE
  TORCH_CHECK(false, "hashgrid_cpu: unsupported d=", d, " F=", nf, " (d in 2, 3; F in 1, 2, 4, 8)");
}

template <int D, int F, bool S>
struct Fwd {
  template <typename... A> static void run(A&&... a) { forward_impl<D, F, S>(a...); }
};
template <int D, int F, bool S>
struct Bwd {
  template <typename... A> static void run(A&&... a) { backward_impl<D, F, S>(a...); }
};

torch::Tensor hashgrid_order(torch::Tensor x);
const int32_t* perm_ptr(const torch::Tensor& perm, int64_t n);

void check_inputs(const torch::Tensor& x, const torch::Tensor& table, const torch::Tensor& scales,
                  const torch::Tensor& meta) {
  TORCH_CHECK(x.device().is_cpu() && table.device().is_cpu(), "hashgrid_cpu: CPU tensors only");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 && table.scalar_type() == torch::kFloat32,
              "hashgrid_cpu: float32 x and table only");
  TORCH_CHECK(x.dim() == 2 && table.dim() == 2, "hashgrid_cpu: x [N, d] and table [R, F]");
  TORCH_CHECK(x.is_contiguous() && table.is_contiguous(), "hashgrid_cpu: contiguous inputs only");
  TORCH_CHECK(scales.scalar_type() == torch::kFloat64 && scales.dim() == 1, "hashgrid_cpu: scales float64 [L]");
  TORCH_CHECK(meta.scalar_type() == torch::kInt64 && meta.dim() == 2 && meta.size(1) == 4 &&
              meta.size(0) == scales.size(0), "hashgrid_cpu: meta int64 [L, 4]");
  auto m = meta.accessor<int64_t, 2>();
  for (int64_t l = 0; l < meta.size(0); ++l)
    TORCH_CHECK(m[l][2] >= 0 && m[l][2] + m[l][1] <= table.size(0), "hashgrid_cpu: level rows outside the table");
}

torch::Tensor hashgrid_forward(torch::Tensor x, torch::Tensor table, torch::Tensor scales, torch::Tensor meta,
                               bool smooth, torch::Tensor perm) {
  check_inputs(x, table, scales, meta);
  const auto levels = make_levels(scales, meta);
  const int64_t n = x.size(0), nf = table.size(1);
  auto out = torch::empty({n, static_cast<int64_t>(levels.size()) * nf}, x.options());
  if (n == 0) return out;
  dispatch<Fwd>(static_cast<int>(x.size(1)), nf, smooth, x.data_ptr<float>(), table.data_ptr<float>(),
                out.data_ptr<float>(), n, levels, perm_ptr(perm, n));
  return out;
}

std::vector<torch::Tensor> hashgrid_backward(torch::Tensor x, torch::Tensor table, torch::Tensor grad_out,
                                             torch::Tensor scales, torch::Tensor meta, bool smooth,
                                             bool need_table, bool need_x, torch::Tensor perm) {
  check_inputs(x, table, scales, meta);
  const auto levels = make_levels(scales, meta);
  const int64_t n = x.size(0), nf = table.size(1);
  grad_out = grad_out.to(torch::kFloat32).contiguous();
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == n &&
              grad_out.size(1) == static_cast<int64_t>(levels.size()) * nf, "hashgrid_cpu: grad_out [N, L*F]");
  torch::Tensor gt, gx;
  if (need_table) gt = torch::zeros_like(table);
  if (need_x) gx = torch::zeros_like(x);
  if (n > 0 && (need_table || need_x)) {
    dispatch<Bwd>(static_cast<int>(x.size(1)), nf, smooth, x.data_ptr<float>(), table.data_ptr<float>(),
                  grad_out.data_ptr<float>(), need_table ? gt.data_ptr<float>() : nullptr,
                  need_x ? gx.data_ptr<float>() : nullptr, n, levels, perm_ptr(perm, n));
  }
  return {gt, gx};
}

inline uint32_t spread2(uint32_t v) {  // 16 bits -> the even bits of 32
  v &= 0xFFFFu;
  v = (v | (v << 8)) & 0x00FF00FFu;
  v = (v | (v << 4)) & 0x0F0F0F0Fu;
  v = (v | (v << 2)) & 0x33333333u;
  return (v | (v << 1)) & 0x55555555u;
}

inline uint32_t spread3(uint32_t v) {  // 10 bits -> every third bit of 30
  v &= 0x3FFu;
  v = (v | (v << 16)) & 0x030000FFu;
  v = (v | (v << 8)) & 0x0300F00Fu;
  v = (v | (v << 4)) & 0x030C30C3u;
  return (v | (v << 2)) & 0x09249249u;
}

// A permutation of the points in Z-order (2-D: 16 bits per axis, 3-D: 10), by a stable two-pass
// radix sort (deterministic). Processed in this order, consecutive points touch the same or
// nearby table rows, so the gathers and scatters mostly hit L1/L2.
torch::Tensor hashgrid_order(torch::Tensor x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 2 && x.is_contiguous() &&
              (x.size(1) == 2 || x.size(1) == 3), "hashgrid_order: contiguous float32 CPU x [N, 2 or 3]");
  const int64_t n = x.size(0);
  TORCH_CHECK(n < (int64_t{1} << 31), "hashgrid_order: at most 2^31 - 1 points");
  const int d = static_cast<int>(x.size(1));
  const float* xp = x.data_ptr<float>();
  std::vector<uint32_t> code(n), code2(n);
  auto perm = torch::empty({n}, x.options().dtype(torch::kInt32));
  std::vector<int32_t> tmp(n);
  int32_t* out = perm.data_ptr<int32_t>();
  const float qmax = d == 2 ? 65535.0f : 1023.0f;
  at::parallel_for(0, n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      uint32_t c = 0;
      for (int j = 0; j < d; ++j) {
        float v = std::min(std::max(xp[i * d + j], 0.0f), 1.0f) * qmax;
        const uint32_t q = static_cast<uint32_t>(v);
        c |= (d == 2 ? spread2(q) : spread3(q)) << j;
      }
      code[i] = c;
    }
  });
  std::vector<int64_t> count(65537);
  // pass 1: low 16 bits, identity -> tmp
  for (int64_t i = 0; i < n; ++i) ++count[(code[i] & 0xFFFFu) + 1];
  for (int b = 0; b < 65536; ++b) count[b + 1] += count[b];
  for (int64_t i = 0; i < n; ++i) {
    const int64_t at = count[code[i] & 0xFFFFu]++;
    tmp[at] = static_cast<int32_t>(i);
    code2[at] = code[i];
  }
  // pass 2: high 16 bits, tmp -> out
  std::fill(count.begin(), count.end(), 0);
  for (int64_t i = 0; i < n; ++i) ++count[(code2[i] >> 16) + 1];
  for (int b = 0; b < 65536; ++b) count[b + 1] += count[b];
  for (int64_t i = 0; i < n; ++i) out[count[code2[i] >> 16]++] = tmp[i];
  return perm;
}

const int32_t* perm_ptr(const torch::Tensor& perm, int64_t n) {
  if (!perm.defined() || perm.numel() == 0) return nullptr;
  TORCH_CHECK(perm.scalar_type() == torch::kInt32 && perm.dim() == 1 && perm.size(0) == n && perm.is_contiguous(),
              "hashgrid_cpu: perm must be int32 [N]");
  return perm.data_ptr<int32_t>();
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("hashgrid_forward", &hashgrid_forward, "hash-grid encoding forward (CPU)");
  m.def("hashgrid_order", &hashgrid_order, "Z-order permutation of the points (int32)");
  m.def("hashgrid_backward", &hashgrid_backward, "hash-grid encoding backward to the table and x (CPU)");
}
