/*
 * decay.c — strength decay: parameter checks, the model's constants, and the call into the
 * ISA variant (decay_scalar.c / decay_avx2.c / decay_avx512.c). See engram.h ("decay") for
 * the models and the error bounds, vmath.h for how exp2 / log2 are computed.
 */
#include "kernels.h"

#include <math.h>

int engram_decay_params_default(engram_decay_model model, engram_decay_params *p)
{
  if (!p)
    return engram_fail(ENGRAM_EINVAL, "decay: params is NULL");
  if ((int)model < ENGRAM_DECAY_HALF_LIFE || (int)model > ENGRAM_DECAY_TWO_COMPONENT)
    return engram_fail(ENGRAM_EINVAL, "decay: unknown model %d (expected 0 half_life, 1 time_constant, "
                                      "2 power, 3 two_component)", (int)model);
  p->model = model;
  p->tau = 1.96 * 3600.0;          /* the hippocampal time constant of Murre & Dros (2015) */
  p->half_life = p->tau * M_LN2;
  p->beta = 0.18;                  /* Bahrick's permastore exponent */
  p->unit = 86400.0;
  p->k = 3;
  p->floor = 0.01f;
  return 0;
}

static int bad(const char *field, double v, const char *want)
{
  return engram_fail(ENGRAM_EINVAL, "decay: bad %s %g (expected %s)", field, v, want);
}

int engram_decay_apply(engram_arena *a, const engram_decay_params *p, float *strength,
                       const float *age, const uint32_t *access, size_t n)
{
  if (!p)
    return engram_fail(ENGRAM_EINVAL, "decay: params is NULL");
  if (n && (!strength || !age))
    return engram_fail(ENGRAM_EINVAL, "decay: %s is NULL", !strength ? "strength" : "age");
  int model = (int)p->model;
  int exp_part = model == ENGRAM_DECAY_HALF_LIFE || model == ENGRAM_DECAY_TWO_COMPONENT;
  int pow_part = model == ENGRAM_DECAY_POWER || model == ENGRAM_DECAY_TWO_COMPONENT;
  if (model < ENGRAM_DECAY_HALF_LIFE || model > ENGRAM_DECAY_TWO_COMPONENT)
    return engram_fail(ENGRAM_EINVAL, "decay: unknown model %d (expected 0 half_life, 1 time_constant, "
                                      "2 power, 3 two_component)", model);
  if (exp_part && !(p->half_life > 0 && isfinite(p->half_life)))
    return bad("half_life", p->half_life, "seconds > 0");
  if (model == ENGRAM_DECAY_TIME_CONSTANT && !(p->tau > 0 && isfinite(p->tau)))
    return bad("tau", p->tau, "seconds > 0");
  if (pow_part && !(p->beta >= 0 && p->beta <= 64))
    return bad("beta", p->beta, "0 to 64");
  if (pow_part && !(p->unit > 0 && isfinite(p->unit)))
    return bad("unit", p->unit, "seconds > 0");
  if (model == ENGRAM_DECAY_TWO_COMPONENT && !(p->floor >= 0 && p->floor <= 1))
    return bad("floor", p->floor, "0 to 1");
  if (model == ENGRAM_DECAY_TWO_COMPONENT && n && !access)
    return engram_fail(ENGRAM_EINVAL, "decay: the two_component model needs access counts");
  if (!engram_kernel_arena(a, "decay"))
    return ENGRAM_ENOMEM;
  int rc;
  const engram_kernel_ops *k = engram_kernels_get(&rc);
  if (!k)
    return rc;
  if (n == 0)
    return 0;

  /* 2^-(t * c): c = 1/half_life, or log2(e)/tau, kept as a float pair so the reduction
   * t*c - n stays exact to float precision for any age. */
  double c = model == ENGRAM_DECAY_TIME_CONSTANT ? M_LOG2E / p->tau : 1.0 / p->half_life;
  float c_hi = (float)c, c_lo = (float)(c - (double)c_hi);
  float uinv = pow_part ? (float)(1.0 / p->unit) : 0.0f;
  float beta = (float)p->beta;

  switch (model) {
  case ENGRAM_DECAY_HALF_LIFE:
  case ENGRAM_DECAY_TIME_CONSTANT:
    k->decay_exp2(strength, age, n, c_hi, c_lo, 0.0f);
    break;
  case ENGRAM_DECAY_POWER:
    k->decay_power(strength, age, n, uinv, beta, 0.0f);
    break;
  default:
    k->decay_two(strength, age, access, n, p->k, c_hi, c_lo, uinv, beta, p->floor);
    break;
  }
  return 0;
}
