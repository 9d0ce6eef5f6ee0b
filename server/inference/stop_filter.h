// StopFilter: holds back generated text that may be the start of a stop string, and cuts the
// output where a stop string begins (the stop string itself is never emitted).
//
//   StopFilter f({"\n\n", "THE END"});
//   bool stopped = false;
//   std::string out = f.Append(delta, &stopped);   // safe to send now
//   if (!stopped) out += f.Flush();                // at the end: the held text
//
// Invariant: emitted text never contains the first byte of a (possible) match, so searching
// only the held text finds every match. Input must be complete UTF-8 characters (TextStream
// output), so cuts fall on character boundaries. Thread safety: one per request, one thread.
#ifndef SLQ_SERVER_INFERENCE_STOP_FILTER_H_
#define SLQ_SERVER_INFERENCE_STOP_FILTER_H_

#include <string>
#include <string_view>
#include <vector>

namespace slq::inference {

class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds text; returns what can be emitted. On a match sets *stopped, returns the text before
  // the earliest match and drops the rest (later Appends return "").
  std::string Append(std::string_view text, bool* stopped);
  // Returns and clears the held text (call when generation ends for another reason).
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace slq::inference

#endif  // SLQ_SERVER_INFERENCE_STOP_FILTER_H_
