// A serialized tensorflow.ConfigProto, encoded by hand (no protobuf dependency) for the TF C API's
// contexts and sessions.
#pragma once

#include <string>

namespace convbench {

// intra_op_parallelism_threads (field 2) and inter_op_parallelism_threads (field 5); optionally
// graph_options that turn constant folding off (classic and grappler's) or grappler as a whole
// (the meta optimizer, which runs every grappler pass). Either option also sets the classic
// optimizer to L0. 0 threads leaves the field unset.
std::string MakeConfigProto(int intra, int inter, bool disable_constant_folding = false,
                            bool disable_grappler = false);

}  // namespace convbench
