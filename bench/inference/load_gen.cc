// slq_load_gen: drives InferenceService.Generate at several concurrencies and prints a markdown
// table of throughput and latency per concurrency.
//
//   slq_load_gen --address 127.0.0.1:7070 --model tinystories-656k --concurrency 1,4,16,64
//                --requests 128 --max-tokens 64 [--token-file tok]
//
// Each level runs `concurrency` client threads, each with its own synchronous stream, until the
// level's requests are done. TTFT = request start -> first message with tokens (client side);
// ITL = gap between consecutive token messages divided by the tokens in the later message;
// tokens/s = generated tokens of the level / its wall time.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "slq/v1/inference_service.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string address = "127.0.0.1:7070";
  std::string model;
  std::string prompt = "Once upon a time";
  std::string token, token_file;
  std::vector<int> concurrency = {1, 2, 4, 8, 16, 32, 64};
  int requests = 0;  // per level; 0 = max(8, 4 * concurrency)
  int max_tokens = 64;
  double temperature = 0.8;
};

struct LevelResult {
  int concurrency = 0, requests = 0, errors = 0;
  int64_t tokens = 0;
  double wall = 0;
  std::vector<double> ttft, itl;
  std::string first_error;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Runs one request; appends its samples to `out` under `mu`.
void OneRequest(slq::v1::InferenceService::Stub& stub, const Options& o, uint64_t seed, std::mutex& mu,
                LevelResult& out) {
  grpc::ClientContext ctx;
  if (!o.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.token);
  slq::v1::GenerateRequest req;
  req.set_model(o.model);
  req.set_prompt(o.prompt);
  req.set_max_tokens(o.max_tokens);
  req.mutable_sampling()->set_temperature(o.temperature);
  req.mutable_sampling()->set_seed(seed);
  const Clock::time_point start = Clock::now();
  Clock::time_point last = start;
  bool first = true;
  double ttft = 0;
  std::vector<double> itl;
  int64_t tokens = 0;
  auto reader = stub.Generate(&ctx, req);
  slq::v1::GenerateResponse r;
  while (reader->Read(&r)) {
    if (r.token_ids_size() == 0) continue;
    const Clock::time_point now = Clock::now();
    if (first) {
      ttft = Seconds(start, now);
      first = false;
    } else {
      const double gap = Seconds(last, now) / r.token_ids_size();
      for (int k = 0; k < r.token_ids_size(); ++k) itl.push_back(gap);
    }
    last = now;
    tokens += r.token_ids_size();
  }
  grpc::Status st = reader->Finish();
  std::lock_guard<std::mutex> lock(mu);
  if (!st.ok()) {
    ++out.errors;
    if (out.first_error.empty()) out.first_error = st.error_message();
    return;
  }
  if (!first) out.ttft.push_back(ttft);
  out.itl.insert(out.itl.end(), itl.begin(), itl.end());
  out.tokens += tokens;
}

LevelResult RunLevel(slq::v1::InferenceService::Stub& stub, const Options& o, int concurrency) {
  LevelResult res;
  res.concurrency = concurrency;
  res.requests = o.requests > 0 ? o.requests : std::max(8, 4 * concurrency);
  std::atomic<int> next{0};
  std::mutex mu;
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < res.requests; i = next++) OneRequest(stub, o, 1000 + i, mu, res);
    });
  }
  for (auto& t : threads) t.join();
  res.wall = Seconds(start, Clock::now());
  return res;
}

void PrintTable(const std::vector<LevelResult>& levels) {
  std::printf(
      "| concurrency | requests | errors | tokens | wall s | tokens/s | TTFT p50 ms | TTFT p95 ms "
      "| TTFT p99 ms | ITL p50 ms | ITL p95 ms | ITL p99 ms |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const LevelResult& l : levels) {
    std::printf("| %d | %d | %d | %lld | %.2f | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f |\n", l.concurrency,
                l.requests, l.errors, static_cast<long long>(l.tokens), l.wall,
                l.wall > 0 ? static_cast<double>(l.tokens) / l.wall : 0.0, 1e3 * Percentile(l.ttft, 0.5),
                1e3 * Percentile(l.ttft, 0.95), 1e3 * Percentile(l.ttft, 0.99), 1e3 * Percentile(l.itl, 0.5),
                1e3 * Percentile(l.itl, 0.95), 1e3 * Percentile(l.itl, 0.99));
  }
  for (const LevelResult& l : levels) {
    if (!l.first_error.empty()) std::fprintf(stderr, "c=%d first error: %s\n", l.concurrency, l.first_error.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"slq_load_gen: Generate throughput/latency at several concurrencies"};
  app.add_option("--address", o.address, "server host:port");
  app.add_option("--model", o.model, "served model name (ListModels)")->required();
  app.add_option("--prompt", o.prompt, "prompt text");
  app.add_option("--concurrency", o.concurrency, "concurrency levels")->delimiter(',');
  app.add_option("--requests", o.requests, "requests per level (0: max(8, 4 x concurrency))");
  app.add_option("--max-tokens", o.max_tokens, "max_tokens per request");
  app.add_option("--temperature", o.temperature, "sampling temperature");
  app.add_option("--token", o.token, "bearer token");
  app.add_option("--token-file", o.token_file, "file holding the bearer token");
  CLI11_PARSE(app, argc, argv);
  if (!o.token_file.empty()) {
    std::ifstream f(o.token_file);
    std::stringstream ss;
    ss << f.rdbuf();
    o.token = ss.str();
    o.token.erase(o.token.find_last_not_of(" \t\r\n") + 1);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(o.address, grpc::InsecureChannelCredentials(), args);
  auto stub = slq::v1::InferenceService::NewStub(channel);
  std::vector<LevelResult> levels;
  for (int c : o.concurrency) {
    if (c < 1) {
      std::fprintf(stderr, "concurrency %d must be >= 1\n", c);
      return 2;
    }
    levels.push_back(RunLevel(*stub, o, c));
    std::fprintf(stderr, "c=%d done: %lld tokens in %.2f s\n", c, static_cast<long long>(levels.back().tokens),
                 levels.back().wall);
  }
  PrintTable(levels);
  int errors = 0;
  for (const auto& l : levels) errors += l.errors;
  return errors == 0 ? 0 : 1;
}
