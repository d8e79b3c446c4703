/* harness.h - the tiny test harness: one program per module, every check
 * counted, non-zero exit on any failure, closing line "N passed, N failed". */
#ifndef SM_HARNESS_H
#define SM_HARNESS_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int th_passed, th_failed;

#define CHECK(cond) do { \
    if (cond) th_passed++; \
    else { th_failed++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECKF(cond, ...) do { \
    if (cond) th_passed++; \
    else { th_failed++; fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

/* Compares two float arrays; reports the worst element (relative to
 * max(|ref|, floor)) and counts one check. Returns the worst relative error. */
static inline double th_close(const char *what, const float *got, const float *ref, long n,
                       double tol, double floor_)
{
    double worst = 0.0; long wi = -1;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double s = fabs((double)ref[i]); if (s < floor_) s = floor_;
        double r = d / s;
        if (!(r <= worst)) { worst = r; wi = i; }   /* catches NaN too */
    }
    int ok = worst <= tol;
    if (ok) th_passed++;
    else th_failed++;
    printf("%s %-40s max rel err %.3g%s", ok ? "ok  " : "FAIL", what, worst, ok ? "\n" : "");
    if (!ok)
        printf(" at [%ld]: got %.8g want %.8g (tol %.3g)\n", wi, (double)got[wi], (double)ref[wi], tol);
    return worst;
}

/* th_close of case `cs`, check `what`, with the floor at 5 % of the reference's largest
 * element: relative error for the elements that matter, absolute (in units of the largest)
 * for those near zero. */
static inline double th_close_case(const char *cs, const char *what, const float *got, const float *ref,
                                   long n, double tol)
{
    char label[256];
    double mx = 0.0;
    for (long i = 0; i < n; i++) mx = fmax(mx, fabs((double)ref[i]));
    snprintf(label, sizeof label, "%s %s", cs, what);
    return th_close(label, got, ref, n, tol, fmax(0.05 * mx, 1e-30));
}

/* A scratch directory for a test program's files. th_tmp_make("gallery")
 * creates $TMPDIR/simile-test-gallery.XXXXXX (/tmp without TMPDIR) and
 * returns 0, or reports and returns 1; th_tmp_dir() is its path, th_tmp(name)
 * the path of a file in it (one of 8 rotating buffers: copy a path that must
 * outlive 8 more calls); th_tmp_remove() deletes it with all it holds. */
static inline char *th_tmp_dir(void)
{
    static char dir[256];
    return dir;
}

static inline int th_tmp_make(const char *name)
{
    char *dir = th_tmp_dir();
    snprintf(dir, 256, "%s/simile-test-%s.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
    if (mkdtemp(dir)) return 0;
    perror("mkdtemp");
    return 1;
}

static inline const char *th_tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", th_tmp_dir(), name);
    return buf[k];
}

static inline void th_tmp_remove(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", th_tmp_dir());
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", th_tmp_dir());
}

static inline int th_done(void)
{
    printf("%d passed, %d failed\n", th_passed, th_failed);
    return th_failed ? 1 : 0;
}
#endif
