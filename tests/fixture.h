/* fixture.h - reader for the golden test fixtures written by tools/gen_ref.py
 * (format "SMFX" version 1, specified at the top of that script): named
 * float32 tensors with int64 dims, little-endian.
 *
 *   fx_file *fx = fx_open("tests/fixtures/kernels_ref.bin");   // NULL + message on error
 *   int64_t n;
 *   const float *x = fx_get(fx, "conv0/x", &n);                // NULL if missing
 *   fx_close(fx);                                               // frees every tensor
 *
 * The whole file is read into memory once; fx_get returns pointers into it
 * (4-byte aligned copies), valid until fx_close. Header-only, static functions,
 * for use by any test program. Assumes a little-endian host (checked). */
#ifndef SM_FIXTURE_H
#define SM_FIXTURE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FX_MAX_DIMS 8

typedef struct fx_tensor {
    char *name;
    int ndim;
    int64_t dims[FX_MAX_DIMS];
    int64_t count;
    float *data;
} fx_tensor;

typedef struct fx_file {
    int ntensors;
    fx_tensor *t;
} fx_file;

static inline void fx_close(fx_file *fx)
{
    if (!fx)
        return;
    for (int i = 0; i < fx->ntensors; i++) {
        free(fx->t[i].name);
        free(fx->t[i].data);
    }
    free(fx->t);
    free(fx);
}

static inline int fx__read(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

static inline uint32_t fx__u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Opens and fully reads a fixture file; prints why and returns NULL on failure. */
static inline fx_file *fx_open(const char *path)
{
    const uint32_t one = 1;
    unsigned char hdr[12], b4[4];
    if (*(const unsigned char *)&one != 1) {
        fprintf(stderr, "fixture: big-endian hosts are not supported\n");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fixture: cannot open '%s' (run the test from the repository root; "
                        "regenerate with `make fixtures`)\n", path);
        return NULL;
    }
    fx_file *fx = calloc(1, sizeof *fx);
    if (!fx || !fx__read(f, hdr, 12) || memcmp(hdr, "SMFX", 4) != 0 || fx__u32(hdr + 4) != 1) {
        fprintf(stderr, "fixture: '%s' is not an SMFX version 1 file\n", path);
        goto fail;
    }
    uint32_t count = fx__u32(hdr + 8);
    fx->t = calloc(count ? count : 1, sizeof *fx->t);
    if (!fx->t)
        goto fail;
    for (uint32_t i = 0; i < count; i++) {
        fx_tensor *t = &fx->t[i];
        fx->ntensors = (int)i + 1;
        if (!fx__read(f, b4, 4))
            goto trunc;
        uint32_t len = fx__u32(b4);
        if (len > 4096 || !(t->name = calloc(len + 1, 1)) || !fx__read(f, t->name, len))
            goto trunc;
        if (!fx__read(f, b4, 4) || (t->ndim = (int)fx__u32(b4)) > FX_MAX_DIMS ||
            !fx__read(f, t->dims, (size_t)t->ndim * 8))
            goto trunc;
        t->count = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->dims[d] < 0 || t->dims[d] > (1 << 28))
                goto trunc;
            t->count *= t->dims[d];
        }
        if (t->count > (1 << 28) || !(t->data = malloc((size_t)(t->count ? t->count : 1) * 4)) ||
            !fx__read(f, t->data, (size_t)t->count * 4))
            goto trunc;
    }
    fclose(f);
    return fx;
trunc:
    fprintf(stderr, "fixture: '%s' is truncated or corrupt (tensor %d)\n", path, fx->ntensors);
fail:
    fclose(f);
    fx_close(fx);
    return NULL;
}

/* The tensor called `name`, or NULL. */
static inline const fx_tensor *fx_find(const fx_file *fx, const char *name)
{
    for (int i = 0; fx && i < fx->ntensors; i++)
        if (strcmp(fx->t[i].name, name) == 0)
            return &fx->t[i];
    return NULL;
}

/* Data of tensor `name` (count elements into *count if non-NULL), or NULL if missing. */
static inline const float *fx_get(const fx_file *fx, const char *name, int64_t *count)
{
    const fx_tensor *t = fx_find(fx, name);
    if (count)
        *count = t ? t->count : 0;
    return t ? t->data : NULL;
}
/* Whether the fixture holds case `cs` (its tensor "<cs>/cfg"). */
static inline int fx_has_case(fx_file *fx, const char *cs)
{
    char name[128];
    snprintf(name, sizeof name, "%s/cfg", cs);
    return fx_get(fx, name, NULL) != NULL;
}

#endif
