// The C API (include/ember.h) over the C++ one. Each function checks its pointers, catches every
// exception (bad_alloc from a std::string or vector; the C++ API itself returns Status), and records its
// outcome in the calling thread's last error.
#include "ember.h"

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "ember/classify.h"
#include "ember/generate.h"
#include "ember/model.h"
#include "ember/sampler.h"
#include "ember/session.h"
#include "ember/tokenizer.h"
#include "ember/version.h"

struct ember_model {
  std::shared_ptr<const ember::Model> m;
  ember::Status labels_status;  // of classifier_info(), computed at load
  ember::ClassifierInfo info;
  std::vector<const char*> labels;
};

struct ember_session {
  std::unique_ptr<ember::Session> s;
  ember_abort_callback abort = nullptr;
  void* abort_user = nullptr;
};

struct ember_sampler {
  ember::Sampler s;
};

struct ember_generator {
  std::unique_ptr<ember::Generator> g;
};

struct ember_utf8_stream {
  ember::Utf8Stream u;
  std::string out;
};

namespace {

using ember::StatusCode;
static_assert(static_cast<int>(StatusCode::kInvalidArgument) == EMBER_INVALID_ARGUMENT &&
                  static_cast<int>(StatusCode::kNotFound) == EMBER_NOT_FOUND &&
                  static_cast<int>(StatusCode::kIoError) == EMBER_IO_ERROR &&
                  static_cast<int>(StatusCode::kInvalidFile) == EMBER_INVALID_FILE &&
                  static_cast<int>(StatusCode::kUnsupported) == EMBER_UNSUPPORTED &&
                  static_cast<int>(StatusCode::kContextFull) == EMBER_CONTEXT_FULL &&
                  static_cast<int>(StatusCode::kInternal) == EMBER_INTERNAL &&
                  static_cast<int>(StatusCode::kAborted) == EMBER_ABORTED,
              "ember_status mirrors ember::StatusCode");
static_assert(static_cast<int>(ember::StopReason::kMaxTokens) == EMBER_STOP_MAX_TOKENS &&
                  static_cast<int>(ember::StopReason::kEndOfText) == EMBER_STOP_END_OF_TEXT &&
                  static_cast<int>(ember::StopReason::kStopString) == EMBER_STOP_STOP_STRING &&
                  static_cast<int>(ember::StopReason::kContextFull) == EMBER_STOP_CONTEXT_FULL &&
                  static_cast<int>(ember::StopReason::kCallback) == EMBER_STOP_CALLBACK &&
                  static_cast<int>(ember::StopReason::kAborted) == EMBER_STOP_ABORTED,
              "ember_stop_reason mirrors ember::StopReason");

thread_local std::string t_error;

// An enum a C caller passed: any int may arrive (C allows it), and reading it through the C++ enum type
// is undefined for values outside the enumerators' range (UBSan: "load of value 99, which is not a valid
// value for type 'ember_status'"). So its bytes are copied into an int, never loaded as the enum.
template <typename E>
int raw_enum(const E* e) {
  static_assert(sizeof(E) == sizeof(int), "the C API's enums are int-sized");
  int v;
  std::memcpy(&v, e, sizeof v);
  return v;
}

ember_status ok() {
  t_error.clear();
  return EMBER_OK;
}
ember_status fail(ember_status code, std::string message) {
  t_error = std::move(message);
  return code;
}
ember_status from(const ember::Status& s) {
  if (s.ok()) return ok();
  t_error = s.message();
  return static_cast<ember_status>(s.code());
}
ember_status null_arg(const char* fn, const char* arg) { return fail(EMBER_INVALID_ARGUMENT, std::string(fn) + ": " + arg + " is NULL"); }
ember_status out_of_memory(const char* fn) { return fail(EMBER_INTERNAL, std::string(fn) + ": out of memory"); }

// Copies `bytes` into a caller's buffer as the tokenize/detokenize convention says.
ember_status to_buffer(const char* fn, const std::string& bytes, char* buf, size_t capacity, size_t* len) {
  *len = bytes.size();
  if (!buf && capacity == 0) return ok();
  if (!buf) return null_arg(fn, "the buffer");
  if (capacity <= bytes.size())
    return fail(EMBER_INVALID_ARGUMENT, std::string(fn) + ": " + std::to_string(bytes.size()) +
                                            " bytes and a NUL do not fit in a buffer of " + std::to_string(capacity));
  std::memcpy(buf, bytes.data(), bytes.size());
  buf[bytes.size()] = '\0';
  return ok();
}

ember::GenerateOptions options(const ember_generate_params* p) {
  ember::GenerateOptions o;
  const ember_generate_params d = ember_generate_default_params();
  if (!p) p = &d;
  o.max_tokens = p->max_tokens;
  o.ignore_eot = p->ignore_eot != 0;
  o.keep_going = p->keep_going != 0;
  o.echo_prompt = p->echo_prompt != 0;
  for (size_t i = 0; p->stop && i < p->n_stop; ++i) o.stop.push_back(p->stop[i] ? p->stop[i] : "");
  return o;
}

void fill(ember_generate_result* r, const ember::GenerateResult& g) {
  if (!r) return;
  r->stop_reason = static_cast<ember_stop_reason>(g.stop_reason);
  r->n_prompt = g.n_prompt;
  r->n_generated = g.n_generated;
  r->n_shifts = g.n_shifts;
}

ember_status new_model(const char* fn, ember::Result<std::shared_ptr<const ember::Model>> r, ember_model** out) {
  if (!r.ok()) return from(r.status());
  std::unique_ptr<ember_model> h(new ember_model());
  h->m = std::move(r).value();
  if (h->m->config().n_classes > 0) {
    auto info = ember::classifier_info(*h->m);
    h->labels_status = info.status();
    if (info.ok()) {
      h->info = std::move(info).value();
      for (const std::string& l : h->info.labels) h->labels.push_back(l.c_str());
    }
  } else {
    h->labels_status = ember::invalid_argument(std::string(fn) + ": " + h->m->path() + " has no classifier head");
  }
  *out = h.release();
  return ok();
}

}  // namespace

// Every entry point: the body in a try block; no exception leaves it.
#define EMBER_C_TRY try {
#define EMBER_C_CATCH                                                                          \
  }                                                                                           \
  catch (const std::bad_alloc&) {                                                             \
    return out_of_memory(__func__);                                                           \
  }                                                                                           \
  catch (const std::exception& e) {                                                           \
    return fail(EMBER_INTERNAL, std::string(__func__) + ": internal error: " + e.what());     \
  }                                                                                           \
  catch (...) {                                                                               \
    return fail(EMBER_INTERNAL, std::string(__func__) + ": internal error");                  \
  }
#define EMBER_C_ARG(p) \
  if (!(p)) return null_arg(__func__, #p)

extern "C" {

const char* ember_status_name(ember_status status) {
  const int v = raw_enum(&status);
  if (v < EMBER_OK || v > EMBER_ABORTED) return "unknown";
  return ember::status_code_name(static_cast<StatusCode>(v));
}
const char* ember_last_error(void) { return t_error.c_str(); }
const char* ember_version(void) { return ember::version(); }
const char* ember_kernel_table(void) { return ember::kernel_table_name(); }

// ---- models ------------------------------------------------------------------------------------------

ember_status ember_model_load(const char* path, ember_model** out) {
  EMBER_C_TRY
  EMBER_C_ARG(out);
  *out = nullptr;
  EMBER_C_ARG(path);
  return new_model(__func__, ember::Model::load(path), out);
  EMBER_C_CATCH
}

ember_status ember_model_load_from_buffer(const void* data, size_t size, const char* name, ember_model** out) {
  EMBER_C_TRY
  EMBER_C_ARG(out);
  *out = nullptr;
  EMBER_C_ARG(data);
  return new_model(__func__, ember::Model::load_from_buffer(data, size, name ? name : "<memory>"), out);
  EMBER_C_CATCH
}

ember_status ember_model_load_from_memory(const void* data, size_t size, const char* name, ember_model** out) {
  EMBER_C_TRY
  EMBER_C_ARG(out);
  *out = nullptr;
  EMBER_C_ARG(data);
  return new_model(__func__, ember::Model::load_from_memory(data, size, name ? name : "<memory>"), out);
  EMBER_C_CATCH
}

void ember_model_free(ember_model* model) { delete model; }

ember_status ember_model_get_config(const ember_model* model, ember_model_config* out) {
  EMBER_C_TRY
  EMBER_C_ARG(model);
  EMBER_C_ARG(out);
  const ember::ModelConfig& c = model->m->config();
  const ember::Tokenizer& t = model->m->tokenizer();
  *out = ember_model_config{};
  out->n_vocab = c.n_vocab;
  out->n_ctx = c.n_ctx;
  out->n_embd = c.n_embd;
  out->n_head = c.n_head;
  out->n_layer = c.n_layer;
  out->n_ff = c.n_ff;
  out->n_classes = c.n_classes;
  out->tokenizer = static_cast<ember_tokenizer_kind>(t.kind());
  out->n_tokens = static_cast<uint32_t>(t.n_vocab());
  out->eot_id = t.kind() == ember::TokenizerKind::kNone ? -1 : t.eot_id();
  return ok();
  EMBER_C_CATCH
}

const char* ember_model_name(const ember_model* model) { return model ? model->m->path().c_str() : nullptr; }

const char* ember_model_metadata(const ember_model* model, const char* key) {
  if (!model || !key) return nullptr;
  try {
    const auto& md = model->m->metadata();
    auto it = md.find(key);
    return it == md.end() ? nullptr : it->second.c_str();
  } catch (...) {
    return nullptr;
  }
}

uint64_t ember_model_fingerprint(const ember_model* model) { return model ? model->m->fingerprint() : 0; }

ember_status ember_model_labels(const ember_model* model, const char* const** labels, size_t* n) {
  EMBER_C_TRY
  EMBER_C_ARG(labels);
  EMBER_C_ARG(n);
  *labels = nullptr;
  *n = 0;
  EMBER_C_ARG(model);
  if (!model->labels_status.ok()) return from(model->labels_status);
  *labels = model->labels.data();
  *n = model->labels.size();
  return ok();
  EMBER_C_CATCH
}

// ---- tokenizer ---------------------------------------------------------------------------------------

ember_status ember_tokenize(const ember_model* model, const char* text, size_t len, int32_t* ids, size_t capacity,
                            size_t* n_ids) {
  EMBER_C_TRY
  EMBER_C_ARG(n_ids);
  *n_ids = 0;
  EMBER_C_ARG(model);
  if (!text && len) return null_arg(__func__, "text");
  const ember::Tokenizer& t = model->m->tokenizer();
  if (t.kind() == ember::TokenizerKind::kNone)
    return fail(EMBER_INVALID_ARGUMENT, std::string(__func__) + ": " + model->m->path() + " has no tokenizer");
  auto r = t.encode(std::string_view(text ? text : "", len));
  if (!r.ok()) return from(r.status());
  *n_ids = r->size();
  if (!ids && capacity == 0) return ok();
  if (!ids) return null_arg(__func__, "ids");
  if (capacity < r->size())
    return fail(EMBER_INVALID_ARGUMENT, std::string(__func__) + ": the text is " + std::to_string(r->size()) +
                                            " tokens, the buffer holds " + std::to_string(capacity));
  if (!r->empty()) std::memcpy(ids, r->data(), r->size() * sizeof(int32_t));
  return ok();
  EMBER_C_CATCH
}

ember_status ember_detokenize(const ember_model* model, const int32_t* ids, size_t n_ids, char* text, size_t capacity,
                              size_t* len) {
  EMBER_C_TRY
  EMBER_C_ARG(len);
  *len = 0;
  EMBER_C_ARG(model);
  if (!ids && n_ids) return null_arg(__func__, "ids");
  const ember::Tokenizer& t = model->m->tokenizer();
  ember::Utf8Stream u;
  std::string s;
  for (size_t i = 0; i < n_ids; ++i) u.push(t.piece(ids[i]), &s);
  u.flush(&s);
  return to_buffer(__func__, s, text, capacity, len);
  EMBER_C_CATCH
}

ember_status ember_token_piece(const ember_model* model, int32_t id, char* bytes, size_t capacity, size_t* len) {
  EMBER_C_TRY
  EMBER_C_ARG(len);
  *len = 0;
  EMBER_C_ARG(model);
  return to_buffer(__func__, model->m->tokenizer().piece(id), bytes, capacity, len);
  EMBER_C_CATCH
}

int ember_token_is_special(const ember_model* model, int32_t id) {
  return model && model->m->tokenizer().is_special(id) ? 1 : 0;
}

ember_status ember_utf8_stream_create(ember_utf8_stream** out) {
  EMBER_C_TRY
  EMBER_C_ARG(out);
  *out = new ember_utf8_stream();
  return ok();
  EMBER_C_CATCH
}

void ember_utf8_stream_free(ember_utf8_stream* stream) { delete stream; }

ember_status ember_utf8_stream_push(ember_utf8_stream* stream, const char* bytes, size_t len, const char** text,
                                    size_t* text_len) {
  EMBER_C_TRY
  EMBER_C_ARG(text);
  EMBER_C_ARG(text_len);
  *text = "";
  *text_len = 0;
  EMBER_C_ARG(stream);
  if (!bytes && len) return null_arg(__func__, "bytes");
  stream->out.clear();
  stream->u.push(std::string_view(bytes ? bytes : "", len), &stream->out);
  *text = stream->out.c_str();
  *text_len = stream->out.size();
  return ok();
  EMBER_C_CATCH
}

ember_status ember_utf8_stream_flush(ember_utf8_stream* stream, const char** text, size_t* text_len) {
  EMBER_C_TRY
  EMBER_C_ARG(text);
  EMBER_C_ARG(text_len);
  *text = "";
  *text_len = 0;
  EMBER_C_ARG(stream);
  stream->out.clear();
  stream->u.flush(&stream->out);
  *text = stream->out.c_str();
  *text_len = stream->out.size();
  return ok();
  EMBER_C_CATCH
}

// ---- sessions ----------------------------------------------------------------------------------------

ember_session_params ember_session_default_params(void) {
  ember_session_params p;
  p.n_threads = 1;
  p.n_batch = 64;
  p.kv_type = EMBER_KV_F32;
  return p;
}

ember_status ember_session_create(const ember_model* model, const ember_session_params* params, ember_session** out) {
  EMBER_C_TRY
  EMBER_C_ARG(out);
  *out = nullptr;
  EMBER_C_ARG(model);
  ember_session_params p;
  if (params) std::memcpy(&p, params, sizeof p);
  else p = ember_session_default_params();
  const int kv = raw_enum(&p.kv_type);
  if (kv != EMBER_KV_F32 && kv != EMBER_KV_INT8)
    return fail(EMBER_INVALID_ARGUMENT, std::string(__func__) + ": unknown kv_type " + std::to_string(kv) +
                                            " (EMBER_KV_F32 or EMBER_KV_INT8)");
  ember::SessionOptions so;
  so.n_threads = p.n_threads;
  so.n_batch = p.n_batch;
  so.kv_type = kv == EMBER_KV_INT8 ? ember::KvType::kInt8 : ember::KvType::kF32;
  auto s = ember::Session::create(model->m, so);
  if (!s.ok()) return from(s.status());
  std::unique_ptr<ember_session> h(new ember_session());
  h->s = std::move(s).value();
  *out = h.release();
  return ok();
  EMBER_C_CATCH
}

void ember_session_free(ember_session* session) { delete session; }

ember_status ember_session_prefill(ember_session* session, const int32_t* ids, size_t n) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  EMBER_C_ARG(ids);
  return from(session->s->prefill(ids, n));
  EMBER_C_CATCH
}

ember_status ember_session_decode(ember_session* session, int32_t id) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  return from(session->s->decode(id));
  EMBER_C_CATCH
}

const float* ember_session_logits(const ember_session* session) { return session ? session->s->logits() : nullptr; }
const int32_t* ember_session_tokens(const ember_session* session) { return session ? session->s->tokens() : nullptr; }
size_t ember_session_n_past(const ember_session* session) { return session ? session->s->n_past() : 0; }
size_t ember_session_n_ctx(const ember_session* session) { return session ? session->s->n_ctx() : 0; }
size_t ember_session_n_vocab(const ember_session* session) { return session ? session->s->n_vocab() : 0; }
uint32_t ember_session_n_threads(const ember_session* session) { return session ? session->s->n_threads() : 0; }

ember_status ember_session_reset(ember_session* session) {
  EMBER_C_ARG(session);
  session->s->reset();
  return ok();
}

ember_status ember_session_trim(ember_session* session, size_t n) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  return from(session->s->trim(n));
  EMBER_C_CATCH
}

ember_status ember_session_set_abort_callback(ember_session* session, ember_abort_callback callback, void* user_data) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  session->abort = callback;
  session->abort_user = user_data;
  if (callback) {
    session->s->set_abort_callback([session] { return session->abort(session->abort_user) != 0; });
  } else {
    session->s->set_abort_callback(nullptr);
  }
  return ok();
  EMBER_C_CATCH
}

ember_status ember_session_state_size(const ember_session* session, size_t* size) {
  EMBER_C_TRY
  EMBER_C_ARG(size);
  *size = 0;
  EMBER_C_ARG(session);
  *size = session->s->state_size();
  return ok();
  EMBER_C_CATCH
}

ember_status ember_session_save_state(const ember_session* session, void* buf, size_t capacity, size_t* written) {
  EMBER_C_TRY
  EMBER_C_ARG(written);
  *written = 0;
  EMBER_C_ARG(session);
  EMBER_C_ARG(buf);
  return from(session->s->save_state(buf, capacity, written));
  EMBER_C_CATCH
}

ember_status ember_session_restore_state(ember_session* session, const void* data, size_t size) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  EMBER_C_ARG(data);
  return from(session->s->restore_state(data, size));
  EMBER_C_CATCH
}

ember_status ember_session_save_state_file(const ember_session* session, const char* path) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  EMBER_C_ARG(path);
  return from(session->s->save_state_file(path));
  EMBER_C_CATCH
}

ember_status ember_session_restore_state_file(ember_session* session, const char* path) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  EMBER_C_ARG(path);
  return from(session->s->restore_state_file(path));
  EMBER_C_CATCH
}

ember_status ember_session_classify(ember_session* session, float* probs, size_t capacity) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  EMBER_C_ARG(probs);
  const size_t n = session->s->model().config().n_classes;
  if (n > 0 && capacity < n)
    return fail(EMBER_INVALID_ARGUMENT, std::string(__func__) + ": " + std::to_string(n) +
                                            " classes do not fit in a buffer of " + std::to_string(capacity));
  return from(session->s->classify(probs));
  EMBER_C_CATCH
}

ember_status ember_classify(ember_session* session, const char* text, size_t len, float* probs, size_t capacity) {
  EMBER_C_TRY
  EMBER_C_ARG(session);
  EMBER_C_ARG(probs);
  if (!text && len) return null_arg(__func__, "text");
  const ember::Model& m = session->s->model();
  auto info = ember::classifier_info(m);
  if (!info.ok()) return from(info.status());
  if (capacity < info->labels.size())
    return fail(EMBER_INVALID_ARGUMENT, std::string(__func__) + ": " + std::to_string(info->labels.size()) +
                                            " classes do not fit in a buffer of " + std::to_string(capacity));
  auto ids = ember::classifier_input(m, *info, std::string_view(text ? text : "", len));
  if (!ids.ok()) return from(ids.status());
  session->s->reset();
  const ember::Status st = session->s->prefill(ids->data(), ids->size());
  if (!st.ok()) return from(st);
  return from(session->s->classify(probs));
  EMBER_C_CATCH
}

// ---- sampling ----------------------------------------------------------------------------------------

ember_sampler_params ember_sampler_default_params(void) {
  const ember::SamplerParams d;
  ember_sampler_params p;
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.repeat_penalty = d.repeat_penalty;
  p.repeat_last_n = d.repeat_last_n;
  p.seed = d.seed;
  return p;
}

ember_status ember_sampler_create(const ember_sampler_params* params, size_t n_vocab, ember_sampler** out) {
  EMBER_C_TRY
  EMBER_C_ARG(out);
  *out = nullptr;
  const ember_sampler_params p = params ? *params : ember_sampler_default_params();
  ember::SamplerParams sp;
  sp.temperature = p.temperature;
  sp.top_k = p.top_k;
  sp.top_p = p.top_p;
  sp.repeat_penalty = p.repeat_penalty;
  sp.repeat_last_n = p.repeat_last_n;
  sp.seed = p.seed;
  auto s = ember::Sampler::create(sp, n_vocab);
  if (!s.ok()) return from(s.status());
  *out = new ember_sampler{std::move(s).value()};
  return ok();
  EMBER_C_CATCH
}

void ember_sampler_free(ember_sampler* sampler) { delete sampler; }

ember_status ember_sampler_sample(ember_sampler* sampler, const float* logits, const int32_t* history, size_t n_history,
                                  int32_t* token) {
  EMBER_C_TRY
  EMBER_C_ARG(token);
  *token = -1;
  EMBER_C_ARG(sampler);
  EMBER_C_ARG(logits);
  if (!history && n_history) return null_arg(__func__, "history");
  *token = sampler->s.sample(logits, history, n_history);
  return ok();
  EMBER_C_CATCH
}

// ---- generation --------------------------------------------------------------------------------------

const char* ember_stop_reason_name(ember_stop_reason reason) {
  const int v = raw_enum(&reason);
  if (v < EMBER_STOP_NONE || v > EMBER_STOP_ABORTED) return "unknown";
  return ember::stop_reason_name(static_cast<ember::StopReason>(v));
}

ember_generate_params ember_generate_default_params(void) {
  ember_generate_params p;
  std::memset(&p, 0, sizeof p);
  p.max_tokens = 128;
  return p;
}

ember_status ember_generate(ember_session* session, ember_sampler* sampler, const char* prompt,
                            const ember_generate_params* params, ember_token_callback callback, void* user_data,
                            ember_generate_result* result) {
  EMBER_C_TRY
  if (result) *result = ember_generate_result{};
  EMBER_C_ARG(session);
  EMBER_C_ARG(sampler);
  if (params && params->n_stop && !params->stop) return null_arg(__func__, "params->stop");
  ember::TokenCallback cb;
  if (callback)
    cb = [callback, user_data](int32_t token, std::string_view text) {
      return callback(token, text.data(), text.size(), user_data) == 0;
    };
  auto r = ember::generate(*session->s, sampler->s, std::string_view(prompt ? prompt : ""), options(params), cb);
  if (!r.ok()) return from(r.status());
  fill(result, *r);
  return ok();
  EMBER_C_CATCH
}

ember_status ember_generate_ids(ember_session* session, ember_sampler* sampler, const int32_t* prompt, size_t n,
                                const ember_generate_params* params, ember_token_callback callback, void* user_data,
                                ember_generate_result* result) {
  EMBER_C_TRY
  if (result) *result = ember_generate_result{};
  EMBER_C_ARG(session);
  EMBER_C_ARG(sampler);
  if (!prompt && n) return null_arg(__func__, "prompt");
  if (params && params->n_stop && !params->stop) return null_arg(__func__, "params->stop");
  ember::TokenCallback cb;
  if (callback)
    cb = [callback, user_data](int32_t token, std::string_view text) {
      return callback(token, text.data(), text.size(), user_data) == 0;
    };
  auto r = ember::generate(*session->s, sampler->s, prompt, n, options(params), cb);
  if (!r.ok()) return from(r.status());
  fill(result, *r);
  return ok();
  EMBER_C_CATCH
}

ember_status ember_generator_create(ember_session* session, ember_sampler* sampler, const ember_generate_params* params,
                                    ember_generator** out) {
  EMBER_C_TRY
  EMBER_C_ARG(out);
  *out = nullptr;
  EMBER_C_ARG(session);
  EMBER_C_ARG(sampler);
  if (params && params->n_stop && !params->stop) return null_arg(__func__, "params->stop");
  auto g = ember::Generator::create(*session->s, sampler->s, options(params));
  if (!g.ok()) return from(g.status());
  *out = new ember_generator{std::move(g).value()};
  return ok();
  EMBER_C_CATCH
}

void ember_generator_free(ember_generator* generator) { delete generator; }

ember_status ember_generator_start(ember_generator* generator, const char* prompt) {
  EMBER_C_TRY
  EMBER_C_ARG(generator);
  return from(generator->g->start(std::string_view(prompt ? prompt : "")));
  EMBER_C_CATCH
}

ember_status ember_generator_start_ids(ember_generator* generator, const int32_t* prompt, size_t n) {
  EMBER_C_TRY
  EMBER_C_ARG(generator);
  if (!prompt && n) return null_arg(__func__, "prompt");
  return from(generator->g->start(prompt, n));
  EMBER_C_CATCH
}

ember_status ember_generator_next(ember_generator* generator, ember_step* step) {
  EMBER_C_TRY
  EMBER_C_ARG(step);
  step->token = -1;
  step->text = "";
  step->len = 0;
  step->done = 1;
  EMBER_C_ARG(generator);
  ember::GenerateStep s;
  auto more = generator->g->next(&s);
  if (!more.ok()) return from(more.status());
  if (*more) {
    step->token = s.token;
    step->text = s.text.empty() ? "" : s.text.data();  // NUL-terminated: a view of a whole std::string
    step->len = s.text.size();
    step->done = 0;
  }
  return ok();
  EMBER_C_CATCH
}

ember_status ember_generator_result(const ember_generator* generator, ember_generate_result* result) {
  EMBER_C_TRY
  EMBER_C_ARG(result);
  *result = ember_generate_result{};
  EMBER_C_ARG(generator);
  ember::GenerateResult r;
  r.stop_reason = generator->g->stop_reason();
  r.n_prompt = generator->g->n_prompt();
  r.n_generated = generator->g->n_generated();
  r.n_shifts = generator->g->n_shifts();
  fill(result, r);
  return ok();
  EMBER_C_CATCH
}

}  // extern "C"
