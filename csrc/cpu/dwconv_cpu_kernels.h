// The CPU kernels' loops, included by dwconv_cpu.cpp once per instruction set: REPLK_ISA names the
// namespace and REPLK_ISA_ATTR the target attribute of every function (nothing else is defined
// here, so the two copies cannot mix). See dwconv_cpu.cpp for the layout they work on.
//
// Both loops run over a "wide" plane: rows of Wp = W + 2 * pw elements, the input padded with
// zeros, so that tap (i, j) of output element q (row-major with row stride Wp) reads
// xpad[q + i * dh * Wp + j * dw] for every q: one long contiguous loop per tap instead of one
// short loop per tap and row (the rows of these maps are 7 to 56 elements long).

namespace REPLK_ISA {

template <typename T>
struct Vec {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int64_t lanes = 32 / sizeof(T);
};

template <typename T>
REPLK_ISA_ATTR static inline __attribute__((always_inline)) typename Vec<T>::type load(const T* p) {
  typename Vec<T>::type v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
REPLK_ISA_ATTR static inline __attribute__((always_inline)) void store(T* p, typename Vec<T>::type v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

// out[q] = bias + sum_t w[t] * xpad[q + shift[t]] for q in [0, n); four vectors of q at a time
// stay in registers across all taps.
template <typename T>
REPLK_ISA_ATTR void forward_wide(const T* __restrict xpad, const T* __restrict w, const int64_t* __restrict shift,
                                 int64_t taps, T bias, T* __restrict out, int64_t n) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::lanes;
  int64_t q = 0;
  for (; q + 4 * L <= n; q += 4 * L) {
    V a0 = V{} + bias, a1 = a0, a2 = a0, a3 = a0;
    for (int64_t t = 0; t < taps; ++t) {
      const T* x = xpad + q + shift[t];
      const V wt = V{} + w[t];
      a0 += wt * load<T>(x);
      a1 += wt * load<T>(x + L);
      a2 += wt * load<T>(x + 2 * L);
      a3 += wt * load<T>(x + 3 * L);
    }
    store<T>(out + q, a0);
    store<T>(out + q + L, a1);
    store<T>(out + q + 2 * L, a2);
    store<T>(out + q + 3 * L, a3);
  }
  for (; q < n; ++q) {
    T acc = bias;
    for (int64_t t = 0; t < taps; ++t) acc += w[t] * xpad[q + shift[t]];
    out[q] = acc;
  }
}

// sum_q a[q] * b[q] for q in [0, n), in four vector partial sums.
template <typename T>
REPLK_ISA_ATTR T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::lanes;
  V s0 = V{}, s1 = V{}, s2 = V{}, s3 = V{};
  int64_t q = 0;
  for (; q + 4 * L <= n; q += 4 * L) {
    s0 += load<T>(a + q) * load<T>(b + q);
    s1 += load<T>(a + q + L) * load<T>(b + q + L);
    s2 += load<T>(a + q + 2 * L) * load<T>(b + q + 2 * L);
    s3 += load<T>(a + q + 3 * L) * load<T>(b + q + 3 * L);
  }
  const V s = (s0 + s1) + (s2 + s3);
  T acc = 0;
  for (int64_t l = 0; l < L; ++l) acc += s[l];
  for (; q < n; ++q) acc += a[q] * b[q];
  return acc;
}

// channels_last: one output row of the padded image xpad (Hp, Wp, C). out[(ow, c)] = bias[c] +
// sum_t w[t][c] * xpad[ow * C + shift[t] + c] for ow in [0, wo); four pixels of one channel
// vector at a time stay in registers across all taps (w is tap-major: taps x C).
template <typename T>
REPLK_ISA_ATTR void forward_row_nhwc(const T* __restrict xrow, const T* __restrict w, const int64_t* __restrict shift,
                                     int64_t taps, const T* __restrict bias, T* __restrict out, int64_t wo, int64_t c) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::lanes;
  int64_t ow = 0;
  for (; ow + 4 <= wo; ow += 4) {
    int64_t ch = 0;
    for (; ch + L <= c; ch += L) {
      V a0 = bias ? load<T>(bias + ch) : V{}, a1 = a0, a2 = a0, a3 = a0;
      const T* x = xrow + ow * c + ch;
      for (int64_t t = 0; t < taps; ++t) {
        const V wt = load<T>(w + t * c + ch);
        const T* xs = x + shift[t];
        a0 += wt * load<T>(xs);
        a1 += wt * load<T>(xs + c);
        a2 += wt * load<T>(xs + 2 * c);
        a3 += wt * load<T>(xs + 3 * c);
      }
      T* o = out + ow * c + ch;
      store<T>(o, a0);
      store<T>(o + c, a1);
      store<T>(o + 2 * c, a2);
      store<T>(o + 3 * c, a3);
    }
    for (; ch < c; ++ch)
      for (int64_t u = 0; u < 4; ++u) {
        T acc = bias ? bias[ch] : T(0);
        for (int64_t t = 0; t < taps; ++t) acc += w[t * c + ch] * xrow[(ow + u) * c + shift[t] + ch];
        out[(ow + u) * c + ch] = acc;
      }
  }
  for (; ow < wo; ++ow) {  // the last pixels one at a time, still a vector of channels
    int64_t ch = 0;
    for (; ch + L <= c; ch += L) {
      V a = bias ? load<T>(bias + ch) : V{};
      const T* x = xrow + ow * c + ch;
      for (int64_t t = 0; t < taps; ++t) a += load<T>(w + t * c + ch) * load<T>(x + shift[t]);
      store<T>(out + ow * c + ch, a);
    }
    for (; ch < c; ++ch) {
      T acc = bias ? bias[ch] : T(0);
      for (int64_t t = 0; t < taps; ++t) acc += w[t * c + ch] * xrow[ow * c + shift[t] + ch];
      out[ow * c + ch] = acc;
    }
  }
}

// acc[ch] += sum_{ow < wo} dy[ow * C + ch] * x[ow * C + ch]: a weight gradient tap over one row.
template <typename T>
REPLK_ISA_ATTR void accumulate_row_nhwc(const T* __restrict dy, const T* __restrict x, T* __restrict acc, int64_t wo,
                                        int64_t c) {
  using V = typename Vec<T>::type;
  constexpr int64_t L = Vec<T>::lanes;
  int64_t ch = 0;
  for (; ch + L <= c; ch += L) {
    V a = load<T>(acc + ch);
    for (int64_t ow = 0; ow < wo; ++ow) a += load<T>(dy + ow * c + ch) * load<T>(x + ow * c + ch);
    store<T>(acc + ch, a);
  }
  for (; ch < c; ++ch) {
    T a = acc[ch];
    for (int64_t ow = 0; ow < wo; ++ow) a += dy[ow * c + ch] * x[ow * c + ch];
    acc[ch] = a;
  }
}

}  // namespace REPLK_ISA
