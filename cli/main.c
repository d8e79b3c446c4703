/* main.c - the `simile` command: one verb per job.
 *
 *   simile train  --data fashion-mnist --arch mnist-net --head arcface --epochs 5 --out M.safetensors
 *   simile embed  --model M --data fashion-mnist:test --out E.npy
 *   simile eval   --model M --data fashion-mnist [--json]
 *
 * Only this program prints and exits; the library returns statuses. Exit codes:
 * 0 success, 1 the job failed (message on stderr), 2 bad command line.
 * The CLI uses libsimile's private headers for datasets, evaluation and
 * files, which are not yet part of the public API. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "eval.h"
#include "loader.h"
#include "npy.h"
#include "simile.h"
#include "train.h"

/* ------------------------------------------------------------------ options */
typedef struct opt {
    const char *name;      /* without the leading "--" */
    const char *arg;       /* NULL for a flag */
    const char *help;
    const char *value;     /* parsed: the value, "1" for a flag given, NULL if absent */
} opt;

static const char *prog_cmd = "simile";

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog_cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nhint: '%s --help' lists the options\n", prog_cmd);
    exit(2);
}

static void die(const sm_err *err, const char *hint)
{
    fprintf(stderr, "%s: error: %s\n", prog_cmd, err->msg);
    if (hint) fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}

static void print_help(const char *usage, const char *about, const opt *o)
{
    printf("usage: %s\n\n%s\n\noptions:\n", usage, about);
    for (; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-24s %s\n", left, o->help);
    }
}

/* Parses argv[first..argc) into opts; never modifies argv. */
static void parse(int argc, char **argv, int first, opt *opts, const char *usage, const char *about)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help(usage, about, opts);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) die_usage("unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        opt *o = opts;
        for (; o->name; o++)
            if (strlen(o->name) == len && !strncmp(o->name, name, len)) break;
        if (!o->name) die_usage("unknown option '--%.*s'", (int)len, name);
        if (!o->arg) {
            if (eq) die_usage("--%s takes no value", o->name);
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else {
            if (i + 1 >= argc) die_usage("--%s needs a value (%s)", o->name, o->arg);
            o->value = argv[++i];
        }
    }
}

static const char *get(const opt *o, const char *name, const char *def)
{
    for (; o->name; o++)
        if (!strcmp(o->name, name)) return o->value ? o->value : def;
    return def;
}

static int64_t get_int(const opt *o, const char *name, int64_t def, int64_t lo, int64_t hi)
{
    const char *v = get(o, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die_usage("--%s must be an integer in %lld..%lld (got '%s')", name, (long long)lo,
                  (long long)hi, v);
    return x;
}

static double get_num(const opt *o, const char *name, double def, double lo, double hi)
{
    const char *v = get(o, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die_usage("--%s must be a number in %g..%g (got '%s')", name, lo, hi, v);
    return x;
}

static void set_threads(const opt *o)
{
    sm_threads_set((int)get_int(o, "threads", 0, 0, 1024));
}

static char *read_file(const char *path, sm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err->msg, sizeof err->msg, "cannot open spec '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    return buf;
}

static void subset(sm_dataset *ds, const char *classes, const char *what)
{
    if (!classes) return;
    int32_t list[1024];
    int64_t k = 0;
    sm_err err = {0};
    sm_dataset out;
    if (sm_dataset_parse_classes(classes, list, 1024, &k, &err) ||
        sm_dataset_subset(ds, list, k, false, &out, &err)) {
        fprintf(stderr, "%s: error: %s classes: %s\n", prog_cmd, what, err.msg);
        exit(2);
    }
    sm_dataset_free(ds);
    *ds = out;
}

/* ------------------------------------------------------------------ train */
static int cmd_train(int argc, char **argv)
{
    opt o[] = {
        {"data", "SPEC", "fashion-mnist (default), mnist, or a directory of the four IDX files", NULL},
        {"arch", "NAME", "built-in architecture: mnist-net (default)", NULL},
        {"spec", "FILE", "model spec file instead of --arch (docs/model-spec.md)", NULL},
        {"dim", "D", "embedding size (default 512)", NULL},
        {"head", "NAME", "softmax normface cosface arcface (default arcface)", NULL},
        {"scale", "S", "head scale s (default per head: 30)", NULL},
        {"margin", "M", "head margin m (arcface 0.5 rad, cosface 0.35)", NULL},
        {"easy-margin", NULL, "arcface: easy margin instead of the th/mm fallback", NULL},
        {"epochs", "N", "epochs (default 5)", NULL},
        {"batch", "B", "batch size (default 128)", NULL},
        {"optim", "NAME", "sgd (default) or adamw", NULL},
        {"lr", "LR", "base learning rate (sgd 0.1, adamw 0.001)", NULL},
        {"momentum", "M", "sgd momentum (default 0.9)", NULL},
        {"nesterov", NULL, "sgd: Nesterov momentum", NULL},
        {"wd", "WD", "weight decay (sgd 5e-4, adamw 0.01)", NULL},
        {"sched", "NAME", "cosine (default), step or constant", NULL},
        {"warmup", "STEPS", "linear warm-up steps (default 0)", NULL},
        {"step-size", "STEPS", "step schedule: steps between decays", NULL},
        {"gamma", "G", "step schedule: decay factor (default 0.1)", NULL},
        {"flip", NULL, "augment: random horizontal flips", NULL},
        {"shift", "PX", "augment: random translation up to PX pixels (default 0)", NULL},
        {"classes", "LIST", "train on these classes only, e.g. 0-5", NULL},
        {"seed", "N", "random seed (default 1)", NULL},
        {"threads", "T", "threads (default: all cores)", NULL},
        {"out", "PATH", "checkpoint (default model.safetensors), rewritten every epoch", NULL},
        {"log", "PATH", "JSON-lines log (default: PATH of --out + .log.jsonl)", NULL},
        {"resume", "PATH", "continue the run saved in this checkpoint", NULL},
        {"max-steps", "N", "stop each epoch after N steps (smoke tests)", NULL},
        {"quiet", NULL, "no progress output", NULL},
        {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile train";
    parse(argc, argv, 2, o, "simile train [options]",
          "Trains an embedding model with a metric head, validating on the test split after every epoch.");
    set_threads(o);
    sm_err err = {0};
    int64_t epochs = get_int(o, "epochs", 5, 1, 100000);
    int64_t batch = get_int(o, "batch", 128, 2, 1 << 20);
    int64_t dim = get_int(o, "dim", 512, 1, 65536);
    uint64_t seed = (uint64_t)get_int(o, "seed", 1, 0, INT64_MAX);
    const char *out = get(o, "out", "model.safetensors");
    char logbuf[4096];
    snprintf(logbuf, sizeof logbuf, "%s.log.jsonl", out);
    const char *logp = get(o, "log", logbuf);
    const char *resume = get(o, "resume", NULL);

    sm_train_config tc = {.epochs = epochs, .batch = batch, .seed = seed, .out_path = out,
                          .log_path = logp, .resume_path = resume, .progress = !get(o, "quiet", NULL),
                          .max_steps = get_int(o, "max-steps", 0, 0, INT64_MAX)};
    const char *on = get(o, "optim", "sgd");
    if (strcmp(on, "sgd") && strcmp(on, "adamw")) die_usage("--optim must be sgd or adamw (got '%s')", on);
    sm_optim_config_default(&tc.optim, strcmp(on, "sgd") ? SM_OPTIM_ADAMW : SM_OPTIM_SGD);
    tc.optim.lr = (float)get_num(o, "lr", tc.optim.lr, 0, 1e3);
    tc.optim.momentum = (float)get_num(o, "momentum", tc.optim.momentum, 0, 0.999999);
    tc.optim.weight_decay = (float)get_num(o, "wd", tc.optim.weight_decay, 0, 10);
    tc.optim.nesterov = get(o, "nesterov", NULL) != NULL;
    const char *sn = get(o, "sched", "cosine");
    tc.sched.kind = !strcmp(sn, "cosine") ? SM_SCHED_COSINE : !strcmp(sn, "step") ? SM_SCHED_STEP
                  : !strcmp(sn, "constant") ? SM_SCHED_CONSTANT : (sm_sched_kind)-1;
    if ((int)tc.sched.kind < 0) die_usage("--sched must be cosine, step or constant (got '%s')", sn);
    tc.sched.warmup = get_int(o, "warmup", 0, 0, INT64_MAX);
    tc.flip = get(o, "flip", NULL) != NULL;
    tc.shift = get_int(o, "shift", 0, 0, 64);
    tc.sched.step_size = get_int(o, "step-size", 0, 0, INT64_MAX);
    tc.sched.gamma = (float)get_num(o, "gamma", 0.1, 0, 1);
    if (tc.sched.kind == SM_SCHED_STEP && tc.sched.step_size <= 0) die_usage("--sched step needs --step-size");

    sm_dataset train = {0}, test = {0};
    if (sm_dataset_open(get(o, "data", "fashion-mnist"), &train, &test, &err)) die(&err, NULL);
    subset(&train, get(o, "classes", NULL), "--classes");
    subset(&test, get(o, "classes", NULL), "--classes");

    sm_model *m = NULL;
    if (resume) {
        if (sm_model_load(&m, resume, &err)) die(&err, "--resume takes a checkpoint written by 'simile train'");
        if (get(o, "arch", NULL) || get(o, "spec", NULL) || get(o, "head", NULL))
            fprintf(stderr, "simile train: note: --resume uses the checkpoint's model; --arch/--spec/--head ignored\n");
    } else {
        char specbuf[8192];
        char *spec_file = NULL;
        const char *spec;
        if (get(o, "spec", NULL)) {
            spec = spec_file = read_file(get(o, "spec", NULL), &err);
            if (!spec) die(&err, NULL);
        } else {
            spec = sm_zoo_spec(get(o, "arch", "mnist-net"), dim, specbuf, sizeof specbuf, &err);
            if (!spec) die(&err, NULL);
        }
        sm_head_config hc;
        if (sm_head_config_default(&hc, get(o, "head", "arcface"), &err)) die(&err, NULL);
        hc.scale = (float)get_num(o, "scale", hc.scale, 1e-6, 1e6);
        hc.margin = (float)get_num(o, "margin", hc.margin, 0, 10);
        hc.easy_margin = get(o, "easy-margin", NULL) != NULL;
        sm_status st = sm_model_new(&m, spec, &hc, train.n_classes, seed, &err);
        free(spec_file);
        if (st) die(&err, NULL);
        if (sm_model_set_classes(m, (const char *const *)train.class_names, train.n_classes, &err)) die(&err, NULL);
        sm_model_set_input_norm(m, SM_FASHION_MNIST_MEAN, SM_FASHION_MNIST_STD);
        remove(logp);   /* a fresh run starts a fresh log */
    }
    if (tc.progress)
        fprintf(stderr, "simile train: %lld train / %lld test images, %d classes, %lld parameters, %s head, %d threads\n",
                (long long)train.n, (long long)test.n, (int)train.n_classes, (long long)sm_model_nparams(m),
                sm_head_name(sm_model_head(m)->kind), sm_threads_set(0));
    sm_status st = sm_train(m, &train, test.n ? &test : NULL, &tc, &err);
    sm_model_free(m);
    sm_dataset_free(&train);
    sm_dataset_free(&test);
    if (st) die(&err, st == SM_ERR_NAN ? "the last good checkpoint is the one from the previous epoch" : NULL);
    return 0;
}

/* ------------------------------------------------------------------ embed */
static int cmd_embed(int argc, char **argv)
{
    opt o[] = {{"model", "PATH", "checkpoint written by 'simile train' (required)", NULL},
               {"data", "SPEC[:split]", "data set and split (default fashion-mnist:test)", NULL},
               {"out", "PATH", "output .npy file, (N, D) float32 (required)", NULL},
               {"labels", "PATH", "also write the labels as a (N, 1) float32 .npy", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile embed";
    parse(argc, argv, 2, o, "simile embed --model M --data fashion-mnist:test --out E.npy",
          "Writes L2-normalised embeddings of a data split to a .npy file.");
    set_threads(o);
    if (!get(o, "model", NULL) || !get(o, "out", NULL)) die_usage("--model and --out are required");
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, get(o, "model", NULL), &err)) die(&err, NULL);
    sm_dataset ds = {0};
    if (sm_dataset_open_split(get(o, "data", "fashion-mnist:test"), SM_SPLIT_TEST, &ds, &err)) die(&err, NULL);
    int64_t d = sm_model_dim(m);
    float *emb = malloc(sizeof(float) * (size_t)(ds.n * d + 1));
    if (!emb) { snprintf(err.msg, sizeof err.msg, "out of memory"); die(&err, NULL); }
    if (sm_embed_dataset(m, &ds, emb, &err) || sm_npy_write_f32(get(o, "out", NULL), emb, ds.n, d, &err))
        die(&err, NULL);
    if (get(o, "labels", NULL)) {
        float *lab = malloc(sizeof(float) * (size_t)(ds.n + 1));
        for (int64_t i = 0; lab && i < ds.n; i++) lab[i] = (float)ds.labels[i];
        if (!lab || sm_npy_write_f32(get(o, "labels", NULL), lab, ds.n, 1, &err)) die(&err, NULL);
        free(lab);
    }
    fprintf(stderr, "simile embed: wrote %lld x %lld embeddings to %s\n", (long long)ds.n, (long long)d,
            get(o, "out", NULL));
    free(emb);
    sm_dataset_free(&ds);
    sm_model_free(m);
    return 0;
}

/* ------------------------------------------------------------------ eval */
static int cmd_eval(int argc, char **argv)
{
    opt o[] = {{"model", "PATH", "checkpoint written by 'simile train' (required)", NULL},
               {"data", "SPEC", "data set (default fashion-mnist): test split evaluated, train as 1-NN reference", NULL},
               {"classes", "LIST", "evaluate on these classes only (e.g. 6-9, unseen in training)", NULL},
               {"json", NULL, "print one JSON object instead of text", NULL},
               {"threads", "T", "threads (default: all cores)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile eval";
    parse(argc, argv, 2, o, "simile eval --model M --data fashion-mnist [--json]",
          "Evaluates a model on the test split: head accuracy, 1-NN accuracy test->train, and\n"
          "leave-one-out retrieval on the test split (precision@1, recall@1/2/4/8, R-precision, MAP@R).");
    set_threads(o);
    if (!get(o, "model", NULL)) die_usage("--model is required");
    sm_err err = {0};
    sm_model *m = NULL;
    if (sm_model_load(&m, get(o, "model", NULL), &err)) die(&err, NULL);
    sm_dataset train = {0}, test = {0};
    if (sm_dataset_open(get(o, "data", "fashion-mnist"), &train, &test, &err)) die(&err, NULL);
    subset(&train, get(o, "classes", NULL), "--classes");
    subset(&test, get(o, "classes", NULL), "--classes");
    int64_t d = sm_model_dim(m);
    float *etr = malloc(sizeof(float) * (size_t)(train.n * d + 1));
    float *ete = malloc(sizeof(float) * (size_t)(test.n * d + 1));
    if (!etr || !ete) { snprintf(err.msg, sizeof err.msg, "out of memory"); die(&err, NULL); }
    double head_acc = -1;
    sm_retrieval_metrics loo, knn;
    bool head_ok = sm_model_head(m) && test.n_classes <= sm_model_classes(m) && !get(o, "classes", NULL);
    if ((head_ok && sm_eval_head_accuracy(m, &test, &head_acc, &err)) ||
        sm_embed_dataset(m, &train, etr, &err) || sm_embed_dataset(m, &test, ete, &err) ||
        sm_eval_retrieval(&loo, ete, test.labels, test.n, ete, test.labels, test.n, d, true, &err) ||
        sm_eval_retrieval(&knn, ete, test.labels, test.n, etr, train.labels, train.n, d, false, &err))
        die(&err, NULL);
    if (get(o, "json", NULL)) {
        char hbuf[32] = "null";
        if (head_ok) snprintf(hbuf, sizeof hbuf, "%.6f", head_acc);
        printf("{\"head_accuracy\": %s, \"knn_accuracy\": %.6f, \"precision_at_1\": %.6f, "
               "\"recall_at_1\": %.6f, \"recall_at_2\": %.6f, \"recall_at_4\": %.6f, \"recall_at_8\": %.6f, "
               "\"r_precision\": %.6f, \"mean_average_precision_at_r\": %.6f, \"n_test\": %lld, \"n_train\": %lld}\n",
               hbuf, knn.knn_accuracy, loo.precision_at_1, loo.recall_at_k[0],
               loo.recall_at_k[1], loo.recall_at_k[2], loo.recall_at_k[3], loo.r_precision, loo.map_at_r,
               (long long)test.n, (long long)train.n);
    } else {
        printf("model %s: %lld-d embeddings, test %lld images, train %lld\n", get(o, "model", NULL),
               (long long)d, (long long)test.n, (long long)train.n);
        if (head_ok) printf("  head accuracy            %.4f\n", head_acc);
        printf("  1-NN accuracy test->train %.4f\n", knn.knn_accuracy);
        printf("  precision@1              %.4f\n", loo.precision_at_1);
        printf("  recall@1/2/4/8           %.4f %.4f %.4f %.4f\n", loo.recall_at_k[0], loo.recall_at_k[1],
               loo.recall_at_k[2], loo.recall_at_k[3]);
        printf("  R-precision              %.4f\n", loo.r_precision);
        printf("  MAP@R                    %.4f\n", loo.map_at_r);
    }
    free(etr);
    free(ete);
    sm_dataset_free(&train);
    sm_dataset_free(&test);
    sm_model_free(m);
    return 0;
}

/* ------------------------------------------------------------------ main */
static void usage(FILE *f)
{
    fprintf(f,
            "simile - deep metric learning and similarity search\n\n"
            "usage: simile COMMAND [options]   (simile COMMAND --help for its options)\n\n"
            "commands:\n"
            "  train    train an embedding model with a metric head (ArcFace, CosFace, ...)\n"
            "  embed    write L2-normalised embeddings of a data split to .npy\n"
            "  eval     head accuracy, 1-NN accuracy and retrieval metrics on the test split\n\n"
            "example:\n"
            "  simile train --data fashion-mnist --arch mnist-net --head arcface --epochs 5 --out m.safetensors\n"
            "  simile eval --model m.safetensors --data fashion-mnist\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return cmd_train(argc, argv);
    if (!strcmp(argv[1], "embed")) return cmd_embed(argc, argv);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc, argv);
    fprintf(stderr, "simile: unknown command '%s' (known: train embed eval)\n", argv[1]);
    fprintf(stderr, "hint: 'simile --help' shows the usage\n");
    return 2;
}
