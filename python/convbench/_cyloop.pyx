# cython: language_level=3, boundscheck=False, wraparound=False
"""The TVM `cython` path: a compiled loop that calls an exported kernel through tvm-ffi's C ABI.

No Python object is touched per call, so this measures what a Cython binding layer costs next to
the C++ harness (`native`) and to tvm-ffi's own Python binding (`python`).
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc


cdef extern from "dlpack/dlpack.h":
    ctypedef enum DLDeviceType:
        kDLCPU

    ctypedef struct DLDevice:
        DLDeviceType device_type
        int32_t device_id

    ctypedef struct DLDataType:
        uint8_t code
        uint8_t bits
        uint16_t lanes

    ctypedef struct DLTensor:
        void* data
        DLDevice device
        int32_t ndim
        DLDataType dtype
        int64_t* shape
        int64_t* strides
        uint64_t byte_offset


cdef extern from "tvm/ffi/c_api.h":
    ctypedef void* TVMFFIObjectHandle

    ctypedef struct TVMFFIAny:  # the anonymous unions' members, as C sees them
        int32_t type_index
        uint32_t zero_padding
        void* v_ptr
        int64_t v_int64

    int kTVMFFINone
    int kTVMFFIDLTensorPtr
    int TVMFFIFunctionCall(TVMFFIObjectHandle func, TVMFFIAny* args, int32_t num_args,
                           TVMFFIAny* result) nogil


cdef class CyLoop:
    """Calls the packed function at `handle` on `arrays` (checked by the caller beforehand).

    `owner` keeps the kernel that owns `handle` alive as long as this object.
    """

    cdef TVMFFIObjectHandle func
    cdef int32_t nargs
    cdef DLTensor* tensors
    cdef int64_t* shapes
    cdef TVMFFIAny* args
    cdef object owner
    cdef object arrays

    def __cinit__(self, uintptr_t handle, arrays, owner):
        self.func = <TVMFFIObjectHandle>handle
        self.owner = owner
        self.arrays = list(arrays)  # the buffers must outlive the loop
        self.nargs = len(self.arrays)
        total_dims = sum(a.ndim for a in self.arrays)
        self.tensors = <DLTensor*>malloc(self.nargs * sizeof(DLTensor))
        self.shapes = <int64_t*>malloc(max(total_dims, 1) * sizeof(int64_t))
        self.args = <TVMFFIAny*>malloc(self.nargs * sizeof(TVMFFIAny))
        if self.tensors == NULL or self.shapes == NULL or self.args == NULL:
            raise MemoryError()
        cdef int i, d, offset = 0
        for i, a in enumerate(self.arrays):
            if a.dtype.kind != "f" or a.dtype.itemsize != 4 or not a.flags.c_contiguous:
                raise ValueError(f"argument {i}: expected a C-contiguous float32 array")
            for d in range(a.ndim):
                self.shapes[offset + d] = a.shape[d]
            self.tensors[i].data = <void*><uintptr_t>a.ctypes.data
            self.tensors[i].device.device_type = kDLCPU
            self.tensors[i].device.device_id = 0
            self.tensors[i].ndim = a.ndim
            self.tensors[i].dtype.code = 2  # kDLFloat
            self.tensors[i].dtype.bits = 32
            self.tensors[i].dtype.lanes = 1
            self.tensors[i].shape = &self.shapes[offset]
            self.tensors[i].strides = NULL
            self.tensors[i].byte_offset = 0
            self.args[i].type_index = kTVMFFIDLTensorPtr
            self.args[i].zero_padding = 0
            self.args[i].v_ptr = &self.tensors[i]
            offset += a.ndim

    def __dealloc__(self):
        free(self.tensors)
        free(self.shapes)
        free(self.args)

    def run_n(self, int64_t n):
        """n calls in a compiled loop, GIL released."""
        cdef TVMFFIAny result
        cdef int64_t i
        cdef int rc = 0
        with nogil:
            for i in range(n):
                result.type_index = kTVMFFINone
                result.zero_padding = 0
                result.v_int64 = 0
                rc = TVMFFIFunctionCall(self.func, self.args, self.nargs, &result)
                if rc != 0:
                    break
        if rc != 0:
            raise RuntimeError(
                "the TVM kernel failed when called from the Cython loop; call it through "
                "convbench.native.harness to see TVM's message"
            )
