// Summary statistics over timing samples. Percentiles interpolate linearly between order
// statistics (numpy's default), so a Python check can reproduce every figure.
#pragma once

#include <cstddef>
#include <vector>

namespace convbench {

struct Summary {
  std::size_t n = 0;
  double min = 0, max = 0, mean = 0, median = 0;
  double stddev = 0;  // sample standard deviation (n - 1)
  double cv = 0;      // stddev / mean: the instability figure shown next to every median
  double p10 = 0, p90 = 0;
};

// Throws std::invalid_argument on an empty input or a non-finite sample.
Summary Summarize(std::vector<double> samples);

// q in [0, 1]; `sorted` must be ascending and non-empty.
double Percentile(const std::vector<double>& sorted, double q);

}  // namespace convbench
