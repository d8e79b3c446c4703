/* plot.h - pictures with cairo (private; the CLI's `simile plot`).
 *
 * What it is: four kinds of picture, each drawn from plain arrays the caller
 * computed (embeddings, log lines, top-k lists, ROC points) and written to one
 * file: PNG, SVG or PDF by the file's extension. Text is real text (cairo's
 * toy font API, "DejaVu Sans" - Debian's fonts-dejavu-core, a dependency of
 * libcairo2 through fontconfig), lines and points are antialiased.
 * What it refuses to be: a plotting library. Layouts are fixed and sized for
 * these pictures; sizes are documented per function so tests can check them.
 *
 * Files are written atomically (temp file in the same directory, fsync,
 * rename): a failed picture leaves the old file, or none. Errors: SM_ERR_ARG
 * (an extension other than .png/.svg/.pdf, bad sizes or counts), SM_ERR_IO
 * (the file cannot be written, with the path and the system's reason),
 * SM_ERR_NOMEM, SM_ERR_INTERNAL (cairo failed otherwise, its message
 * included). Nothing here prints or exits. Sizes are pixels for PNG and
 * points (1/72 in) for SVG and PDF. */
#ifndef SM_PLOT_H
#define SM_PLOT_H
#include <stdbool.h>
#include <stdint.h>

#include "simile.h"

/* Every picture's caption (may be NULL) is wrapped at word boundaries onto
 * at most three lines (the third cut with "…") at the top; the height above
 * the content is SM_PLOT_TOP(lines) pixels. */
#define SM_PLOT_TOP(lines) ((lines) > 0 ? 20 + 20 * (lines) : 12)

typedef enum sm_plot_format { SM_PLOT_PNG = 0, SM_PLOT_SVG, SM_PLOT_PDF } sm_plot_format;

/* The format named by path's extension (.png, .svg, .pdf, any case).
 * Errors: SM_ERR_ARG naming the extension and the three accepted. */
sm_status sm_plot_format_of(const char *path, sm_plot_format *fmt, sm_err *err);

/* The colour of class (or run) i >= 0 as r, g, b in [0, 1]: matplotlib's
 * "tab10" palette for i < 10, then hues spaced by the golden angle. */
void sm_plot_color(int32_t i, double rgb[3]);

/* ---------------------------------------------------------- features */

/* Pixel sizes of the features picture: each panel is a square plot of
 * SM_PLOT_PANEL px under its title, SM_PLOT_GAP px between panels. */
#define SM_PLOT_PANEL 360
#define SM_PLOT_GAP 20

typedef struct sm_plot_features_panel {
    const char *title;      /* first title line (head and hyperparameters), bold */
    const char *subtitle;   /* second line (e.g. "test precision@1 0.981"); may be NULL */
    const float *emb;       /* (n, dim) rows, L2-normalised (others are drawn where they point) */
    const int32_t *labels;  /* (n) in [0, n_classes) */
    int64_t n;
    const float *centers;   /* (n_classes, dim) class directions (head weights), drawn as
                               spokes from the centre; may be NULL */
} sm_plot_features_panel;

/* Draws npanels >= 1 panels of dim = 2 or 3 dimensional normalised features
 * with one common scale (the unit circle or sphere fills every panel alike),
 * in rows of up to three: rows = ceil(npanels / 3), cols = ceil(npanels /
 * rows), a shorter last row centred. 2-D: each point on the unit circle at
 * its angle, spread a little across the circle (±4 % of the radius, a fixed
 * pseudo-random jitter) so that dense arcs show their mass. 3-D: an
 * orthographic view of the unit sphere, turned per panel to show the most
 * points (azimuth in 15° steps, elevation 15-35°), points on the far side
 * drawn smaller behind a translucent shading of the sphere. Colours by class
 * (sm_plot_color), a legend of class_names (n_classes of them, wrapped into
 * rows) under the panels, the caption on top.
 * Size: width = cols * (SM_PLOT_PANEL + SM_PLOT_GAP) + SM_PLOT_GAP,
 * height = SM_PLOT_TOP(caption lines) + rows * (50 + SM_PLOT_PANEL) +
 * (rows - 1) * 16 + 10 + 22 * (legend rows) + SM_PLOT_GAP.
 * *width, *height (may be NULL) receive it. Errors as in the file comment;
 * SM_ERR_ARG for dim not 2 or 3, npanels not in 1..64, n_classes < 1, a
 * label out of range. */
sm_status sm_plot_features(const char *path, const sm_plot_features_panel *panels, int npanels,
                           int dim, const char *const *class_names, int32_t n_classes,
                           const char *caption, int *width, int *height, sm_err *err);

/* Projects rows of in (n, d) onto their top k principal axes (centred
 * covariance, orthogonal iteration in double, deterministic) and
 * L2-normalises the results into out (n, k). For plotting d > 3 features on
 * the circle or sphere. Errors: SM_ERR_ARG (n < 2, k < 1, k > d),
 * SM_ERR_NOMEM. */
sm_status sm_plot_pca(float *out, const float *in, int64_t n, int64_t d, int64_t k, sm_err *err);

/* ------------------------------------------------------------ curves */

/* One training run read from its JSON-lines log (docs/formats.md). */
typedef struct sm_plot_run {
    char *name;          /* legend label, owned (the log's file name) */
    int64_t n;           /* epochs read */
    double *epoch;       /* (n) each array owned */
    double *loss;
    double *train_acc;
    double *val_acc;     /* -1 where the run had no validation */
    double *lr;
} sm_plot_run;

/* Reads the log at path into *run (zeroed first), named by the file's base
 * name. Every non-blank line must be a JSON object with numbers "epoch",
 * "loss" and "lr" ("train_accuracy", "val_accuracy" optional: -1 if absent).
 * Errors: SM_ERR_IO (cannot open/read), SM_ERR_FORMAT (empty log; a line
 * that is not such an object, named by path:line). Free with
 * sm_plot_run_free. */
sm_status sm_plot_read_log(const char *path, sm_plot_run *run, sm_err *err);
void sm_plot_run_free(sm_plot_run *run);   /* NULL or zeroed: no-op */

/* Three charts side by side - loss, accuracy (validation solid, training
 * dashed) and learning rate, each per epoch - with the runs overlaid in
 * sm_plot_color(i) and a legend of their names. Size: width 1140, height
 * SM_PLOT_TOP(caption lines) + 300 + 12 + 22 * (legend rows) + SM_PLOT_GAP.
 * nruns >= 1, each with n >= 1. */
sm_status sm_plot_curves(const char *path, const sm_plot_run *runs, int nruns, const char *caption,
                         int *width, int *height, sm_err *err);

/* ---------------------------------------------------------- retrieval */

/* A grid of nq rows: the query image, then its k results left to right,
 * each scaled to SM_PLOT_CELL px (nearest neighbour, so pixels stay
 * visible), framed green when its class is the query's and red when not,
 * with its similarity and class name under it.
 *   query (nq, c, h, w) u8, qclass (nq)
 *   hits (nq * k, c, h, w) u8 in rank order, hclass (nq * k), sim (nq * k)
 * c is 1 (grey) or 3 (RGB planes). Size: width = 2 * SM_PLOT_GAP +
 * SM_PLOT_CELL + 30 + k * (SM_PLOT_CELL + 12), height = SM_PLOT_TOP(lines) +
 * 30 + nq * (SM_PLOT_CELL + 44), lines being those of the caption. nq, k in
 * 1..1000. */
#define SM_PLOT_CELL 84
sm_status sm_plot_retrieval(const char *path, const uint8_t *query, const int32_t *qclass, int64_t nq,
                            const uint8_t *hits, const int32_t *hclass, const float *sim, int64_t k,
                            int64_t c, int64_t h, int64_t w, const char *const *class_names,
                            int32_t n_classes, const char *caption, int *width, int *height, sm_err *err);

/* ---------------------------------------------------------------- ROC */

typedef struct sm_plot_roc_curve {
    const char *name;           /* legend label */
    const double *far, *tar;    /* (n) points, far > 0 ascending */
    int64_t n;
    const sm_roc_point *ops;    /* (nops) operating points to mark and label; may be NULL */
    int nops;
} sm_plot_roc_curve;

/* The verification ROC: TAR against FAR on a log axis from a power of ten
 * at or below the smallest FAR up to 1, the chance line TAR = FAR dashed,
 * each operating point marked with a ring and labelled with its FAR, TAR
 * and threshold. Size 760 x 560. ncurves >= 1. */
sm_status sm_plot_roc(const char *path, const sm_plot_roc_curve *curves, int ncurves,
                      const char *caption, int *width, int *height, sm_err *err);

/* Releases cairo's static caches (fonts, patterns), which otherwise live
 * until the process ends and show up in leak checkers. Call only when no
 * cairo object of this process is alive (the CLI does at exit). */
void sm_plot_cleanup(void);
#endif
