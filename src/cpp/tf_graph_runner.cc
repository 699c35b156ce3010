#include "tf_graph_runner.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "tf_config_proto.h"

namespace convbench {

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
  CheckTfStatus(A, st, ("TF_GraphGetTensorNumDims(" + what + ")").c_str());
  std::vector<int64_t> dims(*rank > 0 ? *rank : 0);
  if (*rank > 0) {
    A.TF_GraphGetTensorShape(g, o, dims.data(), *rank, st);
    CheckTfStatus(A, st, ("TF_GraphGetTensorShape(" + what + ")").c_str());
  }
  return dims;
}

// What needs no TF: the input array, the thread count and the GraphDef's presence.
void CheckArguments(const std::string& graph_def, const ArrayView& input, int threads) {
  // No conversion: a float64 array silently rounded to float32 would run a different model input
  // than the caller's.
  if (!SameDType(input.dtype, kFloat32)) {
    throw ArrayTypeError("input must be a float32 array, got " + DTypeToString(input.dtype));
  }
  if (!IsCContiguous(input)) {
    throw std::invalid_argument("TfGraphRunner: the input array must be C-contiguous");
  }
  if (input.data == nullptr && ElementCount(input) > 0) {
    throw std::invalid_argument("TfGraphRunner: the input array has no data");
  }
  if (threads < 0) {
    throw std::invalid_argument("TfGraphRunner: threads must be >= 0 (0: TF's default), got " +
                                std::to_string(threads));
  }
  for (int64_t d : input.shape) {
    if (d < 0) {
      throw std::invalid_argument("TfGraphRunner: input shape " + ShapeString(input.shape) +
                                  " has a negative dim");
    }
  }
  if (graph_def.empty()) {
    // An empty buffer is a valid, empty GraphDef: say so instead of "no operation named ...".
    throw std::invalid_argument("TfGraphRunner: the GraphDef is empty (0 bytes)");
  }
}

// A bad argument is reported before TF is loaded.
std::shared_ptr<const TfApi> CheckArgumentsThenLoadTf(const std::string& lib_path,
                                                      const std::string& graph_def,
                                                      const ArrayView& input, int threads) {
  CheckArguments(graph_def, input, threads);
  return LoadTf(lib_path);
}
}  // namespace

TfGraphRunner::TfGraphRunner(const std::string& lib_path, const std::string& graph_def,
                             const std::string& input_op, const std::string& output_op,
                             const ArrayView& input, int threads, bool optimize)
    : TfGraphRunner(CheckArgumentsThenLoadTf(lib_path, graph_def, input, threads), graph_def,
                    input_op, output_op, input, threads, optimize) {}

TfGraphRunner::TfGraphRunner(std::shared_ptr<const TfApi> api, const std::string& graph_def,
                             const std::string& input_op, const std::string& output_op,
                             const ArrayView& input, int threads, bool optimize)
    : api_(std::move(api)), input_name_(input_op), output_name_(output_op), in_shape_(input.shape) {
  if (!api_) throw std::invalid_argument("TfGraphRunner: no TF C API (null TfApi)");
  CheckArguments(graph_def, input, threads);
  const TfApi& A = *api_;
  status_ = A.TF_NewStatus();
  try {
    ImportGraph(graph_def);
    in_op_ = FindOperation(input_name_, "input");
    out_op_ = FindOperation(output_name_, "output");
    CheckDtypes();
    CheckInputFits();
    ReadOutputShape();
    in_t_ = MakeTfTensor(A, in_shape_.data(), static_cast<int>(in_shape_.size()),
                         static_cast<const float*>(input.data));
    CreateSession(threads, optimize);
  } catch (...) {
    Cleanup();
    throw;
  }
}

TfGraphRunner::~TfGraphRunner() { Cleanup(); }

void TfGraphRunner::Cleanup() {
  const TfApi& A = *api_;
  DeleteTfSessionAndGraph(A, session_, graph_, status_);
  if (in_t_) A.TF_DeleteTensor(in_t_);
  if (status_) A.TF_DeleteStatus(status_);
  session_ = nullptr;
  graph_ = nullptr;
  in_t_ = nullptr;
  status_ = nullptr;
  in_op_ = out_op_ = nullptr;
}

// The default import options: no name prefix, so operations keep their names in the GraphDef.
void TfGraphRunner::ImportGraph(const std::string& graph_def) {
  const TfApi& A = *api_;
  graph_ = A.TF_NewGraph();
  TF_Buffer* buf = A.TF_NewBufferFromString(graph_def.data(), graph_def.size());
  TF_ImportGraphDefOptions* io = A.TF_NewImportGraphDefOptions();
  A.TF_GraphImportGraphDef(graph_, buf, io, status_);
  A.TF_DeleteImportGraphDefOptions(io);
  A.TF_DeleteBuffer(buf);  // the graph holds its own copy of every node
  if (A.TF_GetCode(status_) != TF_OK) {
    throw std::runtime_error("TfGraphRunner: cannot import the GraphDef (" +
                             std::to_string(graph_def.size()) + " bytes): " +
                             A.TF_Message(status_));
  }
}

TF_Operation* TfGraphRunner::FindOperation(const std::string& name, const char* role) const {
  const TfApi& A = *api_;
  TF_Operation* o = A.TF_GraphOperationByName(graph_, name.c_str());
  if (!o) {
    throw std::invalid_argument("TfGraphRunner: the graph has no operation named '" + name +
                                "' (the " + role + " operation)");
  }
  if (A.TF_OperationNumOutputs(o) < 1) {
    throw std::invalid_argument(std::string("TfGraphRunner: ") + role + " operation '" + name +
                                "' has no outputs");
  }
  return o;
}

// Dtypes and the fed shape are checked here, once, so that a mismatch names the tensor instead of
// surfacing as a TF_SessionRun failure on the first run.
void TfGraphRunner::CheckDtypes() const {
  const TfApi& A = *api_;
  if (int t = int(A.TF_OperationOutputType(TF_Output{in_op_, 0})); t != TF_FLOAT) {
    throw std::invalid_argument("TfGraphRunner: input '" + input_name_ + ":0' is " +
                                DtypeName(t) + ", only float32 inputs are supported");
  }
  if (int t = int(A.TF_OperationOutputType(TF_Output{out_op_, 0})); t != TF_FLOAT) {
    throw std::invalid_argument("TfGraphRunner: output '" + output_name_ + ":0' is " +
                                DtypeName(t) + ", only float32 outputs are supported");
  }
}

void TfGraphRunner::CheckInputFits() const {
  int rank = -1;
  auto want = StaticShape(*api_, graph_, TF_Output{in_op_, 0}, status_, &rank, input_name_ + ":0");
  bool fits = rank < 0 || std::size_t(rank) == in_shape_.size();
  for (std::size_t i = 0; fits && rank > 0 && i < want.size(); ++i) {
    fits = want[i] < 0 || want[i] == in_shape_[i];
  }
  if (!fits) {
    throw std::invalid_argument("TfGraphRunner: input of shape " + ShapeString(in_shape_) +
                                " does not fit '" + input_name_ + ":0', of shape " +
                                ShapeString(want) + " in the graph");
  }
}

// The output's static shape; when shape inference left a dim open, the first run fills it in.
void TfGraphRunner::ReadOutputShape() {
  int rank = -1;
  out_shape_ =
      StaticShape(*api_, graph_, TF_Output{out_op_, 0}, status_, &rank, output_name_ + ":0");
  out_known_ = rank >= 0 && std::all_of(out_shape_.begin(), out_shape_.end(),
                                        [](int64_t d) { return d >= 0; });
}

void TfGraphRunner::CreateSession(int threads, bool optimize) {
  session_ = NewTfSession(*api_, graph_,
                          MakeConfigProto(threads, 1, /*disable_constant_folding=*/!optimize,
                                          /*disable_grappler=*/!optimize),
                          status_);
}

TF_Tensor* TfGraphRunner::Execute() {
  const TfApi& A = *api_;
  TF_Output in{in_op_, 0};
  TF_Output out{out_op_, 0};
  TF_Tensor* result = nullptr;
  A.TF_SessionRun(session_, nullptr, &in, &in_t_, 1, &out, &result, 1, nullptr, 0, nullptr,
                  status_);
  if (A.TF_GetCode(status_) != TF_OK) {
    if (result) A.TF_DeleteTensor(result);
    throw std::runtime_error("TfGraphRunner: running '" + output_name_ + ":0' failed (TF code " +
                             std::to_string(int(A.TF_GetCode(status_))) +
                             "): " + A.TF_Message(status_));
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

void TfGraphRunner::Run() { api_->TF_DeleteTensor(Execute()); }

void TfGraphRunner::RunAndCopy(const ArrayView& out) {
  CheckFloatOutput(out);
  RunAndCopy(static_cast<float*>(out.data), ElementCount(out));
}

void TfGraphRunner::RunAndCopy(float* out, std::size_t n) {
  const TfApi& A = *api_;
  // With the shape known, a wrong-sized array is refused before the graph runs for nothing.
  if (out_known_ && n != OutputElems()) {
    throw std::invalid_argument("TfGraphRunner: the output array has " + std::to_string(n) +
                                " elements, '" + output_name_ + ":0' produces " +
                                std::to_string(OutputElems()) + " " + ShapeString(out_shape_));
  }
  TF_Tensor* t = Execute();
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
