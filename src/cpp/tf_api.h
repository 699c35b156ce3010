// TensorFlow's C API, loaded at run time. TensorFlow is not needed to build convbench:
// libtensorflow_cc.so.2 from the installed tensorflow wheel is dlopen'ed and every C API function
// is looked up by name, so a missing TF is an error message, not a link failure.
//
// No TensorFlow header is included: the few C API types and prototypes used are declared below,
// with values from tensorflow/c/tf_datatype.h, xla/tsl/c/tsl_status.h, tensorflow/c/c_api.h and
// tensorflow/c/eager/c_api.h of TF 2.21 (the C API's ABI is stable across releases).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace convbench {

extern "C" {
typedef struct TF_Status TF_Status;
typedef struct TF_Tensor TF_Tensor;
typedef struct TF_Graph TF_Graph;
typedef struct TF_OperationDescription TF_OperationDescription;
typedef struct TF_Operation TF_Operation;
typedef struct TF_SessionOptions TF_SessionOptions;
typedef struct TF_Session TF_Session;
typedef struct TF_Buffer TF_Buffer;  // opaque: made by TF_NewBufferFromString, or NULL
typedef struct TF_ImportGraphDefOptions TF_ImportGraphDefOptions;
typedef struct TFE_ContextOptions TFE_ContextOptions;
typedef struct TFE_Context TFE_Context;
typedef struct TFE_TensorHandle TFE_TensorHandle;
typedef struct TFE_Op TFE_Op;

typedef enum TF_DataType { TF_FLOAT = 1, TF_INT32 = 3 } TF_DataType;  // subset, int-sized enum
typedef enum TF_Code { TF_OK = 0 } TF_Code;                           // subset, int-sized enum

typedef struct TF_Output {
  TF_Operation* oper;
  int index;
} TF_Output;
}

// X-macro: name, return type, argument list.
#define CONVBENCH_TF_FUNCS(X)                                                                 \
  X(TF_NewStatus, TF_Status*, (void))                                                         \
  X(TF_DeleteStatus, void, (TF_Status*))                                                      \
  X(TF_GetCode, TF_Code, (const TF_Status*))                                                  \
  X(TF_Message, const char*, (const TF_Status*))                                              \
  X(TF_AllocateTensor, TF_Tensor*, (TF_DataType, const int64_t*, int, size_t))               \
  X(TF_DeleteTensor, void, (TF_Tensor*))                                                      \
  X(TF_TensorData, void*, (const TF_Tensor*))                                                 \
  X(TF_TensorByteSize, size_t, (const TF_Tensor*))                                            \
  X(TF_NumDims, int, (const TF_Tensor*))                                                      \
  X(TF_Dim, int64_t, (const TF_Tensor*, int))                                                 \
  X(TF_TensorType, TF_DataType, (const TF_Tensor*))                                           \
  X(TFE_NewContextOptions, TFE_ContextOptions*, (void))                                       \
  X(TFE_ContextOptionsSetConfig, void, (TFE_ContextOptions*, const void*, size_t, TF_Status*)) \
  X(TFE_ContextOptionsSetAsync, void, (TFE_ContextOptions*, unsigned char))                   \
  X(TFE_DeleteContextOptions, void, (TFE_ContextOptions*))                                    \
  X(TFE_NewContext, TFE_Context*, (const TFE_ContextOptions*, TF_Status*))                    \
  X(TFE_DeleteContext, void, (TFE_Context*))                                                  \
  X(TFE_NewTensorHandle, TFE_TensorHandle*, (const TF_Tensor*, TF_Status*))                   \
  X(TFE_DeleteTensorHandle, void, (TFE_TensorHandle*))                                        \
  X(TFE_TensorHandleResolve, TF_Tensor*, (TFE_TensorHandle*, TF_Status*))                     \
  X(TFE_TensorHandleDeviceName, const char*, (TFE_TensorHandle*, TF_Status*))                 \
  X(TFE_NewOp, TFE_Op*, (TFE_Context*, const char*, TF_Status*))                              \
  X(TFE_DeleteOp, void, (TFE_Op*))                                                            \
  X(TFE_OpReset, void, (TFE_Op*, const char*, const char*, TF_Status*))                       \
  X(TFE_OpAddInput, void, (TFE_Op*, TFE_TensorHandle*, TF_Status*))                           \
  X(TFE_OpSetAttrType, void, (TFE_Op*, const char*, TF_DataType))                             \
  X(TFE_OpSetAttrString, void, (TFE_Op*, const char*, const void*, size_t))                   \
  X(TFE_OpSetAttrIntList, void, (TFE_Op*, const char*, const int64_t*, int))                  \
  X(TFE_Execute, void, (TFE_Op*, TFE_TensorHandle**, int*, TF_Status*))                       \
  X(TF_NewGraph, TF_Graph*, (void))                                                           \
  X(TF_DeleteGraph, void, (TF_Graph*))                                                        \
  X(TF_NewOperation, TF_OperationDescription*, (TF_Graph*, const char*, const char*))         \
  X(TF_AddInput, void, (TF_OperationDescription*, TF_Output))                                 \
  X(TF_SetAttrType, void, (TF_OperationDescription*, const char*, TF_DataType))               \
  X(TF_SetAttrShape, void, (TF_OperationDescription*, const char*, const int64_t*, int))      \
  X(TF_SetAttrString, void, (TF_OperationDescription*, const char*, const void*, size_t))     \
  X(TF_SetAttrIntList, void, (TF_OperationDescription*, const char*, const int64_t*, int))    \
  X(TF_SetAttrTensor, void, (TF_OperationDescription*, const char*, TF_Tensor*, TF_Status*))  \
  X(TF_FinishOperation, TF_Operation*, (TF_OperationDescription*, TF_Status*))                \
  X(TF_NewSessionOptions, TF_SessionOptions*, (void))                                         \
  X(TF_SetConfig, void, (TF_SessionOptions*, const void*, size_t, TF_Status*))                \
  X(TF_DeleteSessionOptions, void, (TF_SessionOptions*))                                      \
  X(TF_NewSession, TF_Session*, (TF_Graph*, const TF_SessionOptions*, TF_Status*))            \
  X(TF_CloseSession, void, (TF_Session*, TF_Status*))                                         \
  X(TF_DeleteSession, void, (TF_Session*, TF_Status*))                                        \
  X(TF_SessionRun, void,                                                                      \
    (TF_Session*, const TF_Buffer*, const TF_Output*, TF_Tensor* const*, int,                 \
     const TF_Output*, TF_Tensor**, int, const TF_Operation* const*, int, TF_Buffer*,         \
     TF_Status*))                                                                            \
  X(TF_NewBufferFromString, TF_Buffer*, (const void*, size_t))                                \
  X(TF_DeleteBuffer, void, (TF_Buffer*))                                                      \
  X(TF_NewImportGraphDefOptions, TF_ImportGraphDefOptions*, (void))                           \
  X(TF_DeleteImportGraphDefOptions, void, (TF_ImportGraphDefOptions*))                        \
  X(TF_GraphImportGraphDef, void,                                                             \
    (TF_Graph*, const TF_Buffer*, const TF_ImportGraphDefOptions*, TF_Status*))               \
  X(TF_GraphOperationByName, TF_Operation*, (TF_Graph*, const char*))                         \
  X(TF_OperationNumOutputs, int, (TF_Operation*))                                             \
  X(TF_OperationOutputType, TF_DataType, (TF_Output))                                         \
  X(TF_GraphGetTensorNumDims, int, (TF_Graph*, TF_Output, TF_Status*))                        \
  X(TF_GraphGetTensorShape, void, (TF_Graph*, TF_Output, int64_t*, int, TF_Status*))

// The loaded library and its function table: api.TF_NewStatus() and so on.
struct TfApi {
  void* handle = nullptr;
  std::string lib_path;
#define CONVBENCH_DECL(name, ret, args) ret(*name) args = nullptr;
  CONVBENCH_TF_FUNCS(CONVBENCH_DECL)
#undef CONVBENCH_DECL
};

// Throws std::runtime_error naming the path and the missing symbols. Never unloaded.
std::shared_ptr<const TfApi> LoadTf(const std::string& lib_path);

// The helpers every TF path shares. Each throws std::runtime_error with TF's message.

// Throws "convbench: <what> failed (TF code N): <TF's message>" unless `st` is TF_OK.
void CheckTfStatus(const TfApi& api, TF_Status* st, const char* what);
// A float32 tensor of `dims` holding a copy of `data` (the product of dims floats).
TF_Tensor* MakeTfTensor(const TfApi& api, const int64_t* dims, int nd, const float* data);
// A session over `g` with the serialized ConfigProto `config` (tf_config_proto.h).
TF_Session* NewTfSession(const TfApi& api, TF_Graph* g, const std::string& config, TF_Status* st);
// Closes and frees a session (if any), then the graph (if any).
void DeleteTfSessionAndGraph(const TfApi& api, TF_Session* session, TF_Graph* graph,
                             TF_Status* st);

}  // namespace convbench
