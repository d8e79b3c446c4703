/* plot.c - pictures with cairo. See plot.h.
 *
 * Every picture is laid out first (text is measured on a scratch context so
 * that legends wrap and the size is known), then drawn on one cairo surface:
 * an image surface for PNG, a stream surface for SVG/PDF. The encoded bytes
 * collect in memory and go to disk through sm_file_write_atomic, so a failed
 * picture never leaves half a file. Coordinates are in pixels with y down. */
#include "plot.h"

#include <cairo.h>
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "rng.h"
#include "status.h"

#define PI 3.14159265358979323846
/* Debian's default sans font; fontconfig falls back to another sans if absent. */
#define FONT "DejaVu Sans"

/* ------------------------------------------------------------------ colours */

/* matplotlib's tab10 ("Tableau 10"): ten hues that stay apart for most
 * colour-blind viewers and on print; beyond ten, golden-angle hues. */
static const unsigned char tab10[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
    {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

void sm_plot_color(int32_t i, double rgb[3])
{
    if (i >= 0 && i < 10) {
        for (int k = 0; k < 3; k++) rgb[k] = tab10[i][k] / 255.0;
        return;
    }
    /* HSV with s = 0.65, v = 0.85 and hue stepping by the golden angle. */
    double h = fmod((double)(i - 10) * 0.6180339887498949 + 0.05, 1.0) * 6.0, s = 0.65, v = 0.85;
    int sector = (int)h;
    double f = h - sector, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    for (int k = 0; k < 3; k++) rgb[k] = r[sector % 6][k];
}

static void set_color(cairo_t *cr, int32_t i, double alpha)
{
    double c[3];
    sm_plot_color(i, c);
    cairo_set_source_rgba(cr, c[0], c[1], c[2], alpha);
}

static const double GREEN[3] = {0.13, 0.63, 0.17}, RED[3] = {0.84, 0.11, 0.11};
#define INK 0.15   /* grey level of text and frames */

/* FcFini through dlsym: fontconfig is loaded with cairo, but the build links
 * only libcairo, and this is the one fontconfig call simile makes. */
void sm_plot_cleanup(void)
{
    cairo_debug_reset_static_data();
    void (*fc_fini)(void) = NULL;
    *(void **)&fc_fini = dlsym(RTLD_DEFAULT, "FcFini");
    if (fc_fini) fc_fini();
}

/* ------------------------------------------------------------------ output */

sm_status sm_plot_format_of(const char *path, sm_plot_format *fmt, sm_err *err)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    const char *slash = path ? strrchr(path, '/') : NULL;
    char ext[8] = "";
    if (dot && (!slash || dot > slash) && strlen(dot) < sizeof ext)
        for (size_t i = 0; dot[i]; i++) ext[i] = (char)tolower((unsigned char)dot[i]), ext[i + 1] = '\0';
    if (!strcmp(ext, ".png")) *fmt = SM_PLOT_PNG;
    else if (!strcmp(ext, ".svg")) *fmt = SM_PLOT_SVG;
    else if (!strcmp(ext, ".pdf")) *fmt = SM_PLOT_PDF;
    else
        return sm_fail(err, SM_ERR_ARG, "'%s': unknown picture format '%s'; name the file .png, .svg or .pdf",
                       path ? path : "(null)", dot && (!slash || dot > slash) ? dot : "(no extension)");
    return SM_OK;
}

typedef struct membuf {
    unsigned char *p;
    size_t n, cap;
} membuf;

static cairo_status_t mem_write(void *closure, const unsigned char *data, unsigned int len)
{
    membuf *b = closure;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + len) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) return CAIRO_STATUS_NO_MEMORY;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return CAIRO_STATUS_SUCCESS;
}

typedef struct canvas {
    const char *path;
    sm_plot_format fmt;
    cairo_surface_t *s;
    cairo_t *cr;
    membuf buf;
    int w, h;
} canvas;

static sm_status canvas_open(canvas *cv, const char *path, int w, int h, sm_err *err)
{
    memset(cv, 0, sizeof *cv);
    sm_status st = sm_plot_format_of(path, &cv->fmt, err);
    if (st) return st;
    if (w < 1 || h < 1 || w > 32767 || h > 32767)
        return sm_fail(err, SM_ERR_ARG, "'%s': a picture of %d x %d is out of cairo's range (1..32767)", path, w, h);
    cv->path = path;
    cv->w = w;
    cv->h = h;
    if (cv->fmt == SM_PLOT_PNG) cv->s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);   /* opaque: RGB PNG, no alpha channel */
    else if (cv->fmt == SM_PLOT_SVG) cv->s = cairo_svg_surface_create_for_stream(mem_write, &cv->buf, w, h);
    else cv->s = cairo_pdf_surface_create_for_stream(mem_write, &cv->buf, w, h);
    cv->cr = cairo_create(cv->s);
    if (cairo_status(cv->cr)) {
        st = sm_fail(err, SM_ERR_NOMEM, "cannot start a %d x %d picture: %s", w, h,
                     cairo_status_to_string(cairo_status(cv->cr)));
        cairo_destroy(cv->cr);
        cairo_surface_destroy(cv->s);
        return st;
    }
    cairo_set_source_rgb(cv->cr, 1, 1, 1);
    cairo_paint(cv->cr);
    return SM_OK;
}

/* Finishes the picture and writes it (only when st is SM_OK); returns st or the write's status. */
static sm_status canvas_close(canvas *cv, sm_status st, sm_err *err)
{
    cairo_status_t cs = cairo_status(cv->cr);
    cairo_destroy(cv->cr);
    if (!st && !cs && cv->fmt == SM_PLOT_PNG) cs = cairo_surface_write_to_png_stream(cv->s, mem_write, &cv->buf);
    cairo_surface_finish(cv->s);
    if (!cs) cs = cairo_surface_status(cv->s);
    cairo_surface_destroy(cv->s);
    if (!st && cs)
        st = sm_fail(err, cs == CAIRO_STATUS_NO_MEMORY ? SM_ERR_NOMEM : SM_ERR_INTERNAL, "drawing '%s' failed: %s",
                     cv->path, cairo_status_to_string(cs));
    if (!st) {
        sm_iov part = {cv->buf.p, cv->buf.n};
        st = sm_file_write_atomic(cv->path, &part, 1, err);
    }
    free(cv->buf.p);
    return st;
}

/* ------------------------------------------------------------------ text */

/* A scratch context for measuring text before the canvas exists. */
typedef struct scratch {
    cairo_surface_t *s;
    cairo_t *cr;
} scratch;

static void scratch_open(scratch *sc)
{
    sc->s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    sc->cr = cairo_create(sc->s);
}

static void scratch_close(scratch *sc)
{
    cairo_destroy(sc->cr);
    cairo_surface_destroy(sc->s);
}

static void font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, double size, bool bold, const char *s)
{
    font(cr, size, bold);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Draws s with its anchor at (x, y): ax = 0 left, 0.5 centre, 1 right;
 * ay = 0 top, 0.5 middle, 1 bottom of the font's ascent + descent. */
static void text(cairo_t *cr, double x, double y, double size, bool bold, double ax, double ay, const char *s)
{
    font(cr, size, bold);
    cairo_text_extents_t e;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &e);
    cairo_font_extents(cr, &fe);
    cairo_move_to(cr, x - ax * e.x_advance, y + fe.ascent - ay * (fe.ascent + fe.descent));
    cairo_show_text(cr, s);
    cairo_new_path(cr);
}

/* The same, rotated 90° counter-clockwise about (x, y) (for y-axis labels). */
static void text_vertical(cairo_t *cr, double x, double y, double size, bool bold, const char *s)
{
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -PI / 2);
    text(cr, 0, 0, size, bold, 0.5, 0.5, s);
    cairo_restore(cr);
}

/* Copies s into out (cap bytes), cut with "…" so it is at most max_w wide. */
static void fit_text(cairo_t *cr, double size, bool bold, const char *s, double max_w, char *out, size_t cap)
{
    snprintf(out, cap, "%s", s);
    if (text_width(cr, size, bold, out) <= max_w) return;
    size_t n = strlen(out);
    while (n > 0) {
        n--;
        while (n > 0 && ((unsigned char)out[n] & 0xC0) == 0x80) n--;   /* UTF-8 boundary */
        if (n + 4 > cap) continue;
        memcpy(out + n, "\xE2\x80\xA6", 4);   /* U+2026 and NUL */
        if (text_width(cr, size, bold, out) <= max_w) return;
    }
}

/* Greedy word wrap of s into at most maxl lines of at most width; the last
 * line is cut with "…" if words remain. Returns the line count. */
#define LINE_CAP 256
static int wrap_text(cairo_t *cr, double size, bool bold, const char *s, double width, char out[][LINE_CAP], int maxl)
{
    int n = 0;
    const char *p = s ? s : "";
    while (*p == ' ') p++;
    while (*p && n < maxl) {
        size_t best = 0, j = 0;
        char tmp[LINE_CAP];
        for (;;) {
            while (p[j] == ' ') j++;
            while (p[j] && p[j] != ' ') j++;
            if (j >= sizeof tmp) break;
            memcpy(tmp, p, j);
            tmp[j] = '\0';
            if (best > 0 && text_width(cr, size, bold, tmp) > width) break;
            best = j;
            if (!p[j]) break;
        }
        if (n == maxl - 1 || best == 0) {   /* the rest, cut to fit */
            fit_text(cr, size, bold, p, width, out[n], LINE_CAP);
            n++;
            break;
        }
        memcpy(tmp, p, best);
        tmp[best] = '\0';
        fit_text(cr, size, bold, tmp, width, out[n], LINE_CAP);   /* a single over-long word */
        n++;
        p += best;
        while (*p == ' ') p++;
    }
    return n;
}

/* A caption of up to three lines at the top left: its height, and drawing. */
#define CAP_SIZE 14.0
#define CAP_LINE 20.0
typedef struct caption_t {
    int n;
    char line[3][LINE_CAP];
} caption_t;

static double caption_layout(caption_t *c, cairo_t *cr, const char *s, double width)
{
    c->n = s && *s ? wrap_text(cr, CAP_SIZE, false, s, width, c->line, 3) : 0;
    return SM_PLOT_TOP(c->n);
}

static void caption_draw(const caption_t *c, cairo_t *cr, double x)
{
    cairo_set_source_rgb(cr, INK, INK, INK);
    for (int i = 0; i < c->n; i++) text(cr, x, 12 + i * CAP_LINE, CAP_SIZE, false, 0, 0, c->line[i]);
}

/* "10" with a superscript exponent ("10⁻³"), or "1" for e == 0. */
static void pow10_label(int e, char *out, size_t cap)
{
    static const char *const sup[10] = {"\xE2\x81\xB0", "\xC2\xB9", "\xC2\xB2", "\xC2\xB3", "\xE2\x81\xB4",
                                        "\xE2\x81\xB5", "\xE2\x81\xB6", "\xE2\x81\xB7", "\xE2\x81\xB8", "\xE2\x81\xB9"};
    if (e == 0) { snprintf(out, cap, "1"); return; }
    char digits[16];
    snprintf(digits, sizeof digits, "%d", e < 0 ? -e : e);
    size_t n = (size_t)snprintf(out, cap, "10%s", e < 0 ? "\xE2\x81\xBB" : "");
    for (const char *d = digits; *d && n < cap; d++) n += (size_t)snprintf(out + n, cap - n, "%s", sup[*d - '0']);
}

/* ------------------------------------------------------------------ legend */

/* A wrapped row layout of legend items: a swatch of 24 px, the name, 18 px
 * between items; rows centred in the width. */
#define LEG_SIZE 13.0
#define LEG_ROW 22.0
#define LEG_SWATCH 24.0
#define LEG_SPACE 18.0

typedef struct legend {
    int n, rows;
    double *x;      /* (n) left of each item, relative to the legend's left */
    int *row;       /* (n) */
} legend;

static sm_status legend_layout(legend *lg, cairo_t *cr, const char *const *names, int n, double width, sm_err *err)
{
    lg->n = n;
    lg->rows = n > 0;
    lg->x = calloc((size_t)n + 1, sizeof *lg->x);
    lg->row = calloc((size_t)n + 1, sizeof *lg->row);
    double *rw = calloc((size_t)n + 1, sizeof *rw);
    if (!lg->x || !lg->row || !rw) {
        free(lg->x); free(lg->row); free(rw);
        return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    }
    double x = 0;
    int r = 0;
    for (int i = 0; i < n; i++) {
        double w = LEG_SWATCH + text_width(cr, LEG_SIZE, false, names[i]);
        if (x > 0 && x + w > width) { rw[r] = x - LEG_SPACE; r++; x = 0; }
        lg->x[i] = x;
        lg->row[i] = r;
        x += w + LEG_SPACE;
    }
    if (n > 0) rw[r] = x - LEG_SPACE;
    lg->rows = n > 0 ? r + 1 : 0;
    for (int i = 0; i < n; i++) lg->x[i] += (width - rw[lg->row[i]]) / 2;   /* centre each row */
    free(rw);
    return SM_OK;
}

static void legend_free(legend *lg)
{
    free(lg->x);
    free(lg->row);
}

/* style 0: a filled dot; 1: a short line with a dot (runs, curves). */
static void legend_draw(const legend *lg, cairo_t *cr, double x0, double y0, const char *const *names, int style)
{
    for (int i = 0; i < lg->n; i++) {
        double x = x0 + lg->x[i], y = y0 + lg->row[i] * LEG_ROW + LEG_ROW / 2;
        set_color(cr, i, 1.0);
        if (style == 0) {
            cairo_arc(cr, x + 8, y, 6, 0, 2 * PI);
            cairo_fill(cr);
        } else {
            cairo_set_line_width(cr, 2.5);
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, x + 18, y);
            cairo_stroke(cr);
            cairo_arc(cr, x + 9, y, 3.5, 0, 2 * PI);
            cairo_fill(cr);
        }
        cairo_set_source_rgb(cr, INK, INK, INK);
        text(cr, x + LEG_SWATCH, y, LEG_SIZE, false, 0, 0.5, names[i]);
    }
}

/* ------------------------------------------------------------------ features */

/* Orthographic view of the sphere: rotation by azimuth az about the
 * vertical (z) axis, then tilt by elevation el; gives screen right, screen
 * up and depth (> 0: facing us). */
typedef struct view {
    double ca, sa, ce, se;   /* cos/sin of azimuth and elevation */
} view;

static view make_view(double az_deg, double el_deg)
{
    double az = az_deg * PI / 180, el = el_deg * PI / 180;
    return (view){cos(az), sin(az), cos(el), sin(el)};
}

static void view3(const view *v, const double p[3], double *sx, double *sy, double *depth)
{
    double x1 = p[0] * v->ca - p[1] * v->sa, y1 = p[0] * v->sa + p[1] * v->ca, z1 = p[2];
    *sx = x1;
    *sy = z1 * v->ce - y1 * v->se;
    *depth = y1 * v->ce + z1 * v->se;
}

/* The view (azimuth in 15° steps, elevation 15°, 25° or 35°) that shows the
 * most points well in front (depth > 0.3): a sphere hides half its surface,
 * so each panel turns its crowded side to the viewer. Deterministic. */
static view best_view(const float *emb, int64_t n)
{
    view best = make_view(-35, 25);
    int64_t best_n = -1;
    for (int e = 0; e < 3; e++)
        for (int a = 0; a < 24; a++) {
            view v = make_view(-35 + 15 * a, 15 + 10 * e);
            int64_t k = 0;
            for (int64_t i = 0; i < n; i++) {
                double q[3] = {emb[3 * i], emb[3 * i + 1], emb[3 * i + 2]}, sx, sy, d;
                double nn = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
                view3(&v, q, &sx, &sy, &d);
                k += nn > 0 && d > 0.3 * nn;
            }
            if (k > best_n) best_n = k, best = v;
        }
    return best;
}

/* A great circle (the plane through the centre with normal nrm) as a polyline:
 * its near half solid, its far half dashed and light. */
static void great_circle(cairo_t *cr, const view *vw, double cx, double cy, double R, const double nrm[3], bool near)
{
    /* two unit vectors spanning the plane */
    double a[3] = {1, 0, 0};
    if (fabs(nrm[0]) > 0.9) a[0] = 0, a[1] = 1;
    double u[3] = {a[1] * nrm[2] - a[2] * nrm[1], a[2] * nrm[0] - a[0] * nrm[2], a[0] * nrm[1] - a[1] * nrm[0]};
    double un = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    for (int k = 0; k < 3; k++) u[k] /= un;
    double v[3] = {nrm[1] * u[2] - nrm[2] * u[1], nrm[2] * u[0] - nrm[0] * u[2], nrm[0] * u[1] - nrm[1] * u[0]};
    const int steps = 240;
    bool pen = false;
    for (int i = 0; i <= steps; i++) {
        double t = 2 * PI * i / steps, p[3], sx, sy, d;
        for (int k = 0; k < 3; k++) p[k] = cos(t) * u[k] + sin(t) * v[k];
        view3(vw, p, &sx, &sy, &d);
        if ((d >= 0) == near) {
            if (pen) cairo_line_to(cr, cx + R * sx, cy - R * sy);
            else cairo_move_to(cr, cx + R * sx, cy - R * sy);
            pen = true;
        } else {
            pen = false;
        }
    }
    cairo_stroke(cr);
}

typedef struct order_key {
    uint64_t h;
    int64_t i;
} order_key;

static int cmp_key(const void *a, const void *b)
{
    const order_key *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* Draws one panel's plot square at (x, y) with side S. */
static sm_status draw_features_panel(cairo_t *cr, const sm_plot_features_panel *p, int dim, int32_t nc,
                                     double x, double y, double S, sm_err *err)
{
    double cx = x + S / 2, cy = y + S / 2, R = S / 2 - 26;
    /* Points in a fixed pseudo-random order: data sets are often sorted by class,
     * and drawing in that order would bury the first classes under the last. */
    order_key *ord = malloc(sizeof *ord * (size_t)(p->n ? p->n : 1));
    if (!ord) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < p->n; i++) ord[i] = (order_key){sm_hash64(0x5eed, (uint64_t)i), i};
    qsort(ord, (size_t)p->n, sizeof *ord, cmp_key);

    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    if (dim == 2) {
        cairo_set_source_rgb(cr, 0.97, 0.97, 0.98);
        cairo_arc(cr, cx, cy, R * 1.06, 0, 2 * PI);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.85, 0.85, 0.87);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, cx - R * 1.1, cy); cairo_line_to(cr, cx + R * 1.1, cy);
        cairo_move_to(cr, cx, cy - R * 1.1); cairo_line_to(cr, cx, cy + R * 1.1);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.55, 0.55, 0.58);
        cairo_arc(cr, cx, cy, R, 0, 2 * PI);
        cairo_stroke(cr);
        if (p->centers)
            for (int32_t c = 0; c < nc; c++) {
                double u = p->centers[2 * c], v = p->centers[2 * c + 1], n = sqrt(u * u + v * v);
                if (!(n > 0)) continue;
                set_color(cr, c, 0.9);
                cairo_set_line_width(cr, 1.6);
                cairo_move_to(cr, cx, cy);
                cairo_line_to(cr, cx + R * 1.13 * u / n, cy - R * 1.13 * v / n);
                cairo_stroke(cr);
            }
        for (int64_t k = 0; k < p->n; k++) {
            int64_t i = ord[k].i;
            double u = p->emb[2 * i], v = p->emb[2 * i + 1], n = sqrt(u * u + v * v);
            if (!(n > 0)) continue;
            double jit = 1.0 + 0.08 * ((double)(sm_hash64(0x717, (uint64_t)i) >> 11) * 0x1.0p-53 - 0.5);
            set_color(cr, p->labels[i], 0.55);
            cairo_arc(cr, cx + R * jit * u / n, cy - R * jit * v / n, 1.9, 0, 2 * PI);
            cairo_fill(cr);
        }
    } else {
        /* far side: points and great circles, then a veil over them */
        const view vw = best_view(p->emb, p->n);
        const double eq[3] = {0, 0, 1}, m1[3] = {1, 0, 0}, m2[3] = {0, 1, 0};
        cairo_set_line_width(cr, 1);
        cairo_set_source_rgb(cr, 0.75, 0.75, 0.78);
        double dash[1] = {3};
        cairo_set_dash(cr, dash, 1, 0);
        great_circle(cr, &vw, cx, cy, R, eq, false);
        great_circle(cr, &vw, cx, cy, R, m1, false);
        great_circle(cr, &vw, cx, cy, R, m2, false);
        cairo_set_dash(cr, NULL, 0, 0);
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                /* the shaded sphere: lit from the upper left, darker at the rim */
                cairo_pattern_t *g = cairo_pattern_create_radial(cx - 0.35 * R, cy - 0.4 * R, 0.05 * R, cx, cy, R);
                cairo_pattern_add_color_stop_rgba(g, 0, 0.99, 0.99, 1.0, 0.70);
                cairo_pattern_add_color_stop_rgba(g, 1, 0.84, 0.85, 0.89, 0.70);
                cairo_set_source(cr, g);
                cairo_arc(cr, cx, cy, R, 0, 2 * PI);
                cairo_fill(cr);
                cairo_pattern_destroy(g);
                cairo_set_source_rgb(cr, 0.55, 0.55, 0.58);
                cairo_set_line_width(cr, 1);
                great_circle(cr, &vw, cx, cy, R, eq, true);
                great_circle(cr, &vw, cx, cy, R, m1, true);
                great_circle(cr, &vw, cx, cy, R, m2, true);
                cairo_set_source_rgb(cr, 0.40, 0.40, 0.44);
                cairo_set_line_width(cr, 1.3);
                cairo_arc(cr, cx, cy, R, 0, 2 * PI);
                cairo_stroke(cr);
            }
            if (p->centers)
                for (int32_t c = 0; c < nc; c++) {
                    double q[3] = {p->centers[3 * c], p->centers[3 * c + 1], p->centers[3 * c + 2]};
                    double n = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]), sx, sy, d;
                    if (!(n > 0)) continue;
                    for (int k = 0; k < 3; k++) q[k] /= n;
                    view3(&vw, q, &sx, &sy, &d);
                    if ((d >= 0) != (pass == 1)) continue;
                    set_color(cr, c, pass ? 0.95 : 0.5);
                    cairo_set_line_width(cr, pass ? 1.8 : 1.2);
                    cairo_move_to(cr, cx, cy);
                    cairo_line_to(cr, cx + R * sx, cy - R * sy);
                    cairo_stroke(cr);
                    cairo_arc(cr, cx + R * sx, cy - R * sy, pass ? 3.5 : 2.5, 0, 2 * PI);
                    cairo_stroke(cr);
                }
            for (int64_t k = 0; k < p->n; k++) {
                int64_t i = ord[k].i;
                double q[3] = {p->emb[3 * i], p->emb[3 * i + 1], p->emb[3 * i + 2]};
                double n = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]), sx, sy, d;
                if (!(n > 0)) continue;
                for (int j = 0; j < 3; j++) q[j] /= n;
                view3(&vw, q, &sx, &sy, &d);
                if ((d >= 0) != (pass == 1)) continue;
                set_color(cr, p->labels[i], pass ? 0.6 : 0.45);
                cairo_arc(cr, cx + R * sx, cy - R * sy, pass ? 1.9 : 1.4, 0, 2 * PI);
                cairo_fill(cr);
            }
        }
    }
    free(ord);
    return SM_OK;
}

sm_status sm_plot_features(const char *path, const sm_plot_features_panel *panels, int npanels,
                           int dim, const char *const *class_names, int32_t n_classes,
                           const char *caption, int *width, int *height, sm_err *err)
{
    if (dim != 2 && dim != 3)
        return sm_fail(err, SM_ERR_ARG, "features can be drawn in 2 or 3 dimensions, not %d (project them first)", dim);
    if (npanels < 1 || npanels > 64 || n_classes < 1 || n_classes > 1000 || !class_names)
        return sm_fail(err, SM_ERR_ARG, "sm_plot_features: %d panels, %d classes (want 1..64 and 1..1000)",
                       npanels, (int)n_classes);
    for (int k = 0; k < npanels; k++) {
        if (panels[k].n < 0 || (panels[k].n > 0 && (!panels[k].emb || !panels[k].labels)))
            return sm_fail(err, SM_ERR_ARG, "sm_plot_features: panel %d has no points", k);
        for (int64_t i = 0; i < panels[k].n; i++)
            if (panels[k].labels[i] < 0 || panels[k].labels[i] >= n_classes)
                return sm_fail(err, SM_ERR_ARG, "sm_plot_features: panel %d, point %lld has label %d, not in 0..%d",
                               k, (long long)i, (int)panels[k].labels[i], (int)n_classes - 1);
    }
    const double S = SM_PLOT_PANEL, G = SM_PLOT_GAP, TB = 50, RG = 16;
    const int rows = (npanels + 2) / 3, cols = (npanels + rows - 1) / rows;
    int W = cols * (SM_PLOT_PANEL + SM_PLOT_GAP) + SM_PLOT_GAP;
    scratch sc;
    scratch_open(&sc);
    caption_t cap;
    double top = caption_layout(&cap, sc.cr, caption, W - 2 * G);
    legend lg;
    sm_status st = legend_layout(&lg, sc.cr, class_names, n_classes, W - 2 * G, err);
    scratch_close(&sc);
    if (st) return st;
    int H = (int)ceil(top + rows * (TB + S) + (rows - 1) * RG + 10 + lg.rows * LEG_ROW + G);
    canvas cv;
    if ((st = canvas_open(&cv, path, W, H, err))) { legend_free(&lg); return st; }
    cairo_t *cr = cv.cr;
    caption_draw(&cap, cr, G);
    for (int k = 0; k < npanels && !st; k++) {
        int row = k / cols, col = k % cols;
        int in_row = row == rows - 1 ? npanels - row * cols : cols;   /* a short last row is centred */
        double x = G + col * (S + G) + (cols - in_row) * (S + G) / 2, y = top + row * (TB + S + RG);
        char line[256];
        cairo_set_source_rgb(cr, INK, INK, INK);
        fit_text(cr, 15, true, panels[k].title ? panels[k].title : "", S, line, sizeof line);
        text(cr, x + S / 2, y, 15, true, 0.5, 0, line);
        if (panels[k].subtitle) {
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            fit_text(cr, 13, false, panels[k].subtitle, S, line, sizeof line);
            text(cr, x + S / 2, y + 22, 13, false, 0.5, 0, line);
        }
        st = draw_features_panel(cr, &panels[k], dim, n_classes, x, y + TB, S, err);
    }
    if (!st) legend_draw(&lg, cr, G, top + rows * (TB + S) + (rows - 1) * RG + 10, class_names, 0);
    legend_free(&lg);
    st = canvas_close(&cv, st, err);
    if (!st && width) *width = W;
    if (!st && height) *height = H;
    return st;
}

/* ------------------------------------------------------------------ PCA */

sm_status sm_plot_pca(float *out, const float *in, int64_t n, int64_t d, int64_t k, sm_err *err)
{
    if (n < 2 || k < 1 || k > d || d > 4096)
        return sm_fail(err, SM_ERR_ARG, "PCA of %lld rows of %lld to %lld dimensions: need >= 2 rows and 1 <= k <= d <= 4096",
                       (long long)n, (long long)d, (long long)k);
    double *mean = calloc((size_t)d, sizeof *mean), *C = calloc((size_t)(d * d), sizeof *C);
    double *V = calloc((size_t)(d * k), sizeof *V), *Wm = calloc((size_t)(d * k), sizeof *Wm);
    double *row = calloc((size_t)d, sizeof *row);
    sm_status st = SM_OK;
    if (!mean || !C || !V || !Wm || !row) { st = sm_fail(err, SM_ERR_NOMEM, "out of memory for a %lld-d PCA", (long long)d); goto done; }
    for (int64_t i = 0; i < n; i++)
        for (int64_t t = 0; t < d; t++) mean[t] += in[i * d + t];
    for (int64_t t = 0; t < d; t++) mean[t] /= (double)n;
    for (int64_t i = 0; i < n; i++) {   /* upper triangle of the covariance */
        for (int64_t t = 0; t < d; t++) row[t] = in[i * d + t] - mean[t];
        for (int64_t a = 0; a < d; a++) {
            double ra = row[a];
            double *Ca = C + a * d;
            for (int64_t b = a; b < d; b++) Ca[b] += ra * row[b];
        }
    }
    for (int64_t a = 0; a < d; a++)
        for (int64_t b = 0; b < a; b++) C[a * d + b] = C[b * d + a];
    /* orthogonal iteration from a fixed start; 300 rounds settle the top axes
     * of embedding covariances to plotting precision */
    for (int64_t t = 0; t < d; t++)
        for (int64_t j = 0; j < k; j++) V[t * k + j] = (double)(sm_hash64(7 + (uint64_t)j, (uint64_t)t) >> 11) * 0x1.0p-53 - 0.5;
    for (int it = 0; it < 300; it++) {
        for (int64_t a = 0; a < d; a++)
            for (int64_t j = 0; j < k; j++) {
                double s = 0;
                for (int64_t b = 0; b < d; b++) s += C[a * d + b] * V[b * k + j];
                Wm[a * k + j] = s;
            }
        for (int64_t j = 0; j < k; j++) {   /* Gram-Schmidt */
            for (int64_t q = 0; q < j; q++) {
                double dot = 0;
                for (int64_t a = 0; a < d; a++) dot += Wm[a * k + j] * Wm[a * k + q];
                for (int64_t a = 0; a < d; a++) Wm[a * k + j] -= dot * Wm[a * k + q];
            }
            double nn = 0;
            for (int64_t a = 0; a < d; a++) nn += Wm[a * k + j] * Wm[a * k + j];
            nn = sqrt(nn);
            for (int64_t a = 0; a < d; a++) Wm[a * k + j] = nn > 0 ? Wm[a * k + j] / nn : (a == j);
        }
        double *tmp = V; V = Wm; Wm = tmp;
    }
    for (int64_t j = 0; j < k; j++) {   /* sign: largest component positive */
        int64_t am = 0;
        for (int64_t a = 1; a < d; a++)
            if (fabs(V[a * k + j]) > fabs(V[am * k + j])) am = a;
        if (V[am * k + j] < 0)
            for (int64_t a = 0; a < d; a++) V[a * k + j] = -V[a * k + j];
    }
    for (int64_t i = 0; i < n; i++) {
        double y[3] = {0}, nn = 0;
        double *yy = k <= 3 ? y : Wm;   /* Wm is free scratch of d*k >= k doubles */
        for (int64_t j = 0; j < k; j++) {
            double s = 0;
            for (int64_t t = 0; t < d; t++) s += (in[i * d + t] - mean[t]) * V[t * k + j];
            yy[j] = s;
            nn += s * s;
        }
        nn = sqrt(nn);
        for (int64_t j = 0; j < k; j++) out[i * k + j] = nn > 0 ? (float)(yy[j] / nn) : 0.0f;
    }
done:
    free(mean); free(C); free(V); free(Wm); free(row);
    return st;
}

/* ------------------------------------------------------------------ charts */

typedef struct chart {
    double x0, y0, x1, y1;          /* plot area in pixels */
    double xmin, xmax, ymin, ymax;  /* data range */
    bool logx;
} chart;

static double chart_x(const chart *c, double v)
{
    double t = c->logx ? (log10(v) - log10(c->xmin)) / (log10(c->xmax) - log10(c->xmin))
                       : (v - c->xmin) / (c->xmax - c->xmin);
    return c->x0 + t * (c->x1 - c->x0);
}

static double chart_y(const chart *c, double v)
{
    return c->y1 - (v - c->ymin) / (c->ymax - c->ymin) * (c->y1 - c->y0);
}

/* 1, 2 or 5 times a power of ten, about range / target. */
static double nice_step(double range, int target)
{
    double raw = range / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

static void tick_label(double v, double step, char *out, size_t cap)
{
    if (fabs(v) < step * 1e-6) v = 0;
    if (step >= 1) { snprintf(out, cap, "%.0f", v); return; }
    int dec = (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) snprintf(out, cap, "%.1e", v);
    else snprintf(out, cap, "%.*f", dec, v);
}

/* Pads [lo, hi] by 6 % (or to a unit span when flat) for a y axis. */
static void pad_range(double *lo, double *hi)
{
    if (!(*hi > *lo)) {
        double m = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 0.5;
        *lo -= m;
        *hi += m;
        return;
    }
    double p = (*hi - *lo) * 0.06;
    *lo -= p;
    *hi += p;
}

/* Grid, ticks, frame, labels and title of a chart; int_x: integer x ticks. */
static void chart_frame(cairo_t *cr, const chart *c, const char *title, const char *xlabel, const char *ylabel,
                        bool int_x)
{
    char lab[64];
    cairo_set_line_width(cr, 1);
    /* y grid and labels */
    double ys = nice_step(c->ymax - c->ymin, 5);
    for (double v = ceil(c->ymin / ys - 1e-9) * ys; v <= c->ymax + ys * 1e-9; v += ys) {
        double y = chart_y(c, v);
        cairo_set_source_rgb(cr, 0.90, 0.90, 0.92);
        cairo_move_to(cr, c->x0, y); cairo_line_to(cr, c->x1, y);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        tick_label(v, ys, lab, sizeof lab);
        text(cr, c->x0 - 6, y, 11, false, 1, 0.5, lab);
    }
    /* x grid and labels */
    if (c->logx) {
        for (int e = (int)floor(log10(c->xmin) + 1e-9); e <= (int)ceil(log10(c->xmax) - 1e-9); e++)
            for (int m = 1; m < 10; m++) {
                double v = m * pow(10, e);
                if (v < c->xmin * (1 - 1e-9) || v > c->xmax * (1 + 1e-9)) continue;
                double x = chart_x(c, v);
                cairo_set_source_rgb(cr, m == 1 ? 0.86 : 0.95, m == 1 ? 0.86 : 0.95, m == 1 ? 0.88 : 0.96);
                cairo_move_to(cr, x, c->y0); cairo_line_to(cr, x, c->y1);
                cairo_stroke(cr);
                if (m == 1) {
                    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
                    pow10_label(e, lab, sizeof lab);
                    text(cr, x, c->y1 + 5, 11, false, 0.5, 0, lab);
                }
            }
    } else {
        double xs = nice_step(c->xmax - c->xmin, 6);
        if (int_x && xs < 1) xs = 1;
        for (double v = ceil(c->xmin / xs - 1e-9) * xs; v <= c->xmax + xs * 1e-9; v += xs) {
            double x = chart_x(c, v);
            cairo_set_source_rgb(cr, 0.90, 0.90, 0.92);
            cairo_move_to(cr, x, c->y0); cairo_line_to(cr, x, c->y1);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            tick_label(v, xs, lab, sizeof lab);
            text(cr, x, c->y1 + 5, 11, false, 0.5, 0, lab);
        }
    }
    cairo_set_source_rgb(cr, 0.45, 0.45, 0.48);
    cairo_rectangle(cr, c->x0, c->y0, c->x1 - c->x0, c->y1 - c->y0);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, INK, INK, INK);
    if (title) text(cr, (c->x0 + c->x1) / 2, c->y0 - 8, 14, true, 0.5, 1, title);
    if (xlabel) text(cr, (c->x0 + c->x1) / 2, c->y1 + 22, 12, false, 0.5, 0, xlabel);
    if (ylabel) text_vertical(cr, c->x0 - 52, (c->y0 + c->y1) / 2, 12, false, ylabel);
}

/* A polyline through the points with finite y (and x > 0 on a log axis), dots
 * at the points when dots > 0, clipped to the plot area. */
static void chart_line(cairo_t *cr, const chart *c, const double *x, const double *y, int64_t n, double lw,
                       const double *dash, int ndash, double dots)
{
    cairo_save(cr);
    cairo_rectangle(cr, c->x0, c->y0, c->x1 - c->x0, c->y1 - c->y0);
    cairo_clip(cr);
    cairo_set_line_width(cr, lw);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_dash(cr, dash, ndash, 0);
    bool pen = false;
    for (int64_t i = 0; i < n; i++) {
        bool ok = isfinite(y[i]) && isfinite(x[i]) && (!c->logx || x[i] > 0);
        if (!ok) { pen = false; continue; }
        if (pen) cairo_line_to(cr, chart_x(c, x[i]), chart_y(c, y[i]));
        else cairo_move_to(cr, chart_x(c, x[i]), chart_y(c, y[i]));
        pen = true;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    if (dots > 0)
        for (int64_t i = 0; i < n; i++)
            if (isfinite(y[i]) && isfinite(x[i]) && (!c->logx || x[i] > 0)) {
                cairo_arc(cr, chart_x(c, x[i]), chart_y(c, y[i]), dots, 0, 2 * PI);
                cairo_fill(cr);
            }
    cairo_restore(cr);
}

/* ------------------------------------------------------------------ curves */

void sm_plot_run_free(sm_plot_run *r)
{
    if (!r) return;
    free(r->name);
    free(r->epoch);
    free(r->loss);
    free(r->train_acc);
    free(r->val_acc);
    free(r->lr);
    memset(r, 0, sizeof *r);
}

static bool get_number(json_t *o, const char *key, double *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_number(x)) return false;
    *v = json_number_value(x);
    return true;
}

sm_status sm_plot_read_log(const char *path, sm_plot_run *run, sm_err *err)
{
    memset(run, 0, sizeof *run);
    FILE *f = fopen(path, "r");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open log '%s': %s", path, strerror(errno));
    const char *base = strrchr(path, '/');
    run->name = strdup(base ? base + 1 : path);
    sm_status st = run->name ? SM_OK : sm_fail(err, SM_ERR_NOMEM, "out of memory");
    char *line = NULL;
    size_t lcap = 0;
    int64_t cap = 0, lineno = 0;
    ssize_t len;
    while (!st && (len = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        const char *p = line;
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) continue;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        double ep, loss, lr, ta = -1, va = -1;
        if (!json_is_object(o) || !get_number(o, "epoch", &ep) || !get_number(o, "loss", &loss) ||
            !get_number(o, "lr", &lr)) {
            st = sm_fail(err, SM_ERR_FORMAT,
                         "%s:%lld: not a training log line (want a JSON object with numbers \"epoch\", \"loss\", \"lr\"%s%s)",
                         path, (long long)lineno, o ? "" : ": ", o ? "" : je.text);
            json_decref(o);
            break;
        }
        get_number(o, "train_accuracy", &ta);
        get_number(o, "val_accuracy", &va);
        json_decref(o);
        if (run->n == cap) {
            cap = cap ? 2 * cap : 64;
            double **arrs[5] = {&run->epoch, &run->loss, &run->train_acc, &run->val_acc, &run->lr};
            for (int a = 0; a < 5 && !st; a++) {
                double *nv = realloc(*arrs[a], sizeof(double) * (size_t)cap);
                if (!nv) st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
                else *arrs[a] = nv;
            }
            if (st) break;
        }
        run->epoch[run->n] = ep;
        run->loss[run->n] = loss;
        run->train_acc[run->n] = ta;
        run->val_acc[run->n] = va;
        run->lr[run->n] = lr;
        run->n++;
    }
    if (!st && ferror(f)) st = sm_fail(err, SM_ERR_IO, "cannot read log '%s': %s", path, strerror(errno));
    if (!st && run->n == 0)
        st = sm_fail(err, SM_ERR_FORMAT, "log '%s' is empty: no epoch lines (a training log has one JSON line per epoch)", path);
    free(line);
    fclose(f);
    if (st) sm_plot_run_free(run);
    return st;
}

sm_status sm_plot_curves(const char *path, const sm_plot_run *runs, int nruns, const char *caption,
                         int *width, int *height, sm_err *err)
{
    if (nruns < 1 || nruns > 1000) return sm_fail(err, SM_ERR_ARG, "sm_plot_curves: %d runs (want 1..1000)", nruns);
    double xmin = INFINITY, xmax = -INFINITY, rng[3][2] = {{INFINITY, -INFINITY}, {INFINITY, -INFINITY}, {INFINITY, -INFINITY}};
    for (int r = 0; r < nruns; r++) {
        if (runs[r].n < 1) return sm_fail(err, SM_ERR_ARG, "sm_plot_curves: run '%s' has no epochs", runs[r].name);
        for (int64_t i = 0; i < runs[r].n; i++) {
            double v[4] = {runs[r].loss[i], runs[r].val_acc[i], runs[r].train_acc[i], runs[r].lr[i]};
            int which[4] = {0, 1, 1, 2};
            if (isfinite(runs[r].epoch[i])) {
                xmin = fmin(xmin, runs[r].epoch[i]);
                xmax = fmax(xmax, runs[r].epoch[i]);
            }
            for (int k = 0; k < 4; k++) {
                if (!isfinite(v[k]) || ((k == 1 || k == 2) && v[k] < 0)) continue;
                rng[which[k]][0] = fmin(rng[which[k]][0], v[k]);
                rng[which[k]][1] = fmax(rng[which[k]][1], v[k]);
            }
        }
    }
    if (!(xmax >= xmin)) xmin = 0, xmax = 1;
    if (xmax == xmin) xmin -= 0.5, xmax += 0.5;
    double xpad = 0.03 * (xmax - xmin);   /* keep the end points' dots inside the frame */
    xmin -= xpad;
    xmax += xpad;
    for (int k = 0; k < 3; k++) {
        if (!(rng[k][1] >= rng[k][0])) rng[k][0] = 0, rng[k][1] = 1;
        pad_range(&rng[k][0], &rng[k][1]);
    }
    if (rng[1][1] > 1.0) rng[1][1] = 1.0;
    if (rng[1][0] < 0.0) rng[1][0] = 0.0;
    if (rng[2][0] < 0.0) rng[2][0] = 0.0;

    const int W = 1140;
    const double G = SM_PLOT_GAP, CW = (W - 4 * G) / 3, CH = 300;
    const char **names = malloc(sizeof *names * (size_t)nruns);
    if (!names) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    for (int r = 0; r < nruns; r++) names[r] = runs[r].name ? runs[r].name : "run";
    scratch sc;
    scratch_open(&sc);
    caption_t cap;
    double top = caption_layout(&cap, sc.cr, caption, W - 2 * G);
    legend lg;
    sm_status st = legend_layout(&lg, sc.cr, names, nruns, W - 2 * G, err);
    scratch_close(&sc);
    if (st) { free(names); return st; }
    int H = (int)ceil(top + CH + 12 + lg.rows * LEG_ROW + G);
    canvas cv;
    if ((st = canvas_open(&cv, path, W, H, err))) { legend_free(&lg); free(names); return st; }
    cairo_t *cr = cv.cr;
    caption_draw(&cap, cr, G);
    static const char *const titles[3] = {"loss", "accuracy", "learning rate"};
    static const char *const ylabels[3] = {"training loss (mean over the epoch)", "accuracy", "learning rate (last step)"};
    const double dashed[2] = {5, 4};
    for (int k = 0; k < 3; k++) {
        double bx = G + k * (CW + G);
        chart c = {bx + 66, top + 26, bx + CW - 8, top + CH - 42, xmin, xmax, rng[k][0], rng[k][1], false};
        chart_frame(cr, &c, titles[k], "epoch", ylabels[k], true);
        for (int r = 0; r < nruns; r++) {
            const sm_plot_run *u = &runs[r];
            set_color(cr, r, 1.0);
            if (k == 0) chart_line(cr, &c, u->epoch, u->loss, u->n, 2.2, NULL, 0, 3);
            if (k == 2) chart_line(cr, &c, u->epoch, u->lr, u->n, 2.2, NULL, 0, 3);
            if (k == 1) {
                double *va = malloc(sizeof(double) * (size_t)u->n), *ta = malloc(sizeof(double) * (size_t)u->n);
                if (!va || !ta) { free(va); free(ta); st = sm_fail(err, SM_ERR_NOMEM, "out of memory"); break; }
                for (int64_t i = 0; i < u->n; i++) {   /* -1: not measured */
                    va[i] = u->val_acc[i] >= 0 ? u->val_acc[i] : NAN;
                    ta[i] = u->train_acc[i] >= 0 ? u->train_acc[i] : NAN;
                }
                chart_line(cr, &c, u->epoch, va, u->n, 2.2, NULL, 0, 3);
                chart_line(cr, &c, u->epoch, ta, u->n, 1.6, dashed, 2, 0);
                free(va);
                free(ta);
            }
        }
        if (k == 1) {   /* which line is which */
            double lx = c.x1 - 150, ly = c.y1 - 40;
            cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
            cairo_rectangle(cr, lx - 6, ly - 6, 150, 40);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.35, 0.35, 0.38);
            cairo_set_line_width(cr, 2);
            cairo_move_to(cr, lx, ly + 7); cairo_line_to(cr, lx + 26, ly + 7);
            cairo_stroke(cr);
            cairo_set_dash(cr, dashed, 2, 0);
            cairo_move_to(cr, lx, ly + 23); cairo_line_to(cr, lx + 26, ly + 23);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            text(cr, lx + 34, ly + 7, 11, false, 0, 0.5, "validation");
            text(cr, lx + 34, ly + 23, 11, false, 0, 0.5, "training");
        }
    }
    if (!st) legend_draw(&lg, cr, G, top + CH + 12, names, 1);
    legend_free(&lg);
    free(names);
    st = canvas_close(&cv, st, err);
    if (!st && width) *width = W;
    if (!st && height) *height = H;
    return st;
}

/* ------------------------------------------------------------------ retrieval */

/* Paints image (c, h, w) u8 into the square cell at (x, y), side S, nearest
 * neighbour, aspect kept, centred. */
static sm_status paint_image(cairo_t *cr, const uint8_t *img, int64_t c, int64_t h, int64_t w, double x, double y,
                             double S, sm_err *err)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)w, (int)h);
    if (cairo_surface_status(s)) {
        cairo_surface_destroy(s);
        return sm_fail(err, SM_ERR_NOMEM, "cannot make a %lld x %lld image", (long long)w, (long long)h);
    }
    cairo_surface_flush(s);
    unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int64_t r = 0; r < h; r++) {
        uint32_t *px = (uint32_t *)(void *)(data + r * stride);
        for (int64_t q = 0; q < w; q++) {
            uint32_t R, Gc, B;
            if (c >= 3) {
                R = img[(0 * h + r) * w + q];
                Gc = img[(1 * h + r) * w + q];
                B = img[(2 * h + r) * w + q];
            } else {
                R = Gc = B = img[r * w + q];
            }
            px[q] = 0xFF000000u | R << 16 | Gc << 8 | B;
        }
    }
    cairo_surface_mark_dirty(s);
    double sc = S / (double)(h > w ? h : w);
    cairo_save(cr);
    cairo_translate(cr, x + (S - sc * w) / 2, y + (S - sc * h) / 2);
    cairo_scale(cr, sc, sc);
    cairo_set_source_surface(cr, s, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, (double)w, (double)h);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(s);
    return SM_OK;
}

sm_status sm_plot_retrieval(const char *path, const uint8_t *query, const int32_t *qclass, int64_t nq,
                            const uint8_t *hits, const int32_t *hclass, const float *sim, int64_t k,
                            int64_t c, int64_t h, int64_t w, const char *const *class_names,
                            int32_t n_classes, const char *caption, int *width, int *height, sm_err *err)
{
    if (nq < 1 || nq > 1000 || k < 1 || k > 1000 || (c != 1 && c != 3) || h < 1 || w < 1 || h > 4096 || w > 4096)
        return sm_fail(err, SM_ERR_ARG, "sm_plot_retrieval: %lld queries, k %lld, images %lldx%lldx%lld (want 1..1000, "
                       "1..1000, 1 or 3 channels)", (long long)nq, (long long)k, (long long)c, (long long)h, (long long)w);
    const double S = SM_PLOT_CELL, G = SM_PLOT_GAP, SEP = 30, STEP = SM_PLOT_CELL + 12, ROW = SM_PLOT_CELL + 44;
    int W = (int)(2 * G + S + SEP + k * STEP);
    scratch sc;
    scratch_open(&sc);
    caption_t cap;
    const double TOP = caption_layout(&cap, sc.cr, caption, W - 2 * G) + 30;
    scratch_close(&sc);
    int H = (int)(TOP + nq * ROW);
    canvas cv;
    sm_status st = canvas_open(&cv, path, W, H, err);
    if (st) return st;
    cairo_t *cr = cv.cr;
    const int64_t isz = c * h * w;
    char buf[128], line[LINE_CAP];
    caption_draw(&cap, cr, G);
    cairo_set_source_rgb(cr, INK, INK, INK);
    text(cr, G + S / 2, TOP - 10, 12, true, 0.5, 1, "query");
    for (int64_t j = 0; j < k; j++) {
        snprintf(buf, sizeof buf, "%lld", (long long)j + 1);
        text(cr, G + S + SEP + j * STEP + S / 2, TOP - 10, 12, true, 0.5, 1, buf);
    }
    for (int64_t q = 0; q < nq && !st; q++) {
        double y = TOP + q * ROW;
        st = paint_image(cr, query + q * isz, c, h, w, G, y, S, err);
        cairo_set_source_rgb(cr, 0.2, 0.25, 0.45);
        cairo_set_line_width(cr, 4);
        cairo_rectangle(cr, G - 2, y - 2, S + 4, S + 4);
        cairo_stroke(cr);
        const char *qn = qclass[q] >= 0 && qclass[q] < n_classes && class_names ? class_names[qclass[q]] : "?";
        cairo_set_source_rgb(cr, INK, INK, INK);
        fit_text(cr, 12, true, qn, S + 10, line, sizeof line);
        text(cr, G + S / 2, y + S + 6, 12, true, 0.5, 0, line);
        cairo_set_source_rgb(cr, 0.8, 0.8, 0.82);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, G + S + SEP / 2, y - 4);
        cairo_line_to(cr, G + S + SEP / 2, y + S + 36);
        cairo_stroke(cr);
        for (int64_t j = 0; j < k && !st; j++) {
            double x = G + S + SEP + j * STEP;
            int64_t t = q * k + j;
            st = paint_image(cr, hits + t * isz, c, h, w, x, y, S, err);
            const double *fc = hclass[t] == qclass[q] ? GREEN : RED;
            cairo_set_source_rgb(cr, fc[0], fc[1], fc[2]);
            cairo_set_line_width(cr, 4);
            cairo_rectangle(cr, x - 2, y - 2, S + 4, S + 4);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, INK, INK, INK);
            snprintf(buf, sizeof buf, "%.3f", (double)sim[t]);
            text(cr, x + S / 2, y + S + 6, 12, false, 0.5, 0, buf);
            const char *hn = hclass[t] >= 0 && hclass[t] < n_classes && class_names ? class_names[hclass[t]] : "?";
            cairo_set_source_rgb(cr, fc[0] * 0.8, fc[1] * 0.8, fc[2] * 0.8);
            fit_text(cr, 11, false, hn, STEP - 2, line, sizeof line);
            text(cr, x + S / 2, y + S + 22, 11, false, 0.5, 0, line);
        }
    }
    st = canvas_close(&cv, st, err);
    if (!st && width) *width = W;
    if (!st && height) *height = H;
    return st;
}

/* ------------------------------------------------------------------ ROC */

sm_status sm_plot_roc(const char *path, const sm_plot_roc_curve *curves, int ncurves, const char *caption,
                      int *width, int *height, sm_err *err)
{
    if (ncurves < 1 || ncurves > 100) return sm_fail(err, SM_ERR_ARG, "sm_plot_roc: %d curves (want 1..100)", ncurves);
    double fmin_ = 1;
    for (int r = 0; r < ncurves; r++) {
        if (curves[r].n < 1) return sm_fail(err, SM_ERR_ARG, "sm_plot_roc: curve %d has no points", r);
        for (int64_t i = 0; i < curves[r].n; i++)
            if (curves[r].far[i] > 0 && curves[r].far[i] < fmin_) fmin_ = curves[r].far[i];
        for (int i = 0; i < curves[r].nops; i++)
            if (curves[r].ops[i].far_target > 0 && curves[r].ops[i].far_target < fmin_) fmin_ = curves[r].ops[i].far_target;
    }
    int e0 = (int)floor(log10(fmin_) + 1e-9);
    if (e0 > -1) e0 = -1;
    if (e0 < -12) e0 = -12;
    const int W = 760, H = 560;
    canvas cv;
    sm_status st = canvas_open(&cv, path, W, H, err);
    if (st) return st;
    cairo_t *cr = cv.cr;
    caption_t cap;
    double top = caption_layout(&cap, cr, caption, W - 2 * SM_PLOT_GAP);
    caption_draw(&cap, cr, SM_PLOT_GAP);
    char line[LINE_CAP];
    /* TAR up to 1.04: room above TAR 1 for the labels of the operating points */
    chart c = {86, top + 30, W - 24, H - 52, pow(10, e0), 1, 0, 1.04, true};
    chart_frame(cr, &c, "verification ROC", "false accept rate (FAR)", "true accept rate (TAR)", false);
    /* chance: TAR = FAR */
    const double dashed[2] = {5, 4};
    int64_t nchance = 64;
    double chx[64], chy[64];
    for (int64_t i = 0; i < nchance; i++) {
        chx[i] = pow(10, e0 + (double)-e0 * (double)i / (double)(nchance - 1));
        chy[i] = chx[i];
    }
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.62);
    chart_line(cr, &c, chx, chy, nchance, 1.2, dashed, 2, 0);
    for (int r = 0; r < ncurves; r++) {
        set_color(cr, r, 1.0);
        chart_line(cr, &c, curves[r].far, curves[r].tar, curves[r].n, 2.4, NULL, 0, 0);
    }
    /* operating points: a ring on the curve labelled with its FAR above-left
     * (the curve only rises to the right, so that corner is free); their
     * numbers, the curve names and the chance line explained in a box */
    int nbox = 0;
    for (int r = 0; r < ncurves; r++) nbox += curves[r].nops;
    double bw = text_width(cr, 12, false, "chance (TAR = FAR)"), bh = 22.0 * (nbox + 1) + (ncurves > 1 ? 22.0 * ncurves : 0) + 12;
    for (int r = 0; r < ncurves; r++) {
        for (int i = 0; i < curves[r].nops; i++) {
            const sm_roc_point *o = &curves[r].ops[i];
            char fl[32];
            pow10_label((int)lround(log10(o->far_target)), fl, sizeof fl);
            if (fabs(log10(o->far_target) - lround(log10(o->far_target))) > 1e-6) snprintf(fl, sizeof fl, "%g", o->far_target);
            snprintf(line, sizeof line, "FAR %s:  TAR %.3f  at cos > %.3f", fl, o->tar, (double)o->threshold);
            bw = fmax(bw, text_width(cr, 12, false, line));
        }
        if (ncurves > 1) bw = fmax(bw, text_width(cr, 12, true, curves[r].name ? curves[r].name : ""));
    }
    bw += 40;
    /* the box goes to the lower right or the upper left, whichever covers
     * fewer curve points and operating-point marks */
    double cand[2][2] = {{c.x1 - bw - 10, c.y1 - bh - 10}, {c.x0 + 10, c.y0 + 24}};
    int best = 0;
    double best_cover = INFINITY;
    for (int k = 0; k < 2; k++) {
        double x0 = cand[k][0] - 8, y0 = cand[k][1] - 8, x1 = cand[k][0] + bw + 8, y1 = cand[k][1] + bh + 8, cover = 0;
        for (int r = 0; r < ncurves; r++) {
            for (int64_t i = 0; i < curves[r].n; i++) {
                if (!(curves[r].far[i] > 0) || !isfinite(curves[r].tar[i])) continue;
                double px = chart_x(&c, curves[r].far[i]), py = chart_y(&c, curves[r].tar[i]);
                cover += px >= x0 && px <= x1 && py >= y0 && py <= y1;
            }
            for (int i = 0; i < curves[r].nops; i++) {   /* ring and its label above-left */
                double px = chart_x(&c, curves[r].ops[i].far_target), py = chart_y(&c, curves[r].ops[i].tar);
                cover += 20 * (px + 8 >= x0 && px - 70 <= x1 && py + 8 >= y0 && py - 24 <= y1);
            }
        }
        if (cover < best_cover) best_cover = cover, best = k;
    }
    double bx = cand[best][0], by = cand[best][1];
    cairo_set_source_rgba(cr, 1, 1, 1, 0.92);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.78);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    double ty = by + 6;
    for (int r = 0; r < ncurves; r++) {
        if (ncurves > 1) {
            set_color(cr, r, 1.0);
            text(cr, bx + 12, ty + 11, 12, true, 0, 0.5, curves[r].name ? curves[r].name : "");
            ty += 22;
        }
        for (int i = 0; i < curves[r].nops; i++) {
            const sm_roc_point *o = &curves[r].ops[i];
            char fl[32];
            int e = (int)lround(log10(o->far_target));
            if (fabs(log10(o->far_target) - e) > 1e-6) snprintf(fl, sizeof fl, "%g", o->far_target);
            else pow10_label(e, fl, sizeof fl);
            double px = chart_x(&c, o->far_target), py = chart_y(&c, o->tar);
            set_color(cr, r, 1.0);
            cairo_set_line_width(cr, 2);
            cairo_arc(cr, px, py, 5.5, 0, 2 * PI);
            cairo_stroke(cr);
            cairo_arc(cr, bx + 18, ty + 11, 4.5, 0, 2 * PI);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, INK, INK, INK);
            snprintf(line, sizeof line, "FAR %s", fl);
            text(cr, px - 7, py - 7, 11, true, 1, 1, line);
            snprintf(line, sizeof line, "FAR %s:  TAR %.3f  at cos > %.3f", fl, o->tar, (double)o->threshold);
            text(cr, bx + 30, ty + 11, 12, false, 0, 0.5, line);
            ty += 22;
        }
    }
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.62);
    cairo_set_line_width(cr, 1.2);
    cairo_set_dash(cr, dashed, 2, 0);
    cairo_move_to(cr, bx + 10, ty + 11);
    cairo_line_to(cr, bx + 26, ty + 11);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_source_rgb(cr, INK, INK, INK);
    text(cr, bx + 30, ty + 11, 12, false, 0, 0.5, "chance (TAR = FAR)");
    st = canvas_close(&cv, st, err);
    if (!st && width) *width = W;
    if (!st && height) *height = H;
    return st;
}
