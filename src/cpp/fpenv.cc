#include "fpenv.h"

#include <xmmintrin.h>

namespace convbench {

namespace {
constexpr unsigned kFtz = 0x8000;  // MXCSR bit 15
constexpr unsigned kDaz = 0x0040;  // MXCSR bit 6
}  // namespace

void SetFlushDenormals(bool on) {
  const unsigned csr = _mm_getcsr();
  _mm_setcsr(on ? (csr | kFtz | kDaz) : (csr & ~(kFtz | kDaz)));
}

bool FlushDenormals() {
  const unsigned csr = _mm_getcsr();
  return (csr & kFtz) && (csr & kDaz);
}

}  // namespace convbench
