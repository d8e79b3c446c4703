/* test_idx.c - IDX reader and datasets: synthetic files (gz and plain),
 * every refusal with its message, and the real Fashion-MNIST when installed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "simile.h"
#include "harness.h"
#include "idx.h"


static void path_of(char *buf, size_t cap, const char *sub, const char *name)
{
    snprintf(buf, cap, "%s/%s%s%s", th_tmp_dir(), sub, *sub ? "/" : "", name);
}

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24); b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8); b[3] = (unsigned char)v;
}

/* Writes bytes to path, gzipped or plain. */
static void write_bytes(const char *path, const void *p, size_t n, int gz)
{
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (n) gzwrite(g, p, (unsigned)n);
        gzclose(g);
    } else {
        FILE *f = fopen(path, "wb");
        if (n) fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* An IDX file: magic, dims[0..nd), then `count` bytes of pattern data. */
static void write_idx(const char *path, uint32_t magic, int nd, const uint32_t *dims, size_t count,
                      const uint8_t *data, int gz)
{
    size_t hl = 4 + 4 * (size_t)nd;
    unsigned char *b = malloc(hl + count + 1);
    put_be32(b, magic);
    for (int i = 0; i < nd; i++) put_be32(b + 4 + 4 * i, dims[i]);
    if (count) memcpy(b + hl, data, count);
    write_bytes(path, b, hl + count, gz);
    free(b);
}

/* A dataset directory: n images of h x w (pixel = (i*h*w + j) % 251) and
 * labels i % ncls; ext is "" or ".gz". */
static void write_split(const char *sub, const char *prefix, uint32_t n, uint32_t h, uint32_t w, int ncls,
                        uint32_t nlabels, int gz)
{
    char p[512], name[128];
    uint8_t *img = malloc((size_t)n * h * w), *lab = malloc(nlabels);
    for (size_t i = 0; i < (size_t)n * h * w; i++) img[i] = (uint8_t)(i % 251);
    for (uint32_t i = 0; i < nlabels; i++) lab[i] = (uint8_t)(i % (uint32_t)ncls);
    uint32_t d3[3] = { n, h, w }, d1[1] = { nlabels };
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    path_of(p, sizeof p, sub, name);
    write_idx(p, SM_IDX_MAGIC_IMAGES, 3, d3, (size_t)n * h * w, img, gz);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    path_of(p, sizeof p, sub, name);
    write_idx(p, SM_IDX_MAGIC_LABELS, 1, d1, nlabels, lab, gz);
    free(img);
    free(lab);
}

static void mkdir_sub(const char *sub)
{
    char p[512];
    path_of(p, sizeof p, sub, "");
    mkdir(p, 0755);
}

#define HAS(e, s) (strstr((e).msg, (s)) != NULL)

static void test_idx_files(void)
{
    char p[512];
    sm_err e = {0};
    sm_idx x;
    uint8_t data[7 * 3 * 4];
    for (int i = 0; i < 84; i++) data[i] = (uint8_t)(i * 3);
    uint32_t d3[3] = { 7, 3, 4 };

    for (int gz = 0; gz < 2; gz++) {
        path_of(p, sizeof p, "", gz ? "a.gz" : "a");
        write_idx(p, SM_IDX_MAGIC_IMAGES, 3, d3, 84, data, gz);
        CHECK(sm_idx_read_images(p, &x, &e) == SM_OK);
        CHECK(x.n == 7 && x.h == 3 && x.w == 4 && x.data);
        CHECK(x.data && memcmp(x.data, data, 84) == 0);
        sm_idx_free(&x);
        CHECK(x.data == NULL && x.n == 0);
        /* read as labels: a clear "wrong kind" */
        CHECK(sm_idx_read_labels(p, &x, &e) == SM_ERR_FORMAT);
        CHECKF(HAS(e, "not an IDX label file") && HAS(e, "magic 0x00000803") && HAS(e, "image file"), "%s", e.msg);
        CHECK(x.data == NULL);
    }
    uint32_t d1[1] = { 5 };
    path_of(p, sizeof p, "", "l.gz");
    write_idx(p, SM_IDX_MAGIC_LABELS, 1, d1, 5, data, 1);
    CHECK(sm_idx_read_labels(p, &x, &e) == SM_OK);
    CHECK(x.n == 5 && x.h == 1 && x.w == 1 && x.data && x.data[4] == 12);
    sm_idx_free(&x);
    sm_idx_free(&x);     /* twice: still fine */
    sm_idx_free(NULL);

    /* missing file */
    path_of(p, sizeof p, "", "nope");
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_IO);
    CHECKF(HAS(e, "cannot open") && HAS(e, "nope") && HAS(e, "No such file"), "%s", e.msg);

    /* wrong magic */
    path_of(p, sizeof p, "", "magic");
    write_idx(p, 0x12345678u, 3, d3, 84, data, 0);
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "not an IDX image file") && HAS(e, "magic 0x12345678") && HAS(e, "magic"), "%s", e.msg);

    /* float32 IDX: refused with a word on why */
    write_idx(p, 0x00000d03u, 3, d3, 84, data, 0);
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "unsigned byte"), "%s", e.msg);

    /* gzipped twice */
    {
        path_of(p, sizeof p, "", "once.gz");
        write_idx(p, SM_IDX_MAGIC_IMAGES, 3, d3, 84, data, 1);
        FILE *f = fopen(p, "rb");
        unsigned char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        path_of(p, sizeof p, "", "twice.gz");
        write_bytes(p, buf, n, 1);
        CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_FORMAT);
        CHECKF(HAS(e, "gzipped twice"), "%s", e.msg);
    }

    /* empty files, plain and gz */
    path_of(p, sizeof p, "", "empty");
    write_bytes(p, "", 0, 0);
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "empty file"), "%s", e.msg);
    path_of(p, sizeof p, "", "empty.gz");
    write_bytes(p, "", 0, 1);
    CHECK(sm_idx_read_labels(p, &x, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "empty file"), "%s", e.msg);

    /* truncated header, truncated data (plain and gz) */
    path_of(p, sizeof p, "", "shorthdr");
    write_idx(p, SM_IDX_MAGIC_IMAGES, 1, d3, 0, data, 0);   /* magic + 1 dim of the 3 */
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_IO);
    CHECKF(HAS(e, "truncated") && HAS(e, "header"), "%s", e.msg);
    for (int gz = 0; gz < 2; gz++) {
        path_of(p, sizeof p, "", gz ? "short.gz" : "short");
        write_idx(p, SM_IDX_MAGIC_IMAGES, 3, d3, 50, data, gz);
        CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_IO);
        CHECKF(HAS(e, "truncated: expected 84 bytes of image data, got 50"), "%s", e.msg);
        CHECK(x.data == NULL);
    }
    /* a gzip stream cut in the middle */
    {
        static uint8_t big[20000];
        for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)((i * 2654435761u) >> 13);
        uint32_t db[3] = { 20, 20, 50 };
        path_of(p, sizeof p, "", "full.gz");
        write_idx(p, SM_IDX_MAGIC_IMAGES, 3, db, sizeof big, big, 1);
        FILE *f = fopen(p, "rb");
        static unsigned char buf[40000];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        path_of(p, sizeof p, "", "cut.gz");
        write_bytes(p, buf, n / 2, 0);
        CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_IO);
        CHECKF(HAS(e, "cut.gz") && (HAS(e, "truncated") || HAS(e, "gzip")), "%s", e.msg);
        CHECK(x.data == NULL);
    }

    /* dims: zero, absurd, large claim with little data */
    uint32_t dz[3] = { 7, 0, 4 };
    path_of(p, sizeof p, "", "zero");
    write_idx(p, SM_IDX_MAGIC_IMAGES, 3, dz, 0, data, 0);
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "dimension 1") && HAS(e, "is 0"), "%s", e.msg);
    uint32_t dh[3] = { 0xffffffffu, 0xffffffffu, 0xffffffffu };
    write_idx(p, SM_IDX_MAGIC_IMAGES, 3, dh, 0, data, 0);
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "absurd"), "%s", e.msg);
    uint32_t dl[3] = { 1000000, 28, 28 };
    write_idx(p, SM_IDX_MAGIC_IMAGES, 3, dl, 84, data, 1);
    CHECK(sm_idx_read_images(p, &x, &e) == SM_ERR_IO);
    CHECKF(HAS(e, "expected 784000000 bytes of image data, got 84"), "%s", e.msg);

    /* trailing bytes */
    path_of(p, sizeof p, "", "trail");
    write_idx(p, SM_IDX_MAGIC_LABELS, 1, d1, 6, data, 0);
    CHECK(sm_idx_read_labels(p, &x, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "trailing"), "%s", e.msg);
}

static void test_dataset_dir(void)
{
    char dir[512];
    sm_err e = {0};
    sm_dataset tr, te;
    mkdir_sub("d1");
    write_split("d1", "train", 7, 3, 4, 3, 7, 1);   /* gz */
    write_split("d1", "t10k", 5, 3, 4, 4, 5, 0);    /* plain */
    path_of(dir, sizeof dir, "d1", "");
    CHECKF(sm_dataset_open(dir, &tr, &te, &e) == SM_OK, "%s", e.msg);
    CHECK(tr.n == 7 && tr.c == 1 && tr.h == 3 && tr.w == 4);
    CHECK(te.n == 5 && te.c == 1 && te.h == 3 && te.w == 4);
    CHECK(tr.n_classes == 4 && te.n_classes == 4);   /* max label over both splits + 1 */
    CHECK(tr.labels && tr.labels[5] == 2 && te.labels[3] == 3);
    CHECK(tr.images && tr.images[13] == 13 && te.images[83 - 24] == 59);
    CHECK(tr.class_names && strcmp(tr.class_names[3], "3") == 0);

    /* subsets */
    sm_dataset s;
    int32_t cls[2] = { 2, 0 };
    CHECK(sm_dataset_subset(&tr, cls, 2, true, &s, &e) == SM_OK);
    /* labels of tr: 0 1 2 0 1 2 0 -> kept images 0 2 3 5 6 */
    CHECK(s.n == 5 && s.n_classes == 2);
    CHECK(s.labels[0] == 1 && s.labels[1] == 0 && s.labels[2] == 1 && s.labels[3] == 0 && s.labels[4] == 1);
    CHECK(memcmp(s.images + 12, tr.images + 24, 12) == 0);
    CHECK(strcmp(s.class_names[0], "2") == 0 && strcmp(s.class_names[1], "0") == 0);
    sm_dataset_free(&s);
    CHECK(sm_dataset_subset(&tr, cls, 2, false, &s, &e) == SM_OK);
    CHECK(s.n == 5 && s.n_classes == 4 && s.labels[1] == 2 && strcmp(s.class_names[2], "2") == 0);
    sm_dataset_free(&s);
    int32_t dup[2] = { 1, 1 }, out[1] = { 4 }, none[1] = { 3 };
    CHECK(sm_dataset_subset(&tr, dup, 2, true, &s, &e) == SM_ERR_ARG && HAS(e, "twice"));
    CHECK(sm_dataset_subset(&tr, out, 1, true, &s, &e) == SM_ERR_ARG && HAS(e, "out of range"));
    CHECKF(sm_dataset_subset(&tr, none, 1, true, &s, &e) == SM_ERR_ARG && HAS(e, "no image"), "%s", e.msg);
    CHECK(s.images == NULL && s.n == 0);
    sm_dataset_free(&tr);
    sm_dataset_free(&te);
    sm_dataset_free(&tr);
    sm_dataset_free(NULL);

    /* only one split */
    CHECK(sm_dataset_open(dir, NULL, &te, &e) == SM_OK && te.n == 5 && te.n_classes == 4);
    sm_dataset_free(&te);
    CHECK(sm_dataset_open(dir, NULL, NULL, &e) == SM_ERR_ARG);

    /* counts that disagree */
    mkdir_sub("d2");
    write_split("d2", "train", 7, 3, 4, 3, 6, 0);
    write_split("d2", "t10k", 5, 3, 4, 3, 5, 0);
    path_of(dir, sizeof dir, "d2", "");
    CHECK(sm_dataset_open(dir, &tr, &te, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "7 images") && HAS(e, "6 labels"), "%s", e.msg);
    CHECK(tr.images == NULL && te.images == NULL);

    /* a missing file */
    mkdir_sub("d3");
    write_split("d3", "train", 7, 3, 4, 3, 7, 0);
    path_of(dir, sizeof dir, "d3", "");
    CHECK(sm_dataset_open(dir, &tr, &te, &e) == SM_ERR_IO);
    CHECKF(HAS(e, "no t10k-images-idx3-ubyte[.gz]"), "%s", e.msg);
    CHECK(sm_dataset_open(dir, &tr, NULL, &e) == SM_OK && tr.n == 7);   /* train alone is there */
    sm_dataset_free(&tr);

    /* neither a name nor a directory */
    path_of(dir, sizeof dir, "", "no-such-dir");
    CHECK(sm_dataset_open(dir, &tr, &te, &e) == SM_ERR_IO);
    CHECKF(HAS(e, "neither a known dataset"), "%s", e.msg);

    /* named sets under SIMILE_DATA_ROOT: missing, then present */
    setenv("SIMILE_DATA_ROOT", th_tmp_dir(), 1);
    CHECK(sm_dataset_open("fashion-mnist", &tr, &te, &e) == SM_ERR_IO);
    CHECKF(HAS(e, "install it with: apt-get install dataset-fashion-mnist"), "%s", e.msg);
    CHECK(sm_dataset_open("mnist", &tr, &te, &e) == SM_ERR_IO);
    CHECKF(HAS(e, "MNIST not found"), "%s", e.msg);
    mkdir_sub("fashion-mnist");
    write_split("fashion-mnist", "train", 7, 3, 4, 3, 7, 1);
    write_split("fashion-mnist", "t10k", 5, 3, 4, 2, 5, 1);
    CHECK(sm_dataset_open_split("fashion-mnist:test", SM_SPLIT_NONE, &te, &e) == SM_OK);
    CHECK(te.n == 5 && te.n_classes == 10 && strcmp(te.class_names[0], "T-shirt/top") == 0 &&
          strcmp(te.class_names[9], "Ankle boot") == 0);
    sm_dataset_free(&te);
    mkdir_sub("mnist");
    write_split("mnist", "train", 4, 2, 2, 12, 4, 0);
    write_split("mnist", "t10k", 12, 2, 2, 12, 12, 0);   /* label 11: not a digit */
    CHECK(sm_dataset_open("mnist", &tr, &te, &e) == SM_ERR_FORMAT);
    CHECKF(HAS(e, "label 11 is out of range"), "%s", e.msg);
    CHECK(sm_dataset_open("mnist", &tr, NULL, &e) == SM_OK && tr.n_classes == 10 && strcmp(tr.class_names[7], "7") == 0);
    sm_dataset_free(&tr);
    unsetenv("SIMILE_DATA_ROOT");
}

static void test_parse(void)
{
    char name[64];
    sm_split sp;
    sm_err e = {0};
    CHECK(sm_dataset_parse_spec("fashion-mnist:test", name, sizeof name, &sp, SM_SPLIT_NONE, &e) == SM_OK);
    CHECK(strcmp(name, "fashion-mnist") == 0 && sp == SM_SPLIT_TEST);
    CHECK(sm_dataset_parse_spec("mnist:train", name, sizeof name, &sp, SM_SPLIT_TEST, &e) == SM_OK);
    CHECK(strcmp(name, "mnist") == 0 && sp == SM_SPLIT_TRAIN);
    CHECK(sm_dataset_parse_spec("fashion-mnist", name, sizeof name, &sp, SM_SPLIT_TRAIN, &e) == SM_OK);
    CHECK(strcmp(name, "fashion-mnist") == 0 && sp == SM_SPLIT_TRAIN);
    CHECK(sm_dataset_parse_spec("fashion-mnist", name, sizeof name, &sp, SM_SPLIT_NONE, &e) == SM_ERR_ARG);
    CHECKF(HAS(e, "NAME:train or NAME:test"), "%s", e.msg);
    CHECK(sm_dataset_parse_spec("fashion-mnist:val", name, sizeof name, &sp, SM_SPLIT_TRAIN, &e) == SM_ERR_ARG);
    CHECKF(HAS(e, "unknown split 'val'"), "%s", e.msg);
    CHECK(sm_dataset_parse_spec("/data/a:b/fm:test", name, sizeof name, &sp, SM_SPLIT_NONE, &e) == SM_OK);
    CHECK(strcmp(name, "/data/a:b/fm") == 0 && sp == SM_SPLIT_TEST);
    CHECK(sm_dataset_parse_spec("/data/a:b/fm", name, sizeof name, &sp, SM_SPLIT_TEST, &e) == SM_OK);
    CHECK(strcmp(name, "/data/a:b/fm") == 0);
    CHECK(sm_dataset_parse_spec(":test", name, sizeof name, &sp, SM_SPLIT_NONE, &e) == SM_ERR_ARG);
    CHECK(sm_dataset_parse_spec("", name, sizeof name, &sp, SM_SPLIT_TRAIN, &e) == SM_ERR_ARG);
    CHECK(sm_dataset_parse_spec("fashion-mnist:test", name, 5, &sp, SM_SPLIT_NONE, &e) == SM_ERR_ARG);
    CHECK(sm_dataset_open_split("fashion-mnist:dev", SM_SPLIT_NONE, &(sm_dataset){0}, &e) == SM_ERR_ARG);

    int32_t c[16];
    int64_t k;
    CHECK(sm_dataset_parse_classes("0-5", c, 16, &k, &e) == SM_OK && k == 6 && c[0] == 0 && c[5] == 5);
    CHECK(sm_dataset_parse_classes("6,7,8,9", c, 16, &k, &e) == SM_OK && k == 4 && c[0] == 6 && c[3] == 9);
    CHECK(sm_dataset_parse_classes("0-2,7", c, 16, &k, &e) == SM_OK && k == 4 && c[2] == 2 && c[3] == 7);
    CHECK(sm_dataset_parse_classes("5-2", c, 16, &k, &e) == SM_ERR_ARG && HAS(e, "backwards"));
    CHECK(sm_dataset_parse_classes("1,", c, 16, &k, &e) == SM_ERR_ARG && HAS(e, "bad syntax"));
    CHECK(sm_dataset_parse_classes("a", c, 16, &k, &e) == SM_ERR_ARG);
    CHECK(sm_dataset_parse_classes("1 2", c, 16, &k, &e) == SM_ERR_ARG);
    CHECK(sm_dataset_parse_classes("0-99", c, 16, &k, &e) == SM_ERR_ARG && HAS(e, "more than 16"));
    CHECK(sm_dataset_parse_classes("", c, 16, &k, &e) == SM_ERR_ARG);
}

static void test_real_fashion(void)
{
    if (access(SM_DATASET_ROOT "/fashion-mnist", F_OK) != 0) {
        printf("skipped: real Fashion-MNIST (apt-get install dataset-fashion-mnist)\n");
        return;
    }
    sm_err e = {0};
    sm_dataset tr, te;
    CHECKF(sm_dataset_open("fashion-mnist", &tr, &te, &e) == SM_OK, "%s", e.msg);
    CHECK(tr.n == 60000 && te.n == 10000 && tr.c == 1 && tr.h == 28 && tr.w == 28 && te.h == 28);
    CHECK(tr.n_classes == 10 && te.n_classes == 10);
    CHECK(tr.class_names && strcmp(tr.class_names[0], "T-shirt/top") == 0 && strcmp(tr.class_names[9], "Ankle boot") == 0);
    int64_t cnt[10] = {0}, tcnt[10] = {0};
    for (int64_t i = 0; i < tr.n; i++) cnt[tr.labels[i]]++;
    for (int64_t i = 0; i < te.n; i++) tcnt[te.labels[i]]++;
    int even = 1;
    for (int c = 0; c < 10; c++) even &= cnt[c] == 6000 && tcnt[c] == 1000;
    CHECK(even);
    /* mean pixel of the training set: the loader's default normalization */
    double sum = 0;
    for (int64_t i = 0; i < tr.n * 784; i++) sum += tr.images[i];
    double mean = sum / (double)(tr.n * 784) / 255.0;
    CHECKF(fabs(mean - 0.2860) < 5e-4, "mean %f", mean);
    int32_t seen[6] = { 0, 1, 2, 3, 4, 5 };
    sm_dataset s;
    CHECK(sm_dataset_subset(&tr, seen, 6, true, &s, &e) == SM_OK && s.n == 36000 && s.n_classes == 6);
    sm_dataset_free(&s);
    sm_dataset_free(&tr);
    sm_dataset_free(&te);
    CHECK(sm_dataset_open_split("fashion-mnist:test", SM_SPLIT_NONE, &te, &e) == SM_OK && te.n == 10000);
    sm_dataset_free(&te);
}

int main(void)
{
    if (th_tmp_make("idx")) return 1;
    test_idx_files();
    test_dataset_dir();
    test_parse();
    test_real_fashion();
    th_tmp_remove();
    return th_done();
}
