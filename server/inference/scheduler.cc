#include "server/inference/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace slq::inference {

absl::Status ValidateSchedulerOptions(const SchedulerOptions& o) {
  if (o.max_running < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_running is ", o.max_running, "; must be >= 1"));
  }
  if (o.token_budget <= o.max_running) {
    return absl::InvalidArgumentError(absl::StrCat("token_budget is ", o.token_budget, "; must exceed max_running (",
                                                   o.max_running, ") so prefill always progresses"));
  }
  if (o.prefill_chunk < 1) {
    return absl::InvalidArgumentError(absl::StrCat("prefill_chunk is ", o.prefill_chunk, "; must be >= 1"));
  }
  if (o.admit_headroom < 0) {
    return absl::InvalidArgumentError(absl::StrCat("admit_headroom is ", o.admit_headroom, "; must be >= 0"));
  }
  if (o.max_context < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_context is ", o.max_context, "; must be >= 1"));
  }
  return absl::OkStatus();
}

Scheduler::~Scheduler() {
  for (auto& s : running_) alloc_->Release(&s->table);
}

void Scheduler::Enqueue(std::unique_ptr<Sequence> seq) {
  auto it = std::upper_bound(waiting_.begin(), waiting_.end(), seq->id,
                             [](uint64_t id, const std::unique_ptr<Sequence>& s) { return id < s->id; });
  waiting_.insert(it, std::move(seq));
}

int64_t Scheduler::AdmitTokens(const Sequence& s) const {
  // Headroom is capped by the context and by the pool itself (Engine::Submit guarantees that
  // prompt + max_tokens fits the pool, so the known context always does).
  const int64_t pool_tokens = alloc_->num_blocks() * alloc_->block_size();
  const int64_t known = static_cast<int64_t>(s.tokens.size());
  return std::max(std::min(known, pool_tokens), std::min({known + opt_.admit_headroom, opt_.max_context, pool_tokens}));
}

void Scheduler::Admit() {
  while (!waiting_.empty() && num_running() < opt_.max_running) {
    Sequence& s = *waiting_.front();
    const int64_t need = alloc_->BlocksFor(AdmitTokens(s));
    if (need > alloc_->num_free()) break;  // FIFO: nobody overtakes the head
    if (!alloc_->Reserve(&s.table, AdmitTokens(s)).ok()) break;
    auto it = std::upper_bound(running_.begin(), running_.end(), s.id,
                               [](uint64_t id, const std::unique_ptr<Sequence>& r) { return id < r->id; });
    running_.insert(it, std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

void Scheduler::Preempt(std::vector<std::unique_ptr<Sequence>>::iterator it) {
  std::unique_ptr<Sequence> s = std::move(*it);
  running_.erase(it);
  alloc_->Release(&s->table);
  ++preemptions_;
  Enqueue(std::move(s));
}

bool Scheduler::PreemptYoungest(const std::vector<Planned>& planned, const Sequence* except) {
  for (auto it = running_.end(); it != running_.begin();) {
    --it;
    Sequence* s = it->get();
    if (s == except) continue;
    const bool in_plan = std::any_of(planned.begin(), planned.end(), [s](const Planned& p) { return p.seq == s; });
    if (in_plan) continue;
    Preempt(it);
    return true;
  }
  return false;
}

std::vector<Scheduler::Planned> Scheduler::PlanStep() {
  // Decoders first, then prefills; each group oldest first (running_ is in id order).
  std::vector<Sequence*> order;
  for (auto& s : running_)
    if (s->remaining() == 1) order.push_back(s.get());
  for (auto& s : running_)
    if (s->remaining() > 1) order.push_back(s.get());
  std::vector<Planned> plan;
  int64_t budget = opt_.token_budget;
  for (Sequence* s : order) {
    if (budget <= 0) break;
    // A sequence preempted earlier in this loop is no longer running.
    const bool still_running =
        std::any_of(running_.begin(), running_.end(), [s](const auto& r) { return r.get() == s; });
    if (!still_running) continue;
    const int64_t n = std::min({s->remaining(), budget, opt_.prefill_chunk});
    bool reserved = alloc_->Reserve(&s->table, s->cached() + n).ok();
    while (!reserved && PreemptYoungest(plan, s)) {
      reserved = alloc_->Reserve(&s->table, s->cached() + n).ok();
    }
    if (!reserved) {  // nobody left to preempt: this one waits
      auto it = std::find_if(running_.begin(), running_.end(), [s](const auto& r) { return r.get() == s; });
      Preempt(it);
      continue;
    }
    plan.push_back({s, n});
    budget -= n;
  }
  return plan;
}

std::unique_ptr<Sequence> Scheduler::Finish(Sequence* seq) {
  auto it = std::find_if(running_.begin(), running_.end(), [seq](const auto& r) { return r.get() == seq; });
  if (it == running_.end()) return nullptr;
  std::unique_ptr<Sequence> s = std::move(*it);
  running_.erase(it);
  alloc_->Release(&s->table);
  return s;
}

std::vector<std::unique_ptr<Sequence>> Scheduler::RemoveIf(const std::function<bool(const Sequence&)>& pred) {
  std::vector<std::unique_ptr<Sequence>> out;
  for (auto it = running_.begin(); it != running_.end();) {
    if (pred(**it)) {
      alloc_->Release(&(*it)->table);
      out.push_back(std::move(*it));
      it = running_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (pred(**it)) {
      out.push_back(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

}  // namespace slq::inference
