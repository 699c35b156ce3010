// No TensorFlow header is included: the few C API types and prototypes used are declared below,
// with values from tensorflow/c/tf_datatype.h, xla/tsl/c/tsl_status.h, tensorflow/c/c_api.h and
// tensorflow/c/eager/c_api.h of TF 2.21 (the C API's ABI is stable across releases).
#include "tf_op.h"

#include <dlfcn.h>

#include <algorithm>
#include <vector>
#include <cstring>
#include <stdexcept>

namespace convbench {

// ------------------------------------------------------------------ C API decls
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

struct TfApi {
  void* handle = nullptr;
  std::string lib_path;
#define CONVBENCH_DECL(name, ret, args) ret(*name) args = nullptr;
  CONVBENCH_TF_FUNCS(CONVBENCH_DECL)
#undef CONVBENCH_DECL
};

static_assert(sizeof(TF_DataType) == sizeof(int), "TF_DataType must be int-sized");
static_assert(sizeof(TF_Code) == sizeof(int), "TF_Code must be int-sized");

std::shared_ptr<const TfApi> LoadTf(const std::string& lib_path) {
  auto api = std::make_shared<TfApi>();
  api->lib_path = lib_path;
  dlerror();
  // RTLD_LOCAL: libtensorflow_framework exports BoringSSL's CRYPTO_* symbols; made global they
  // interpose on the system OpenSSL that Python loads later, and `import hashlib` crashes.
  api->handle = dlopen(lib_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!api->handle) {
    const char* e = dlerror();
    throw std::runtime_error("cannot load TensorFlow's C API from '" + lib_path +
                             "': " + (e ? e : "unknown error"));
  }
  std::string missing;
#define CONVBENCH_SYM(name, ret, args)                                          \
  {                                                                             \
    dlerror();                                                                  \
    void* p = dlsym(api->handle, #name);                                        \
    if (!p) {                                                                   \
      missing += (missing.empty() ? "" : ", ");                                 \
      missing += #name;                                                         \
    } else {                                                                    \
      api->name = reinterpret_cast<ret(*) args>(p);                             \
    }                                                                           \
  }
  CONVBENCH_TF_FUNCS(CONVBENCH_SYM)
#undef CONVBENCH_SYM
  if (!missing.empty()) {
    // Never dlclose TF (unloading it is unsupported); just report.
    throw std::runtime_error("'" + lib_path + "' lacks TF C API symbol(s): " + missing +
                             " (expected libtensorflow_cc.so.2 from the tensorflow wheel)");
  }
  return api;
}

// ------------------------------------------------------------------ protobuf
namespace {
void PutVarint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void PutTag(std::string& s, int field, int wire) { PutVarint(s, (uint64_t(field) << 3) | wire); }
void PutVarintField(std::string& s, int field, int64_t v) {
  PutTag(s, field, 0);
  PutVarint(s, static_cast<uint64_t>(v));  // negative int32/enum -> 10-byte two's complement
}
void PutMessageField(std::string& s, int field, const std::string& msg) {
  PutTag(s, field, 2);
  PutVarint(s, msg.size());
  s += msg;
}
}  // namespace

std::string MakeConfigProto(int intra, int inter, bool disable_constant_folding,
                            bool disable_grappler) {
  std::string s;
  if (intra != 0) PutVarintField(s, 2, intra);  // intra_op_parallelism_threads
  if (inter != 0) PutVarintField(s, 5, inter);  // inter_op_parallelism_threads
  if (disable_constant_folding || disable_grappler) {
    std::string opt, rw, go;
    // OptimizerOptions.opt_level = L0 (-1): no classic const folding. Its do_constant_folding
    // (field 2) is left unwritten: false is the proto3 default, and only L1 would turn it on.
    PutVarintField(opt, 3, -1);
    // RewriterConfig.constant_folding = OFF (2): no grappler folding.
    if (disable_constant_folding) PutVarintField(rw, 3, 2);
    // RewriterConfig.disable_meta_optimizer = true: no grappler pass runs at all (no remapper
    // fusions, no layout or arithmetic rewrites), the graph is executed as written.
    if (disable_grappler) PutVarintField(rw, 19, 1);
    PutMessageField(go, 3, opt);   // GraphOptions.optimizer_options
    PutMessageField(go, 10, rw);   // GraphOptions.rewrite_options
    PutMessageField(s, 10, go);    // ConfigProto.graph_options
  }
  return s;
}

// ------------------------------------------------------------------ conv helpers
static int OutDim(int in, int k, int stride, int dil, const std::string& pad, int p0, int p1) {
  if (in < 1 || k < 1 || stride < 1 || dil < 1)
    throw std::runtime_error("convbench: conv sizes, strides and dilations must be >= 1");
  int ek = (k - 1) * dil + 1;
  if (pad == "SAME") return (in + stride - 1) / stride;
  if (pad == "VALID") return (in - ek) / stride + 1;
  if (pad == "EXPLICIT") return (in + p0 + p1 - ek) / stride + 1;
  throw std::runtime_error("convbench: padding must be SAME, VALID or EXPLICIT, got '" + pad + "'");
}
int TfConvShape::OH() const { return OutDim(H, KH, stride_h, dil_h, padding, pad_top, pad_bottom); }
int TfConvShape::OW() const { return OutDim(W, KW, stride_w, dil_w, padding, pad_left, pad_right); }

// ------------------------------------------------------------------ shared bits
namespace {
void Check(const TfApi& api, TF_Status* st, const char* what) {
  if (api.TF_GetCode(st) != TF_OK) {
    throw std::runtime_error(std::string("convbench: ") + what + " failed (TF code " +
                             std::to_string(int(api.TF_GetCode(st))) + "): " + api.TF_Message(st));
  }
}
TF_Tensor* MakeTensor(const TfApi& api, const int64_t* dims, int nd, const float* data) {
  size_t n = 1;
  for (int i = 0; i < nd; ++i) n *= size_t(dims[i]);
  TF_Tensor* t = api.TF_AllocateTensor(TF_FLOAT, dims, nd, n * sizeof(float));
  if (!t) throw std::runtime_error("convbench: TF_AllocateTensor returned null");
  std::memcpy(api.TF_TensorData(t), data, n * sizeof(float));
  return t;
}
void CopyOut(const TfApi& api, const TfConvShape& s, TF_Tensor* t, float* out) {
  const int64_t want[4] = {s.N, s.OH(), s.OW(), s.O};
  if (api.TF_TensorType(t) != TF_FLOAT || api.TF_NumDims(t) != 4)
    throw std::runtime_error("convbench: unexpected output dtype/rank");
  for (int i = 0; i < 4; ++i)
    if (api.TF_Dim(t, i) != want[i])
      throw std::runtime_error("convbench: output dim " + std::to_string(i) + " is " +
                               std::to_string(api.TF_Dim(t, i)) + ", expected " +
                               std::to_string(want[i]));
  size_t bytes = s.OutputElems() * sizeof(float);
  if (api.TF_TensorByteSize(t) != bytes) throw std::runtime_error("convbench: output size mismatch");
  std::memcpy(out, api.TF_TensorData(t), bytes);
}
std::vector<int64_t> ExplicitPads(const TfConvShape& s) {
  return {0, 0, s.pad_top, s.pad_bottom, s.pad_left, s.pad_right, 0, 0};
}

// Conv2D's attributes, through whichever setters the eager or the graph API provides.
template <class SetType, class SetInts, class SetString>
void SetConvAttrs(const TfConvShape& s, SetType set_type, SetInts set_ints, SetString set_string) {
  set_type("T", TF_FLOAT);
  const int64_t strides[4] = {1, s.stride_h, s.stride_w, 1};
  const int64_t dil[4] = {1, s.dil_h, s.dil_w, 1};
  set_ints("strides", strides, 4);
  set_ints("dilations", dil, 4);
  set_string("padding", s.padding);
  if (s.padding == "EXPLICIT") {
    auto p = ExplicitPads(s);
    set_ints("explicit_paddings", p.data(), static_cast<int>(p.size()));
  }
  set_string("data_format", std::string("NHWC"));
}
// A session over `g` with the serialized ConfigProto `cfg`; throws with TF's message.
TF_Session* NewSession(const TfApi& A, TF_Graph* g, const std::string& cfg, TF_Status* st) {
  TF_SessionOptions* so = A.TF_NewSessionOptions();
  A.TF_SetConfig(so, cfg.data(), cfg.size(), st);
  if (A.TF_GetCode(st) != TF_OK) A.TF_DeleteSessionOptions(so);
  Check(A, st, "TF_SetConfig");
  TF_Session* session = A.TF_NewSession(g, so, st);
  A.TF_DeleteSessionOptions(so);
  Check(A, st, "TF_NewSession");
  return session;
}

// Closes and frees a session (if any), then the graph (if any).
void DeleteSessionAndGraph(const TfApi& A, void* session, void* graph, TF_Status* st) {
  if (session) {
    A.TF_CloseSession(static_cast<TF_Session*>(session), st);
    A.TF_DeleteSession(static_cast<TF_Session*>(session), st);
  }
  if (graph) A.TF_DeleteGraph(static_cast<TF_Graph*>(graph));
}
}  // namespace

// ------------------------------------------------------------------ eager
TfEagerConv::TfEagerConv(std::shared_ptr<const TfApi> api, const TfConvShape& spec,
                         const float* input, const float* filter, int threads)
    : api_(std::move(api)), spec_(spec) {
  const TfApi& A = *api_;
  (void)spec_.OH();  // validates padding string
  auto* st = A.TF_NewStatus();
  status_ = st;
  try {
    std::string cfg = MakeConfigProto(threads, 1);
    TFE_ContextOptions* opts = A.TFE_NewContextOptions();
    A.TFE_ContextOptionsSetConfig(opts, cfg.data(), cfg.size(), st);
    if (A.TF_GetCode(st) != TF_OK) A.TFE_DeleteContextOptions(opts);
    Check(A, st, "TFE_ContextOptionsSetConfig");
    A.TFE_ContextOptionsSetAsync(opts, 0);
    ctx_ = A.TFE_NewContext(opts, st);
    A.TFE_DeleteContextOptions(opts);
    Check(A, st, "TFE_NewContext");

    const int64_t idims[4] = {spec_.N, spec_.H, spec_.W, spec_.C};
    const int64_t fdims[4] = {spec_.KH, spec_.KW, spec_.C, spec_.O};
    TF_Tensor* ti = MakeTensor(A, idims, 4, input);
    in_h_ = A.TFE_NewTensorHandle(ti, st);
    A.TF_DeleteTensor(ti);  // handle keeps its own reference to the buffer
    Check(A, st, "TFE_NewTensorHandle(input)");
    TF_Tensor* tf = MakeTensor(A, fdims, 4, filter);
    filt_h_ = A.TFE_NewTensorHandle(tf, st);
    A.TF_DeleteTensor(tf);
    Check(A, st, "TFE_NewTensorHandle(filter)");

    // One op, built once: TFE_Execute on it repeatedly is correct and is the cheapest sequence
    // (resetting or re-creating the op per call costs about 2 us more).
    op_ = A.TFE_NewOp(static_cast<TFE_Context*>(ctx_), "Conv2D", st);
    Check(A, st, "TFE_NewOp(Conv2D)");
    SetupOp(op_);
  } catch (...) {
    Cleanup();
    throw;
  }
}

TfEagerConv::~TfEagerConv() { Cleanup(); }

void TfEagerConv::Cleanup() {
  const TfApi& A = *api_;
  if (op_) A.TFE_DeleteOp(static_cast<TFE_Op*>(op_));
  if (in_h_) A.TFE_DeleteTensorHandle(static_cast<TFE_TensorHandle*>(in_h_));
  if (filt_h_) A.TFE_DeleteTensorHandle(static_cast<TFE_TensorHandle*>(filt_h_));
  if (ctx_) A.TFE_DeleteContext(static_cast<TFE_Context*>(ctx_));
  if (status_) A.TF_DeleteStatus(static_cast<TF_Status*>(status_));
  op_ = in_h_ = filt_h_ = ctx_ = status_ = nullptr;
}

void TfEagerConv::SetupOp(void* vop) {
  const TfApi& A = *api_;
  auto* op = static_cast<TFE_Op*>(vop);
  auto* st = static_cast<TF_Status*>(status_);
  A.TFE_OpAddInput(op, static_cast<TFE_TensorHandle*>(in_h_), st);
  Check(A, st, "TFE_OpAddInput(input)");
  A.TFE_OpAddInput(op, static_cast<TFE_TensorHandle*>(filt_h_), st);
  Check(A, st, "TFE_OpAddInput(filter)");
  SetConvAttrs(
      spec_, [&](const char* n, TF_DataType t) { A.TFE_OpSetAttrType(op, n, t); },
      [&](const char* n, const int64_t* v, int k) { A.TFE_OpSetAttrIntList(op, n, v, k); },
      [&](const char* n, const std::string& v) {
        A.TFE_OpSetAttrString(op, n, v.data(), v.size());
      });
}

void* TfEagerConv::Execute() {
  const TfApi& A = *api_;
  auto* st = static_cast<TF_Status*>(status_);
  TFE_Op* op = static_cast<TFE_Op*>(op_);
  TFE_TensorHandle* out = nullptr;
  int nout = 1;
  A.TFE_Execute(op, &out, &nout, st);
  Check(A, st, "TFE_Execute(Conv2D)");
  if (nout != 1 || !out) throw std::runtime_error("convbench: Conv2D returned no output");
  return out;
}

void TfEagerConv::Run() {
  api_->TFE_DeleteTensorHandle(static_cast<TFE_TensorHandle*>(Execute()));
}

void TfEagerConv::RunAndCopy(float* out) {
  const TfApi& A = *api_;
  auto* st = static_cast<TF_Status*>(status_);
  auto* h = static_cast<TFE_TensorHandle*>(Execute());
  TF_Tensor* t = A.TFE_TensorHandleResolve(h, st);
  A.TFE_DeleteTensorHandle(h);
  Check(A, st, "TFE_TensorHandleResolve");
  try {
    CopyOut(A, spec_, t, out);
  } catch (...) {
    A.TF_DeleteTensor(t);
    throw;
  }
  A.TF_DeleteTensor(t);
}

// ------------------------------------------------------------------ graph
TfGraphConv::TfGraphConv(std::shared_ptr<const TfApi> api, const TfConvShape& spec,
                         const float* input, const float* filter, int threads, bool feed_inputs,
                         int inter_op_threads)
    : api_(std::move(api)), spec_(spec), feed_(feed_inputs) {
  const TfApi& A = *api_;
  (void)spec_.OH();
  auto* st = A.TF_NewStatus();
  status_ = st;
  try {
    auto* g = A.TF_NewGraph();
    graph_ = g;
    const int64_t idims[4] = {spec_.N, spec_.H, spec_.W, spec_.C};
    const int64_t fdims[4] = {spec_.KH, spec_.KW, spec_.C, spec_.O};
    TF_Tensor* ti = MakeTensor(A, idims, 4, input);
    TF_Tensor* tf = MakeTensor(A, fdims, 4, filter);
    in_t_ = ti;
    filt_t_ = tf;

    auto make_input = [&](const char* name, const int64_t* dims, TF_Tensor* value, bool fed) {
      TF_OperationDescription* d = A.TF_NewOperation(g, fed ? "Placeholder" : "Const", name);
      A.TF_SetAttrType(d, "dtype", TF_FLOAT);
      if (fed) {
        A.TF_SetAttrShape(d, "shape", dims, 4);
      } else {
        A.TF_SetAttrTensor(d, "value", value, st);  // copies/refs the tensor
        if (A.TF_GetCode(st) != TF_OK) {
          std::string msg = A.TF_Message(st);
          TF_Operation* o = A.TF_FinishOperation(d, st);  // must finish to free desc
          (void)o;
          throw std::runtime_error("convbench: TF_SetAttrTensor failed: " + msg);
        }
      }
      TF_Operation* o = A.TF_FinishOperation(d, st);
      Check(A, st, "TF_FinishOperation(input)");
      return o;
    };
    // The filter is a constant, as a frozen model's weights are (and as in the Python session
    // path): TF may prepare it once. Only the input is fed when feed_ is set.
    in_op_ = make_input("input", idims, ti, feed_);
    filt_op_ = make_input("filter", fdims, tf, false);

    TF_OperationDescription* d = A.TF_NewOperation(g, "Conv2D", "conv");
    A.TF_AddInput(d, TF_Output{static_cast<TF_Operation*>(in_op_), 0});
    A.TF_AddInput(d, TF_Output{static_cast<TF_Operation*>(filt_op_), 0});
    SetConvAttrs(
        spec_, [&](const char* n, TF_DataType t) { A.TF_SetAttrType(d, n, t); },
        [&](const char* n, const int64_t* v, int k) { A.TF_SetAttrIntList(d, n, v, k); },
        [&](const char* n, const std::string& v) { A.TF_SetAttrString(d, n, v.data(), v.size()); });
    conv_op_ = A.TF_FinishOperation(d, st);
    Check(A, st, "TF_FinishOperation(Conv2D)");

    A.TF_DeleteTensor(tf);  // the filter now lives in its Const node
    filt_t_ = nullptr;
    if (!feed_) {
      A.TF_DeleteTensor(ti);
      in_t_ = nullptr;
    }

    session_ = NewSession(
        A, g, MakeConfigProto(threads, inter_op_threads, /*disable_constant_folding=*/!feed_), st);
  } catch (...) {
    Cleanup();
    throw;
  }
}

TfGraphConv::~TfGraphConv() { Cleanup(); }

void TfGraphConv::Cleanup() {
  const TfApi& A = *api_;
  auto* st = static_cast<TF_Status*>(status_);
  DeleteSessionAndGraph(A, session_, graph_, st);
  if (in_t_) A.TF_DeleteTensor(static_cast<TF_Tensor*>(in_t_));
  if (filt_t_) A.TF_DeleteTensor(static_cast<TF_Tensor*>(filt_t_));
  if (st) A.TF_DeleteStatus(st);
  session_ = graph_ = in_t_ = filt_t_ = status_ = nullptr;
}

void* TfGraphConv::Execute() {
  const TfApi& A = *api_;
  auto* st = static_cast<TF_Status*>(status_);
  TF_Output out{static_cast<TF_Operation*>(conv_op_), 0};
  TF_Tensor* result = nullptr;
  if (feed_) {
    TF_Output in{static_cast<TF_Operation*>(in_op_), 0};
    TF_Tensor* val = static_cast<TF_Tensor*>(in_t_);
    A.TF_SessionRun(static_cast<TF_Session*>(session_), nullptr, &in, &val, 1, &out, &result, 1,
                    nullptr, 0, nullptr, st);
  } else {
    A.TF_SessionRun(static_cast<TF_Session*>(session_), nullptr, nullptr, nullptr, 0, &out,
                    &result, 1, nullptr, 0, nullptr, st);
  }
  Check(A, st, "TF_SessionRun");
  if (!result) throw std::runtime_error("convbench: TF_SessionRun returned no output");
  return result;
}

void TfGraphConv::Run() { api_->TF_DeleteTensor(static_cast<TF_Tensor*>(Execute())); }

void TfGraphConv::RunAndCopy(float* out) {
  auto* t = static_cast<TF_Tensor*>(Execute());
  try {
    CopyOut(*api_, spec_, t, out);
  } catch (...) {
    api_->TF_DeleteTensor(t);
    throw;
  }
  api_->TF_DeleteTensor(t);
}

// ------------------------------------------------------------------ either
TfNativeConv::TfNativeConv(const std::string& lib_path, const std::string& kind,
                           const TfConvShape& spec, const float* input, const float* filter,
                           int threads)
    : spec_(spec) {
  if (kind != "eager" && kind != "graph") {
    throw std::invalid_argument("TF native kind must be 'eager' or 'graph', got '" + kind + "'");
  }
  auto api = LoadTf(lib_path);
  if (kind == "eager") {
    eager_ = std::make_unique<TfEagerConv>(api, spec, input, filter, threads);
  } else {
    graph_ = std::make_unique<TfGraphConv>(api, spec, input, filter, threads, /*feed_inputs=*/true);
  }
}

void TfNativeConv::Run() { eager_ ? eager_->Run() : graph_->Run(); }

void TfNativeConv::RunAndCopy(float* out) {
  eager_ ? eager_->RunAndCopy(out) : graph_->RunAndCopy(out);
}

// ------------------------------------------------------------------ imported graph
namespace {
std::string DtypeName(int t) {
  switch (t) {
    case 1: return "float32";
    case 2: return "float64";
    case 3: return "int32";
    case 4: return "uint8";
    case 7: return "string";
    case 9: return "int64";
    case 10: return "bool";
    case 14: return "bfloat16";
    case 19: return "float16";
    default: return "TF dtype " + std::to_string(t);
  }
}
std::string ShapeString(const std::vector<int64_t>& dims) {
  std::string r = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    r += (i ? ", " : "") + (dims[i] < 0 ? std::string("?") : std::to_string(dims[i]));
  }
  return r + "]";
}
// The graph's static shape of `o` (-1 for a dim shape inference left open); an unknown rank is
// *rank = -1 and no dims.
std::vector<int64_t> StaticShape(const TfApi& A, TF_Graph* g, TF_Output o, TF_Status* st,
                                 int* rank, const std::string& what) {
  *rank = A.TF_GraphGetTensorNumDims(g, o, st);
  Check(A, st, ("TF_GraphGetTensorNumDims(" + what + ")").c_str());
  std::vector<int64_t> dims(*rank > 0 ? *rank : 0);
  if (*rank > 0) {
    A.TF_GraphGetTensorShape(g, o, dims.data(), *rank, st);
    Check(A, st, ("TF_GraphGetTensorShape(" + what + ")").c_str());
  }
  return dims;
}
}  // namespace

TfGraphRunner::TfGraphRunner(const std::string& lib_path, const std::string& graph_def,
                             const std::string& input_op, const std::string& output_op,
                             std::vector<int64_t> input_shape, const float* input, int threads,
                             bool optimize)
    : TfGraphRunner(LoadTf(lib_path), graph_def, input_op, output_op, std::move(input_shape),
                    input, threads, optimize) {}

TfGraphRunner::TfGraphRunner(std::shared_ptr<const TfApi> api, const std::string& graph_def,
                             const std::string& input_op, const std::string& output_op,
                             std::vector<int64_t> input_shape, const float* input, int threads,
                             bool optimize)
    : api_(std::move(api)),
      input_name_(input_op),
      output_name_(output_op),
      in_shape_(std::move(input_shape)) {
  if (!api_) throw std::invalid_argument("TfGraphRunner: no TF C API (null TfApi)");
  const TfApi& A = *api_;
  if (threads < 0) {
    throw std::invalid_argument("TfGraphRunner: threads must be >= 0 (0: TF's default), got " +
                                std::to_string(threads));
  }
  for (int64_t d : in_shape_) {
    if (d < 0) {
      throw std::invalid_argument("TfGraphRunner: input shape " + ShapeString(in_shape_) +
                                  " has a negative dim");
    }
  }
  if (graph_def.empty()) {
    // An empty buffer is a valid, empty GraphDef: say so instead of "no operation named ...".
    throw std::invalid_argument("TfGraphRunner: the GraphDef is empty (0 bytes)");
  }
  auto* st = A.TF_NewStatus();
  status_ = st;
  try {
    auto* g = A.TF_NewGraph();
    graph_ = g;
    // The default import options: no name prefix, so operations keep their names in the GraphDef.
    TF_Buffer* buf = A.TF_NewBufferFromString(graph_def.data(), graph_def.size());
    TF_ImportGraphDefOptions* io = A.TF_NewImportGraphDefOptions();
    A.TF_GraphImportGraphDef(g, buf, io, st);
    A.TF_DeleteImportGraphDefOptions(io);
    A.TF_DeleteBuffer(buf);  // the graph holds its own copy of every node
    if (A.TF_GetCode(st) != TF_OK) {
      throw std::runtime_error("TfGraphRunner: cannot import the GraphDef (" +
                               std::to_string(graph_def.size()) + " bytes): " + A.TF_Message(st));
    }

    auto find = [&](const std::string& name, const char* role) {
      TF_Operation* o = A.TF_GraphOperationByName(g, name.c_str());
      if (!o) {
        throw std::invalid_argument("TfGraphRunner: the graph has no operation named '" + name +
                                    "' (the " + role + " operation)");
      }
      if (A.TF_OperationNumOutputs(o) < 1) {
        throw std::invalid_argument(std::string("TfGraphRunner: ") + role + " operation '" + name +
                                    "' has no outputs");
      }
      return o;
    };
    auto* in_op = find(input_name_, "input");
    auto* out_op = find(output_name_, "output");
    in_op_ = in_op;
    out_op_ = out_op;

    // Dtypes and the fed shape are checked here, once, so that a mismatch names the tensor
    // instead of surfacing as a TF_SessionRun failure on the first run.
    const TF_Output in{in_op, 0}, out{out_op, 0};
    if (int t = int(A.TF_OperationOutputType(in)); t != TF_FLOAT) {
      throw std::invalid_argument("TfGraphRunner: input '" + input_name_ + ":0' is " +
                                  DtypeName(t) + ", only float32 inputs are supported");
    }
    if (int t = int(A.TF_OperationOutputType(out)); t != TF_FLOAT) {
      throw std::invalid_argument("TfGraphRunner: output '" + output_name_ + ":0' is " +
                                  DtypeName(t) + ", only float32 outputs are supported");
    }
    int in_rank = -1;
    auto want = StaticShape(A, g, in, st, &in_rank, input_name_ + ":0");
    bool fits = in_rank < 0 || std::size_t(in_rank) == in_shape_.size();
    for (std::size_t i = 0; fits && in_rank > 0 && i < want.size(); ++i) {
      fits = want[i] < 0 || want[i] == in_shape_[i];
    }
    if (!fits) {
      throw std::invalid_argument("TfGraphRunner: input of shape " + ShapeString(in_shape_) +
                                  " does not fit '" + input_name_ + ":0', of shape " +
                                  ShapeString(want) + " in the graph");
    }
    int out_rank = -1;
    out_shape_ = StaticShape(A, g, out, st, &out_rank, output_name_ + ":0");
    out_known_ = out_rank >= 0 && std::all_of(out_shape_.begin(), out_shape_.end(),
                                              [](int64_t d) { return d >= 0; });

    in_t_ = MakeTensor(A, in_shape_.data(), static_cast<int>(in_shape_.size()), input);

    session_ = NewSession(A, g,
                          MakeConfigProto(threads, 1, /*disable_constant_folding=*/!optimize,
                                          /*disable_grappler=*/!optimize),
                          st);
  } catch (...) {
    Cleanup();
    throw;
  }
}

TfGraphRunner::~TfGraphRunner() { Cleanup(); }

void TfGraphRunner::Cleanup() {
  const TfApi& A = *api_;
  auto* st = static_cast<TF_Status*>(status_);
  DeleteSessionAndGraph(A, session_, graph_, st);
  if (in_t_) A.TF_DeleteTensor(static_cast<TF_Tensor*>(in_t_));
  if (st) A.TF_DeleteStatus(st);
  session_ = graph_ = in_t_ = status_ = in_op_ = out_op_ = nullptr;
}

void* TfGraphRunner::Execute() {
  const TfApi& A = *api_;
  auto* st = static_cast<TF_Status*>(status_);
  TF_Output in{static_cast<TF_Operation*>(in_op_), 0};
  TF_Output out{static_cast<TF_Operation*>(out_op_), 0};
  TF_Tensor* val = static_cast<TF_Tensor*>(in_t_);
  TF_Tensor* result = nullptr;
  A.TF_SessionRun(static_cast<TF_Session*>(session_), nullptr, &in, &val, 1, &out, &result, 1,
                  nullptr, 0, nullptr, st);
  if (A.TF_GetCode(st) != TF_OK) {
    if (result) A.TF_DeleteTensor(result);
    throw std::runtime_error("TfGraphRunner: running '" + output_name_ + ":0' failed (TF code " +
                             std::to_string(int(A.TF_GetCode(st))) + "): " + A.TF_Message(st));
  }
  if (!result) throw std::runtime_error("TfGraphRunner: TF_SessionRun returned no output");
  if (!out_known_) {
    // Shape inference left a dim open (a placeholder with a None dim): the run says what it is.
    // Recorded once, so the timed runs after the first pay nothing for it.
    out_shape_.resize(A.TF_NumDims(result));
    for (std::size_t i = 0; i < out_shape_.size(); ++i) out_shape_[i] = A.TF_Dim(result, int(i));
    out_known_ = true;
  }
  return result;
}

void TfGraphRunner::Run() { api_->TF_DeleteTensor(static_cast<TF_Tensor*>(Execute())); }

void TfGraphRunner::RunAndCopy(float* out, std::size_t n) {
  const TfApi& A = *api_;
  // With the shape known, a wrong-sized array is refused before the graph runs for nothing.
  if (out_known_ && n != OutputElems()) {
    throw std::invalid_argument("TfGraphRunner: the output array has " + std::to_string(n) +
                                " elements, '" + output_name_ + ":0' produces " +
                                std::to_string(OutputElems()) + " " + ShapeString(out_shape_));
  }
  auto* t = static_cast<TF_Tensor*>(Execute());
  std::string err;
  std::size_t elems = 1;
  for (int i = 0, nd = A.TF_NumDims(t); i < nd; ++i) elems *= std::size_t(A.TF_Dim(t, i));
  if (int dt = int(A.TF_TensorType(t)); dt != TF_FLOAT) {
    err = "'" + output_name_ + ":0' produced " + DtypeName(dt) + ", expected float32";
  } else if (elems != n || A.TF_TensorByteSize(t) != n * sizeof(float)) {
    err = "the output array has " + std::to_string(n) + " elements, '" + output_name_ +
          ":0' produced " + std::to_string(elems);
  } else {
    std::memcpy(out, A.TF_TensorData(t), n * sizeof(float));
  }
  A.TF_DeleteTensor(t);
  if (!err.empty()) throw std::invalid_argument("TfGraphRunner: " + err);
}

const std::vector<int64_t>& TfGraphRunner::OutputShape() {
  if (!out_known_) Run();
  return out_shape_;
}

std::size_t TfGraphRunner::OutputElems() {
  std::size_t n = 1;
  for (int64_t d : OutputShape()) n *= std::size_t(d);
  return n;
}

}  // namespace convbench
