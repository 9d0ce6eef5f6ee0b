#include "server/inference/stop_filter.h"

#include <algorithm>

namespace slq::inference {

std::string StopFilter::Append(std::string_view text, bool* stopped) {
  *stopped = stopped_;
  if (stopped_) return "";
  held_.append(text);
  size_t match = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    match = std::min(match, held_.find(s));
  }
  if (match != std::string::npos) {
    std::string out = held_.substr(0, match);
    held_.clear();
    stopped_ = true;
    *stopped = true;
    return out;
  }
  // Hold the longest suffix of held_ that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    const size_t max_len = std::min(s.size() > 0 ? s.size() - 1 : 0, held_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (std::string_view(held_).substr(held_.size() - len) == std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string StopFilter::Flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace slq::inference
