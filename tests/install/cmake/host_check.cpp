// The host library through its CMake target (tests/install/check.sh): the version macros against the
// library, and three host functions whose results cross from libember_host.so into libember.so.
//   host_check MODEL   prints "version <headers> <library>" and one line per check; exit 0 when all hold
#include <ember/bpe_trainer.h>
#include <ember/convert.h>
#include <ember/quantize.h>
#include <ember/version.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::printf("version %s %s\n", EMBER_VERSION_STRING, ember::version());
  int bad = std::strcmp(EMBER_VERSION_STRING, ember::version()) != 0;

  // Symmetric per-row int8: scale = max|row| / 127, q = round-half-even(w / scale).
  const float w[6] = {1.0f, -2.0f, 0.5f, 0.0f, 0.0f, 0.0f};
  int8_t q[6];
  float s[2];
  ember::quantize_rows_symmetric(w, 2, 3, q, s);
  const bool quant_ok = s[0] == 2.0f / 127 && q[0] == 64 && q[1] == -127 && q[2] == 32 && s[1] == 0.0f &&
                        q[3] == 0 && q[4] == 0 && q[5] == 0;
  std::printf("quantize_rows_symmetric %s\n", quant_ok ? "ok" : "WRONG");
  bad |= !quant_ok;

  // A BPE vocabulary learned by libember_host, used through libember's Tokenizer.
  const std::string text = "the cat sat on the mat; the cat ate the rat";
  ember::BpeTrainOptions o;
  o.vocab_size = 262;
  ember::Result<ember::Tokenizer> tok = ember::train_bpe({std::string_view(text)}, o);
  ember::Result<std::vector<int32_t>> ids = tok.ok() ? tok->encode(text) : tok.status();
  ember::Result<std::string> back = ids.ok() ? tok->decode(*ids) : ids.status();
  const bool bpe_ok = back.ok() && *back == text && tok->n_vocab() == 262 && ids->size() < text.size();
  std::printf("train_bpe %s\n", bpe_ok ? "ok" : (back.ok() ? "WRONG" : back.status().message().c_str()));
  bad |= !bpe_ok;

  // The model file read back by the host side.
  ember::Result<ember::ModelSpec> spec = ember::read_model_file(argv[1]);
  const bool read_ok = spec.ok() && spec->validate().ok() && spec->tokenizer.n_vocab() == 65;
  std::printf("read_model_file %s\n", read_ok ? "ok" : (spec.ok() ? "WRONG" : spec.status().message().c_str()));
  bad |= !read_ok;
  return bad;
}
