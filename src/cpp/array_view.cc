#include "array_view.h"

namespace convbench {

bool SameDType(DLDataType a, DLDataType b) {
  return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

std::string ShapeToString(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::string DTypeToString(DLDataType dtype) {
  std::string base;
  switch (dtype.code) {
    case kDLFloat: base = "float"; break;
    case kDLInt: base = "int"; break;
    case kDLUInt: base = "uint"; break;
    case kDLBfloat: base = "bfloat"; break;
    default: base = "code" + std::to_string(dtype.code) + "_"; break;
  }
  base += std::to_string(dtype.bits);
  if (dtype.lanes != 1) base += "x" + std::to_string(dtype.lanes);
  return base;
}

std::size_t ElementCount(const ArrayView& a) {
  std::size_t n = 1;
  for (std::int64_t d : a.shape) n *= static_cast<std::size_t>(d);
  return n;
}

bool IsCContiguous(const ArrayView& a) {
  if (a.strides_bytes.size() != a.shape.size()) return false;
  if (ElementCount(a) == 0) return true;
  std::int64_t expected = a.dtype.bits / 8 * a.dtype.lanes;
  for (std::size_t d = a.shape.size(); d-- > 0;) {
    if (a.shape[d] != 1 && a.strides_bytes[d] != expected) return false;
    expected *= a.shape[d];
  }
  return true;
}

void CheckArray(const std::string& who, const ArgSpec& s, const ArrayView& a) {
  if (!SameDType(a.dtype, s.dtype)) {
    throw std::invalid_argument(who + ": expected dtype " + DTypeToString(s.dtype) + ", got " +
                                DTypeToString(a.dtype));
  }
  if (a.shape != s.shape) {
    throw std::invalid_argument(who + ": expected shape " + ShapeToString(s.shape) + ", got " +
                                ShapeToString(a.shape));
  }
  // Generated code indexes with compact row-major strides; anything else reads the wrong data.
  if (!IsCContiguous(a)) throw std::invalid_argument(who + ": array is not C-contiguous");
  if (a.data == nullptr && ElementCount(a) > 0) throw std::invalid_argument(who + ": null data");
}

void CheckFloatOutput(const ArrayView& out) {
  if (!SameDType(out.dtype, kFloat32)) {
    throw ArrayTypeError("output array must be float32, got " + DTypeToString(out.dtype));
  }
  if (!IsCContiguous(out)) throw std::invalid_argument("output array must be C-contiguous");
  if (!out.writeable) throw std::invalid_argument("output array is read-only");
  if (out.data == nullptr && ElementCount(out) > 0) {
    throw std::invalid_argument("output array has no data");
  }
}

}  // namespace convbench
