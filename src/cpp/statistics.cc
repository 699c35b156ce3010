#include "statistics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace convbench {

double Percentile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Summary Summarize(std::vector<double> samples) {
  if (samples.empty()) throw std::invalid_argument("cannot summarise zero samples");
  for (double s : samples) {
    if (!std::isfinite(s)) throw std::invalid_argument("sample is not a finite number");
  }
  std::sort(samples.begin(), samples.end());
  Summary r;
  r.n = samples.size();
  r.min = samples.front();
  r.max = samples.back();
  r.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(r.n);
  r.median = Percentile(samples, 0.5);
  r.p10 = Percentile(samples, 0.1);
  r.p90 = Percentile(samples, 0.9);
  if (r.n > 1) {
    double ss = 0;
    for (double s : samples) ss += (s - r.mean) * (s - r.mean);
    r.stddev = std::sqrt(ss / static_cast<double>(r.n - 1));
  }
  r.cv = r.mean > 0 ? r.stddev / r.mean : 0;
  return r;
}

}  // namespace convbench
