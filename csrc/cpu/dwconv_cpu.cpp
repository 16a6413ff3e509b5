// replk_ops._cpu: depthwise conv2d passes (stride 1, any padding >= 0, any dilation) on CPU, for
// float32 / float64 tensors that Python has already checked and allocated
// (replk_ops/backends/cpp/runner.py): NCHW-contiguous, or channels_last with the weight tap-major. Built
// without nvcc; no function here throws: a call it cannot take returns false.
//
// Why it exists (docs/design.md, "Dilation"): at the small maps of UniRepLKNet's dilated branches
// (14x14 to 56x56) oneDNN spends most of each call outside the multiply-adds (layout reorders, its
// padding limits), so a plain loop over padded planes is 1.5 to 3 times faster there. NCHW: each
// plane is copied once into a zero-bordered buffer of row stride W + 2 * pw (see
// dwconv_cpu_kernels.h), which also makes every tap one contiguous loop. channels_last: each image
// is copied once into a zero-bordered (H + 2 * ph, W + 2 * pw, C) buffer, and every tap is a
// vector loop along the channels.
#include <torch/extension.h>
#include <torch/version.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dwconv_cpu_isa.h"

namespace {

template <typename T>
void forward_row_nhwc(const T* xrow, const T* w, const int64_t* shift, int64_t taps, const T* bias, T* out, int64_t wo,
                      int64_t c) {
#ifdef REPLK_HAVE_AVX2_BUILD
  if (use_avx2()) return avx2::forward_row_nhwc<T>(xrow, w, shift, taps, bias, out, wo, c);
#endif
  baseline::forward_row_nhwc<T>(xrow, w, shift, taps, bias, out, wo, c);
}

template <typename T>
void accumulate_row_nhwc(const T* dy, const T* x, T* acc, int64_t wo, int64_t c) {
#ifdef REPLK_HAVE_AVX2_BUILD
  if (use_avx2()) return avx2::accumulate_row_nhwc<T>(dy, x, acc, wo, c);
#endif
  baseline::accumulate_row_nhwc<T>(dy, x, acc, wo, c);
}

struct Geometry {
  int64_t n, c, h, w, kh, kw, ph, pw, dh, dw, hp, wp, ho, wo;
  Geometry(int64_t n_, int64_t c_, int64_t h_, int64_t w_, int64_t kh_, int64_t kw_, int64_t ph_, int64_t pw_,
           int64_t dh_, int64_t dw_)
      : n(n_), c(c_), h(h_), w(w_), kh(kh_), kw(kw_), ph(ph_), pw(pw_), dh(dh_), dw(dw_), hp(h_ + 2 * ph_),
        wp(w_ + 2 * pw_), ho(h_ + 2 * ph_ - (kh_ - 1) * dh_), wo(w_ + 2 * pw_ - (kw_ - 1) * dw_) {}
  // output elements of the wide plane that are computed: the last row needs only wo of them
  int64_t wide_count() const { return (ho - 1) * wp + wo; }
  std::vector<int64_t> shifts() const {
    std::vector<int64_t> s(kh * kw);
    for (int64_t i = 0; i < kh; ++i)
      for (int64_t j = 0; j < kw; ++j) s[i * kw + j] = i * dh * wp + j * dw;
    return s;
  }
  // planes per parallel task: at least ~64K multiply-adds each, so small calls stay on one thread
  int64_t grain(int64_t per_plane) const { return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, per_plane)); }
};

// Copies plane ``src`` (h x w) into the interior of ``wide`` (hp x wp, borders already zero).
template <typename T>
void fill_interior(const T* src, T* wide, const Geometry& g) {
  for (int64_t r = 0; r < g.h; ++r) std::memcpy(wide + (r + g.ph) * g.wp + g.pw, src + r * g.w, sizeof(T) * g.w);
}

template <typename T>
void forward_impl(const T* x, const T* w, const T* bias, T* out, const Geometry& g) {
  const std::vector<int64_t> shift = g.shifts();
  const int64_t taps = g.kh * g.kw, count = g.wide_count();
  at::parallel_for(0, g.n * g.c, g.grain(g.ho * g.wo * taps), [&](int64_t begin, int64_t end) {
    std::vector<T> wide(g.hp * g.wp, T(0)), result(count);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t ch = plane % g.c;
      fill_interior(x + plane * g.h * g.w, wide.data(), g);
      forward_wide<T>(wide.data(), w + ch * taps, shift.data(), taps, bias ? bias[ch] : T(0), result.data(), count);
      T* dst = out + plane * g.ho * g.wo;
      for (int64_t r = 0; r < g.ho; ++r) std::memcpy(dst + r * g.wo, result.data() + r * g.wp, sizeof(T) * g.wo);
    }
  });
}

template <typename T>
void weight_grad_impl(const T* dy, const T* x, T* grad_weight, const Geometry& g) {
  const std::vector<int64_t> shift = g.shifts();
  const int64_t taps = g.kh * g.kw, count = g.wide_count();
  at::parallel_for(0, g.c, g.grain(g.n * g.ho * g.wo * taps), [&](int64_t begin, int64_t end) {
    // dy in the wide layout; its columns wo..wp-1 stay zero, so the dot products skip them
    std::vector<T> wide(g.hp * g.wp, T(0)), dy_wide(g.ho * g.wp, T(0));
    std::vector<double> sums(taps);  // the batch sum in double: N can be large
    for (int64_t ch = begin; ch < end; ++ch) {
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t b = 0; b < g.n; ++b) {
        const int64_t plane = b * g.c + ch;
        fill_interior(x + plane * g.h * g.w, wide.data(), g);
        const T* src = dy + plane * g.ho * g.wo;
        for (int64_t r = 0; r < g.ho; ++r) std::memcpy(dy_wide.data() + r * g.wp, src + r * g.wo, sizeof(T) * g.wo);
        for (int64_t t = 0; t < taps; ++t) sums[t] += dot<T>(dy_wide.data(), wide.data() + shift[t], count);
      }
      for (int64_t t = 0; t < taps; ++t) grad_weight[ch * taps + t] = static_cast<T>(sums[t]);
    }
  });
}

// channels_last: image ``b`` of x (N, H, W, C in memory) into the interior of ``image`` (hp, wp, C;
// borders already zero).
template <typename T>
void fill_image(const T* x, int64_t b, T* image, const Geometry& g) {
  const T* src = x + b * g.h * g.w * g.c;
  for (int64_t r = 0; r < g.h; ++r)
    std::memcpy(image + ((r + g.ph) * g.wp + g.pw) * g.c, src + r * g.w * g.c, sizeof(T) * g.w * g.c);
}

std::vector<int64_t> shifts_nhwc(const Geometry& g) {
  std::vector<int64_t> s = g.shifts();
  for (int64_t& v : s) v *= g.c;
  return s;
}

// x, out: channels_last (N, H, W, C in memory); w: tap-major (kh * kw, C).
template <typename T>
void forward_nhwc_impl(const T* x, const T* w, const T* bias, T* out, const Geometry& g) {
  const std::vector<int64_t> shift = shifts_nhwc(g);
  const int64_t taps = g.kh * g.kw;
  std::vector<T> image(g.hp * g.wp * g.c, T(0));
  for (int64_t b = 0; b < g.n; ++b) {
    fill_image(x, b, image.data(), g);
    at::parallel_for(0, g.ho, g.grain(g.wo * g.c * taps), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        forward_row_nhwc<T>(image.data() + r * g.wp * g.c, w, shift.data(), taps, bias,
                            out + ((b * g.ho + r) * g.wo) * g.c, g.wo, g.c);
    });
  }
}

// dy, x: channels_last; grad_weight: tap-major (kh * kw, C).
template <typename T>
void weight_grad_nhwc_impl(const T* dy, const T* x, T* grad_weight, const Geometry& g) {
  const std::vector<int64_t> shift = shifts_nhwc(g);
  const int64_t taps = g.kh * g.kw;
  std::vector<T> image(g.hp * g.wp * g.c, T(0));
  std::vector<double> sums(taps * g.c, 0.0);  // the batch sum in double
  for (int64_t b = 0; b < g.n; ++b) {
    fill_image(x, b, image.data(), g);
    at::parallel_for(0, taps, g.grain(g.ho * g.wo * g.c), [&](int64_t begin, int64_t end) {
      std::vector<T> acc(g.c);
      for (int64_t t = begin; t < end; ++t) {
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t r = 0; r < g.ho; ++r)
          accumulate_row_nhwc<T>(dy + ((b * g.ho + r) * g.wo) * g.c, image.data() + r * g.wp * g.c + shift[t],
                                 acc.data(), g.wo, g.c);
        for (int64_t ch = 0; ch < g.c; ++ch) sums[t * g.c + ch] += acc[ch];
      }
    });
  }
  for (int64_t i = 0; i < taps * g.c; ++i) grad_weight[i] = static_cast<T>(sums[i]);
}

Geometry geometry_of(const at::Tensor& x, int64_t kh, int64_t kw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  return Geometry(x.size(0), x.size(1), x.size(2), x.size(3), kh, kw, ph, pw, dh, dw);
}

// Runs body(T()) with T the element type of `dtype`, float or double; false for any other dtype.
template <typename Body>
bool with_element_type(at::ScalarType dtype, Body body) {
  switch (dtype) {
    case at::kFloat:
      body(float());
      return true;
    case at::kDouble:
      body(double());
      return true;
    default:
      return false;
  }
}

template <typename T>
const T* data(const at::Tensor& t) {
  return static_cast<const T*>(t.data_ptr());
}

// The bias: nullptr when the tensor is empty (no bias).
template <typename T>
const T* data_or_null(const at::Tensor& t) {
  return t.numel() > 0 ? data<T>(t) : nullptr;
}

template <typename T>
T* mutable_data(at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

// out = depthwise conv of x (N, C, H, W) with weight (C, 1, kh, kw) and bias (C,) or an empty tensor.
bool forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, at::Tensor& out, int64_t ph,
             int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = geometry_of(x, weight.size(2), weight.size(3), ph, pw, dh, dw);
  return with_element_type(x.scalar_type(), [&](auto zero) {
    using T = decltype(zero);
    forward_impl<T>(data<T>(x), data<T>(weight), data_or_null<T>(bias), mutable_data<T>(out), g);
  });
}

// grad_weight (C, 1, kh, kw) of the forward with this padding and dilation, from dy (N, C, Ho, Wo).
bool weight_grad(const at::Tensor& dy, const at::Tensor& x, at::Tensor& grad_weight, int64_t ph, int64_t pw,
                 int64_t dh, int64_t dw) {
  const Geometry g = geometry_of(x, grad_weight.size(2), grad_weight.size(3), ph, pw, dh, dw);
  return with_element_type(x.scalar_type(), [&](auto zero) {
    using T = decltype(zero);
    weight_grad_impl<T>(data<T>(dy), data<T>(x), mutable_data<T>(grad_weight), g);
  });
}

// The same two passes on channels_last tensors: x, out, dy in channels_last memory; the weight and
// its gradient tap-major (kh * kw, C), so a channel vector of one tap is contiguous.
bool forward_nhwc(const at::Tensor& x, const at::Tensor& weight_taps, const at::Tensor& bias, at::Tensor& out,
                  int64_t kh, int64_t kw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = geometry_of(x, kh, kw, ph, pw, dh, dw);
  return with_element_type(x.scalar_type(), [&](auto zero) {
    using T = decltype(zero);
    forward_nhwc_impl<T>(data<T>(x), data<T>(weight_taps), data_or_null<T>(bias), mutable_data<T>(out), g);
  });
}

bool weight_grad_nhwc(const at::Tensor& dy, const at::Tensor& x, at::Tensor& grad_weight_taps, int64_t kh, int64_t kw,
                      int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = geometry_of(x, kh, kw, ph, pw, dh, dw);
  return with_element_type(x.scalar_type(), [&](auto zero) {
    using T = decltype(zero);
    weight_grad_nhwc_impl<T>(data<T>(dy), data<T>(x), mutable_data<T>(grad_weight_taps), g);
  });
}

const char* instruction_set() { return use_avx2() ? "avx2+fma" : "baseline"; }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "replk_ops' compiled CPU kernels for depthwise conv2d (dilated or not)";
  m.def("forward", &forward, "depthwise conv2d forward into out; false if the dtype is not float32/float64");
  m.def("weight_grad", &weight_grad, "depthwise conv2d weight gradient into grad_weight");
  m.def("forward_nhwc", &forward_nhwc, "the forward on channels_last tensors, the weight tap-major (kh * kw, C)");
  m.def("weight_grad_nhwc", &weight_grad_nhwc, "the weight gradient on channels_last tensors, tap-major");
  m.def("instruction_set", &instruction_set, "the instruction set the kernels run with on this CPU");
  m.def("build_torch_version", []() { return std::string(TORCH_VERSION); }, "the torch these kernels were built against");
}
