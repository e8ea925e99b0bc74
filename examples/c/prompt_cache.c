/* examples/c/prompt_cache.c - a prompt cache: save a session's state after the prompt, restore it in a
 * later run and continue without computing the prompt again.
 *
 *   cc -std=c99 prompt_cache.c $(pkg-config --cflags --libs ember) -o prompt_cache
 *   ./prompt_cache models/shakespeare-char.ember romeo.state "ROMEO:" 100 1   # computes, saves the state
 *   ./prompt_cache models/shakespeare-char.ember romeo.state "ROMEO:" 100 1   # restores it: same text
 *
 * Arguments: MODEL STATE_FILE [PROMPT [N [SEED]]]. When STATE_FILE holds a state of this model, the
 * longest common prefix of its tokens and the prompt's is kept (ember_session_trim) and only the rest
 * of the prompt is run; otherwise (no file, another model, a corrupted file: the message says which) the
 * whole prompt is. The state after the prompt is then saved to STATE_FILE, and N tokens are generated
 * from it. What it prints is what examples/c/minimal.c and `ember-generate -p PROMPT -n N --seed SEED`
 * print, whichever way the prompt got into the session (restored states give the same bits); stderr
 * says how many tokens came from the cache.
 */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_text(int32_t token, const char* text, size_t len, void* user_data) {
  (void)token;
  (void)user_data;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  const char* prompt = argc > 3 ? argv[3] : "ROMEO:";
  ember_model* model = NULL;
  ember_session* session = NULL;
  ember_sampler* sampler = NULL;
  int32_t* ids = NULL;
  size_t n_ids = 0, n_keep = 0;
  ember_sampler_params sp = ember_sampler_default_params();
  ember_generate_params gp = ember_generate_default_params();
  ember_status st;
  int rc = 1;

  if (argc < 3 || argc > 6) {
    fprintf(stderr, "usage: %s MODEL STATE_FILE [PROMPT [N [SEED]]]\n", argv[0]);
    return 2;
  }
  gp.max_tokens = argc > 4 ? strtoll(argv[4], NULL, 10) : 100;
  sp.seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;

  if (ember_model_load(argv[1], &model) != EMBER_OK) goto fail;
  if (ember_session_create(model, NULL, &session) != EMBER_OK) goto fail;
  /* The prompt's ids: ask for their number, then fetch them. */
  if (ember_tokenize(model, prompt, strlen(prompt), NULL, 0, &n_ids) != EMBER_OK) goto fail;
  if (n_ids == 0) {
    fprintf(stderr, "prompt_cache: the prompt is empty\n");
    goto done;
  }
  ids = malloc(n_ids * sizeof *ids);
  if (!ids || ember_tokenize(model, prompt, strlen(prompt), ids, n_ids, &n_ids) != EMBER_OK) goto fail;

  /* The cache: a state is verified completely and bound to the model that saved it. */
  st = ember_session_restore_state_file(session, argv[2]);
  if (st == EMBER_OK) {
    const int32_t* cached = ember_session_tokens(session);
    const size_t n_cached = ember_session_n_past(session);
    while (n_keep < n_cached && n_keep < n_ids && cached[n_keep] == ids[n_keep]) ++n_keep;
    /* Exactly the prompt cached: its logits came with the state. The prompt and more: keep all but the
     * prompt's last token, which runs again for its logits. */
    if (n_keep == n_ids && n_cached > n_ids) --n_keep;
  } else if (st != EMBER_NOT_FOUND) {
    fprintf(stderr, "prompt_cache: not using %s: %s\n", argv[2], ember_last_error());
  }
  fprintf(stderr, "prompt_cache: %zu of %zu prompt tokens from the cache\n", n_keep, n_ids);
  if (n_keep < ember_session_n_past(session) || n_keep < n_ids) {
    if (ember_session_trim(session, n_keep) != EMBER_OK) goto fail;
    if (ember_session_prefill(session, ids + n_keep, n_ids - n_keep) != EMBER_OK) goto fail;
    if (ember_session_save_state_file(session, argv[2]) != EMBER_OK) goto fail;
  }

  /* Continue from the session as it is: no prompt, the sampler's history is the cached tokens. */
  if (ember_sampler_create(&sp, ember_session_n_vocab(session), &sampler) != EMBER_OK) goto fail;
  fputs(prompt, stdout);
  if (ember_generate(session, sampler, NULL, &gp, print_text, NULL, NULL) != EMBER_OK) goto fail;
  fputs("\n", stdout);
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "prompt_cache: %s\n", ember_last_error());
done:
  free(ids);
  ember_sampler_free(sampler);
  ember_session_free(session);
  ember_model_free(model);
  return rc;
}
