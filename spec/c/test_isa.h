/*
 * test_isa.h — one kernel test, instantiated once per ISA: ISA_TESTS(name) declares name() and
 * defines name_scalar, name_avx2 and name_avx512, which select the variant and run it (skipped,
 * with the reason, when the CPU lacks the ISA); RUN_ISA(name) runs all three.
 */
#ifndef ENGRAM_TEST_ISA_H
#define ENGRAM_TEST_ISA_H

#include "test.h"
#include "engram.h"

#define ISA_TESTS(name)                                                                  \
  static void name(void);                                                                \
  TEST(name##_scalar) { engram_kernel_set_isa(ENGRAM_ISA_SCALAR); name(); }              \
  TEST(name##_avx2)                                                                      \
  {                                                                                      \
    if (!engram_kernel_isa_supported(ENGRAM_ISA_AVX2))                                   \
      SKIP("this CPU lacks AVX2+FMA");                                                   \
    engram_kernel_set_isa(ENGRAM_ISA_AVX2);                                              \
    name();                                                                              \
  }                                                                                      \
  TEST(name##_avx512)                                                                    \
  {                                                                                      \
    if (!engram_kernel_isa_supported(ENGRAM_ISA_AVX512))                                 \
      SKIP("this CPU lacks AVX-512 (the variant is compiled but cannot run here)");      \
    engram_kernel_set_isa(ENGRAM_ISA_AVX512);                                            \
    name();                                                                              \
  }
#define RUN_ISA(name) do { RUN(name##_scalar); RUN(name##_avx2); RUN(name##_avx512); } while (0)

#endif
