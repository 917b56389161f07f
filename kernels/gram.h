/*
 * gram.h — the blocked all-pairs cosine pass, written once and compiled per ISA: included at the
 * end of similarity_avx2.c / similarity_avx512.c after they define the register tile
 * (tile(), MR x NR), the vector type vf with VL lanes, the V_* epilogue primitives and ISA.
 *
 * Loop nest (BLIS-style, for C = A B^T with both operands row-major):
 *   for each column block jb of NC rows of B:   pack them once into k-major slivers of NR
 *     for each row block ib of MC rows of A:    (symmetric: only blocks that reach i <= j)
 *       for each KC-chunk of the dimension:     the B sliver chunk (KC x NR) stays in L1
 *         for each sliver, each MR rows of A:   tile() accumulates into the C block
 *       epilogue: scale by the inverse norms, zero invalid vectors, clamp, then write the
 *                 matrix (and its mirror) or test the pair threshold / top-k bounds lane-wise,
 *                 so pairs and top-k never need the N x N matrix.
 * A is read in place (broadcast per k from MR row pointers), so only B is packed: n*d floats
 * of packing per pass, against n^2*d/2 multiply-adds.
 */
#ifndef ISA
#error "gram.h is included by an ISA file"
#endif

#define GRAM_CAT2(a, b) a##_##b
#define GRAM_CAT(a, b) GRAM_CAT2(a, b)

#define MC (16 * MR)   /* rows of A per block */
#define NC (4 * NR)    /* rows of B per block */
#define KC 256

/* k-major slivers: sliver s holds rows [s*NR, s*NR + NR) as bp[s*NR*d + k*NR + jj]; rows past
 * nj are zero. Written k by k, a whole NR-float line at a time, reading the NR rows as NR
 * sequential streams (with the ISA's register transpose when it has one): written row by row,
 * every store landed on another line (stride NR floats), and packing took a third of an
 * all-pairs pass over 100 rows. */
static void pack_b(const float *b, size_t d, size_t nj, float *bp)
{
  for (size_t s = 0; s < nj; s += NR) {
    float *dst = bp + s * d;
    size_t live = nj - s < NR ? nj - s : NR;
    const float *src[NR];
#ifdef PACK_SLIVER   /* the ISA's register transpose; NULL rows are packed as zeros */
    for (size_t jj = 0; jj < NR; jj++)
      src[jj] = jj < live ? b + (s + jj) * d : NULL;
    PACK_SLIVER(src, d, dst);
#else
    for (size_t jj = 0; jj < NR; jj++)
      src[jj] = b + (s + (jj < live ? jj : 0)) * d;
    if (live == NR) {
      for (size_t k = 0; k < d; k++, dst += NR)
        for (size_t jj = 0; jj < NR; jj++)
          dst[jj] = src[jj][k];
    } else {
      for (size_t k = 0; k < d; k++, dst += NR)
        for (size_t jj = 0; jj < NR; jj++)
          dst[jj] = jj < live ? src[jj][k] : 0.0f;
    }
#endif
  }
}

static void epilogue(engram_sim_scan *s, size_t ib, size_t mi, size_t jb, size_t nj, const float *C)
{
  const int sym = s->symmetric, mode = s->mode;
  const vf one = V_SET1(1.0f), neg = V_SET1(-1.0f), thr = V_SET1(s->threshold);
  float lane[VL];
  for (size_t i = 0; i < mi; i++) {
    size_t gi = ib + i, j0 = 0;
    if (sym) {
      if (gi >= jb + nj)
        break;                               /* this row and the next are past the block's columns */
      j0 = gi > jb ? gi - jb : 0;
    }
    const float *crow = C + i * NC;
    const float invi = s->inv_a[gi];
    const vf vi = V_SET1(invi);
    for (size_t j = j0; j < nj; j += VL) {
      size_t nv = nj - j < VL ? nj - j : VL, gj = jb + j;
      unsigned lanes = nv == VL ? (unsigned)((1ull << VL) - 1) : (1u << nv) - 1;
      if (sym && gj == gi)
        lanes &= ~1u;                        /* the diagonal is not a pair */
      vf ivj = nv == VL ? V_LOAD(s->inv_b + gj) : V_LOAD_N(s->inv_b + gj, nv);
      vf x = V_MUL(V_MUL(V_LOAD(crow + j), vi), ivj);
      x = V_FIX(x, ivj);
      x = V_MIN(V_MAX(x, neg), one);
      if (mode & SCAN_MATRIX) {
        float *o = s->out + gi * s->ldo + gj;
        if (nv == VL)
          V_STORE(o, x);
        else
          V_STORE_N(o, x, nv);
        if (sym) {
          V_STORE(lane, x);
          for (size_t l = 0; l < nv; l++)
            s->out[(gj + l) * s->ldo + gi] = lane[l];
        }
      }
      if (mode & SCAN_PAIRS) {
        unsigned bits = V_GE_BITS(x, thr) & lanes;
        if (bits) {
          V_STORE(lane, x);
          for (; bits; bits &= bits - 1) {
            unsigned l = (unsigned)__builtin_ctz(bits);
            engram_sim_emit_pair(s, (uint32_t)gi, (uint32_t)(gj + l), lane[l]);
          }
        }
      }
      if (mode & SCAN_TOPK) {
        unsigned br = V_GE_BITS(x, V_SET1(s->kth[gi])) & lanes;
        unsigned bc = 0;
        if (sym)
          bc = V_GE_BITS(x, nv == VL ? V_LOAD(s->kth + gj) : V_LOAD_N(s->kth + gj, nv)) & lanes;
        if (br | bc) {
          V_STORE(lane, x);
          for (; br; br &= br - 1) {
            unsigned l = (unsigned)__builtin_ctz(br);
            engram_sim_topk_push(s, gi, (uint32_t)(gj + l), lane[l]);
          }
          for (; bc; bc &= bc - 1) {
            unsigned l = (unsigned)__builtin_ctz(bc);
            engram_sim_topk_push(s, gj + l, (uint32_t)gi, lane[l]);
          }
        }
      }
    }
    if ((mode & SCAN_MATRIX) && sym && gi >= jb && gi < jb + nj)
      s->out[gi * s->ldo + gi] = invi != 0.0f ? 1.0f : 0.0f;
  }
}

size_t GRAM_CAT(engram_sim_scan_scratch, ISA)(size_t d)
{
  /* packed B block + C block + one vector of slack (the epilogue loads whole vectors) */
  return (NC * d + MC * NC + VL) * sizeof(float);
}

void GRAM_CAT(engram_sim_scan, ISA)(engram_sim_scan *s)
{
  const size_t d = s->d, na = s->na, nb = s->nb;
  float *bp = s->scratch;
  float *C = bp + NC * d;
  for (size_t jb = 0; jb < nb; jb += NC) {
    size_t nj = nb - jb < NC ? nb - jb : NC;
    pack_b(s->b + jb * d, d, nj, bp);
    size_t iend = s->symmetric ? (jb + nj < na ? jb + nj : na) : na;
    for (size_t ib = 0; ib < iend; ib += MC) {
      size_t mi = na - ib < MC ? na - ib : MC;
      for (size_t k0 = 0; k0 < d; k0 += KC) {
        size_t kc = d - k0 < KC ? d - k0 : KC;
        for (size_t js = 0; js < nj; js += NR) {
          for (size_t is = 0; is < mi; is += MR) {
            if (s->symmetric && ib + is > jb + js + NR - 1)
              continue;                      /* the whole tile lies below the diagonal */
            const float *ar[MR];
            for (size_t r = 0; r < MR; r++) {
              size_t gi = ib + is + r;
              ar[r] = s->a + (gi < na ? gi : ib) * d + k0;
            }
            tile(ar, bp + js * d + k0 * NR, kc, C + is * NC + js, NC, k0 > 0);
          }
        }
      }
      epilogue(s, ib, mi, jb, nj, C);
    }
  }
}
