// slqctl: the command-line client of slq-server. `slqctl --help` lists the commands.
#include <cstdlib>
#include <iostream>

#include "client/commands.h"
#include "client/output.h"

int main(int argc, char** argv) {
  using namespace slq::client;
  GlobalOptions g;
  CLI::App app{"slqctl: quantize models to a fidelity target and stream generations (slq-server client)"};
  app.require_subcommand(1);
  app.add_option("--server,-s", g.client.server, "slq-server address host:port")
      ->envname("SLQ_SERVER")
      ->capture_default_str();
  app.add_option("--token-file", g.client.token_file, "File with the bearer token")->envname("SLQ_TOKEN_FILE");
  app.add_option("--tls-ca", g.client.tls_ca, "CA certificate (PEM): connect with TLS")->envname("SLQ_TLS_CA");
  app.add_option("--tls-cert", g.client.tls_cert, "Client certificate for mTLS")->envname("SLQ_TLS_CERT");
  app.add_option("--tls-key", g.client.tls_key, "Client key for mTLS")->envname("SLQ_TLS_KEY");
  app.add_option("--tls-server-name", g.client.tls_server_name, "Expected server certificate name");
  app.add_option("--timeout", g.client.timeout_seconds, "Deadline of unary calls, seconds")->capture_default_str();
  app.add_flag("--json", g.json, "Machine-readable JSON output (one object per line)");

  Handler selected;
  RegisterJobCommands(app, g, &selected);
  RegisterInferenceCommands(app, g, &selected);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  if (const char* token = std::getenv("SLQ_TOKEN"); token && g.client.token_file.empty()) {
    g.client.token = token;
  }
  auto client = Client::Connect(g.client);
  if (!client.ok()) {
    std::cerr << "error: " << client.status().message() << "\n";
    return kExitUsage;
  }
  return selected ? selected(**client) : kExitUsage;
}
