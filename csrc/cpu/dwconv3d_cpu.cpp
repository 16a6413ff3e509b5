// The weight gradient of a depthwise conv3d on CPU (stride 1, any padding >= 0, any dilation), for
// the small kernels where oneDNN's route for this pass (a depthwise conv with the output gradient
// as a kernel as large as the map) runs at a fraction of its forward speed: MedNeXt's 3x3x3 at
// 1x32x64^3 took 75 to 100 ms against 33 ms for the forward. Registered as the torch op
// replk_ops_cpu3d::weight_grad in replk_ops._cpu (replk_ops/backends/cpp/runner3d.py calls it).
//
// Each (n, c) volume is copied once into a zero-bordered buffer whose rows are Wp = W + 2 * pw long
// and planes Hp * Wp, and the output gradient into the same "wide" layout with zeros in the
// columns and rows no output has: tap t is then the dot product of the two buffers with the input
// shifted by a constant, one contiguous loop. The loop runs over blocks of the volume, all taps of
// a block before the next, so the block and its shifted windows stay in cache; each block's sums
// are added in double, so the result is float32-exact for any volume.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dwconv_cpu_isa.h"

namespace {

// Elements of the output gradient per block: the block, and the input window it meets (the block
// plus the largest shift, about two planes for a 3x3x3 kernel), stay in the 2 MiB L2 cache.
constexpr int64_t kBlock = 4096;

void check_float(const at::Tensor& t, const char* op) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "replk_ops_cpu3d::", op,
              ": expected float32 or float64, got ", t.scalar_type());
}

// Where tap (a, b, e) reads, relative to its output, in a buffer of planes of ``plane`` and rows of ``row``.
std::vector<int64_t> shifts(const std::vector<int64_t>& k, const std::vector<int64_t>& dil, int64_t plane, int64_t row) {
  std::vector<int64_t> shift(k[0] * k[1] * k[2]);
  for (int64_t a = 0; a < k[0]; ++a)
    for (int64_t b = 0; b < k[1]; ++b)
      for (int64_t e = 0; e < k[2]; ++e) shift[(a * k[1] + b) * k[2] + e] = a * dil[0] * plane + b * dil[1] * row + e * dil[2];
  return shift;
}

struct Volume {
  int64_t d, h, w;
};

// Copies ``group`` volumes, channel g at ``src + g * channel_stride`` (any strides), into the
// buffers ``dst[g]`` at offset (z0, y0, x0), with planes of ``plane`` and rows of ``row`` elements.
// The channels innermost: a channels_last_3d tensor is read in order, ``group`` values at a time.
template <typename T>
void place(const T* src, int64_t channel_stride, const int64_t* stride, Volume v, std::vector<T*>& dst, int64_t group,
           int64_t plane, int64_t row, int64_t z0, int64_t y0, int64_t x0) {
  for (int64_t z = 0; z < v.d; ++z)
    for (int64_t y = 0; y < v.h; ++y)
      for (int64_t x = 0; x < v.w; ++x) {
        const T* s = src + z * stride[0] + y * stride[1] + x * stride[2];
        const int64_t at = (z + z0) * plane + (y + y0) * row + x0 + x;
        for (int64_t g = 0; g < group; ++g) dst[g][at] = s[g * channel_stride];
      }
}

template <typename T>
void weight_grad_impl(const at::Tensor& x, const at::Tensor& dy, at::Tensor& out, const std::vector<int64_t>& k,
                      const std::vector<int64_t>& p, const std::vector<int64_t>& dil) {
  const int64_t n = x.size(0), c = x.size(1);
  const Volume in{x.size(2), x.size(3), x.size(4)}, o{dy.size(2), dy.size(3), dy.size(4)};
  const int64_t hp = in.h + 2 * p[1], wp = in.w + 2 * p[2], dp = in.d + 2 * p[0], plane = hp * wp;
  const int64_t count = o.d * plane;            // the output gradient in the wide layout
  const int64_t padded = dp * plane + plane;    // one more zero plane: the shifts of junk rows stay inside
  const int64_t taps = k[0] * k[1] * k[2];
  const std::vector<int64_t> shift = shifts(k, dil, plane, wp);
  const T* xs = x.data_ptr<T>();
  const T* dys = dy.data_ptr<T>();
  double* result = out.data_ptr<double>();
  const int64_t xst[3] = {x.stride(2), x.stride(3), x.stride(4)}, dyst[3] = {dy.stride(2), dy.stride(3), dy.stride(4)};
  // channels_last_3d (channels adjacent in memory): 8 channels per task, read together
  const int64_t group = (x.stride(1) == 1 && dy.stride(1) == 1) ? 8 : 1;
  at::parallel_for(0, (c + group - 1) / group, 1, [&](int64_t begin, int64_t end) {
    std::vector<std::vector<T>> xpad(group, std::vector<T>(padded)), dyw(group, std::vector<T>(count));
    std::vector<T*> xptr(group), dyptr(group);
    for (int64_t g = 0; g < group; ++g) xptr[g] = xpad[g].data(), dyptr[g] = dyw[g].data();
    std::vector<double> sums(group * taps);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t c0 = task * group, size = std::min(group, c - c0);
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t g = 0; g < size; ++g) {
          std::fill(xpad[g].begin(), xpad[g].end(), T(0));
          std::fill(dyw[g].begin(), dyw[g].end(), T(0));
        }
        place(xs + b * x.stride(0) + c0 * x.stride(1), x.stride(1), xst, in, xptr, size, plane, wp, p[0], p[1], p[2]);
        place(dys + b * dy.stride(0) + c0 * dy.stride(1), dy.stride(1), dyst, o, dyptr, size, plane, wp, 0, 0, 0);
        for (int64_t g = 0; g < size; ++g)
          for (int64_t q = 0; q < count; q += kBlock) {
            const int64_t len = std::min(kBlock, count - q);
            for (int64_t t = 0; t < taps; ++t)
              sums[g * taps + t] += dot<T>(dyptr[g] + q, xptr[g] + q + shift[t], len);
          }
      }
      std::copy(sums.begin(), sums.begin() + size * taps, result + c0 * taps);
    }
  });
}

// y[n, c] = bias[c] + sum_t w[c, t] * xpad[n, c, o + t * dilation] for NCDHW-contiguous x and a
// contiguous (C, 1, kd, kh, kw) weight: the forward (and, with the flipped kernel, the input
// gradient) of small kernels, where oneDNN's NCDHW kernel is slow and channels_last_3d costs two
// layout copies (1x32x64^3 3^3: 150 ms, or 33 ms plus 2 x 34 ms of copies).
template <typename T>
void forward_impl(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias, at::Tensor& y,
                  const std::vector<int64_t>& p, const std::vector<int64_t>& dil) {
  const int64_t n = x.size(0), c = x.size(1);
  const Volume in{x.size(2), x.size(3), x.size(4)}, o{y.size(2), y.size(3), y.size(4)};
  const std::vector<int64_t> k{weight.size(2), weight.size(3), weight.size(4)};
  const int64_t hp = in.h + 2 * p[1], wp = in.w + 2 * p[2], dp = in.d + 2 * p[0], plane = hp * wp;
  const int64_t count = (o.d - 1) * plane + (o.h - 1) * wp + o.w;  // through the last output element
  const int64_t taps = k[0] * k[1] * k[2];
  const std::vector<int64_t> shift = shifts(k, dil, plane, wp);
  const T* xs = x.data_ptr<T>();
  const T* ws = weight.data_ptr<T>();
  const T* bs = bias.has_value() ? bias->data_ptr<T>() : nullptr;
  T* ys = y.data_ptr<T>();
  const int64_t xst[3] = {x.stride(2), x.stride(3), x.stride(4)};
  const int64_t vin = in.d * in.h * in.w, vout = o.d * o.h * o.w;
  at::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> xpad(dp * plane, T(0)), wide(count);
    std::vector<T*> dst{xpad.data()};
    for (int64_t volume = begin; volume < end; ++volume) {
      const int64_t ch = volume % c;
      place(xs + volume * vin, 0, xst, in, dst, 1, plane, wp, p[0], p[1], p[2]);  // borders stay zero
      forward_wide<T>(xpad.data(), ws + ch * taps, shift.data(), taps, bs ? bs[ch] : T(0), wide.data(), count);
      T* out = ys + volume * vout;
      for (int64_t z = 0; z < o.d; ++z)
        for (int64_t r = 0; r < o.h; ++r)
          std::copy(wide.data() + z * plane + r * wp, wide.data() + z * plane + r * wp + o.w, out + (z * o.h + r) * o.w);
    }
  });
}

at::Tensor forward(const at::Tensor& x, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                   std::vector<int64_t> padding, std::vector<int64_t> dilation) {
  TORCH_CHECK(x.dim() == 5 && weight.dim() == 5 && padding.size() == 3 && dilation.size() == 3 && x.is_contiguous() &&
                  weight.is_contiguous() && x.device().is_cpu() && weight.scalar_type() == x.scalar_type(),
              "replk_ops_cpu3d::forward: expected NCDHW-contiguous CPU tensors of one dtype");
  std::vector<int64_t> out_size{x.size(0), x.size(1)};
  for (int i = 0; i < 3; ++i)
    out_size.push_back(x.size(2 + i) + 2 * padding[i] - (weight.size(2 + i) - 1) * dilation[i]);
  at::Tensor y = at::empty(out_size, x.options());
  check_float(x, "forward");
  if (x.scalar_type() == at::kFloat) forward_impl<float>(x, weight, bias, y, padding, dilation);
  else forward_impl<double>(x, weight, bias, y, padding, dilation);
  return y;
}

// (C, kd * kh * kw) float64 sums; x (N, C, D, H, W) and grad_out (N, C, Do, Ho, Wo), float32 or
// float64, any strides, already checked by Python.
at::Tensor weight_grad(const at::Tensor& x, const at::Tensor& grad_out, std::vector<int64_t> kernel,
                       std::vector<int64_t> padding, std::vector<int64_t> dilation) {
  TORCH_CHECK(x.dim() == 5 && grad_out.dim() == 5 && kernel.size() == 3 && padding.size() == 3 && dilation.size() == 3,
              "replk_ops_cpu3d::weight_grad: expected 5-D tensors and (d, h, w) sizes");
  TORCH_CHECK(x.device().is_cpu() && grad_out.device().is_cpu() && x.scalar_type() == grad_out.scalar_type(),
              "replk_ops_cpu3d::weight_grad: expected CPU tensors of one dtype");
  at::Tensor out = at::empty({x.size(1), kernel[0] * kernel[1] * kernel[2]}, x.options().dtype(at::kDouble));
  check_float(x, "weight_grad");
  if (x.scalar_type() == at::kFloat) weight_grad_impl<float>(x, grad_out, out, kernel, padding, dilation);
  else weight_grad_impl<double>(x, grad_out, out, kernel, padding, dilation);
  return out;
}

}  // namespace

TORCH_LIBRARY(replk_ops_cpu3d, m) {
  m.def("weight_grad(Tensor x, Tensor grad_out, int[] kernel, int[] padding, int[] dilation) -> Tensor", &weight_grad);
  m.def("forward(Tensor x, Tensor weight, Tensor? bias, int[] padding, int[] dilation) -> Tensor", &forward);
}
