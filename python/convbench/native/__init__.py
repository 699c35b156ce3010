"""Layer 1: the Python face of the compiled harness (`convbench._core`): TVM kernels and Relax
executables called and timed from the C++ loop, TF's C API, the fp32 peak probe."""
