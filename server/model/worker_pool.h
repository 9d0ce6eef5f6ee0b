// WorkerPool moved to server/common/thread_pool.h (the process's one persistent pool, which
// slq::ParallelFor also runs on). This header only forwards, so existing includes keep compiling.
#ifndef SLQ_SERVER_MODEL_WORKER_POOL_H_
#define SLQ_SERVER_MODEL_WORKER_POOL_H_

#include "server/common/thread_pool.h"  // IWYU pragma: export

#endif  // SLQ_SERVER_MODEL_WORKER_POOL_H_
