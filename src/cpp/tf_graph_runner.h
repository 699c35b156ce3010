// A frozen graph (a serialized GraphDef, weights as Const nodes) imported whole and run with
// TF_SessionRun through TF's C API (tf_api.h): one float32 input fed on every run, output 0 of one
// operation fetched, which is what Session.run does for a model's forward pass.
//
// TF's intra-op pool is process-wide and sized by the first context or session the process
// creates: run this in a process where nothing else has touched TF yet. One caller at a time:
// runs share one TF_Status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "array_view.h"
#include "tf_api.h"

namespace convbench {

class TfGraphRunner {
 public:
  // input: the caller's float32, C-contiguous array (ArrayTypeError for another dtype,
  // std::invalid_argument for a strided one), copied once into the tensor every run feeds.
  // optimize=false turns grappler off entirely (and classic constant folding), so the session
  // runs the graph as written; true leaves TF's default optimizations on. intra-op = threads
  // (0: TF's default), inter-op = 1. Throws std::invalid_argument for a bad argument (naming it:
  // a missing operation, a dtype or shape that does not fit the graph), std::runtime_error when
  // TF cannot be loaded or refuses the GraphDef or the session.
  TfGraphRunner(std::shared_ptr<const TfApi> api, const std::string& graph_def,
                const std::string& input_op, const std::string& output_op,
                const ArrayView& input, int threads, bool optimize);
  // The same with TF loaded from lib_path, after the arguments' own checks.
  TfGraphRunner(const std::string& lib_path, const std::string& graph_def,
                const std::string& input_op, const std::string& output_op,
                const ArrayView& input, int threads, bool optimize);
  ~TfGraphRunner();
  TfGraphRunner(const TfGraphRunner&) = delete;
  TfGraphRunner& operator=(const TfGraphRunner&) = delete;

  void Run();                                  // one TF_SessionRun; the output is dropped
  void RunAndCopy(float* out, std::size_t n);  // n must be the output's element count
  // The same into a caller's array, after the checks of CheckFloatOutput (float32, C-contiguous,
  // writeable).
  void RunAndCopy(const ArrayView& out);

  // The output's shape: the graph's static one when shape inference knows every dim, else the
  // one the first run produced (a run is made here if none has been yet).
  const std::vector<int64_t>& OutputShape();
  std::size_t OutputElems();
  const std::vector<int64_t>& InputShape() const { return in_shape_; }

 private:
  // The constructor's steps, in order.
  void ImportGraph(const std::string& graph_def);
  TF_Operation* FindOperation(const std::string& name, const char* role) const;
  void CheckDtypes() const;
  void CheckInputFits() const;
  void ReadOutputShape();
  void CreateSession(int threads, bool optimize);

  TF_Tensor* Execute();  // owned by the caller
  void Cleanup();

  std::shared_ptr<const TfApi> api_;
  std::string input_name_, output_name_;
  std::vector<int64_t> in_shape_;
  std::vector<int64_t> out_shape_;
  bool out_known_ = false;
  TF_Status* status_ = nullptr;
  TF_Graph* graph_ = nullptr;
  TF_Session* session_ = nullptr;
  TF_Tensor* in_t_ = nullptr;  // fed on every run
  TF_Operation* in_op_ = nullptr;
  TF_Operation* out_op_ = nullptr;
};

}  // namespace convbench
