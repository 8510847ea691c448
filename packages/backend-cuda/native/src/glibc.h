// Bind the dynamic-loader functions to their oldest x86-64 symbol versions. glibc 2.34 moved them
// from libdl into libc under new versions (GLIBC_2.34); binding the old ones keeps the addon loadable
// on older distributions (checked in test/native.test.ts with objdump). Include before <dlfcn.h> users.
#pragma once

#include <cstddef>  // defines __GLIBC__ (features.h) before the test below
#include <new>

#if defined(__x86_64__) && defined(__GLIBC__)
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
__asm__(".symver dlerror,dlerror@GLIBC_2.2.5");
__asm__(".symver dladdr,dladdr@GLIBC_2.2.5");
__asm__(".symver dlclose,dlclose@GLIBC_2.2.5");
// libm: 2.27/2.29 added new default versions (errno handling only); the results are the same.
__asm__(".symver expf,expf@GLIBC_2.2.5");
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver pow,pow@GLIBC_2.2.5");
__asm__(".symver logf,logf@GLIBC_2.2.5");
__asm__(".symver powf,powf@GLIBC_2.2.5");  // expectation_weight (YOSO)
__asm__(".symver log,log@GLIBC_2.2.5");
#endif

#include <dlfcn.h>

#if defined(__GLIBCXX__) && !defined(TP_NO_LOCAL_THROW)
// libstdc++ 11+ makes every std::vector refer to std::__throw_bad_array_new_length (GLIBCXX_3.4.29);
// a local definition (libs.cc) keeps the addon loadable with older libstdc++ (3.4.21 and up).
#define TP_LOCAL_THROW_BAD_ARRAY_NEW_LENGTH 1
#endif
