/* bench_generate_c: generation through the C API, timed as ember-generate times it, so the two speeds
 * compare (bench/capi_vs_cli.sh runs both; a benchmark, never a pass/fail test).
 *
 *   build/tests/bench_generate_c MODEL [-p PROMPT] [-n N] [--seed S] [-t THREADS] [--keep-going]
 *
 * One run, as `ember-generate -m MODEL -p PROMPT -n N --seed S -t THREADS [--keep-going]` does it: load,
 * a session and a seeded default sampler; the prompt prefilled (timed: "prompt"); then ember_generate
 * continuing from it with a token callback that writes each piece of text to stdout (timed:
 * "generated"). Prints the text, and to stderr the line
 *   bench_generate_c: prompt P tokens, X tok/s | generated N tokens, Y tok/s | T threads
 * (ember-generate's fields). Written in C99 against include/ember.h only.
 */
#include <ember.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_text(int32_t token, const char* text, size_t len, void* user_data) {
  (void)token;
  (void)user_data;
  fwrite(text, 1, len, stdout);
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  const char* prompt = "ROMEO:";
  ember_model* model = NULL;
  ember_session* session = NULL;
  ember_sampler* sampler = NULL;
  ember_session_params so = ember_session_default_params();
  ember_sampler_params sp = ember_sampler_default_params();
  ember_generate_params gp = ember_generate_default_params();
  ember_generate_result res;
  int32_t* ids = NULL;
  size_t n_ids = 0;
  double t0, t_prompt, t_gen;
  int i, rc = 1;

  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL [-p PROMPT] [-n N] [--seed S] [-t THREADS] [--keep-going]\n", argv[0]);
    return 2;
  }
  for (i = 2; i < argc; ++i) {
    if (!strcmp(argv[i], "-p") && i + 1 < argc) prompt = argv[++i];
    else if (!strcmp(argv[i], "-n") && i + 1 < argc) gp.max_tokens = strtoll(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) sp.seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "-t") && i + 1 < argc) so.n_threads = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--keep-going")) gp.keep_going = 1;
    else {
      fprintf(stderr, "bench_generate_c: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (ember_model_load(argv[1], &model) != EMBER_OK) goto fail;
  if (ember_session_create(model, &so, &session) != EMBER_OK) goto fail;
  if (ember_sampler_create(&sp, ember_session_n_vocab(session), &sampler) != EMBER_OK) goto fail;
  if (ember_tokenize(model, prompt, strlen(prompt), NULL, 0, &n_ids) != EMBER_OK) goto fail;
  ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
  if (!ids || ember_tokenize(model, prompt, strlen(prompt), ids, n_ids, &n_ids) != EMBER_OK) goto fail;

  t0 = now();
  if (ember_session_prefill(session, ids, n_ids) != EMBER_OK) goto fail;
  t_prompt = now() - t0;
  fputs(prompt, stdout);
  t0 = now();
  if (ember_generate(session, sampler, NULL, &gp, write_text, NULL, &res) != EMBER_OK) goto fail;
  t_gen = now() - t0;
  fputs("\n", stdout);
  fflush(stdout);
  fprintf(stderr, "bench_generate_c: prompt %zu tokens, %.1f tok/s | generated %zu tokens, %.1f tok/s | %u threads\n",
          n_ids, (double)n_ids / (t_prompt > 0 ? t_prompt : 1e-9), res.n_generated,
          (double)res.n_generated / (t_gen > 0 ? t_gen : 1e-9), (unsigned)ember_session_n_threads(session));
  rc = 0;
  goto done;
fail:
  fprintf(stderr, "bench_generate_c: %s\n", ember_last_error());
done:
  free(ids);
  ember_sampler_free(sampler);
  ember_session_free(session);
  ember_model_free(model);
  return rc;
}
