// bitexact: a batch-invariant LLM inference engine. Subcommands in cli/*_command.cpp.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"bitexact: LLM inference whose outputs never depend on the batch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("bitexact ") + BITEXACT_VERSION);
  bx::cli::register_generate(app);
  bx::cli::register_info(app);
  bx::cli::register_bench(app);
  bx::cli::register_score(app);
  bx::cli::register_chat(app);
  bx::cli::register_tokenize(app);
  bx::cli::register_detokenize(app);
  bx::cli::register_render_chat(app);
  bx::cli::register_serve(app);
  bx::cli::register_verify(app);
  bx::cli::register_experiment(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "bitexact: error: %s (see --help)\n", e.what());
    return 2;
  } catch (const bx::Error& e) {
    std::fprintf(stderr, "bitexact: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitexact: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
