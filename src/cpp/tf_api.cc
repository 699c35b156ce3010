#include "tf_api.h"

#include <dlfcn.h>

#include <cstring>
#include <stdexcept>

namespace convbench {

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

void CheckTfStatus(const TfApi& api, TF_Status* st, const char* what) {
  if (api.TF_GetCode(st) != TF_OK) {
    throw std::runtime_error(std::string("convbench: ") + what + " failed (TF code " +
                             std::to_string(int(api.TF_GetCode(st))) + "): " + api.TF_Message(st));
  }
}

TF_Tensor* MakeTfTensor(const TfApi& api, const int64_t* dims, int nd, const float* data) {
  size_t n = 1;
  for (int i = 0; i < nd; ++i) n *= size_t(dims[i]);
  TF_Tensor* t = api.TF_AllocateTensor(TF_FLOAT, dims, nd, n * sizeof(float));
  if (!t) throw std::runtime_error("convbench: TF_AllocateTensor returned null");
  std::memcpy(api.TF_TensorData(t), data, n * sizeof(float));
  return t;
}

TF_Session* NewTfSession(const TfApi& A, TF_Graph* g, const std::string& config, TF_Status* st) {
  TF_SessionOptions* so = A.TF_NewSessionOptions();
  A.TF_SetConfig(so, config.data(), config.size(), st);
  if (A.TF_GetCode(st) != TF_OK) A.TF_DeleteSessionOptions(so);
  CheckTfStatus(A, st, "TF_SetConfig");
  TF_Session* session = A.TF_NewSession(g, so, st);
  A.TF_DeleteSessionOptions(so);
  CheckTfStatus(A, st, "TF_NewSession");
  return session;
}

void DeleteTfSessionAndGraph(const TfApi& A, TF_Session* session, TF_Graph* graph,
                             TF_Status* st) {
  if (session) {
    A.TF_CloseSession(session, st);
    A.TF_DeleteSession(session, st);
  }
  if (graph) A.TF_DeleteGraph(graph);
}

}  // namespace convbench
