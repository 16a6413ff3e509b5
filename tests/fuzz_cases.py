"""Random depthwise-conv cases for property-based tests: sizes (maps smaller than the kernel
included), rectangular and even kernels, explicit asymmetric padding, layouts and strides, dtypes,
with and without bias."""
import torch
from hypothesis import strategies as st


@st.composite
def conv_cases(draw, with_float64=False):
    dtypes = [torch.float32, torch.bfloat16, torch.float16]
    if with_float64:
        dtypes.append(torch.float64)
    dtype = draw(st.sampled_from(dtypes))
    kh, kw = draw(st.integers(1, 15)), draw(st.integers(1, 15))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    if kh % 2 and kw % 2 and draw(st.booleans()):
        padding = "same"
        ph, pw = kh // 2, kw // 2
    else:
        ph, pw = draw(st.integers(0, kh)), draw(st.integers(0, kw))  # asymmetric: ph != pw often
        padding = (ph, pw)
    # an empty output is a documented ValueError, not a case to compare
    h = max(h, kh - 2 * ph)
    w = max(w, kw - 2 * pw)
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 4)), h=h, w=w, kh=kh, kw=kw, padding=padding,
                pad=(ph, pw), dtype=dtype, layout=draw(st.sampled_from(["nchw", "channels_last", "strided"])),
                bias=draw(st.booleans()))
