// The bitexact subcommands. Each registers itself on the app; its callback runs the command and
// throws bx::Error for bad input.
#pragma once

namespace CLI {
class App;
}

namespace bx::cli {

void register_generate(CLI::App& app);
void register_info(CLI::App& app);
void register_bench(CLI::App& app);
void register_score(CLI::App& app);
void register_chat(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_detokenize(CLI::App& app);
void register_render_chat(CLI::App& app);
void register_serve(CLI::App& app);
void register_verify(CLI::App& app);
void register_experiment(CLI::App& app);

}  // namespace bx::cli
