// Ray marching through an occupancy grid on the CPU: the packed samples of
// `inr.render.occupancy.march`, without its dense tensor of every candidate step.
//
// Per ray (parallel over rays): the steps of `schedule` overlapping [near, far] (searchsorted as
// the PyTorch path), each step's jittered interval [t0, t1] clipped to [near, far], kept when
// t1 > t0 and its midpoint lies in an occupied cell. Two passes: count the kept samples of each
// ray, then (after a prefix sum) write them, so the output is packed in ray order, steps in order,
// exactly as the PyTorch path orders it. Every value is computed with the same float32 operations
// in the same order as there (no FMA: the build has no -march flags), so results are identical.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

struct Grid {
  const bool* binary = nullptr;  // [cascades, res^3], or null: no occupancy test
  float center[3], half[3];
  int64_t res = 0;
  int cascades = 1;
  float half_res = 0.0f;  // 0.5 * res, as the PyTorch path's Python float times a float32 tensor

  // OccupancyGrid._cells + occupied: the finest cascade holding the point (level = ceil(log2 of
  // its extent), from the float's exponent, as there), then its cell.
  bool occupied(float px, float py, float pz) const {
    if (binary == nullptr) return true;
    const float p[3] = {px, py, pz};
    float u[3], extent = 0.0f;
    for (int a = 0; a < 3; ++a) {
      u[a] = (p[a] - center[a]) / half[a];
      extent = std::max(extent, std::abs(u[a]));  // amax: NaN-free inputs assumed, as there
    }
    int64_t level = 0;
    if (cascades == 1) {
      if (!(extent <= 1.0f)) return false;
    } else {
      if (!(extent <= std::ldexp(1.0f, cascades - 1))) return false;
      int e = 0;
      const float m = std::frexp(std::max(extent, 1e-12f), &e);
      level = std::min<int64_t>(std::max<int64_t>(m == 0.5f ? e - 1 : e, 0), cascades - 1);
      for (int a = 0; a < 3; ++a) u[a] = std::ldexp(u[a], -static_cast<int>(level));
    }
    int64_t ijk[3];
    for (int a = 0; a < 3; ++a) {
      const int64_t c = static_cast<int64_t>((u[a] + 1.0f) * half_res);  // .long(): toward zero
      ijk[a] = std::min(std::max<int64_t>(c, 0), res - 1);
    }
    return binary[level * res * res * res + (ijk[0] * res + ijk[1]) * res + ijk[2]];
  }
};

struct Ray {
  int64_t step0 = 0, count = 0;
};

// The ray's first step and candidate count, as the PyTorch path computes them.
Ray ray_steps(const float* sched, int64_t n_steps, float near, float far, int64_t max_samples) {
  Ray r;
  // searchsorted(schedule, near, right=True) - 1 and searchsorted(schedule, far, right=False)
  const int64_t s0 = (std::upper_bound(sched, sched + n_steps + 1, near) - sched) - 1;
  const int64_t s1 = std::lower_bound(sched, sched + n_steps + 1, far) - sched;
  r.step0 = std::min(std::max<int64_t>(s0, 0), n_steps - 1);
  r.count = far > near ? std::max<int64_t>(std::min(s1, n_steps) - r.step0, 0) : 0;
  if (max_samples >= 0) r.count = std::min(r.count, max_samples);
  return r;
}

// Visits the kept samples of a ray in order: fn(t0, t1).
template <typename Fn>
void ray_samples(const Ray& r, const float* o, const float* d, float jit, float near, float far,
                 const float* sched, int64_t n_steps, const Grid& grid, Fn&& fn) {
  for (int64_t m = 0; m < r.count; ++m) {
    const int64_t k = r.step0 + m;
    const float lo = sched[k], hi = sched[k + 1], nxt = sched[std::min(k + 2, n_steps)];
    const float t0 = std::max(lo + jit * (hi - lo), near);
    const float t1 = std::min(hi + jit * (nxt - hi), far);
    if (!(t1 > t0)) continue;
    const float mid = (t0 + t1) * 0.5f;
    const float px = o[0] + d[0] * mid, py = o[1] + d[1] * mid, pz = o[2] + d[2] * mid;
    if (grid.occupied(px, py, pz)) fn(t0, t1);
  }
}

// origins, dirs [R, 3]; t_near, t_far, jitter [R] (jitter may be empty: 0); schedule [S + 1]
// increasing; binary [cascades, res^3] bool or empty; center, half_extent [3]. Returns (ray_indices int64,
// t_starts, t_ends).
std::vector<torch::Tensor> march_cpu(torch::Tensor origins, torch::Tensor dirs, torch::Tensor t_near,
                                     torch::Tensor t_far, torch::Tensor schedule, torch::Tensor jitter,
                                     int64_t max_samples, torch::Tensor binary, torch::Tensor center,
                                     torch::Tensor half_extent, int64_t resolution, int64_t cascades) {
  auto f32 = [](const torch::Tensor& t, const char* what) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32, "march_cpu: ", what,
                " must be a float32 CPU tensor");
    return t.contiguous();
  };
  origins = f32(origins, "origins");
  dirs = f32(dirs, "dirs");
  t_near = f32(t_near, "t_near");
  t_far = f32(t_far, "t_far");
  schedule = f32(schedule, "schedule");
  const int64_t R = origins.size(0);
  TORCH_CHECK(origins.dim() == 2 && origins.size(1) == 3 && dirs.sizes() == origins.sizes(),
              "march_cpu: origins and dirs [R, 3]");
  TORCH_CHECK(t_near.numel() == R && t_far.numel() == R, "march_cpu: t_near and t_far [R]");
  TORCH_CHECK(schedule.dim() == 1 && schedule.numel() >= 2, "march_cpu: schedule [S + 1], S >= 1");
  const bool has_jit = jitter.defined() && jitter.numel() > 0;
  if (has_jit) {
    jitter = f32(jitter, "jitter");
    TORCH_CHECK(jitter.numel() == R, "march_cpu: jitter [R]");
  }
  Grid grid;
  if (binary.defined() && binary.numel() > 0) {
    TORCH_CHECK(cascades >= 1 && cascades <= 32, "march_cpu: 1 to 32 cascades");
    TORCH_CHECK(binary.device().is_cpu() && binary.scalar_type() == torch::kBool &&
                    binary.numel() == cascades * resolution * resolution * resolution,
                "march_cpu: binary must be a bool CPU tensor of cascades * resolution^3 cells");
    binary = binary.contiguous();
    center = f32(center, "center");
    half_extent = f32(half_extent, "half_extent");
    TORCH_CHECK(center.numel() == 3 && half_extent.numel() == 3, "march_cpu: center and half_extent [3]");
    grid.binary = binary.data_ptr<bool>();
    for (int a = 0; a < 3; ++a) {
      grid.center[a] = center.data_ptr<float>()[a];
      grid.half[a] = half_extent.data_ptr<float>()[a];
    }
    grid.res = resolution;
    grid.cascades = static_cast<int>(cascades);
    grid.half_res = static_cast<float>(0.5 * static_cast<double>(resolution));
  }
  const int64_t n_steps = schedule.numel() - 1;
  const float* sp = schedule.data_ptr<float>();
  const float* op = origins.data_ptr<float>();
  const float* dp = dirs.data_ptr<float>();
  const float* np = t_near.data_ptr<float>();
  const float* fp = t_far.data_ptr<float>();
  const float* jp = has_jit ? jitter.data_ptr<float>() : nullptr;

  std::vector<int64_t> kept(R + 1, 0);
  at::parallel_for(0, R, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const Ray r = ray_steps(sp, n_steps, np[i], fp[i], max_samples);
      int64_t c = 0;
      ray_samples(r, op + 3 * i, dp + 3 * i, jp ? jp[i] : 0.0f, np[i], fp[i], sp, n_steps, grid,
                  [&](float, float) { ++c; });
      kept[i + 1] = c;
    }
  });
  for (int64_t i = 0; i < R; ++i) kept[i + 1] += kept[i];
  const int64_t M = kept[R];
  auto ray_idx = torch::empty({M}, origins.options().dtype(torch::kInt64));
  auto t0s = torch::empty({M}, origins.options());
  auto t1s = torch::empty({M}, origins.options());
  int64_t* ri = ray_idx.data_ptr<int64_t>();
  float* a = t0s.data_ptr<float>();
  float* z = t1s.data_ptr<float>();
  at::parallel_for(0, R, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (kept[i + 1] == kept[i]) continue;
      const Ray r = ray_steps(sp, n_steps, np[i], fp[i], max_samples);
      int64_t at = kept[i];
      ray_samples(r, op + 3 * i, dp + 3 * i, jp ? jp[i] : 0.0f, np[i], fp[i], sp, n_steps, grid,
                  [&](float t0, float t1) {
                    ri[at] = i;
                    a[at] = t0;
                    z[at] = t1;
                    ++at;
                  });
    }
  });
  return {ray_idx, t0s, t1s};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("march", &march_cpu, "packed occupancy-grid ray marching (CPU)");
}
