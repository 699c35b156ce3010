// A caller's host array described without any binding type (the Python bindings make one from a
// numpy array), and the checks the classes that take one run on it themselves.
#pragma once

#include <dlpack/dlpack.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace convbench {

// What the caller hands in: a view of a host array, not owned.
struct ArrayView {
  void* data = nullptr;
  DLDataType dtype{};
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides_bytes;
  bool writeable = false;
};

struct ArgSpec {
  std::string name;
  std::vector<std::int64_t> shape;
  DLDataType dtype{kDLFloat, 32, 1};
  bool output = false;
};

// An array of the wrong kind altogether (its dtype), as opposed to a wrong value (its shape or
// size): the Python bindings raise TypeError for it, ValueError for a plain std::invalid_argument.
class ArrayTypeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

constexpr DLDataType kFloat32{kDLFloat, 32, 1};

std::string ShapeToString(const std::vector<std::int64_t>& shape);
std::string DTypeToString(DLDataType dtype);
bool SameDType(DLDataType a, DLDataType b);
std::size_t ElementCount(const ArrayView& a);
// Compact row-major strides (a dim of extent 1 may have any stride; an empty array is compact).
bool IsCContiguous(const ArrayView& a);

// The checks every array handed to generated code needs: its spec's dtype and shape, compact
// row-major strides, data present. Throws std::invalid_argument starting with `who`.
void CheckArray(const std::string& who, const ArgSpec& spec, const ArrayView& a);

// The checks an output array that a run's float32 result is copied into needs, so that the copy
// lands in the caller's memory: float32 (ArrayTypeError "output array must be float32, got ..."),
// C-contiguous and writeable (std::invalid_argument). Its size is the caller's to check.
void CheckFloatOutput(const ArrayView& out);

}  // namespace convbench
