// slq_load_client: bounded load against a real slq-server, with exact per-status counts so the
// load test can compare them with the server's /metrics.
//
//   slq_load_client generate --address A --token-file T --model base --streams 1000 --max-tokens 32
//       [--load-uri file:///.../tinystories-656k] [--channels 50]
//   slq_load_client submit --address A --token-file T --model-uri file:///... --calls 200 --keys 100
//
// generate: optionally LoadModel(name=--model, model_uri=--load-uri), then opens --streams
//   Generate streams at once (one thread each, released together by a barrier, spread over
//   --channels connections), reads each stream's first message, waits until every stream has
//   got its first message or ended (so all are open at once; peak_open counts them), then reads
//   every stream to its end. Keep streams x max_tokens per channel small enough for HTTP/2 flow
//   control (the default 50 channels and 32 tokens are), or the hold cannot complete.
// submit: --calls concurrent SubmitJob calls over --keys idempotency keys (call i uses key
//   i % keys, so with calls = 2 x keys every key is used twice, concurrently); checks that the
//   calls sharing a key got the same job id.
// Prints one JSON object: counts per gRPC status code, and for generate the tokens, the peak
// number of streams open at once and the wall time; for submit created/existing counts, the
// distinct job ids and key/id mismatches. Exit 0 when the run completed (the caller judges).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "nlohmann/json.hpp"
#include "slq/v1/inference_service.grpc.pb.h"
#include "slq/v1/job_service.grpc.pb.h"

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Common {
  std::string address = "127.0.0.1:7070";
  std::string token_file;
  std::string token;
  int channels = 50;
};

// Releases every waiting thread at once when the last of `n` arrives.
class Barrier {
 public:
  explicit Barrier(int n) : left_(n) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> l(mu_);
    if (--left_ == 0) {
      cv_.notify_all();
      return;
    }
    cv_.wait(l, [this] { return left_ == 0; });
  }
  // As ArriveAndWait, but gives up after `timeout`; false if it timed out.
  bool ArriveAndWaitFor(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    if (--left_ == 0) {
      cv_.notify_all();
      return true;
    }
    return cv_.wait_for(l, timeout, [this] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int left_;
};

std::vector<std::shared_ptr<grpc::Channel>> Channels(const Common& c) {
  std::vector<std::shared_ptr<grpc::Channel>> out;
  for (int i = 0; i < std::max(1, c.channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    args.SetInt("slq.load.channel", i);
    out.push_back(grpc::CreateCustomChannel(c.address, grpc::InsecureChannelCredentials(), args));
  }
  // Connect every channel before the load starts: the test measures concurrent calls, not a
  // storm of fresh connections (one of 50 simultaneous first connects once failed UNAVAILABLE).
  for (auto& ch : out) {
    if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::cerr << "warning: a channel to " << c.address << " did not connect within 10 s\n";
    }
  }
  return out;
}

void Auth(const Common& c, grpc::ClientContext* ctx, int seconds) {
  if (!c.token.empty()) ctx->AddMetadata("authorization", "Bearer " + c.token);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

std::string CodeName(grpc::StatusCode c) {
  static const std::map<int, std::string> names = {{0, "OK"},
                                                   {1, "CANCELLED"},
                                                   {2, "UNKNOWN"},
                                                   {3, "INVALID_ARGUMENT"},
                                                   {4, "DEADLINE_EXCEEDED"},
                                                   {5, "NOT_FOUND"},
                                                   {6, "ALREADY_EXISTS"},
                                                   {7, "PERMISSION_DENIED"},
                                                   {8, "RESOURCE_EXHAUSTED"},
                                                   {9, "FAILED_PRECONDITION"},
                                                   {10, "ABORTED"},
                                                   {11, "OUT_OF_RANGE"},
                                                   {12, "UNIMPLEMENTED"},
                                                   {13, "INTERNAL"},
                                                   {14, "UNAVAILABLE"},
                                                   {15, "DATA_LOSS"},
                                                   {16, "UNAUTHENTICATED"}};
  auto it = names.find(static_cast<int>(c));
  return it == names.end() ? "CODE_" + std::to_string(static_cast<int>(c)) : it->second;
}

int Generate(const Common& c, const std::string& model, const std::string& load_uri, int streams, int max_tokens) {
  auto channels = Channels(c);
  if (!load_uri.empty()) {
    auto stub = slq::v1::InferenceService::NewStub(channels[0]);
    slq::v1::LoadModelRequest req;
    req.set_name(model);
    req.set_model_uri(load_uri);
    slq::v1::LoadModelResponse resp;
    grpc::ClientContext ctx;
    Auth(c, &ctx, 120);
    grpc::Status s = stub->LoadModel(&ctx, req, &resp);
    if (!s.ok() && s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      std::cerr << "LoadModel " << load_uri << ": " << s.error_message() << "\n";
      return 1;
    }
  }
  std::mutex mu;
  std::map<std::string, int> codes;
  std::string first_error;
  int64_t tokens = 0;
  std::atomic<int> open{0}, peak{0};
  Barrier barrier(streams), first_message(streams);
  std::atomic<int> barrier_timeouts{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(streams));
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      auto stub = slq::v1::InferenceService::NewStub(channels[static_cast<size_t>(i) % channels.size()]);
      grpc::ClientContext ctx;
      Auth(c, &ctx, 300);
      slq::v1::GenerateRequest req;
      req.set_model(model);
      req.set_prompt("Once upon a time");
      req.set_max_tokens(max_tokens);
      req.mutable_sampling()->set_temperature(0.8);
      req.mutable_sampling()->set_seed(static_cast<uint64_t>(i));
      barrier.ArriveAndWait();
      auto reader = stub->Generate(&ctx, req);
      int64_t n = 0;
      slq::v1::GenerateResponse r;
      // Hold every stream open until all of them have their first message (or have ended, e.g.
      // RESOURCE_EXHAUSTED), so the streams really are concurrent; then drain them.
      const bool more = reader->Read(&r);
      if (more) n += r.token_ids_size();
      int now = ++open;
      for (int p = peak.load(); now > p && !peak.compare_exchange_weak(p, now);) {
      }
      if (!first_message.ArriveAndWaitFor(std::chrono::seconds(60))) ++barrier_timeouts;
      while (more && reader->Read(&r)) n += r.token_ids_size();
      grpc::Status s = reader->Finish();
      --open;
      std::lock_guard<std::mutex> l(mu);
      codes[CodeName(s.error_code())]++;
      tokens += n;
      if (!s.ok() && first_error.empty()) first_error = CodeName(s.error_code()) + ": " + s.error_message();
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  json out = {{"streams", streams},
              {"codes", codes},
              {"tokens", tokens},
              {"peak_open", peak.load()},
              {"wall_s", wall},
              {"first_error", first_error},
              {"hold_timeouts", barrier_timeouts.load()}};
  std::cout << out.dump() << std::endl;
  return 0;
}

int Submit(const Common& c, const std::string& model_uri, int calls, int keys, const std::string& key_prefix) {
  auto channels = Channels(c);
  std::mutex mu;
  std::map<std::string, int> codes;
  std::map<int, std::set<std::string>> ids_per_key;
  int created = 0, existing = 0;
  std::string first_error;
  Barrier barrier(calls);
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < calls; ++i) {
    threads.emplace_back([&, i] {
      auto stub = slq::v1::JobService::NewStub(channels[static_cast<size_t>(i) % channels.size()]);
      const int key = i % std::max(1, keys);
      slq::v1::SubmitJobRequest req;
      req.mutable_spec()->set_model_uri(model_uri);
      req.mutable_spec()->mutable_target()->set_min_ear(0.99);
      req.mutable_spec()->set_formats("4-8");
      req.mutable_spec()->set_calibration_data("tinystories");
      req.set_idempotency_key(key_prefix + std::to_string(key));
      slq::v1::SubmitJobResponse resp;
      grpc::ClientContext ctx;
      Auth(c, &ctx, 60);
      barrier.ArriveAndWait();
      grpc::Status s = stub->SubmitJob(&ctx, req, &resp);
      std::lock_guard<std::mutex> l(mu);
      codes[CodeName(s.error_code())]++;
      if (!s.ok()) {
        if (first_error.empty()) first_error = CodeName(s.error_code()) + ": " + s.error_message();
        return;
      }
      (resp.created() ? created : existing)++;
      ids_per_key[key].insert(resp.job().id());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> distinct;
  int mismatched_keys = 0;
  for (const auto& [k, ids] : ids_per_key) {
    mismatched_keys += ids.size() != 1;
    distinct.insert(ids.begin(), ids.end());
  }
  json out = {{"calls", calls},
              {"keys", keys},
              {"codes", codes},
              {"created", created},
              {"existing", existing},
              {"distinct_jobs", distinct.size()},
              {"keys_with_several_jobs", mismatched_keys},
              {"job_ids", std::vector<std::string>(distinct.begin(), distinct.end())},
              {"wall_s", std::chrono::duration<double>(Clock::now() - start).count()},
              {"first_error", first_error}};
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Common c;
  CLI::App app{"slq_load_client: bounded Generate / SubmitJob load with exact status counts"};
  app.require_subcommand(1);
  app.add_option("--address", c.address, "server host:port");
  app.add_option("--token-file", c.token_file, "file holding the bearer token");
  app.add_option("--channels", c.channels, "client connections to spread the calls over");
  std::string model = "base", load_uri, model_uri, key_prefix = "load-";
  int streams = 1000, max_tokens = 32, calls = 200, keys = 100;
  CLI::App* gen = app.add_subcommand("generate", "concurrent Generate streams");
  gen->add_option("--model", model, "served model name");
  gen->add_option("--load-uri", load_uri, "LoadModel this base model URI first under --model");
  gen->add_option("--streams", streams, "concurrent streams")->check(CLI::Range(1, 100000));
  gen->add_option("--max-tokens", max_tokens, "max_tokens per stream")->check(CLI::Range(1, 4096));
  CLI::App* sub = app.add_subcommand("submit", "concurrent SubmitJob calls with idempotency keys");
  sub->add_option("--model-uri", model_uri, "model URI of the jobs")->required();
  sub->add_option("--calls", calls, "concurrent calls")->check(CLI::Range(1, 100000));
  sub->add_option("--keys", keys, "distinct idempotency keys")->check(CLI::Range(1, 100000));
  sub->add_option("--key-prefix", key_prefix, "idempotency key prefix");
  CLI11_PARSE(app, argc, argv);
  if (!c.token_file.empty()) {
    std::ifstream f(c.token_file);
    std::stringstream ss;
    ss << f.rdbuf();
    c.token = ss.str();
    c.token.erase(c.token.find_last_not_of(" \t\r\n") + 1);
  }
  if (gen->parsed()) return Generate(c, model, load_uri, streams, max_tokens);
  return Submit(c, model_uri, calls, keys, key_prefix);
}
