/* rng.h - small, fast, seedable random numbers (private, header-only).
 *
 * xoshiro256** seeded through splitmix64 (Blackman & Vigna). Streams are
 * values, copied freely; sm_hash64 gives counter-based randomness (a pure
 * function of its inputs), used where the result must not depend on the order
 * or thread in which numbers are drawn (dropout masks). */
#ifndef SM_RNG_H
#define SM_RNG_H
#include <math.h>
#include <stdint.h>

typedef struct sm_rng { uint64_t s[4]; } sm_rng;

static inline uint64_t sm_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A well-mixed 64-bit function of (a, b): counter-based randomness. */
static inline uint64_t sm_hash64(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ull);
    uint64_t h = sm_splitmix64(&x);
    return h ^ sm_splitmix64(&x);
}

static inline void sm_rng_seed(sm_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = sm_splitmix64(&seed);
}

static inline uint64_t sm_rng_u64(sm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t v = s[1] * 5;
    uint64_t res = ((v << 7) | (v >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* Uniform in [0, 1) with 24 (float) or 53 (double) random bits. */
static inline float sm_rng_float(sm_rng *r) { return (float)(sm_rng_u64(r) >> 40) * 0x1p-24f; }
static inline double sm_rng_double(sm_rng *r) { return (double)(sm_rng_u64(r) >> 11) * 0x1p-53; }

/* Uniform integer in [0, n), n > 0, without modulo bias (rejection). */
static inline uint64_t sm_rng_below(sm_rng *r, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = sm_rng_u64(r); while (x >= lim);
    return x % n;
}

/* Standard normal (Box-Muller, one value per call). */
static inline double sm_rng_normal(sm_rng *r)
{
    double u = sm_rng_double(r), v = sm_rng_double(r);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Fisher-Yates shuffle of idx[0..n). */
static inline void sm_rng_shuffle(sm_rng *r, int64_t *idx, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)sm_rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}
#endif
