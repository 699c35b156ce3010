#include "tf_config_proto.h"

#include <cstdint>

namespace convbench {

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

}  // namespace convbench
