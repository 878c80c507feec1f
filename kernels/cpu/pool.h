// A small cache of large CPU buffers for the kernels' outputs and gradients.
//
// On the machines this targets, first-touching fresh memory dominates these kernels: a new
// 32 MB tensor costs ~10-20 ms of page faults (2-D hash features for 2^18 points), more than the
// encoding itself. Buffers handed out here are returned to the pool when their tensor dies and
// handed out again (already faulted in) to the next request of a similar size. New blocks are
// 2 MB aligned and advised as transparent huge pages where the kernel allows it. At most
// kMaxCached bytes are kept; everything else goes back to the system.
#pragma once

#include <torch/extension.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace inr_pool {

constexpr size_t kMinBytes = size_t{1} << 20;     // smaller requests use torch's allocator
constexpr size_t kMaxCached = size_t{1} << 30;    // bytes kept for reuse at most
constexpr size_t kAlign = size_t{2} << 20;

struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;
  size_t cached = 0;
};

inline Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may die during interpreter exit
  return *p;
}

inline void release(void* ptr, size_t cap) {
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.cached + cap <= kMaxCached) {
      p.free_blocks.emplace(cap, ptr);
      p.cached += cap;
      return;
    }
  }
  std::free(ptr);
}

inline void clear() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  for (auto& kv : p.free_blocks) std::free(kv.second);
  p.free_blocks.clear();
  p.cached = 0;
}

// An uninitialised float32 (or `dtype`) CPU tensor of `shape`, from the pool when it is large.
inline torch::Tensor empty(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * opts.dtype().itemsize();
  if (bytes < kMinBytes) return torch::empty(shape, opts);
  void* ptr = nullptr;
  size_t cap = 0;
  {
    Pool& p = pool();
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.free_blocks.lower_bound(bytes);
    if (it != p.free_blocks.end() && it->first <= bytes + bytes / 4) {  // near sizes only
      cap = it->first;
      ptr = it->second;
      p.cached -= cap;
      p.free_blocks.erase(it);
    }
  }
  if (ptr == nullptr) {
    cap = (bytes + kAlign - 1) / kAlign * kAlign;
    ptr = std::aligned_alloc(kAlign, cap);
    TORCH_CHECK(ptr != nullptr, "inr cpu kernels: out of memory (", cap, " bytes)");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(ptr, cap, MADV_HUGEPAGE);
#endif
  }
  return torch::from_blob(ptr, shape, [cap](void* q) { release(q, cap); }, opts);
}

inline torch::Tensor zeros(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  auto t = empty(shape, opts);
  if (t.numel() > 0) {
    float* d = static_cast<float*>(t.data_ptr());
    const int64_t n = t.numel() * static_cast<int64_t>(opts.dtype().itemsize()) / 4;
    at::parallel_for(0, n, 1 << 18, [&](int64_t b, int64_t e) { std::memset(d + b, 0, (e - b) * 4); });
  }
  return t;
}

}  // namespace inr_pool
