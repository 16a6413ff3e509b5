// An empty Python module: importing replk_ops._C loads this library, whose TORCH_LIBRARY blocks
// register the ops. Nothing is called through Python bindings.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
