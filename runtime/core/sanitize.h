/*
 * sanitize.h - whether this build runs under AddressSanitizer or
 * ThreadSanitizer (gcc says so with __SANITIZE_*__, clang with __has_feature).
 * Code that hides objects from those tools (the pool's carriers) or measures
 * what they change (memory in tests) asks EMI_SANITIZED. RUNNING_ON_VALGRIND
 * is valgrind's own test where its header is installed, else 0, and
 * VALGRIND_MAKE_MEM_UNDEFINED memcheck's request, else nothing.
 */
#ifndef EMBER_CORE_SANITIZE_H
#define EMBER_CORE_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EMI_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EMI_SANITIZED 1
#endif
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#ifndef VALGRIND_MAKE_MEM_UNDEFINED
#define VALGRIND_MAKE_MEM_UNDEFINED(a, n) ((void)(a), (void)(n))
#endif

#endif
