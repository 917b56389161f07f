/*
 * test_decay.c — decay models: known points (one half-life is 0.5), every ISA against double
 * precision over ages 0 .. 10 years and strengths from 0 through subnormals to 2^64, against
 * the scalar variant, tails and misaligned starts, special ages, parameter errors.
 */
#include "test.h"

#include "engram.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_isa.h"

static uint64_t rng;
static engram_arena *arena;

#define TEN_YEARS (10.0 * 365.25 * 86400.0)

/* The stated bounds (engram.h): relative 1e-6 in the normal range, 2 subnormal steps below. */
#define REL_BOUND 1e-6
#define SUB_BOUND 0x1.0p-148

static double urand(void)
{
  return (double)(test_rand(&rng) >> 11) * 0x1.0p-53;
}

static engram_decay_params params(engram_decay_model m)
{
  engram_decay_params p;
  engram_decay_params_default(m, &p);
  return p;
}

/* The exact factor in double from the float inputs. */
static double factor_ref(const engram_decay_params *p, float t, uint32_t acc)
{
  double td = t > 0 ? (double)t : 0.0;
  double f;
  int model = p->model;
  if (model == ENGRAM_DECAY_TWO_COMPONENT)
    model = acc < p->k ? ENGRAM_DECAY_HALF_LIFE : ENGRAM_DECAY_POWER;
  switch (model) {
  case ENGRAM_DECAY_HALF_LIFE:      f = exp2(-td / p->half_life); break;
  case ENGRAM_DECAY_TIME_CONSTANT:  f = exp(-td / p->tau); break;
  default:                          f = pow(1.0 + td / p->unit, -(double)(float)p->beta); break;
  }
  if (p->model == ENGRAM_DECAY_TWO_COMPONENT && f < p->floor)
    f = p->floor;
  return f;
}

/* Error of got against exact in units of the bound: <= 1 passes. */
static double err_units(float got, double exact)
{
  if (isnan(exact))
    return isnan(got) ? 0 : INFINITY;
  double e = fabs((double)got - exact);
  if (fabs(exact) < FLT_MIN)
    return e / SUB_BOUND;
  return e / (REL_BOUND * fabs(exact));
}

static float strength_sample(size_t i)
{
  static const float fixed[] = { 0.0f, 1.0f, 0.5f, 1e-40f, 1e-45f, 0x1.0p-126f, 3.0f, 0x1.0p64f, 1e-20f };
  if (i % 3 == 0)
    return fixed[(i / 3) % (sizeof fixed / sizeof *fixed)];
  return (float)urand();
}

static float age_sample(size_t i, size_t n)
{
  if (i % 2 == 0)   /* log-spaced 1 s .. 10 years, plus 0 */
    return i == 0 ? 0.0f : (float)exp(log(TEN_YEARS) * (double)i / (double)n);
  return (float)(urand() * TEN_YEARS);
}

/* Every model over the whole range against double precision; prints the worst relative error. */
ISA_TESTS(models_match_double_precision)
static void models_match_double_precision(void)
{
  enum { N = 20000 };
  float *s = malloc(N * sizeof(float)), *t = malloc(N * sizeof(float)), *s0 = malloc(N * sizeof(float));
  uint32_t *acc = malloc(N * sizeof(uint32_t));
  for (size_t i = 0; i < N; i++) {
    s0[i] = strength_sample(i);
    t[i] = age_sample(i, N);
    acc[i] = (uint32_t)(test_rand(&rng) % 6);
  }
  /* time scales that make the whole float range of the factor appear: seconds .. days */
  double scales[] = { 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0 };
  double betas[] = { 0.18, 0.5, 1.0, 4.0 };
  for (int model = 0; model <= ENGRAM_DECAY_TWO_COMPONENT; model++) {
    double worst = 0;
    for (int v = 0; v < 4; v++) {
      engram_decay_params p = params((engram_decay_model)model);
      p.half_life = scales[v];
      p.tau = scales[v];
      p.beta = betas[v];
      p.unit = v % 2 ? 1.0 : 3600.0;
      p.floor = v == 3 ? 0.0f : 0.01f;
      memcpy(s, s0, N * sizeof(float));
      CHECK_EQ(engram_decay_apply(arena, &p, s, t, acc, N), 0);
      for (size_t i = 0; i < N; i++) {
        double exact = (double)s0[i] * factor_ref(&p, t[i], acc[i]);
        double u = err_units(s[i], exact);
        if (u > worst)
          worst = u;
        if (u > 1.0) {
          CHECK(u <= 1.0);
          printf("    model %d variant %d: s=%a t=%.9g acc=%u got %a want %a\n", model, v,
                 (double)s0[i], (double)t[i], acc[i], (double)s[i], exact);
          goto next;
        }
      }
    }
  next:
    printf("    model %d: worst error %.3f of the bound (1e-6 relative)\n", model, worst);
  }
  free(s), free(t), free(s0), free(acc);
}

ISA_TESTS(known_points)
static void known_points(void)
{
  engram_decay_params p = params(ENGRAM_DECAY_HALF_LIFE);
  p.half_life = 86400.0;
  float s[6] = { 1, 1, 1, 0.8f, 1, 0 }, t[6] = { 86400, 2 * 86400, 0, 86400, 43200, 86400 };
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 6), 0);
  CHECK(fabs(s[0] - 0.5) <= 0.5 * REL_BOUND);  /* one half-life: 0.5 */
  CHECK(fabs(s[1] - 0.25) <= 0.25 * REL_BOUND);
  CHECK(s[2] == 1.0f);
  CHECK(fabs(s[3] - 0.4) <= 0.4 * REL_BOUND);
  CHECK(fabs(s[4] - M_SQRT1_2) <= M_SQRT1_2 * REL_BOUND);
  CHECK(s[5] == 0.0f);

  p = params(ENGRAM_DECAY_TIME_CONSTANT);
  p.tau = 86400.0;
  float e[2] = { 1, 1 }, te[2] = { 86400, 2 * 86400 };
  CHECK_EQ(engram_decay_apply(arena, &p, e, te, NULL, 2), 0);
  CHECK(fabs(e[0] - exp(-1.0)) <= exp(-1.0) * REL_BOUND);   /* one tau: 1/e, not 0.5 */
  CHECK(fabs(e[1] - exp(-2.0)) <= exp(-2.0) * REL_BOUND);

  p = params(ENGRAM_DECAY_POWER);
  p.beta = 1.0;
  p.unit = 86400.0;
  float w[2] = { 1, 1 }, tw[2] = { 86400, 3 * 86400 };
  CHECK_EQ(engram_decay_apply(arena, &p, w, tw, NULL, 2), 0);
  CHECK(fabs(w[0] - 0.5) <= 0.5 * REL_BOUND);               /* (1 + 1)^-1 */
  CHECK(fabs(w[1] - 0.25) <= 0.25 * REL_BOUND);             /* (1 + 3)^-1 */

  /* two components: below k the half-life curve, at or above k the power law, floor on both */
  p = params(ENGRAM_DECAY_TWO_COMPONENT);
  p.half_life = 3600.0;
  p.beta = 1.0;
  p.unit = 3600.0;
  p.k = 3;
  p.floor = 0.1f;
  float c[4] = { 1, 1, 1, 1 }, tc[4] = { 3600, 3600, 36000, 36000 * 10 };
  uint32_t ac[4] = { 2, 3, 0, 7 };
  CHECK_EQ(engram_decay_apply(arena, &p, c, tc, ac, 4), 0);
  CHECK(fabs(c[0] - 0.5) <= 0.5 * REL_BOUND);
  CHECK(fabs(c[1] - 0.5) <= 0.5 * REL_BOUND);
  CHECK(fabs(c[2] - 0.1) <= 0.1 * REL_BOUND);                /* 2^-10 < floor */
  CHECK(fabs(c[3] - 0.1) <= 0.1 * REL_BOUND);                /* 1/101 < floor */
}

/* n = 0 .. 33 from misaligned starts: each element right, nothing written past n. */
ISA_TESTS(tails_and_misaligned_starts)
static void tails_and_misaligned_starts(void)
{
  engram_decay_params p = params(ENGRAM_DECAY_TWO_COMPONENT);
  float sb[40], tb[40], want[40];
  uint32_t ab[40];
  for (size_t n = 0; n <= 33; n++) {
    float *s = sb + 1, *t = tb + 1;
    uint32_t *a = ab + 1;
    for (size_t i = 0; i < 36; i++) {
      s[i] = (float)urand();
      t[i] = (float)(urand() * 30 * 86400);
      a[i] = (uint32_t)(i % 5);
    }
    memcpy(want, s, sizeof want - sizeof(float));
    CHECK_EQ(engram_decay_apply(arena, &p, s, t, a, n), 0);
    for (size_t i = 0; i < n; i++)
      CHECK(err_units(s[i], (double)want[i] * factor_ref(&p, t[i], a[i])) <= 1.0);
    for (size_t i = n; i < 36; i++)
      CHECK(s[i] == want[i]);
  }
}

ISA_TESTS(special_ages)
static void special_ages(void)
{
  engram_decay_params p = params(ENGRAM_DECAY_HALF_LIFE);
  float s[5] = { 0.7f, 0.7f, 0.7f, 0.7f, 0x1.0p64f };
  float t[5] = { -100.0f, NAN, INFINITY, 1e30f, (float)(100 * p.half_life) };
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 5), 0);
  CHECK(s[0] == 0.7f);                        /* a negative age counts as 0 */
  CHECK(isnan(s[1]));
  CHECK(s[2] == 0.0f);
  CHECK(s[3] == 0.0f);
  CHECK(err_units(s[4], 0x1.0p64 * exp2(-100.0 * ((double)(float)(100 * p.half_life) / 100 / p.half_life))) <= 1.0);

  p = params(ENGRAM_DECAY_POWER);
  float w[3] = { 0.7f, 0.7f, 0.7f }, tw[3] = { INFINITY, NAN, 0 };
  CHECK_EQ(engram_decay_apply(arena, &p, w, tw, NULL, 3), 0);
  CHECK(w[0] == 0.0f && isnan(w[1]) && w[2] == 0.7f);
  p.beta = 0.0;                               /* no decay */
  float z[2] = { 0.3f, 0.3f }, tz[2] = { 1e9f, 5.0f };
  CHECK_EQ(engram_decay_apply(arena, &p, z, tz, NULL, 2), 0);
  CHECK(z[0] == 0.3f && z[1] == 0.3f);
}

/* The vector loops take sixteen elements at a time and send a block with an unusual age (NaN
 * with any payload, infinite, huge, negative, or a factor below 2^-125) to a slower exact path:
 * each such age at every position of a block, among ordinary ones, gives the right value for
 * itself and its neighbours. */
ISA_TESTS(special_ages_in_blocks)
static void special_ages_in_blocks(void)
{
  static const uint32_t nan_bits[] = { 0x7fc00000u, 0x7fc00001u, 0x7fffffffu, 0xffc12345u, 0x7f800001u };
  enum { N = 48 };
  float s[N], s0[N], t[N], special[16];
  size_t ns = 0;
  for (size_t i = 0; i < sizeof nan_bits / sizeof *nan_bits; i++)
    memcpy(&special[ns++], &nan_bits[i], sizeof(float));
  const double h = 3600.0;
  special[ns++] = INFINITY;
  special[ns++] = -INFINITY;
  special[ns++] = -5.0f;
  special[ns++] = 1e30f;
  const size_t common = ns;
  for (int model = ENGRAM_DECAY_HALF_LIFE; model <= ENGRAM_DECAY_POWER; model++) {
    engram_decay_params p = params((engram_decay_model)model);
    p.half_life = p.tau = h;
    p.beta = 4.0;
    p.unit = 1.0;                               /* 2^-n with n = 4 log2(1 + t) */
    ns = common;
    if (model == ENGRAM_DECAY_POWER) {
      special[ns++] = 2.55e9f;                  /* n = 124.9 */
      special[ns++] = 2.70e9f;                  /* n = 125.1: the fast path's last exponent */
      special[ns++] = 3.2e9f;                   /* n = 126.1 */
      special[ns++] = 1e12f;
    } else {
      double f = model == ENGRAM_DECAY_TIME_CONSTANT ? M_LN2 : 1.0;   /* ages of n half-lives */
      special[ns++] = (float)(125.4 * h * f);   /* n = 125: the fast path's last exponent */
      special[ns++] = (float)(125.6 * h * f);   /* n = 126 */
      special[ns++] = (float)(190.0 * h * f);
      special[ns++] = (float)(300.0 * h * f);   /* beyond the cap of 220 */
    }
    for (size_t v = 0; v < ns; v++)
      for (size_t k = 0; k < 32; k++) {
        for (size_t i = 0; i < N; i++) {
          s0[i] = i % 2 ? 0x1.0p64f : 0.7f;
          t[i] = (float)(urand() * 2.0 * h);
        }
        t[k] = special[v];
        memcpy(s, s0, sizeof s);
        CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, N), 0);
        size_t bad = 0;
        for (size_t i = 0; i < N; i++) {
          if (isnan(t[i]))
            bad += !isnan(s[i]);
          else
            bad += !(err_units(s[i], (double)s0[i] * factor_ref(&p, t[i], 0)) <= 1.0);
        }
        if (bad) {
          printf("    model %d, age %a at %zu: %zu wrong\n", model, (double)special[v], k, bad);
          CHECK_EQ(bad, 0);
          return;
        }
      }
  }
}

TEST(isa_variants_agree_with_scalar)
{
  enum { N = 4099 };
  float *t = malloc(N * sizeof(float)), *ref = malloc(N * sizeof(float)), *got = malloc(N * sizeof(float));
  float *s0 = malloc(N * sizeof(float));
  uint32_t *acc = malloc(N * sizeof(uint32_t));
  for (size_t i = 0; i < N; i++) {
    s0[i] = strength_sample(i);
    t[i] = age_sample(i, N);
    acc[i] = (uint32_t)(test_rand(&rng) % 6);
  }
  for (int model = 0; model <= ENGRAM_DECAY_TWO_COMPONENT; model++) {
    engram_decay_params p = params((engram_decay_model)model);
    p.half_life = p.tau = 30 * 86400.0;
    memcpy(ref, s0, N * sizeof(float));
    engram_kernel_set_isa(ENGRAM_ISA_SCALAR);
    CHECK_EQ(engram_decay_apply(arena, &p, ref, t, acc, N), 0);
    for (int isa = ENGRAM_ISA_AVX2; isa <= ENGRAM_ISA_AVX512; isa++) {
      if (!engram_kernel_isa_supported(isa))
        continue;
      memcpy(got, s0, N * sizeof(float));
      engram_kernel_set_isa(isa);
      CHECK_EQ(engram_decay_apply(arena, &p, got, t, acc, N), 0);
      size_t same = 0, bad = 0;
      for (size_t i = 0; i < N; i++) {
        same += got[i] == ref[i];
        double e = fabs((double)got[i] - ref[i]);
        bad += !(e <= 4e-7 * fabs(ref[i]) || e <= SUB_BOUND);
      }
      printf("    model %d, %s: %zu of %d bit-identical to scalar\n", model, engram_kernel_isa_name(isa),
             same, N);
      CHECK_EQ(bad, 0);
    }
  }
  free(t), free(ref), free(got), free(acc), free(s0);
}

TEST(bad_parameters_are_errors)
{
  float s[1] = { 1 }, t[1] = { 1 };
  engram_decay_params p = params(ENGRAM_DECAY_HALF_LIFE);
  p.half_life = 0;
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 1), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "decay: bad half_life 0 (expected seconds > 0)");
  p = params(ENGRAM_DECAY_TIME_CONSTANT);
  p.tau = -1;
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 1), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "decay: bad tau -1 (expected seconds > 0)");
  p = params(ENGRAM_DECAY_POWER);
  p.beta = NAN;
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 1), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "decay: bad beta nan (expected 0 to 64)");
  p = params(ENGRAM_DECAY_TWO_COMPONENT);
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 1), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "decay: the two_component model needs access counts");
  p.floor = 2.0f;
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 1), ENGRAM_EINVAL);
  CHECK_STR(engram_last_error(), "decay: bad floor 2 (expected 0 to 1)");
  p.model = (engram_decay_model)9;
  CHECK_EQ(engram_decay_apply(arena, &p, s, t, NULL, 1), ENGRAM_EINVAL);
  CHECK_CONTAINS(engram_last_error(), "decay: unknown model 9");
  CHECK_EQ(engram_decay_params_default((engram_decay_model)9, &p), ENGRAM_EINVAL);
  CHECK(s[0] == 1.0f);
}

int main(void)
{
  rng = test_seed("decay");
  engram_arena_config cfg = { .size = 1 << 20, .align = 16, .overflow = ENGRAM_OVERFLOW_ERROR };
  arena = engram_arena_create(&cfg);
  RUN_ISA(known_points);
  RUN_ISA(models_match_double_precision);
  RUN_ISA(tails_and_misaligned_starts);
  RUN_ISA(special_ages);
  RUN_ISA(special_ages_in_blocks);
  RUN(isa_variants_agree_with_scalar);
  RUN(bad_parameters_are_errors);
  engram_arena_destroy(arena);
  return test_done();
}
