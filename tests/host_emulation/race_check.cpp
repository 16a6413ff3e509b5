// Shared-memory race check of every CUDA kernel of csrc/cuda/ run on the CPU: built with
// ThreadSanitizer, which reports any two accesses to one shared-memory word, at least one a write,
// that no barrier orders (what compute-sanitizer's racecheck reports on a GPU), and with UBSan's
// alignment check, which stops at a vector access the GPU would fault on. Exit status 0 means no race; the
// sanitizer's own exit status otherwise. Values are irrelevant here; the tests check them.
#include <cstdio>
#include <vector>

#include "kernels_on_cpu.cpp"

namespace {

struct Shape {
  int64_t n, c, h, w;
  int kh, kw;
};

template <typename T>
int run_all(const Shape& s) {
  const int ph = s.kh / 2, pw = s.kw / 2;
  const int64_t ho = s.h + 2 * ph - s.kh + 1, wo = s.w + 2 * pw - s.kw + 1;
  std::vector<T> x(s.n * s.c * s.h * s.w, replk_ops::from_float<T>(0.5f));
  std::vector<T> w(s.c * s.kh * s.kw, replk_ops::from_float<T>(0.25f));
  std::vector<T> y(s.n * s.c * ho * wo);
  std::vector<T> dx(x.size());
  const int64_t xs[4] = {s.c * s.h * s.w, s.h * s.w, s.w, 1};
  const int64_t ys[4] = {s.c * ho * wo, ho * wo, wo, 1};
  const int64_t sizes[6] = {s.n, s.c, s.h, s.w, ho, wo};
  const int64_t back[6] = {s.n, s.c, ho, wo, s.h, s.w};
  const replk_ops::Dtype dtype = sizeof(T) == 4 ? replk_ops::kFloat32 : replk_ops::kBFloat16;
  int err = 0;
  for (const replk_ops::ConvAlgo& algo : replk_ops::conv_algos()) {  // every forward kernel of the table
    if (algo.by_dtype[dtype].launch == nullptr) continue;
    err |= replk_emulated_fwd(dtype, x.data(), w.data(), nullptr, y.data(), sizes, xs, ys, s.kh, s.kw, ph, pw, 0,
                              algo.name);
    err |= replk_emulated_fwd(dtype, y.data(), w.data(), nullptr, dx.data(), back, ys, xs, s.kh, s.kw,
                              s.kh - 1 - ph, s.kw - 1 - pw, 1, algo.name);
  }
  for (const replk_ops::WeightAlgo& algo : replk_ops::weight_algos()) {
    if (algo.by_dtype[dtype].launch == nullptr) continue;
    const int splits = replk_emulated_bwd_weight_splits(dtype, sizes, s.kh, s.kw, ph, pw, algo.name);
    if (splits < 0) return 1;
    std::vector<float> partial_w(static_cast<size_t>(splits) * s.c * s.kh * s.kw), partial_b(splits * s.c);
    err |= replk_emulated_bwd_weight(dtype, y.data(), x.data(), partial_w.data(), partial_b.data(), sizes, xs, ys,
                                     s.kh, s.kw, ph, pw, algo.name);
  }
  return err;
}

}  // namespace

int main() {
  // tiles of several rows and column strips, a map smaller than the kernel, several weight-
  // gradient tiles per block (N * tiles > splits)
  const Shape shapes[] = {{1, 2, 20, 37, 7, 7}, {1, 1, 6, 9, 13, 13}, {3, 1, 9, 70, 3, 5}};
  replk_emulated_set_sm_count(1);  // few splits: blocks loop over several tiles
  int err = 0;
  for (const Shape& s : shapes) {
    err |= run_all<float>(s);
    err |= run_all<__nv_bfloat16>(s);
  }
  if (err != 0) std::fprintf(stderr, "a launch failed\n");
  return err != 0 ? 1 : 0;
}
