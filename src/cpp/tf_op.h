// A TensorFlow Conv2D run through TF's C API, with no Python in the loop: eagerly (TFE_Execute)
// and as a prebuilt one-op graph (TF_SessionRun). TensorFlow is not needed to build convbench:
// libtensorflow_cc.so.2 from the installed tensorflow wheel is dlopen'ed at run time and every
// C API function is looked up by name, so a missing TF is an error message, not a link failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace convbench {

struct TfApi;  // the loaded library and its function table (tf_op.cc)

// Throws std::runtime_error naming the path and the missing symbols. Never unloaded.
std::shared_ptr<const TfApi> LoadTf(const std::string& lib_path);

// A serialized tensorflow.ConfigProto: intra_op_parallelism_threads (field 2) and
// inter_op_parallelism_threads (field 5); optionally graph_options that turn constant folding off
// (classic and grappler's) or grappler as a whole (the meta optimizer, which runs every grappler
// pass). Either option also sets the classic optimizer to L0. 0 threads leaves the field unset.
std::string MakeConfigProto(int intra, int inter, bool disable_constant_folding = false,
                            bool disable_grappler = false);

// Input NHWC, filter HWIO (KH, KW, C, O), output NHWC.
struct TfConvShape {
  int N = 1, H = 1, W = 1, C = 1;
  int KH = 1, KW = 1, O = 1;
  int stride_h = 1, stride_w = 1;
  int dil_h = 1, dil_w = 1;
  std::string padding = "SAME";  // "SAME", "VALID" or "EXPLICIT"
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // EXPLICIT only

  int OH() const;
  int OW() const;
  std::size_t OutputElems() const { return std::size_t(N) * OH() * OW() * O; }
};

// TF's intra-op pool is process-wide and sized by the first context or session the process
// creates: run these in a process where nothing else has touched TF yet.
class TfEagerConv {
 public:
  // Copies input and filter into TF tensors; intra-op = threads, inter-op = 1.
  TfEagerConv(std::shared_ptr<const TfApi> api, const TfConvShape& spec, const float* input,
              const float* filter, int threads);
  ~TfEagerConv();
  TfEagerConv(const TfEagerConv&) = delete;
  TfEagerConv& operator=(const TfEagerConv&) = delete;

  void Run();                   // one TFE_Execute; the output handle is released
  void RunAndCopy(float* out);  // one TFE_Execute, output copied to `out` (OutputElems floats)

 private:
  void* Execute();  // TFE_TensorHandle*, owned by the caller
  void Cleanup();
  void SetupOp(void* op);
  std::shared_ptr<const TfApi> api_;
  TfConvShape spec_;
  void* status_ = nullptr;  // TF_Status*
  void* ctx_ = nullptr;     // TFE_Context*
  void* in_h_ = nullptr;    // TFE_TensorHandle*
  void* filt_h_ = nullptr;  // TFE_TensorHandle*
  void* op_ = nullptr;      // TFE_Op*
};

class TfGraphConv {
 public:
  // The filter is always a Const node, as a frozen model's weights are. feed_inputs: the input
  // is a Placeholder fed on every Run() (what Session.run with a feed_dict does); otherwise a
  // Const too, with constant folding disabled so that TF cannot replace the conv by its
  // precomputed result when the session is set up.
  TfGraphConv(std::shared_ptr<const TfApi> api, const TfConvShape& spec, const float* input,
              const float* filter, int threads, bool feed_inputs, int inter_op_threads = 1);
  ~TfGraphConv();
  TfGraphConv(const TfGraphConv&) = delete;
  TfGraphConv& operator=(const TfGraphConv&) = delete;

  void Run();
  void RunAndCopy(float* out);

 private:
  void* Execute();  // TF_Tensor*, owned by the caller
  void Cleanup();
  std::shared_ptr<const TfApi> api_;
  TfConvShape spec_;
  bool feed_;
  void* status_ = nullptr;   // TF_Status*
  void* graph_ = nullptr;    // TF_Graph*
  void* session_ = nullptr;  // TF_Session*
  void* in_t_ = nullptr;     // TF_Tensor* (fed)
  void* filt_t_ = nullptr;   // TF_Tensor* (until it is copied into its Const node)
  void* in_op_ = nullptr;    // TF_Operation*
  void* filt_op_ = nullptr;  // TF_Operation*
  void* conv_op_ = nullptr;  // TF_Operation*
};

// Either of the two, behind one interface for the harness.
class TfNativeConv {
 public:
  // kind: "eager" (TfEagerConv) or "graph" (TfGraphConv, input fed, filter constant).
  TfNativeConv(const std::string& lib_path, const std::string& kind, const TfConvShape& spec,
               const float* input, const float* filter, int threads);
  void Run();
  void RunAndCopy(float* out);
  std::size_t OutputElems() const { return spec_.OutputElems(); }

 private:
  TfConvShape spec_;
  std::unique_ptr<TfEagerConv> eager_;
  std::unique_ptr<TfGraphConv> graph_;
};

// A frozen graph (a serialized GraphDef, weights as Const nodes) imported whole and run with
// TF_SessionRun: one float32 input fed on every run, output 0 of one operation fetched, which is
// what Session.run does for a model's forward pass. Same process-wide thread pool caveat as
// above. One caller at a time: runs share one TF_Status.
class TfGraphRunner {
 public:
  // input: the caller's data in input_shape, copied once into the tensor every run feeds.
  // optimize=false turns grappler off entirely (and classic constant folding), so the session
  // runs the graph as written; true leaves TF's default optimizations on. intra-op = threads
  // (0: TF's default), inter-op = 1.
  TfGraphRunner(std::shared_ptr<const TfApi> api, const std::string& graph_def,
                const std::string& input_op, const std::string& output_op,
                std::vector<int64_t> input_shape, const float* input, int threads, bool optimize);
  TfGraphRunner(const std::string& lib_path, const std::string& graph_def,
                const std::string& input_op, const std::string& output_op,
                std::vector<int64_t> input_shape, const float* input, int threads, bool optimize);
  ~TfGraphRunner();
  TfGraphRunner(const TfGraphRunner&) = delete;
  TfGraphRunner& operator=(const TfGraphRunner&) = delete;

  void Run();                                // one TF_SessionRun; the output is dropped
  void RunAndCopy(float* out, std::size_t n);  // n must be the output's element count

  // The output's shape: the graph's static one when shape inference knows every dim, else the
  // one the first run produced (a run is made here if none has been yet).
  const std::vector<int64_t>& OutputShape();
  std::size_t OutputElems();
  const std::vector<int64_t>& InputShape() const { return in_shape_; }

 private:
  void* Execute();  // TF_Tensor*, owned by the caller
  void Cleanup();
  std::shared_ptr<const TfApi> api_;
  std::string input_name_, output_name_;
  std::vector<int64_t> in_shape_;
  std::vector<int64_t> out_shape_;
  bool out_known_ = false;
  void* status_ = nullptr;   // TF_Status*
  void* graph_ = nullptr;    // TF_Graph*
  void* session_ = nullptr;  // TF_Session*
  void* in_t_ = nullptr;     // TF_Tensor* (fed)
  void* in_op_ = nullptr;    // TF_Operation*
  void* out_op_ = nullptr;   // TF_Operation*
};

}  // namespace convbench
