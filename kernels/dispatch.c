/*
 * dispatch.c — choosing the kernel variant once per process, and the helpers every kernel
 * front end shares (arena selection, scratch with a clear EFULL message).
 *
 * The choice is a pointer to one of three constant tables, published with a release store; a
 * kernel call costs one acquire load of it. The first call decides (ENGRAM_ISA, else the
 * widest ISA the CPU supports) under a mutex; engram_kernel_set_isa swaps the pointer later.
 */
#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENGRAM_KERNEL_TABLE(isa_id, sfx)                   \
  {                                                        \
    .isa = isa_id,                                         \
    .name = #sfx,                                          \
    .sim_norms = engram_sim_norms_##sfx,                   \
    .sim_cosine = engram_sim_cosine_##sfx,                 \
    .sim_scan_scratch = engram_sim_scan_scratch_##sfx,     \
    .sim_scan = engram_sim_scan_##sfx,                     \
    .spread_round = engram_spread_round_##sfx,             \
    .decay_exp2 = engram_decay_exp2_##sfx,                 \
    .decay_power = engram_decay_power_##sfx,               \
    .decay_two = engram_decay_two_##sfx,                   \
  }

static const engram_kernel_ops engram_kernels_scalar = ENGRAM_KERNEL_TABLE(ENGRAM_ISA_SCALAR, scalar);
static const engram_kernel_ops engram_kernels_avx2 = ENGRAM_KERNEL_TABLE(ENGRAM_ISA_AVX2, avx2);
static const engram_kernel_ops engram_kernels_avx512 = ENGRAM_KERNEL_TABLE(ENGRAM_ISA_AVX512, avx512);

static const engram_kernel_ops *current;  /* NULL: not chosen yet, or the environment is bad */
static pthread_mutex_t choose_lock = PTHREAD_MUTEX_INITIALIZER;
static int chosen;                        /* the environment has been read (under choose_lock) */
static int env_status;                    /* ENGRAM_ISA's verdict: 0, ECONFIG or ENOTSUP */
static char env_message[256];

static const char *const isa_names[] = { "scalar", "avx2", "avx512", "auto" };

const char *engram_kernel_isa_name(int isa)
{
  if (isa < 0 || isa > ENGRAM_ISA_AUTO)
    return "unknown";
  return isa_names[isa];
}

int engram_kernel_isa_supported(int isa)
{
  /* __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0). */
  __builtin_cpu_init();
  switch (isa) {
  case ENGRAM_ISA_SCALAR:
    return 1;
  case ENGRAM_ISA_AVX2:
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  case ENGRAM_ISA_AVX512:
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma");
  default:
    return 0;
  }
}

static const engram_kernel_ops *table_of(int isa)
{
  switch (isa) {
  case ENGRAM_ISA_AVX512: return &engram_kernels_avx512;
  case ENGRAM_ISA_AVX2:   return &engram_kernels_avx2;
  default:                return &engram_kernels_scalar;
  }
}

/* Read ENGRAM_ISA and the CPU; publish the table or record why there is none. Caller holds
 * choose_lock. */
static void choose_locked(void)
{
  const char *env = getenv("ENGRAM_ISA");
  const engram_kernel_ops *t = NULL;
  env_status = 0;
  env_message[0] = '\0';
  if (env && *env) {
    int isa = -1;
    for (int i = 0; i < ENGRAM_ISA_AUTO; i++)
      if (strcmp(env, isa_names[i]) == 0)
        isa = i;
    if (isa < 0) {
      env_status = ENGRAM_ECONFIG;
      snprintf(env_message, sizeof env_message,
               "kernels: bad ENGRAM_ISA '%.60s' (expected scalar, avx2 or avx512)", env);
    } else if (!engram_kernel_isa_supported(isa)) {
      env_status = ENGRAM_ENOTSUP;
      snprintf(env_message, sizeof env_message,
               "kernels: ENGRAM_ISA=%s but this CPU does not support %s", isa_names[isa], isa_names[isa]);
    } else {
      t = table_of(isa);
    }
  } else if (engram_kernel_isa_supported(ENGRAM_ISA_AVX512)) {
    t = table_of(ENGRAM_ISA_AVX512);
  } else if (engram_kernel_isa_supported(ENGRAM_ISA_AVX2)) {
    t = table_of(ENGRAM_ISA_AVX2);
  } else {
    t = table_of(ENGRAM_ISA_SCALAR);
  }
  chosen = 1;
  __atomic_store_n(&current, t, __ATOMIC_RELEASE);
}

const engram_kernel_ops *engram_kernels_get(int *status_out)
{
  const engram_kernel_ops *t = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
  *status_out = 0;
  if (ENGRAM_LIKELY(t != NULL))
    return t;
  int status;
  char msg[sizeof env_message];
  pthread_mutex_lock(&choose_lock);
  if (!chosen)
    choose_locked();
  t = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
  status = env_status;
  memcpy(msg, env_message, sizeof msg);
  pthread_mutex_unlock(&choose_lock);
  if (!t)
    *status_out = engram_fail(status ? status : ENGRAM_ESTATE, "%s", msg);
  return t;
}

int engram_kernel_isa(void)
{
  int status;
  const engram_kernel_ops *t = engram_kernels_get(&status);
  return t ? t->isa : status;
}

int engram_kernel_set_isa(int isa)
{
  if (isa == ENGRAM_ISA_AUTO) {
    pthread_mutex_lock(&choose_lock);
    choose_locked();
    pthread_mutex_unlock(&choose_lock);
    int now = engram_kernel_isa();
    return now < 0 ? now : 0;
  }
  if (isa < 0 || isa > ENGRAM_ISA_AVX512)
    return engram_fail(ENGRAM_EINVAL, "kernels: unknown isa %d (expected 0 scalar, 1 avx2, 2 avx512, 3 auto)", isa);
  if (!engram_kernel_isa_supported(isa))
    return engram_fail(ENGRAM_ENOTSUP, "kernels: this CPU does not support %s", isa_names[isa]);
  pthread_mutex_lock(&choose_lock);
  chosen = 1;
  __atomic_store_n(&current, table_of(isa), __ATOMIC_RELEASE);
  pthread_mutex_unlock(&choose_lock);
  return 0;
}

/* ---- front-end helpers ------------------------------------------------------------------- */

engram_arena *engram_kernel_arena(engram_arena *a, const char *who)
{
  if (a)
    return a;
  a = engram_arena_thread();
  if (!a)
    engram_fail(ENGRAM_ENOMEM, "%s: no thread arena (%s)", who, engram_last_error());
  return a;
}

void *engram_kernel_scratch(engram_arena *a, size_t count, size_t size, const char *who)
{
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    engram_fail(ENGRAM_EOVERFLOW, "%s: scratch of %zu x %zu bytes overflows", who, count, size);
    return NULL;
  }
  void *p = engram_arena_alloc_aligned(a, bytes, 64);
  if (!p) {
    /* Keep the arena's own detail (sizes, strategy) but name the kernel and the code. */
    char detail[300];
    snprintf(detail, sizeof detail, "%s", engram_last_error());
    engram_fail(ENGRAM_EFULL, "%s: scratch of %zu bytes does not fit the arena (%s)", who, bytes, detail);
  }
  return p;
}
