// TensorFlow's Conv2D run through TF's C API with no Python in the loop, eagerly (TFE_Execute) or
// as a prebuilt one-op graph (TF_SessionRun), behind one interface for the harness.
//
// TF's intra-op pool is process-wide and sized by the first context or session the process
// creates: run these in a process where nothing else has touched TF yet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "array_view.h"
#include "tf_api.h"

namespace convbench {

// Input NHWC, filter HWIO (KH, KW, C / groups, O), output NHWC (N, OH, OW, O). A depthwise conv
// (groups == C) runs as DepthwiseConv2dNative, whose filter (KH, KW, C, O / C) has the same bytes;
// other grouped convs as Conv2D, which infers the groups from the filter's input channels.
struct TfConvShape {
  int N = 1, H = 1, W = 1, C = 1;
  int KH = 1, KW = 1, O = 1;
  int groups = 1;
  int stride_h = 1, stride_w = 1;
  int dil_h = 1, dil_w = 1;
  std::string padding = "SAME";  // "SAME", "VALID" or "EXPLICIT"
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // EXPLICIT only
  // The output's height and width as the caller computed them (convbench: Workload.output_shape);
  // every copied run checks TF's output against them.
  int OH = 0, OW = 0;

  std::vector<std::int64_t> InputDims() const { return {N, H, W, C}; }
  bool Depthwise() const { return groups > 1 && groups == C; }
  const char* OpType() const { return Depthwise() ? "DepthwiseConv2dNative" : "Conv2D"; }
  std::vector<std::int64_t> FilterDims() const {
    if (Depthwise()) return {KH, KW, C, O / C};
    return {KH, KW, C / groups, O};
  }
  std::vector<std::int64_t> OutputDims() const { return {N, OH, OW, O}; }
  std::size_t OutputElems() const { return std::size_t(N) * OH * OW * O; }
};

// Throws std::runtime_error for a size, stride or dilation below 1 or an unknown padding, and
// std::invalid_argument for an output height or width (OH, OW) below 1.
void ValidateTfConvShape(const TfConvShape& shape);

// One conv, its input and filter held by the runner: what the harness times.
class TfConvRunner {
 public:
  virtual ~TfConvRunner() = default;
  TfConvRunner(const TfConvRunner&) = delete;
  TfConvRunner& operator=(const TfConvRunner&) = delete;

  virtual void Run() = 0;  // one run; the output is dropped
  // One run with the output copied to `out`, which holds n floats: std::invalid_argument before
  // anything runs unless n == OutputElems().
  void RunAndCopy(float* out, std::size_t n);
  // The same into a caller's array, after the checks of CheckFloatOutput (float32, C-contiguous,
  // writeable).
  void RunAndCopy(const ArrayView& out);

  const TfConvShape& Shape() const { return shape_; }
  std::size_t OutputElems() const { return shape_.OutputElems(); }

 protected:
  explicit TfConvRunner(const TfConvShape& shape);  // validates it (ValidateTfConvShape)
  const TfConvShape shape_;

 private:
  // One run, the output copied to `out` (OutputElems() floats) once its dims are checked against
  // the shape's.
  virtual void RunInto(float* out) = 0;
};

// TFE_Execute on one Conv2D op built once.
class TfEagerConv final : public TfConvRunner {
 public:
  // Copies input and filter (the shape's input and filter dims) into TF tensors; intra-op =
  // threads, inter-op = 1.
  TfEagerConv(std::shared_ptr<const TfApi> api, const TfConvShape& shape, const float* input,
              const float* filter, int threads);
  ~TfEagerConv() override;

  void Run() override;  // one TFE_Execute; the output handle is released

 private:
  void RunInto(float* out) override;
  void CreateContext(int threads);
  void CreateInputs(const float* input, const float* filter);
  void CreateOp();
  TFE_TensorHandle* Execute();  // owned by the caller
  void Cleanup();

  std::shared_ptr<const TfApi> api_;
  TF_Status* status_ = nullptr;
  TFE_Context* ctx_ = nullptr;
  TFE_TensorHandle* in_h_ = nullptr;
  TFE_TensorHandle* filt_h_ = nullptr;
  TFE_Op* op_ = nullptr;
};

// TF_SessionRun on a one-op graph. The filter is always a Const node, as a frozen model's weights
// are. feed_inputs: the input is a Placeholder fed on every Run() (what Session.run with a
// feed_dict does); otherwise a Const too, with constant folding disabled so that TF cannot
// replace the conv by its precomputed result when the session is set up.
class TfGraphConv final : public TfConvRunner {
 public:
  TfGraphConv(std::shared_ptr<const TfApi> api, const TfConvShape& shape, const float* input,
              const float* filter, int threads, bool feed_inputs, int inter_op_threads = 1);
  ~TfGraphConv() override;

  void Run() override;  // one TF_SessionRun; the output is dropped

 private:
  void RunInto(float* out) override;
  TF_Operation* AddInputNode(const char* name, const std::vector<std::int64_t>& dims,
                             TF_Tensor* value, bool fed);
  TF_Operation* AddConvNode();
  TF_Tensor* Execute();  // owned by the caller
  void Cleanup();

  std::shared_ptr<const TfApi> api_;
  bool feed_;
  TF_Status* status_ = nullptr;
  TF_Graph* graph_ = nullptr;
  TF_Session* session_ = nullptr;
  TF_Tensor* in_t_ = nullptr;    // fed on every run (feed_ only)
  TF_Tensor* filt_t_ = nullptr;  // until it is copied into its Const node
  TF_Operation* in_op_ = nullptr;
  TF_Operation* filt_op_ = nullptr;
  TF_Operation* conv_op_ = nullptr;
};

// kind: "eager" (TfEagerConv) or "graph" (TfGraphConv, input fed, filter constant). input and
// filter: float32 arrays of the shape's input and filter dims, copied. Throws
// std::invalid_argument for an unknown kind or a wrong array, std::runtime_error when TF's
// library cannot be loaded (tf_api.h) or the conv cannot be set up.
std::unique_ptr<TfConvRunner> MakeTfConv(const std::string& lib_path, const std::string& kind,
                                         const TfConvShape& shape, const ArrayView& input,
                                         const ArrayView& filter, int threads);

}  // namespace convbench
