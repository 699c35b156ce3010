// The calling thread's floating-point environment: flush-to-zero (FTZ) and denormals-are-zero
// (DAZ) in MXCSR. TF sets both in its own threads; convbench sets them in a worker's main thread
// before any pool exists, so every thread of both frameworks (which inherit MXCSR when they are
// created) computes with the same denormal handling.
#pragma once

namespace convbench {

// FTZ and DAZ on (true) or off (false) for the calling thread.
void SetFlushDenormals(bool on);
// Whether the calling thread has both FTZ and DAZ on.
bool FlushDenormals();

}  // namespace convbench
