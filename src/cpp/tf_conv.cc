#include "tf_conv.h"

#include <cstring>
#include <stdexcept>

#include "tf_config_proto.h"

namespace convbench {

// ------------------------------------------------------------------ shape
void ValidateTfConvShape(const TfConvShape& s) {
  for (int v : {s.N, s.H, s.W, s.C, s.KH, s.KW, s.O, s.stride_h, s.stride_w, s.dil_h, s.dil_w}) {
    if (v < 1) {
      throw std::runtime_error("convbench: conv sizes, strides and dilations must be >= 1");
    }
  }
  if (s.groups < 1 || s.C % s.groups || s.O % s.groups) {
    throw std::runtime_error("convbench: groups must be >= 1 and divide both the input channels (" +
                             std::to_string(s.C) + ") and the output channels (" +
                             std::to_string(s.O) + "), got " + std::to_string(s.groups));
  }
  if (s.padding != "SAME" && s.padding != "VALID" && s.padding != "EXPLICIT") {
    throw std::runtime_error("convbench: padding must be SAME, VALID or EXPLICIT, got '" +
                             s.padding + "'");
  }
  if (s.OH < 1 || s.OW < 1) {
    throw std::invalid_argument("convbench: the conv's output height and width must be >= 1, got "
                                "OH=" + std::to_string(s.OH) + ", OW=" + std::to_string(s.OW));
  }
}

// ------------------------------------------------------------------ the interface
TfConvRunner::TfConvRunner(const TfConvShape& shape) : shape_(shape) {
  ValidateTfConvShape(shape_);
}

void TfConvRunner::RunAndCopy(float* out, std::size_t n) {
  if (n != OutputElems()) {
    throw std::invalid_argument("output array has " + std::to_string(n) +
                                " elements, the conv produces " + std::to_string(OutputElems()));
  }
  RunInto(out);
}

void TfConvRunner::RunAndCopy(const ArrayView& out) {
  CheckFloatOutput(out);
  RunAndCopy(static_cast<float*>(out.data), ElementCount(out));
}

// ------------------------------------------------------------------ shared bits
namespace {
// Copies a conv's output tensor to `out` once its dtype and dims are the shape's.
void CopyOut(const TfApi& api, const TfConvShape& s, TF_Tensor* t, float* out) {
  const std::vector<std::int64_t> want = s.OutputDims();
  if (api.TF_TensorType(t) != TF_FLOAT || api.TF_NumDims(t) != 4)
    throw std::runtime_error("convbench: unexpected output dtype/rank");
  for (int i = 0; i < 4; ++i)
    if (api.TF_Dim(t, i) != want[i])
      throw std::runtime_error("convbench: output dim " + std::to_string(i) + " is " +
                               std::to_string(api.TF_Dim(t, i)) + ", expected " +
                               std::to_string(want[i]));
  size_t bytes = s.OutputElems() * sizeof(float);
  if (api.TF_TensorByteSize(t) != bytes) {
    throw std::runtime_error("convbench: output size mismatch");
  }
  std::memcpy(out, api.TF_TensorData(t), bytes);
}

// Conv2D's (and DepthwiseConv2dNative's) attributes, through whichever setters the eager or the graph API provides.
template <class SetType, class SetInts, class SetString>
void SetConvAttrs(const TfConvShape& s, SetType set_type, SetInts set_ints, SetString set_string) {
  set_type("T", TF_FLOAT);
  const int64_t strides[4] = {1, s.stride_h, s.stride_w, 1};
  const int64_t dil[4] = {1, s.dil_h, s.dil_w, 1};
  set_ints("strides", strides, 4);
  set_ints("dilations", dil, 4);
  set_string("padding", s.padding);
  if (s.padding == "EXPLICIT") {
    const int64_t pads[8] = {0, 0, s.pad_top, s.pad_bottom, s.pad_left, s.pad_right, 0, 0};
    set_ints("explicit_paddings", pads, 8);
  }
  set_string("data_format", std::string("NHWC"));
}
}  // namespace

// ------------------------------------------------------------------ eager
TfEagerConv::TfEagerConv(std::shared_ptr<const TfApi> api, const TfConvShape& shape,
                         const float* input, const float* filter, int threads)
    : TfConvRunner(shape), api_(std::move(api)) {
  status_ = api_->TF_NewStatus();
  try {
    CreateContext(threads);
    CreateInputs(input, filter);
    CreateOp();
  } catch (...) {
    Cleanup();
    throw;
  }
}

TfEagerConv::~TfEagerConv() { Cleanup(); }

void TfEagerConv::Cleanup() {
  const TfApi& A = *api_;
  if (op_) A.TFE_DeleteOp(op_);
  if (in_h_) A.TFE_DeleteTensorHandle(in_h_);
  if (filt_h_) A.TFE_DeleteTensorHandle(filt_h_);
  if (ctx_) A.TFE_DeleteContext(ctx_);
  if (status_) A.TF_DeleteStatus(status_);
  op_ = nullptr;
  in_h_ = filt_h_ = nullptr;
  ctx_ = nullptr;
  status_ = nullptr;
}

// A synchronous context: intra-op = threads, inter-op = 1.
void TfEagerConv::CreateContext(int threads) {
  const TfApi& A = *api_;
  std::string cfg = MakeConfigProto(threads, 1);
  TFE_ContextOptions* opts = A.TFE_NewContextOptions();
  A.TFE_ContextOptionsSetConfig(opts, cfg.data(), cfg.size(), status_);
  if (A.TF_GetCode(status_) != TF_OK) A.TFE_DeleteContextOptions(opts);
  CheckTfStatus(A, status_, "TFE_ContextOptionsSetConfig");
  A.TFE_ContextOptionsSetAsync(opts, 0);
  ctx_ = A.TFE_NewContext(opts, status_);
  A.TFE_DeleteContextOptions(opts);
  CheckTfStatus(A, status_, "TFE_NewContext");
}

void TfEagerConv::CreateInputs(const float* input, const float* filter) {
  const TfApi& A = *api_;
  const auto idims = shape_.InputDims(), fdims = shape_.FilterDims();
  TF_Tensor* ti = MakeTfTensor(A, idims.data(), 4, input);
  in_h_ = A.TFE_NewTensorHandle(ti, status_);
  A.TF_DeleteTensor(ti);  // the handle keeps its own reference to the buffer
  CheckTfStatus(A, status_, "TFE_NewTensorHandle(input)");
  TF_Tensor* tf = MakeTfTensor(A, fdims.data(), 4, filter);
  filt_h_ = A.TFE_NewTensorHandle(tf, status_);
  A.TF_DeleteTensor(tf);
  CheckTfStatus(A, status_, "TFE_NewTensorHandle(filter)");
}

// One op, built once: TFE_Execute on it repeatedly is correct and is the cheapest sequence
// (resetting or re-creating the op per call costs about 2 us more).
void TfEagerConv::CreateOp() {
  const TfApi& A = *api_;
  op_ = A.TFE_NewOp(ctx_, shape_.OpType(), status_);
  CheckTfStatus(A, status_, "TFE_NewOp");
  A.TFE_OpAddInput(op_, in_h_, status_);
  CheckTfStatus(A, status_, "TFE_OpAddInput(input)");
  A.TFE_OpAddInput(op_, filt_h_, status_);
  CheckTfStatus(A, status_, "TFE_OpAddInput(filter)");
  TFE_Op* op = op_;
  SetConvAttrs(
      shape_, [&](const char* n, TF_DataType t) { A.TFE_OpSetAttrType(op, n, t); },
      [&](const char* n, const int64_t* v, int k) { A.TFE_OpSetAttrIntList(op, n, v, k); },
      [&](const char* n, const std::string& v) {
        A.TFE_OpSetAttrString(op, n, v.data(), v.size());
      });
}

TFE_TensorHandle* TfEagerConv::Execute() {
  const TfApi& A = *api_;
  TFE_TensorHandle* out = nullptr;
  int nout = 1;
  A.TFE_Execute(op_, &out, &nout, status_);
  CheckTfStatus(A, status_, "TFE_Execute");
  if (nout != 1 || !out) throw std::runtime_error("convbench: the conv op returned no output");
  return out;
}

void TfEagerConv::Run() { api_->TFE_DeleteTensorHandle(Execute()); }

void TfEagerConv::RunInto(float* out) {
  const TfApi& A = *api_;
  TFE_TensorHandle* h = Execute();
  TF_Tensor* t = A.TFE_TensorHandleResolve(h, status_);
  A.TFE_DeleteTensorHandle(h);
  CheckTfStatus(A, status_, "TFE_TensorHandleResolve");
  try {
    CopyOut(A, shape_, t, out);
  } catch (...) {
    A.TF_DeleteTensor(t);
    throw;
  }
  A.TF_DeleteTensor(t);
}

// ------------------------------------------------------------------ graph
TfGraphConv::TfGraphConv(std::shared_ptr<const TfApi> api, const TfConvShape& shape,
                         const float* input, const float* filter, int threads, bool feed_inputs,
                         int inter_op_threads)
    : TfConvRunner(shape), api_(std::move(api)), feed_(feed_inputs) {
  const TfApi& A = *api_;
  status_ = A.TF_NewStatus();
  try {
    graph_ = A.TF_NewGraph();
    const auto idims = shape_.InputDims(), fdims = shape_.FilterDims();
    in_t_ = MakeTfTensor(A, idims.data(), 4, input);
    filt_t_ = MakeTfTensor(A, fdims.data(), 4, filter);
    // The filter is a constant, as a frozen model's weights are (and as in the Python session
    // path): TF may prepare it once. Only the input is fed when feed_ is set.
    in_op_ = AddInputNode("input", idims, in_t_, feed_);
    filt_op_ = AddInputNode("filter", fdims, filt_t_, false);
    conv_op_ = AddConvNode();

    A.TF_DeleteTensor(filt_t_);  // the filter now lives in its Const node
    filt_t_ = nullptr;
    if (!feed_) {
      A.TF_DeleteTensor(in_t_);
      in_t_ = nullptr;
    }
    session_ = NewTfSession(
        A, graph_,
        MakeConfigProto(threads, inter_op_threads, /*disable_constant_folding=*/!feed_), status_);
  } catch (...) {
    Cleanup();
    throw;
  }
}

TfGraphConv::~TfGraphConv() { Cleanup(); }

void TfGraphConv::Cleanup() {
  const TfApi& A = *api_;
  DeleteTfSessionAndGraph(A, session_, graph_, status_);
  if (in_t_) A.TF_DeleteTensor(in_t_);
  if (filt_t_) A.TF_DeleteTensor(filt_t_);
  if (status_) A.TF_DeleteStatus(status_);
  session_ = nullptr;
  graph_ = nullptr;
  in_t_ = filt_t_ = nullptr;
  status_ = nullptr;
}

// A Placeholder (fed) or a Const holding `value`.
TF_Operation* TfGraphConv::AddInputNode(const char* name, const std::vector<std::int64_t>& dims,
                                        TF_Tensor* value, bool fed) {
  const TfApi& A = *api_;
  TF_OperationDescription* d = A.TF_NewOperation(graph_, fed ? "Placeholder" : "Const", name);
  A.TF_SetAttrType(d, "dtype", TF_FLOAT);
  if (fed) {
    A.TF_SetAttrShape(d, "shape", dims.data(), static_cast<int>(dims.size()));
  } else {
    A.TF_SetAttrTensor(d, "value", value, status_);  // copies/refs the tensor
    if (A.TF_GetCode(status_) != TF_OK) {
      std::string msg = A.TF_Message(status_);
      (void)A.TF_FinishOperation(d, status_);  // must finish to free the description
      throw std::runtime_error("convbench: TF_SetAttrTensor failed: " + msg);
    }
  }
  TF_Operation* o = A.TF_FinishOperation(d, status_);
  CheckTfStatus(A, status_, "TF_FinishOperation(input)");
  return o;
}

TF_Operation* TfGraphConv::AddConvNode() {
  const TfApi& A = *api_;
  TF_OperationDescription* d = A.TF_NewOperation(graph_, shape_.OpType(), "conv");
  A.TF_AddInput(d, TF_Output{in_op_, 0});
  A.TF_AddInput(d, TF_Output{filt_op_, 0});
  SetConvAttrs(
      shape_, [&](const char* n, TF_DataType t) { A.TF_SetAttrType(d, n, t); },
      [&](const char* n, const int64_t* v, int k) { A.TF_SetAttrIntList(d, n, v, k); },
      [&](const char* n, const std::string& v) { A.TF_SetAttrString(d, n, v.data(), v.size()); });
  TF_Operation* o = A.TF_FinishOperation(d, status_);
  CheckTfStatus(A, status_, "TF_FinishOperation(conv)");
  return o;
}

TF_Tensor* TfGraphConv::Execute() {
  const TfApi& A = *api_;
  TF_Output out{conv_op_, 0};
  TF_Tensor* result = nullptr;
  if (feed_) {
    TF_Output in{in_op_, 0};
    A.TF_SessionRun(session_, nullptr, &in, &in_t_, 1, &out, &result, 1, nullptr, 0, nullptr,
                    status_);
  } else {
    A.TF_SessionRun(session_, nullptr, nullptr, nullptr, 0, &out, &result, 1, nullptr, 0, nullptr,
                    status_);
  }
  CheckTfStatus(A, status_, "TF_SessionRun");
  if (!result) throw std::runtime_error("convbench: TF_SessionRun returned no output");
  return result;
}

void TfGraphConv::Run() { api_->TF_DeleteTensor(Execute()); }

void TfGraphConv::RunInto(float* out) {
  TF_Tensor* t = Execute();
  try {
    CopyOut(*api_, shape_, t, out);
  } catch (...) {
    api_->TF_DeleteTensor(t);
    throw;
  }
  api_->TF_DeleteTensor(t);
}

// ------------------------------------------------------------------ the factory
std::unique_ptr<TfConvRunner> MakeTfConv(const std::string& lib_path, const std::string& kind,
                                         const TfConvShape& shape, const ArrayView& input,
                                         const ArrayView& filter, int threads) {
  if (kind != "eager" && kind != "graph") {
    throw std::invalid_argument("TF native kind must be 'eager' or 'graph', got '" + kind + "'");
  }
  ValidateTfConvShape(shape);
  CheckArray("TF conv input", ArgSpec{"input", shape.InputDims()}, input);
  CheckArray("TF conv filter", ArgSpec{"filter", shape.FilterDims()}, filter);
  auto api = LoadTf(lib_path);
  const auto* in = static_cast<const float*>(input.data);
  const auto* filt = static_cast<const float*>(filter.data);
  if (kind == "eager") return std::make_unique<TfEagerConv>(api, shape, in, filt, threads);
  return std::make_unique<TfGraphConv>(api, shape, in, filt, threads, /*feed_inputs=*/true);
}

}  // namespace convbench
