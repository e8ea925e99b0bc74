/* examples/c/minimal.c - the smallest complete ember program in C: load a model, stream sampled text.
 *
 *   cc -std=c99 minimal.c $(pkg-config --cflags --libs ember) -o minimal
 *   ./minimal models/shakespeare-char.ember "ROMEO:" 100 1
 *
 * Arguments: MODEL [PROMPT [N [SEED]]] (defaults "ROMEO:", 100 tokens, seed 1). Prints the prompt, then
 * the text of each sampled token as it comes (valid UTF-8: a character split across tokens is printed
 * when it is complete), then a newline. The default sampler (temperature 0.8, top-k 40, top-p 0.95) is
 * seeded, so a seed repeats a run on every platform: the output is that of
 *   ember-generate -m MODEL -p PROMPT -n N --seed SEED -q
 * (tools/test.sh checks it, built against the installed library: shared, static, and cross-built for
 * aarch64 and run under qemu).
 */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>

/* Called with each piece of text: the echoed prompt (token -1), then one call per token. */
static int print_text(int32_t token, const char* text, size_t len, void* user_data) {
  (void)token;
  (void)user_data;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0; /* 0: go on; nonzero would stop the generation */
}

int main(int argc, char** argv) {
  const char* prompt = argc > 2 ? argv[2] : "ROMEO:";
  ember_model* model = NULL;
  ember_session* session = NULL;
  ember_sampler* sampler = NULL;
  ember_sampler_params sp = ember_sampler_default_params();
  ember_generate_params gp = ember_generate_default_params();
  ember_generate_result result;
  int rc = 1;

  if (argc < 2 || argc > 5) {
    fprintf(stderr, "usage: %s MODEL [PROMPT [N [SEED]]]\n", argv[0]);
    return 2;
  }
  gp.max_tokens = argc > 3 ? strtoll(argv[3], NULL, 10) : 100;
  gp.echo_prompt = 1; /* print the prompt first, as ember-generate does */
  sp.seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;

  /* The model: mapped read-only and verified; sessions of it may run on several threads. */
  if (ember_model_load(argv[1], &model) != EMBER_OK) goto fail;
  /* A session owns the KV cache (sized for the model's context now) and scratch. NULL: 1 thread, f32 KV. */
  if (ember_session_create(model, NULL, &session) != EMBER_OK) goto fail;
  if (ember_sampler_create(&sp, ember_session_n_vocab(session), &sampler) != EMBER_OK) goto fail;
  /* Prompt in, text out: stops after max_tokens, at the end-of-text token or when the context is full. */
  if (ember_generate(session, sampler, prompt, &gp, print_text, NULL, &result) != EMBER_OK) goto fail;
  fputs("\n", stdout);
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "minimal: %s\n", ember_last_error());
done:
  ember_sampler_free(sampler);
  ember_session_free(session);
  ember_model_free(model);
  return rc;
}
