/* ember/export.h - EMBER_API, the mark on everything libember and libember_host export.
 *
 *   EMBER_API Result<Tokenizer> load_char_tokenizer(const std::string& path);   // a function
 *   class EMBER_API Session { ... };                                           // a class, all its members
 *
 * The libraries are compiled with hidden visibility by default (meson: gnu_symbol_visibility
 * 'inlineshidden', i.e. -fvisibility=hidden -fvisibility-inlines-hidden) and a version script
 * (src/ember.map); a declaration in a public header that should be callable from an application carries
 * EMBER_API, nothing else is exported. tests/install/libember.symbols lists what libember.so exports, and
 * tools/test.sh fails when the list and the library differ.
 *
 * Three cases, as usual for this macro:
 *   EMBER_BUILDING_LIBRARY  defined (by meson) while compiling the libraries: export.
 *   EMBER_STATIC            defined by an application that links the static libraries: nothing to import.
 *   neither                 an application using the shared libraries: import.
 * On ELF (Linux, the platforms ember builds for) export and import are the same attribute, so the static
 * case needs nothing and ember.pc does not set EMBER_STATIC. The Windows branch is the conventional
 * spelling, kept for completeness; ember is not built or tested on Windows.
 * Plain preprocessor: C and C++ both include this header. */
#ifndef EMBER_EXPORT_H_
#define EMBER_EXPORT_H_

#if defined(EMBER_STATIC)
#define EMBER_API
#elif defined(_WIN32) || defined(__CYGWIN__)
#if defined(EMBER_BUILDING_LIBRARY)
#define EMBER_API __declspec(dllexport)
#else
#define EMBER_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define EMBER_API __attribute__((visibility("default")))
#else
#define EMBER_API
#endif

#endif /* EMBER_EXPORT_H_ */
