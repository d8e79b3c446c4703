/* test_gallery.c - the SQLite gallery: SHA-256, model identity, create/open
 * refusals (not a gallery, other model, dim, damaged), enroll/remove/items,
 * idempotent enroll, search through every index against a naive oracle, the
 * HNSW file's stale detection, and "the file is untouched on every error". */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simile.h"
#include "harness.h"
#include "index.h"
#include "rng.h"


/* hex SHA-256 of a file, "" if missing: the "untouched" checks */
static void file_sum(const char *path, char out[65])
{
    uint8_t h[32];
    sm_err e;
    if (sm_sha256_file(path, h, &e)) out[0] = '\0';
    else sm_hex(out, h, 32);
}

static float *random_rows(int64_t n, int64_t d, uint64_t seed)
{
    sm_rng r;
    sm_rng_seed(&r, seed);
    float *x = malloc(sizeof(float) * (size_t)(n * d));
    int64_t nc = 10;
    float *c = malloc(sizeof(float) * (size_t)(nc * d));
    for (int64_t i = 0; i < nc * d; i++) c[i] = (float)sm_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (int64_t)sm_rng_below(&r, (uint64_t)nc);
        for (int64_t j = 0; j < d; j++) x[i * d + j] = c[k * d + j] + 0.5f * (float)sm_rng_normal(&r);
    }
    sm_l2norm_rows(x, x, n, d);
    free(c);
    return x;
}

static void test_sha256(void)
{
    struct { const char *msg; const char *hex; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"}};
    for (size_t i = 0; i < 3; i++) {
        sm_sha256 s;
        uint8_t h[32];
        char hex[65];
        sm_sha256_init(&s);
        sm_sha256_update(&s, v[i].msg, strlen(v[i].msg));
        sm_sha256_final(&s, h);
        sm_hex(hex, h, 32);
        CHECKF(!strcmp(hex, v[i].hex), "sha256('%s') = %s", v[i].msg, hex);
    }
    /* one million 'a', fed in odd-sized pieces */
    sm_sha256 s;
    uint8_t h[32];
    char hex[65], a[997];
    memset(a, 'a', sizeof a);
    sm_sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof a ? left : sizeof a;
        sm_sha256_update(&s, a, n);
        left -= n;
    }
    sm_sha256_final(&s, h);
    sm_hex(hex, h, 32);
    CHECKF(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "million a: %s", hex);
}

static void test_identity(void)
{
    char spec[4096];
    sm_err err = {0};
    sm_head_config hc;
    sm_head_config_default(&hc, "arcface", &err);
    sm_model *a = NULL, *b = NULL, *c = NULL, *l = NULL;
    CHECK(sm_zoo_spec("mnist-net", 16, spec, sizeof spec, &err) != NULL);
    CHECK(sm_model_new(&a, spec, &hc, 10, 1, &err) == SM_OK);
    CHECK(sm_model_new(&b, spec, &hc, 10, 1, &err) == SM_OK);
    CHECK(sm_model_new(&c, spec, &hc, 10, 2, &err) == SM_OK);
    if (!a || !b || !c) return;
    uint8_t ia[32], ib[32], ic[32], il[32], ia2[32];
    sm_model_identity(a, ia);
    sm_model_identity(b, ib);
    sm_model_identity(c, ic);
    CHECK(!memcmp(ia, ib, 32));
    CHECK(memcmp(ia, ic, 32) != 0);
    /* embedding does not change it; a save/load round trip keeps it */
    float x[2 * 28 * 28] = {0}, e[32];
    for (int i = 0; i < 2 * 28 * 28; i++) x[i] = (float)(i % 7) / 7.0f;
    CHECK(sm_model_embed(a, x, 2, e, &err) == SM_OK);
    sm_model_identity(a, ia2);
    CHECK(!memcmp(ia, ia2, 32));
    const char *mp = th_tmp("m.safetensors");
    CHECK(sm_model_save(a, mp, NULL, &err) == SM_OK);
    CHECK(sm_model_load(&l, mp, &err) == SM_OK);
    if (l) {
        sm_model_identity(l, il);
        CHECKF(!memcmp(ia, il, 32), "identity changed by save/load");
    }
    /* one parameter nudged: another identity */
    sm_model_params(b)[0] += 1e-7f;
    sm_model_identity(b, ib);
    CHECK(memcmp(ia, ib, 32) != 0);
    sm_model_free(a);
    sm_model_free(b);
    sm_model_free(c);
    sm_model_free(l);
}

static sm_gallery_model fake_model(uint8_t tag, int64_t dim, const char *name)
{
    sm_gallery_model m = {.dim = dim, .name = name};
    for (int i = 0; i < 32; i++) m.id[i] = (uint8_t)(tag * 31 + i);
    return m;
}

static void test_basic(void)
{
    sm_err err = {0};
    const int64_t d = 8;
    sm_gallery_model m = fake_model(1, d, "m1.safetensors");
    const char *gp = th_tmp("basic.db");
    sm_gallery *g = NULL;
    /* no file, no create: IO; create needs a model */
    CHECK(sm_gallery_open(&g, gp, &m, NULL, &err) == SM_ERR_IO && strstr(err.msg, "no such file"));
    sm_gallery_options co = {.create = true};
    CHECK(sm_gallery_open(&g, gp, NULL, &co, &err) == SM_ERR_ARG);
    CHECK(access(gp, F_OK) != 0);
    CHECKF(sm_gallery_open(&g, gp, &m, &co, &err) == SM_OK, "%s", err.msg);
    if (!g) return;
    float *x = random_rows(5, d, 3);
    uint8_t h[5][32];
    for (int i = 0; i < 5; i++) memset(h[i], i + 1, 32);
    sm_gallery_item it[5];
    const char *labels[5] = {"boot", "bag", "shirt", "boot", "coat"};
    for (int i = 0; i < 5; i++) {
        it[i] = (sm_gallery_item){.label = labels[i], .source = "x.png", .content = h[i], .embedding = x + i * d};
    }
    int64_t ids[5], added = -1;
    CHECK(sm_gallery_enroll(g, it, 3, ids, &added, &err) == SM_OK && added == 3);
    CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    /* the same three again: idempotent, same ids, nothing added, no new generation */
    sm_gallery_info info;
    CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.count == 3 && info.generation == 1);
    int64_t ids2[5];
    CHECK(sm_gallery_enroll(g, it, 3, ids2, &added, &err) == SM_OK && added == 0 && !memcmp(ids, ids2, 3 * sizeof ids[0]));
    CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.count == 3 && info.generation == 1);
    /* within one batch, a repeated image is added once */
    sm_gallery_item twice[2] = {it[3], it[3]};
    CHECK(sm_gallery_enroll(g, twice, 2, ids2, &added, &err) == SM_OK && added == 1 && ids2[0] == ids2[1]);
    /* file untouched by refused enrolls: same image with another label, empty
     * label, NaN, zero vector (all checked in a batch with valid items) */
    sqlite3 *raw;
    char before[65], after[65];
    file_sum(gp, before);
    sm_gallery_item bad = it[0];
    bad.label = "sneaker";
    sm_gallery_item batch[2] = {it[4], bad};
    CHECK(sm_gallery_enroll(g, batch, 2, ids2, &added, &err) == SM_ERR_CONFLICT && strstr(err.msg, "already enrolled as item 1"));
    batch[1] = it[4];
    batch[1].label = "";
    batch[1].content = NULL;
    CHECK(sm_gallery_enroll(g, batch, 2, ids2, &added, &err) == SM_ERR_ARG && strstr(err.msg, "empty label"));
    float nanrow[8] = {1, 0, 0, NAN, 0, 0, 0, 0}, zero[8] = {0};
    batch[1] = it[4];
    batch[1].content = NULL;
    batch[1].embedding = nanrow;
    CHECK(sm_gallery_enroll(g, batch, 2, ids2, &added, &err) == SM_ERR_NAN);
    batch[1].embedding = zero;
    CHECK(sm_gallery_enroll(g, batch, 2, ids2, &added, &err) == SM_ERR_NAN);
    CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.count == 4);
    /* removal of a known and an unknown id: refused as a whole */
    int64_t rm[2] = {2, 99};
    CHECK(sm_gallery_remove(g, rm, 2, &err) == SM_ERR_ARG && strstr(err.msg, "no item 99"));
    CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.count == 4);
    file_sum(gp, after);
    CHECKF(!strcmp(before, after), "gallery file changed by refused operations");

    /* search: exact, every stored row finds itself first */
    int64_t si[5 * 3];
    float ss[5 * 3];
    CHECK(sm_gallery_search(g, x, 3, d, 3, NULL, si, ss, &err) == SM_OK);
    CHECK(si[0] == 1 && si[3] == 2 && si[6] == 3 && fabsf(ss[0] - 1.0f) < 1e-5f);
    CHECK(sm_gallery_search(g, x, 1, d, 0, NULL, si, ss, &err) == SM_ERR_ARG && strstr(err.msg, "k must be"));
    CHECK(sm_gallery_search(g, x, 1, d, -1, NULL, si, ss, &err) == SM_ERR_ARG);
    CHECK(sm_gallery_search(g, x, 1, d + 1, 3, NULL, si, ss, &err) == SM_ERR_SHAPE && strstr(err.msg, "dimension mismatch"));
    CHECK(sm_gallery_search(g, zero, 1, d, 3, NULL, si, ss, &err) == SM_ERR_NAN);
    /* a query that is not unit length is normalised */
    float big[8];
    for (int j = 0; j < 8; j++) big[j] = 5.0f * x[d + j];
    CHECK(sm_gallery_search(g, big, 1, d, 1, NULL, si, ss, &err) == SM_OK && si[0] == 2 && fabsf(ss[0] - 1) < 1e-5f);
    /* k above the count: padded */
    CHECK(sm_gallery_search(g, x, 1, d, 5, NULL, si, ss, &err) == SM_OK && si[3] >= 1 && si[4] == -1 && isinf(ss[4]));

    /* remove: gone from search and listing; generation bumped */
    rm[0] = 2;
    CHECK(sm_gallery_remove(g, rm, 1, &err) == SM_OK);
    CHECK(sm_gallery_search(g, x + d, 1, d, 1, NULL, si, ss, &err) == SM_OK && si[0] != 2);
    sm_gallery_entry *e = NULL;
    int64_t ne = 0;
    CHECK(sm_gallery_items(g, 0, 100, &e, &ne, &err) == SM_OK && ne == 3);
    if (ne == 3) CHECK(e[0].id == 1 && !strcmp(e[0].label, "boot") && e[1].id == 3 && e[2].id == 4 && !strcmp(e[0].source, "x.png"));
    sm_gallery_entries_free(e, ne);
    CHECK(sm_gallery_items(g, 1, 1, &e, &ne, &err) == SM_OK && ne == 1 && e[0].id == 3);   /* a page */
    sm_gallery_entries_free(e, ne);
    CHECK(sm_gallery_items(g, 0, 0, &e, &ne, &err) == SM_ERR_ARG);
    sm_gallery_entry one;
    bool found;
    CHECK(sm_gallery_get(g, 3, &one, &found, &err) == SM_OK && found && !strcmp(one.label, "shirt"));
    sm_gallery_entry_clear(&one);
    CHECK(sm_gallery_get(g, 2, &one, &found, &err) == SM_OK && !found);
    /* ids are never reused */
    CHECK(sm_gallery_enroll(g, &it[1], 1, ids2, &added, &err) == SM_OK && ids2[0] == 5);
    CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.generation == 4 && !info.has_threshold);
    CHECK(sm_gallery_set_threshold(g, 0.42f, 0.01, 0.9, "test", &err) == SM_OK);
    CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.has_threshold && info.threshold == 0.42f &&
          info.threshold_far == 0.01 && info.generation == 4);
    sm_gallery_close(g);

    /* reopen: persisted; another model and another dim refused, file untouched */
    file_sum(gp, before);
    sm_gallery_model m2 = fake_model(2, d, "m2.safetensors"), m3 = fake_model(1, 16, "m1.safetensors");
    CHECK(sm_gallery_open(&g, gp, &m2, NULL, &err) == SM_ERR_ARG && !g);
    CHECKF(strstr(err.msg, "was built with model") && strstr(err.msg, "m1.safetensors") && strstr(err.msg, "this is model") &&
               strstr(err.msg, "m2.safetensors"),
           "%s", err.msg);
    CHECK(sm_gallery_open(&g, gp, &m3, NULL, &err) == SM_ERR_SHAPE && strstr(err.msg, "dimension mismatch"));
    file_sum(gp, after);
    CHECKF(!strcmp(before, after), "gallery file changed by refused opens");
    sm_gallery_options ro = {.readonly = true};
    CHECKF(sm_gallery_open(&g, gp, &m, &ro, &err) == SM_OK, "%s", err.msg);
    if (g) {
        CHECK(sm_gallery_search(g, x, 1, d, 1, NULL, si, ss, &err) == SM_OK && si[0] == 1);
        CHECK(sm_gallery_enroll(g, it, 1, ids2, &added, &err) == SM_ERR_ARG && strstr(err.msg, "read-only"));
        CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.count == 4 && info.has_threshold);
        sm_gallery_close(g);
    }
    /* without a model: lists and removes */
    CHECK(sm_gallery_open(&g, gp, NULL, NULL, &err) == SM_OK);
    sm_gallery_close(g);
    /* the schema on disk: application_id, user_version, WAL, blob size */
    int64_t v[4] = {0};
    if (sqlite3_open_v2(gp, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        const char *q[4] = {"PRAGMA application_id", "PRAGMA user_version", "SELECT max(length(embedding)) FROM items",
                            "SELECT count(*) FROM meta WHERE key = 'model_id' AND length(value) = 64"};
        for (int i = 0; i < 4; i++) {
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(raw, q[i], -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
                v[i] = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
        sqlite3_close(raw);
    }
    CHECK(v[0] == SM_GALLERY_APP_ID && v[1] == 1 && v[2] == 4 * d && v[3] == 1);
    free(x);
}

static void test_not_a_gallery(void)
{
    sm_err err = {0};
    sm_gallery_model m = fake_model(1, 8, NULL);
    sm_gallery *g = NULL;
    sm_gallery_options co = {.create = true};
    char before[65], after[65];
    /* a text file, an empty file, another application's SQLite database, a directory */
    const char *tp = th_tmp("text.db");
    FILE *f = fopen(tp, "w");
    fputs("this is not a database, just some text that is long enough to look like a header.\n", f);
    fclose(f);
    file_sum(tp, before);
    CHECK(sm_gallery_open(&g, tp, &m, &co, &err) == SM_ERR_FORMAT && strstr(err.msg, "not a simile gallery"));
    file_sum(tp, after);
    CHECK(!strcmp(before, after));
    const char *ep = th_tmp("empty.db");
    fclose(fopen(ep, "w"));
    CHECK(sm_gallery_open(&g, ep, &m, &co, &err) == SM_ERR_FORMAT && strstr(err.msg, "not a simile gallery"));
    struct stat sb;
    CHECK(stat(ep, &sb) == 0 && sb.st_size == 0);
    const char *op = th_tmp("other.db");
    sqlite3 *raw;
    if (sqlite3_open(op, &raw) == SQLITE_OK) {
        sqlite3_exec(raw, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", NULL, NULL, NULL);
        sqlite3_close(raw);
    }
    file_sum(op, before);
    CHECK(sm_gallery_open(&g, op, &m, &co, &err) == SM_ERR_FORMAT && strstr(err.msg, "another application"));
    file_sum(op, after);
    CHECK(!strcmp(before, after));
    CHECK(sm_gallery_open(&g, th_tmp_dir(), &m, &co, &err) == SM_ERR_FORMAT);
    CHECK(!g);
}

static void test_damaged(void)
{
    sm_err err = {0};
    const int64_t d = 64, n = 300;
    sm_gallery_model m = fake_model(3, d, NULL);
    const char *gp = th_tmp("damaged.db");
    sm_gallery_options co = {.create = true};
    sm_gallery *g = NULL;
    CHECK(sm_gallery_open(&g, gp, &m, &co, &err) == SM_OK);
    if (!g) return;
    float *x = random_rows(n, d, 5);
    sm_gallery_item *it = calloc((size_t)n, sizeof *it);
    for (int64_t i = 0; i < n; i++) it[i] = (sm_gallery_item){.label = "a", .embedding = x + i * d};
    CHECK(sm_gallery_enroll(g, it, n, NULL, NULL, &err) == SM_OK);
    sm_gallery_close(g);
    free(it);
    struct stat sb;
    stat(gp, &sb);
    /* overwrite the pages after the first two with garbage: SQLite must see it */
    FILE *f = fopen(gp, "r+b");
    fseek(f, 2 * 4096, SEEK_SET);
    for (long i = 2 * 4096; i < sb.st_size; i++) fputc((int)((i * 7919) & 0xff), f);
    fclose(f);
    sm_status st = sm_gallery_open(&g, gp, &m, NULL, &err);
    int64_t si[1];
    float ss[1];
    if (st == SM_OK) {
        st = sm_gallery_search(g, x, 1, d, 1, NULL, si, ss, &err);
        sm_gallery_close(g);
        g = NULL;
    }
    CHECKF(st == SM_ERR_FORMAT && (strstr(err.msg, "damaged") || strstr(err.msg, "not a simile gallery")),
           "status %d: %s", st, err.msg);
    /* truncated to 3000 bytes (less than one page) */
    CHECK(truncate(gp, 3000) == 0);
    st = sm_gallery_open(&g, gp, &m, NULL, &err);
    if (st == SM_OK) {
        st = sm_gallery_search(g, x, 1, d, 1, NULL, si, ss, &err);
        sm_gallery_close(g);
    }
    CHECKF(st == SM_ERR_FORMAT, "truncated: status %d: %s", st, err.msg);
    free(x);
}

static void test_indexes(void)
{
    sm_err err = {0};
    const int64_t d = 24, n = 1200, nq = 40, k = 10;
    sm_gallery_model m = fake_model(4, d, NULL);
    const char *gp = th_tmp("idx.db");
    sm_gallery_options co = {.create = true};
    sm_gallery *g = NULL, *g2 = NULL;
    CHECK(sm_gallery_open(&g, gp, &m, &co, &err) == SM_OK);
    if (!g) return;
    float *x = random_rows(n, d, 7), *q = random_rows(nq, d, 8);
    sm_gallery_item *it = calloc((size_t)n, sizeof *it);
    for (int64_t i = 0; i < n; i++) it[i] = (sm_gallery_item){.label = "x", .embedding = x + i * d};
    /* two transactions */
    CHECK(sm_gallery_enroll(g, it, n / 2, NULL, NULL, &err) == SM_OK);
    CHECK(sm_gallery_enroll(g, it + n / 2, n - n / 2, NULL, NULL, &err) == SM_OK);
    int64_t *ri = malloc(sizeof(int64_t) * (size_t)(nq * k)), *gi = malloc(sizeof(int64_t) * (size_t)(nq * k));
    float *rs = malloc(sizeof(float) * (size_t)(nq * k)), *gs = malloc(sizeof(float) * (size_t)(nq * k));
    CHECK(sm_index_flat_naive(x, n, d, q, nq, k, ri, rs, &err) == SM_OK);
    for (int64_t i = 0; i < nq * k; i++) ri[i] += 1;   /* row r is item r + 1 */
    sm_gallery_search_opts o = {.index = SM_GALLERY_INDEX_EXACT};
    CHECK(sm_gallery_search(g, q, nq, d, k, &o, gi, gs, &err) == SM_OK);
    int64_t same = 0;
    for (int64_t i = 0; i < nq * k; i++) same += gi[i] == ri[i];
    CHECKF(same >= nq * k - 2, "exact: %lld of %lld agree with the oracle", (long long)same, (long long)(nq * k));
    CHECK(sm_gallery_search(g, q, 1, d, k, &o, gi, gs, &err) == SM_OK && gi[0] == ri[0]);   /* scan path */
    o.index = SM_GALLERY_INDEX_INT8;
    o.rerank = 50;
    CHECK(sm_gallery_search(g, q, nq, d, k, &o, gi, gs, &err) == SM_OK);
    same = 0;
    for (int64_t i = 0; i < nq * k; i++) same += gi[i] == ri[i];
    CHECKF(same >= nq * k * 95 / 100, "int8+rerank: %lld of %lld", (long long)same, (long long)(nq * k));
    /* HNSW: built and saved on first use, loaded by the next handle, stale after a change */
    o = (sm_gallery_search_opts){.index = SM_GALLERY_INDEX_HNSW, .ef = 64, .hnsw_efc = 64};
    char note[700];
    CHECK(sm_gallery_prepare(g, &o, note, sizeof note, &err) == SM_OK);
    CHECKF(strstr(note, "built") && strstr(note, "no index file") && strstr(note, "saved"), "%s", note);
    CHECK(access(sm_gallery_hnsw_path(g), F_OK) == 0);
    CHECK(sm_gallery_search(g, q, nq, d, k, &o, gi, gs, &err) == SM_OK);
    int64_t hit = 0;
    for (int64_t i = 0; i < nq; i++)
        for (int64_t a = 0; a < k; a++)
            for (int64_t b = 0; b < k; b++) hit += gi[i * k + a] == ri[i * k + b];
    CHECKF(hit >= nq * k * 95 / 100, "hnsw recall %lld / %lld", (long long)hit, (long long)(nq * k));
    CHECK(sm_gallery_open(&g2, gp, &m, NULL, &err) == SM_OK);
    CHECK(sm_gallery_prepare(g2, &o, note, sizeof note, &err) == SM_OK && note[0] == '\0');
    /* a change through g: g2 sees it (reload), the file is stale */
    int64_t rm = 5;
    CHECK(sm_gallery_remove(g, &rm, 1, &err) == SM_OK);
    CHECK(sm_gallery_prepare(g2, &o, note, sizeof note, &err) == SM_OK);
    CHECKF(strstr(note, "stale") && strstr(note, "generation 2"), "%s", note);
    CHECK(sm_gallery_search(g2, x + 4 * d, 1, d, 1, &o, gi, gs, &err) == SM_OK && gi[0] != 5);
    o.index = SM_GALLERY_INDEX_EXACT;
    CHECK(sm_gallery_search(g2, x + 4 * d, 1, d, 1, &o, gi, gs, &err) == SM_OK && gi[0] != 5);
    CHECK(sm_gallery_search(g2, x + 5 * d, 1, d, 1, &o, gi, gs, &err) == SM_OK && gi[0] == 6);
    sm_gallery_close(g2);
    /* a damaged index file is rebuilt, with the reason */
    FILE *f = fopen(sm_gallery_hnsw_path(g), "r+b");
    fseek(f, 400, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    o.index = SM_GALLERY_INDEX_HNSW;
    CHECK(sm_gallery_open(&g2, gp, &m, NULL, &err) == SM_OK);
    CHECK(sm_gallery_prepare(g2, &o, note, sizeof note, &err) == SM_OK);
    CHECKF(strstr(note, "CRC") && strstr(note, "built"), "%s", note);
    sm_gallery_close(g2);
    sm_gallery_close(g);
    free(it);
    free(x);
    free(q);
    free(ri);
    free(gi);
    free(rs);
    free(gs);
}

static void test_int8_gallery(void)
{
    sm_err err = {0};
    const int64_t d = 32, n = 200;
    sm_gallery_model m = fake_model(5, d, NULL);
    const char *gp = th_tmp("i8.db");
    sm_gallery_options co = {.create = true, .dtype = SM_GALLERY_I8};
    sm_gallery *g = NULL;
    CHECK(sm_gallery_open(&g, gp, &m, &co, &err) == SM_OK);
    if (!g) return;
    float *x = random_rows(n, d, 9);
    sm_gallery_item *it = calloc((size_t)n, sizeof *it);
    for (int64_t i = 0; i < n; i++) it[i] = (sm_gallery_item){.label = "x", .embedding = x + i * d};
    CHECK(sm_gallery_enroll(g, it, n, NULL, NULL, &err) == SM_OK);
    sm_gallery_info info;
    CHECK(sm_gallery_info_get(g, &info, &err) == SM_OK && info.dtype == SM_GALLERY_I8);
    int64_t gi[3];
    float gs[3];
    int64_t ok = 0;
    for (int64_t i = 0; i < n; i++) {
        CHECK(sm_gallery_search(g, x + i * d, 1, d, 3, NULL, gi, gs, &err) == SM_OK);
        ok += gi[0] == i + 1 && fabsf(gs[0] - 1) < 0.02f;
    }
    CHECKF(ok >= n - 2, "int8 gallery: %lld of %lld rows find themselves", (long long)ok, (long long)n);
    sm_gallery_search_opts o = {.index = SM_GALLERY_INDEX_HNSW, .hnsw_efc = 40};
    CHECK(sm_gallery_search(g, x, 1, d, 3, &o, gi, gs, &err) == SM_OK && gi[0] == 1);
    sm_gallery_close(g);
    sqlite3 *raw;
    int64_t len = 0;
    if (sqlite3_open_v2(gp, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(raw, "SELECT max(length(embedding)) FROM items", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            len = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(raw);
    }
    CHECKF(len == 4 + d, "int8 blob is %lld bytes, expected %lld", (long long)len, (long long)(4 + d));
    free(it);
    free(x);
}

int main(void)
{
    if (th_tmp_make("gallery")) return 1;
    test_sha256();
    test_identity();
    test_basic();
    test_not_a_gallery();
    test_damaged();
    test_indexes();
    test_int8_gallery();
    th_tmp_remove();
    return th_done();
}
