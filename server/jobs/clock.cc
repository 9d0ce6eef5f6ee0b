#include "server/jobs/clock.h"

namespace slq {

Clock* RealClock() {
  static Clock* clock = new SystemClock();
  return clock;
}

}  // namespace slq
