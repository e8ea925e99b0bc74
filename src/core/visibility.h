// EMBER_HIDDEN: the mark on the definition of an Impl struct nested in an exported class (Model::Impl,
// Session::Impl, Tokenizer::Impl, Trainer::Impl). A nested class takes the visibility of its enclosing
// class, so without the mark every member function of the Impl would be exported from libember.so along
// with the public class (include/ember/export.h, src/ember.map).
#pragma once

#define EMBER_HIDDEN __attribute__((visibility("hidden")))
