/* test_npy.c - .npy export: exact header bytes, round trip, refusals, and
 * numpy itself reading the file when numpy is installed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "npy.h"

#define HAS(e, s) (strstr((e).msg, (s)) != NULL)

static void tpath(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", th_tmp_dir(), name);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

/* A hand-made .npy: version byte, header text (padded to make the data start
 * at 64 when pad), then n data bytes. */
static void write_npy_raw(const char *path, int version, const char *dict, const void *data, size_t n)
{
    unsigned char buf[512];
    size_t dl = strlen(dict), pre = version == 1 ? 10 : 12;
    size_t total = (pre + dl + 1 + 63) / 64 * 64, hl = total - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) buf[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', total - pre - dl - 1);
    buf[total - 1] = '\n';
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, total, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_bad(const char *what, const char *path, sm_status code, const char *msg)
{
    sm_err e = {0};
    float *x = (float *)&e;
    int64_t n = 9, d = 9;
    sm_status st = sm_npy_read_f32(path, &x, &n, &d, &e);
    CHECKF(st == code && x == NULL && n == 0 && d == 0 && strstr(e.msg, msg), "%s: status %d, message: %s", what, (int)st, e.msg);
}

int main(void)
{
    if (th_tmp_make("npy")) return 1;
    char p[512];
    sm_err e = {0};
    enum { N = 5, D = 3 };
    float a[N * D];
    for (int i = 0; i < N * D; i++) a[i] = (float)i * 0.5f - 3.0f;
    a[7] = -0.0f;
    a[8] = 1e-40f;   /* subnormal survives */

    tpath(p, sizeof p, "emb.npy");
    CHECKF(sm_npy_write_f32(p, a, N, D, &e) == SM_OK, "%s", e.msg);
    /* the header, byte for byte as numpy writes it */
    FILE *f = fopen(p, "rb");
    unsigned char buf[256];
    size_t fn = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(fn == 128 + N * D * 4);   /* 10 + 60-byte dict + '\n' rounds up to 128 */
    CHECK(memcmp(buf, "\x93NUMPY\x01\x00", 8) == 0 && buf[8] == 118 && buf[9] == 0);
    const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), }";
    CHECK(memcmp(buf + 10, want, strlen(want)) == 0 && buf[127] == '\n' && buf[126] == ' ');
    CHECK(memcmp(buf + 128, a, sizeof a) == 0);

    float *x = NULL;
    int64_t n = 0, d = 0;
    CHECK(sm_npy_read_f32(p, &x, &n, &d, &e) == SM_OK && x && n == N && d == D);
    CHECK(x && memcmp(x, a, sizeof a) == 0);
    free(x);

    /* empty arrays */
    tpath(p, sizeof p, "empty.npy");
    CHECK(sm_npy_write_f32(p, NULL, 0, 128, &e) == SM_OK);
    CHECK(sm_npy_read_f32(p, &x, &n, &d, &e) == SM_OK && x != NULL && n == 0 && d == 128);
    free(x);

    /* a big shape still gives a 64-aligned header */
    tpath(p, sizeof p, "wide.npy");
    float one = 1.0f;
    CHECK(sm_npy_write_f32(p, &one, 1, 1, &e) == SM_OK);
    CHECK(sm_npy_read_f32(p, &x, &n, &d, &e) == SM_OK && n == 1 && d == 1 && x[0] == 1.0f);
    free(x);

    /* writer refusals and failures */
    CHECK(sm_npy_write_f32(p, a, -1, 3, &e) == SM_ERR_ARG);
    CHECK(sm_npy_write_f32(p, NULL, 2, 3, &e) == SM_ERR_ARG && HAS(e, "NULL"));
    CHECK(sm_npy_write_f32(p, a, INT64_MAX, INT64_MAX, &e) == SM_ERR_ARG);
    CHECK(sm_npy_write_f32("/proc/nonexistent/e.npy", a, N, D, &e) == SM_ERR_IO && HAS(e, "cannot write"));

    /* reader: other versions and spellings numpy may produce */
    tpath(p, sizeof p, "v2.npy");
    write_npy_raw(p, 2, "{\"descr\": \"<f4\", \"shape\": (2, 1), \"fortran_order\": False}", a, 8);
    CHECK(sm_npy_read_f32(p, &x, &n, &d, &e) == SM_OK && n == 2 && d == 1 && x[1] == a[1]);
    free(x);

    /* reader refusals */
    tpath(p, sizeof p, "bad.npy");
    write_npy_raw(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }", a, 16);
    expect_bad("f8", p, SM_ERR_FORMAT, "not '<f4'");
    write_npy_raw(p, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 1), }", a, 8);
    expect_bad("big-endian", p, SM_ERR_FORMAT, "not '<f4'");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1), }", a, 8);
    expect_bad("fortran", p, SM_ERR_FORMAT, "Fortran order");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", a, 24);
    expect_bad("1-D", p, SM_ERR_SHAPE, "1 dimensions");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", a, 24);
    expect_bad("3-D", p, SM_ERR_SHAPE, "3 dimensions");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", a, 24);
    expect_bad("bad shape", p, SM_ERR_FORMAT, "unreadable .npy shape");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False}", a, 24);
    expect_bad("no shape", p, SM_ERR_FORMAT, "lacks");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", a, 40);
    expect_bad("truncated", p, SM_ERR_IO, "truncated: expected 48 bytes of float32 data, got 40");
    write_npy_raw(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", a, 40);
    expect_bad("trailing", p, SM_ERR_FORMAT, "16 trailing bytes");
    write_npy_raw(p, 7, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", a, 24);
    expect_bad("version", p, SM_ERR_FORMAT, "version 7.0");
    write_file(p, "\x93NUMPY\x01\x00\xff", 9);
    expect_bad("short header", p, SM_ERR_IO, "truncated inside the .npy header");
    write_file(p, "PK\x03\x04 not npy", 13);
    expect_bad("magic", p, SM_ERR_FORMAT, "not a .npy file");
    tpath(p, sizeof p, "missing.npy");
    expect_bad("missing", p, SM_ERR_IO, "cannot open");

    /* numpy reads what we wrote */
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0) {
        char cmd[1024];
        tpath(p, sizeof p, "emb.npy");
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 -c \"import numpy as np, sys; a=np.load('%s'); "
                 "want=(np.arange(15, dtype=np.float32)*0.5-3).reshape(5, 3); want.flat[7]=-0.0; want.flat[8]=np.float32(1e-40); "
                 "sys.exit(0 if a.dtype==np.float32 and a.shape==(5, 3) and a.flags.c_contiguous and "
                 "np.array_equal(a, want) and np.signbit(a.flat[7]) else 1)\"", p);
        CHECK(system(cmd) == 0);
        /* and we read what numpy writes */
        tpath(p, sizeof p, "from_numpy.npy");
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c \"import numpy as np; np.save('%s', np.arange(12, dtype='<f4').reshape(4, 3))\"", p);
        CHECK(system(cmd) == 0);
        CHECK(sm_npy_read_f32(p, &x, &n, &d, &e) == SM_OK && n == 4 && d == 3 && x[11] == 11.0f);
        free(x);
    } else {
        printf("skipped: numpy cross-check (python3-numpy not installed)\n");
    }

    DIR *dir = opendir(th_tmp_dir());
    struct dirent *de;
    int tmps = 0;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.') continue;
        tmps += strstr(de->d_name, ".tmp.") != NULL;
    }
    closedir(dir);
    th_tmp_remove();
    CHECK(tmps == 0);
    return th_done();
}
