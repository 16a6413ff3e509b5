// Registers the extension's schema namespace and the facts replk_ops needs to decide whether this
// build can be trusted by the running torch (see replk_ops/_extension.py).
#include <string>

#include <torch/library.h>
#include <torch/version.h>

#ifndef REPLK_OPS_CUDA_ARCHS
#define REPLK_OPS_CUDA_ARCHS "unknown"
#endif

namespace replk_ops {

std::string build_torch_version() { return TORCH_VERSION; }
std::string build_cuda_archs() { return REPLK_OPS_CUDA_ARCHS; }

}  // namespace replk_ops

TORCH_LIBRARY_FRAGMENT(replk_ops_C, m) {
  m.def("build_torch_version() -> str", &replk_ops::build_torch_version);
  m.def("build_cuda_archs() -> str", &replk_ops::build_cuda_archs);
}
