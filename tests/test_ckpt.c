/* test_ckpt.c - safetensors: round trip, a file laid out as the reference
 * (PyTorch / safetensors) writer lays it out, built byte by byte, every kind
 * of corruption, atomic writes that fail cleanly (unwritable place, file
 * size limit as a stand-in for a full disk). */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "harness.h"

#define HAS(e, s) (strstr((e).msg, (s)) != NULL)

static void tpath(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", th_tmp_dir(), name);
}

/* Files in the scratch directory whose name contains ".tmp." */
static int temp_files_left(void)
{
    DIR *d = opendir(th_tmp_dir());
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* A safetensors file by hand: u64 header length (hl_override if non-zero),
 * the header text padded with spaces to `pad` (0 = no padding), then data. */
static void write_raw(const char *path, const char *hdr, size_t pad, uint64_t hl_override, const void *data, size_t dn)
{
    size_t hl = strlen(hdr), total = pad > hl ? pad : hl;
    uint64_t v = hl_override ? hl_override : total;
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(v >> (8 * i));
    FILE *f = fopen(path, "wb");
    fwrite(l8, 1, 8, f);
    fwrite(hdr, 1, hl, f);
    for (size_t i = hl; i < total; i++) fputc(' ', f);
    if (dn) fwrite(data, 1, dn, f);
    fclose(f);
}

static void test_round_trip(void)
{
    char p[512];
    sm_err e = {0};
    float w[6] = { 1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f };
    double dd[4] = { 1.0, -2.5, 1e300, 3.0 };
    int64_t step = 123456789012345ll;
    int32_t ii[4] = { -1, 2, -3, 4 };
    uint8_t u8[5] = { 0, 1, 128, 254, 255 };
    int64_t sw[2] = { 2, 3 }, sd[1] = { 4 }, si[2] = { 2, 2 }, su[1] = { 5 }, sz[2] = { 0, 3 };

    sm_ckpt_writer *w0 = NULL;
    CHECK(sm_ckpt_writer_new(&w0, &e) == SM_OK);
    CHECK(sm_ckpt_add(w0, "bytes", SM_DT_U8, 1, su, u8, &e) == SM_OK);   /* added first, laid out last */
    CHECK(sm_ckpt_add(w0, "layer.0.weight", SM_DT_F32, 2, sw, w, &e) == SM_OK);
    CHECK(sm_ckpt_add(w0, "d", SM_DT_F64, 1, sd, dd, &e) == SM_OK);
    CHECK(sm_ckpt_add(w0, "step", SM_DT_I64, 0, NULL, &step, &e) == SM_OK);
    CHECK(sm_ckpt_add(w0, "ints", SM_DT_I32, 2, si, ii, &e) == SM_OK);
    CHECK(sm_ckpt_add(w0, "empty", SM_DT_F32, 2, sz, NULL, &e) == SM_OK);
    CHECK(sm_ckpt_add_meta(w0, "spec", "conv(32,3)-relu", &e) == SM_OK);
    CHECK(sm_ckpt_add_meta(w0, "classes", "[\"T-shirt/top\", \"Ankle boot\"]", &e) == SM_OK);
    CHECK(sm_ckpt_add_meta(w0, "spec", "conv(64,3)-relu", &e) == SM_OK);   /* replaces */
    /* refusals */
    CHECK(sm_ckpt_add(w0, "step", SM_DT_I64, 0, NULL, &step, &e) == SM_ERR_ARG && HAS(e, "twice"));
    CHECK(sm_ckpt_add(w0, "__metadata__", SM_DT_I64, 0, NULL, &step, &e) == SM_ERR_ARG && HAS(e, "reserved"));
    CHECK(sm_ckpt_add(w0, "", SM_DT_I64, 0, NULL, &step, &e) == SM_ERR_ARG);
    CHECK(sm_ckpt_add(w0, "bad\xff", SM_DT_I64, 0, NULL, &step, &e) == SM_ERR_ARG && HAS(e, "UTF-8"));
    int64_t s9[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 }, sneg[1] = { -2 }, sbig[3] = { INT64_MAX / 2, 4, 4 };
    CHECK(sm_ckpt_add(w0, "x9", SM_DT_F32, 9, s9, w, &e) == SM_ERR_ARG);
    CHECK(sm_ckpt_add(w0, "xn", SM_DT_F32, 1, sneg, w, &e) == SM_ERR_ARG && HAS(e, "negative"));
    CHECK(sm_ckpt_add(w0, "xb", SM_DT_F32, 3, sbig, w, &e) == SM_ERR_ARG);
    CHECK(sm_ckpt_add(w0, "xnull", SM_DT_F32, 1, sd, NULL, &e) == SM_ERR_ARG && HAS(e, "NULL"));
    CHECK(sm_ckpt_add(w0, "xdt", (sm_dtype)99, 1, sd, w, &e) == SM_ERR_ARG && HAS(e, "dtype"));
    CHECK(sm_ckpt_add_meta(w0, "", "v", &e) == SM_ERR_ARG);

    tpath(p, sizeof p, "rt.safetensors");
    CHECKF(sm_ckpt_write(w0, p, &e) == SM_OK, "%s", e.msg);
    CHECK(temp_files_left() == 0);

    /* the bytes: length multiple of 8, metadata first, data 8-aligned */
    FILE *f = fopen(p, "rb");
    unsigned char buf[1024];
    size_t fn = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
    CHECK(hl % 8 == 0 && hl < fn);
    CHECK(memcmp(buf + 8, "{\"__metadata__\":{", 17) == 0);
    CHECK(buf[8 + hl - 1] == ' ' || buf[8 + hl - 1] == '}');
    CHECK(fn == 8 + hl + 24 + 32 + 8 + 16 + 5);

    sm_ckpt *ck = NULL;
    CHECKF(sm_ckpt_read(p, &ck, &e) == SM_OK && ck, "%s", e.msg);
    CHECK(sm_ckpt_count(ck) == 6);
    const sm_ckpt_tensor *t = sm_ckpt_find(ck, "layer.0.weight");
    CHECK(t && t->dtype == SM_DT_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6 && t->nbytes == 24);
    CHECK(t && memcmp(t->data, w, 24) == 0 && (uintptr_t)t->data % 4 == 0);
    t = sm_ckpt_find(ck, "d");
    CHECK(t && t->dtype == SM_DT_F64 && memcmp(t->data, dd, 32) == 0 && (uintptr_t)t->data % 8 == 0);
    t = sm_ckpt_find(ck, "step");
    CHECK(t && t->dtype == SM_DT_I64 && t->ndim == 0 && t->numel == 1 && *(const int64_t *)t->data == step);
    t = sm_ckpt_find(ck, "ints");
    CHECK(t && t->dtype == SM_DT_I32 && memcmp(t->data, ii, 16) == 0);
    t = sm_ckpt_find(ck, "bytes");
    CHECK(t && t->dtype == SM_DT_U8 && t->nbytes == 5 && memcmp(t->data, u8, 5) == 0);
    t = sm_ckpt_find(ck, "empty");
    CHECK(t && t->nbytes == 0 && t->numel == 0 && t->data != NULL && t->shape[1] == 3);
    CHECK(sm_ckpt_find(ck, "nope") == NULL);
    CHECK(sm_ckpt_meta(ck, "spec") && strcmp(sm_ckpt_meta(ck, "spec"), "conv(64,3)-relu") == 0);
    CHECK(sm_ckpt_meta(ck, "classes") && strstr(sm_ckpt_meta(ck, "classes"), "Ankle boot"));
    CHECK(sm_ckpt_meta(ck, "nope") == NULL);
    CHECK(sm_ckpt_meta_count(ck) == 2);
    const char *k, *v;
    CHECK(sm_ckpt_meta_at(ck, 1, &k, &v) == 1 && strcmp(k, "classes") == 0);
    CHECK(sm_ckpt_meta_at(ck, 2, &k, &v) == 0);
    /* iteration in data order: F64/I64 first, U8 last */
    int64_t total = 0;
    for (int64_t i = 0; i < sm_ckpt_count(ck); i++) total += (int64_t)sm_ckpt_tensor_at(ck, i)->nbytes;
    CHECK(total == 24 + 32 + 8 + 16 + 5);
    CHECK(strcmp(sm_ckpt_tensor_at(ck, 5)->name, "bytes") == 0 && sm_ckpt_tensor_at(ck, 6) == NULL);
    const sm_ckpt_tensor *g;
    CHECK(sm_ckpt_get(ck, "layer.0.weight", SM_DT_F32, 2, sw, &g, &e) == SM_OK && g == sm_ckpt_find(ck, "layer.0.weight"));
    int64_t other[2] = { 3, 2 };
    CHECK(sm_ckpt_get(ck, "layer.0.weight", SM_DT_F32, 2, other, &g, &e) == SM_ERR_SHAPE && g == NULL);
    CHECKF(HAS(e, "F32 (2, 3), expected F32 (3, 2)"), "%s", e.msg);
    CHECK(sm_ckpt_get(ck, "ints", SM_DT_F32, 2, si, &g, &e) == SM_ERR_SHAPE && HAS(e, "I32"));
    CHECK(sm_ckpt_get(ck, "missing", SM_DT_F32, 2, si, &g, &e) == SM_ERR_FORMAT && HAS(e, "no tensor 'missing'"));
    sm_ckpt_free(ck);
    sm_ckpt_free(NULL);

    /* an independent reader: Python's json + struct, when python3 is here */
    if (access("/usr/bin/python3", X_OK) == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import json,struct,sys; b=open('%s','rb').read(); n=struct.unpack('<Q',b[:8])[0]; "
                 "h=json.loads(b[8:8+n]); t=h['layer.0.weight']; s,e=t['data_offsets']; d=b[8+n+s:8+n+e]; "
                 "v=struct.unpack('<6f',d); sys.exit(0 if t['dtype']=='F32' and t['shape']==[2,3] and v[:3]==(1.5,-2.0,3.25) "
                 "and h['__metadata__']['spec']=='conv(64,3)-relu' and struct.unpack('<q',b[8+n+h['step']['data_offsets'][0]:][:8])[0]==%lld else 1)\"",
                 p, (long long)step);
        CHECK(system(cmd) == 0);
    } else {
        printf("skipped: python3 cross-check of the safetensors bytes\n");
    }

    /* an empty checkpoint is valid too */
    sm_ckpt_writer *w1 = NULL;
    CHECK(sm_ckpt_writer_new(&w1, &e) == SM_OK);
    tpath(p, sizeof p, "empty.safetensors");
    CHECK(sm_ckpt_write(w1, p, &e) == SM_OK);
    CHECK(sm_ckpt_read(p, &ck, &e) == SM_OK && sm_ckpt_count(ck) == 0 && sm_ckpt_meta_count(ck) == 0);
    sm_ckpt_free(ck);
    sm_ckpt_writer_free(w1);

    /* failures leave no temp file and the old file intact */
    CHECK(sm_ckpt_write(w0, "/proc/nonexistent/x.safetensors", &e) == SM_ERR_IO);
    CHECKF(HAS(e, "cannot write '/proc/nonexistent/x.safetensors'") && HAS(e, "No such file"), "%s", e.msg);
    tpath(p, sizeof p, "rt.safetensors/below");   /* a directory component that is a file */
    CHECK(sm_ckpt_write(w0, p, &e) == SM_ERR_IO && HAS(e, "Not a directory"));
    tpath(p, sizeof p, "adir");
    mkdir(p, 0755);
    CHECK(sm_ckpt_write(w0, p, &e) == SM_ERR_IO);   /* rename onto a directory */
    CHECKF(HAS(e, "rename"), "%s", e.msg);
    rmdir(p);
    CHECK(temp_files_left() == 0);
    {
        /* a file size limit makes write() fail like a full disk does */
        static float big[16384];
        int64_t sb[1] = { 16384 };
        sm_ckpt_writer *w2 = NULL;
        sm_ckpt_writer_new(&w2, &e);
        sm_ckpt_add(w2, "big", SM_DT_F32, 1, sb, big, &e);
        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 8192;
        void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
        tpath(p, sizeof p, "rt.safetensors");
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            sm_status st = sm_ckpt_write(w2, p, &e);
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK(st == SM_ERR_IO);
            CHECKF(HAS(e, "File too large"), "%s", e.msg);
            CHECK(temp_files_left() == 0);
            CHECK(sm_ckpt_read(p, &ck, &e) == SM_OK && sm_ckpt_count(ck) == 6);   /* the old one, whole */
            sm_ckpt_free(ck);
        } else {
            printf("skipped: file size limit test (setrlimit refused)\n");
        }
        signal(SIGXFSZ, oldsig);
        sm_ckpt_writer_free(w2);
    }
    sm_ckpt_writer_free(w0);
    sm_ckpt_writer_free(NULL);
}

/* What the reference writer produces for
 *   save_file({"weight": torch.tensor([[1., 2.], [3., 4.]]), "step": torch.tensor(7)},
 *             path, metadata={"format": "pt"})
 * I64 before F32 (larger alignment first), compact JSON, spaces up to a
 * multiple of 8. Here the JSON keys are deliberately not in data order. */
static void test_reference_layout(void)
{
    char p[512];
    sm_err e = {0};
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]},"
                      "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}";
    unsigned char data[24] = { 7, 0, 0, 0, 0, 0, 0, 0,
                               0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,     /* 1.0f 2.0f */
                               0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40 };   /* 3.0f 4.0f */
    size_t hl = strlen(hdr);
    tpath(p, sizeof p, "ref.safetensors");
    write_raw(p, hdr, (hl + 7) / 8 * 8, 0, data, sizeof data);
    sm_ckpt *ck = NULL;
    CHECKF(sm_ckpt_read(p, &ck, &e) == SM_OK, "%s", e.msg);
    const sm_ckpt_tensor *t = sm_ckpt_find(ck, "weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2);
    CHECK(t && ((const float *)t->data)[0] == 1.0f && ((const float *)t->data)[3] == 4.0f);
    t = sm_ckpt_find(ck, "step");
    CHECK(t && t->ndim == 0 && *(const int64_t *)t->data == 7);
    CHECK(sm_ckpt_meta(ck, "format") && strcmp(sm_ckpt_meta(ck, "format"), "pt") == 0);
    CHECK(strcmp(sm_ckpt_tensor_at(ck, 0)->name, "step") == 0);
    sm_ckpt_free(ck);

    /* another writer's unaligned layout: a U8 tensor of 3 bytes before an
     * F32; no padding at all; the F32 is still handed out aligned */
    const char *h2 = "{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[3,7]}}";
    unsigned char d2[7] = { 1, 2, 3, 0x00, 0x00, 0x80, 0xbf };   /* -1.0f */
    write_raw(p, h2, 0, 0, d2, sizeof d2);
    CHECKF(sm_ckpt_read(p, &ck, &e) == SM_OK, "%s", e.msg);
    t = sm_ckpt_find(ck, "b");
    CHECK(t && (uintptr_t)t->data % 4 == 0 && *(const float *)t->data == -1.0f);
    sm_ckpt_free(ck);
}

static void expect_bad(const char *what, const char *hdr, size_t pad, uint64_t hl_override, const void *data,
                       size_t dn, sm_status code, const char *msg)
{
    char p[512];
    sm_err e = {0};
    tpath(p, sizeof p, "bad.safetensors");
    write_raw(p, hdr, pad, hl_override, data, dn);
    sm_ckpt *ck = (sm_ckpt *)&e;   /* must come back NULL */
    sm_status st = sm_ckpt_read(p, &ck, &e);
    if (code == SM_OK) {
        CHECKF(st == SM_OK && ck != NULL, "%s: %s", what, e.msg);
        sm_ckpt_free(st == SM_OK ? ck : NULL);
        return;
    }
    CHECKF(st == code && ck == NULL && strstr(e.msg, msg) && strstr(e.msg, "bad.safetensors"),
           "%s: status %d, message: %s", what, (int)st, e.msg);
}

static void test_corrupt(void)
{
    char p[512];
    sm_err e = {0};
    sm_ckpt *ck;
    float d[4] = { 1, 2, 3, 4 };
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_bad("control", ok, 0, 0, d, 8, SM_OK, "");
    expect_bad("huge header length", ok, 0, 1ull << 40, d, 8, SM_ERR_FORMAT, "header length 1099511627776");
    expect_bad("header past the end", ok, 0, 200, d, 8, SM_ERR_FORMAT, "file size");
    expect_bad("truncated data", ok, 0, 0, d, 5, SM_ERR_IO, "truncated: the header describes 8 bytes of tensor data, the file holds 5");
    expect_bad("trailing bytes", ok, 0, 0, d, 12, SM_ERR_FORMAT, "4 trailing bytes");
    expect_bad("bad JSON", "{\"a\":{\"dtype\":\"F32\",", 0, 0, d, 8, SM_ERR_FORMAT, "bad JSON header at line 1");
    expect_bad("not an object", "[1,2,3]", 0, 0, NULL, 0, SM_ERR_FORMAT, "not an object");
    expect_bad("duplicate key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               0, 0, d, 8, SM_ERR_FORMAT, "duplicate");
    expect_bad("overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               0, 0, d, 12, SM_ERR_FORMAT, "overlap");
    expect_bad("hole", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               0, 0, d, 12, SM_ERR_FORMAT, "holes");
    expect_bad("unknown dtype", "{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 0, d, 8,
               SM_ERR_FORMAT, "unknown dtype 'F128'");
    expect_bad("size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 0, d, 8,
               SM_ERR_FORMAT, "needs 12 bytes");
    expect_bad("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 0, d, 8,
               SM_ERR_FORMAT, "non-negative");
    expect_bad("negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 0, 0, d, 8,
               SM_ERR_FORMAT, "non-negative");
    expect_bad("backwards offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0, 0, d, 8,
               SM_ERR_FORMAT, "end before they begin");
    expect_bad("overflowing shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}",
               0, 0, d, 8, SM_ERR_FORMAT, "too large");
    expect_bad("offset past the data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9223372036854775800,9223372036854775807]}}",
               0, 0, d, 8, SM_ERR_FORMAT, "");
    expect_bad("nine dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 0, 0, d, 8,
               SM_ERR_FORMAT, "9 dimensions");
    expect_bad("missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 0, d, 8, SM_ERR_FORMAT, "needs \"dtype\"");
    expect_bad("three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 0, 0, d, 8,
               SM_ERR_FORMAT, "data_offsets");
    expect_bad("entry not an object", "{\"a\":5}", 0, 0, NULL, 0, SM_ERR_FORMAT, "not an object");
    expect_bad("metadata not strings", "{\"__metadata__\":{\"epoch\":3}}", 0, 0, NULL, 0, SM_ERR_FORMAT, "not a string");
    expect_bad("metadata not an object", "{\"__metadata__\":[]}", 0, 0, NULL, 0, SM_ERR_FORMAT, "__metadata__ is not an object");
    expect_bad("header of zeros", "\0\0\0\0\0\0\0\0", 8, 8, NULL, 0, SM_ERR_FORMAT, "bad JSON");

    tpath(p, sizeof p, "tiny");
    FILE *f = fopen(p, "wb");
    fwrite("abcd", 1, 4, f);
    fclose(f);
    CHECK(sm_ckpt_read(p, &ck, &e) == SM_ERR_FORMAT && HAS(e, "too short") && ck == NULL);
    tpath(p, sizeof p, "missing.safetensors");
    CHECK(sm_ckpt_read(p, &ck, &e) == SM_ERR_IO && HAS(e, "cannot open") && HAS(e, "No such file"));
    CHECK(sm_ckpt_read(th_tmp_dir(), &ck, &e) == SM_ERR_IO && HAS(e, "directory"));

    /* dtypes */
    CHECK(sm_dtype_size(SM_DT_BF16) == 2 && sm_dtype_size(SM_DT_I64) == 8 && sm_dtype_size((sm_dtype)77) == 0);
    CHECK(sm_dtype_parse("F8_E4M3") == SM_DT_F8_E4M3 && sm_dtype_parse("f32") == -1 && sm_dtype_parse(NULL) == -1);
    CHECK(strcmp(sm_dtype_name(SM_DT_BOOL), "BOOL") == 0 && sm_dtype_name(SM_DT_COUNT) == NULL);
}

int main(void)
{
    if (th_tmp_make("ckpt")) return 1;
    test_round_trip();
    test_reference_layout();
    test_corrupt();
    th_tmp_remove();
    return th_done();
}
