// slqctl subcommands. Each Register* adds its subcommands to the app; each handler returns an
// ExitCode (output.h).
#ifndef SLQ_CLIENT_COMMANDS_H_
#define SLQ_CLIENT_COMMANDS_H_

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>

#include "client/client.h"

namespace slq::client {

struct GlobalOptions {
  ClientOptions client;
  bool json = false;
};

// Connects lazily (after parsing) so --help works without a server.
using ClientFactory = std::function<absl::StatusOr<std::unique_ptr<Client>>()>;
// The selected command stores its handler here; main() runs it.
using Handler = std::function<int(Client&)>;

void RegisterJobCommands(CLI::App& app, const GlobalOptions& g, Handler* selected);
void RegisterInferenceCommands(CLI::App& app, const GlobalOptions& g, Handler* selected);

}  // namespace slq::client

#endif  // SLQ_CLIENT_COMMANDS_H_
