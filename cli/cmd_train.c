/* cmd_train.c - `simile train`. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "simile.h"

/* ------------------------------------------------------------------ train */
/* Fails early (before minutes of training) when the directory of path is missing or read-only. */
static void check_writable_dir(const char *path, const char *flag)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0) {
        sm_err err = {0};
        snprintf(err.msg, sizeof err.msg, "%s '%.200s': cannot write into '%.200s': %s", flag, path, dir, strerror(errno));
        die(&err, NULL);
    }
}

/* The spec of --arch (default mnist-net) with --dim and the zoo's input flags;
 * sizes not given are def_c x def_h x def_w (0: the zoo's default). Exits on
 * an error, with a hint when the data are too small for a ResNet. */
static char *arch_spec(const opt *o, const char *def_arch, int64_t dim, int64_t def_c, int64_t def_h, int64_t def_w)
{
    const char *arch = get(o, "arch", def_arch);
    sm_zoo_config zc = {.dim = dim};
    zoo_input_flags(o, &zc);
    bool sized = zc.height != 0;
    if (strcmp(arch, "mnist-net") != 0) {
        if (!zc.channels) zc.channels = def_c;
        if (!zc.height) {
            zc.height = def_h;
            zc.width = def_w;
        }
    }
    sm_err err = {0};
    char *spec = sm_zoo_build(arch, &zc, &err);
    if (!spec) die(&err, !sized && strcmp(arch, "mnist-net") && (def_h < 32 || def_w < 32)
                             ? "--size 32 (or more) resizes the images for it" : NULL);
    return spec;
}

int cmd_train(int argc, char **argv)
{
    char arch_help[160];
    snprintf(arch_help, sizeof arch_help, "built-in architecture: %s (default mnist-net)", sm_zoo_names());
    opt o[] = {
        {"data", "SPEC", "fashion-mnist (default), mnist, or a directory of the four IDX files", NULL},
        {"arch", "NAME", arch_help, NULL},
        {"size", "S", "ResNets, MobileNetV2: input size S x S (default: the data's; images are resized)", NULL},
        {"height", "H", "input height (with --width)", NULL},
        {"width", "W", "input width (with --height)", NULL},
        {"channels", "C", "ResNets, MobileNetV2: input channels (default 3; gray images are replicated)", NULL},
        {"spec", "FILE", "model spec file instead of --arch (docs/model-spec.md)", NULL},
        {"dim", "D", "embedding size (default 512)", NULL},
        {"head", "NAME", "arcface (default), cosface, normface, sphereface, sphereface-asoftmax, adacos,\n"
         "                           adacos-fixed, subcenter-arcface, combined, l2-softmax, softmax", NULL},
        {"loss", "NAME", "pair loss instead of a head: contrastive, triplet, multi-similarity", NULL},
        {"scale", "S", "head scale s (default per head: 30)", NULL},
        {"margin", "M", "margin m (arcface 0.5 rad, cosface 0.35; triplet 0.2; contrastive: positive margin 0)", NULL},
        {"easy-margin", NULL, "arcface: easy margin instead of the th/mm fallback", NULL},
        {"m1", "M", "combined margin m1 (cos(m1*theta + m2) - m3; default 1)", NULL},
        {"m2", "M", "combined margin m2 (default 0.3)", NULL},
        {"m3", "M", "combined margin m3 (default 0.2)", NULL},
        {"subcenters", "K", "subcenter-arcface: centres per class (default 3)", NULL},
        {"lambda-min", "L", "sphereface-asoftmax: final lambda (default 5)", NULL},
        {"margin-neg", "M", "contrastive: negative margin (default 1)", NULL},
        {"miner", "NAME", "triplet mining: all (default), hard, semihard", NULL},
        {"raw", NULL, "pair losses: raw embeddings instead of L2-normalised ones", NULL},
        {"alpha", "A", "multi-similarity alpha (default 2)", NULL},
        {"beta", "B", "multi-similarity beta (default 50)", NULL},
        {"base", "L", "multi-similarity lambda (default 0.5)", NULL},
        {"epsilon", "E", "multi-similarity mining epsilon (default 0.1)", NULL},
        {"pk", "PxK", "class-balanced batches of P classes x K images (pair losses: 8x16)", NULL},
        {"epochs", "N", "epochs (default 5)", NULL},
        {"batch", "B", "batch size (default 128)", NULL},
        {"optim", "NAME", "sgd (default) or adamw", NULL},
        {"lr", "LR", "base learning rate (sgd 0.03, adamw 0.001)", NULL},
        {"momentum", "M", "sgd momentum (default 0.9)", NULL},
        {"nesterov", NULL, "sgd: Nesterov momentum (the default)", NULL},
        {"no-nesterov", NULL, "sgd: classical momentum instead of Nesterov", NULL},
        {"wd", "WD", "weight decay (sgd 2e-3, adamw 0.01)", NULL},
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
        {"init", "MODEL", "fine-tune: start from this model's weights and head (simile import, train)", NULL},
        {"freeze", "N", "fine-tune: freeze the first N stages (ResNet: 1 stem, 2 + layer1, ...)", NULL},
        {"backbone-lr", "X", "fine-tune: the backbone's learning rate is X times --lr (default 1)", NULL},
        {"bn-eval", NULL, "fine-tune: batch norms keep their running statistics (eval mode)", NULL},
        {"winograd", NULL, "3x3 convolutions by Winograd in training too (faster, ~10x the round-off)", NULL},
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
    const char *init = get(o, "init", NULL);
    if (get(o, "backbone-lr", NULL) && get_num(o, "backbone-lr", 1.0, 0, 1e3) == 0)
        die_usage("--backbone-lr 0 would freeze the whole backbone: say so with --freeze N");
    if (init && resume) die_usage("--init starts a run, --resume continues one: give one of them");

    sm_train_config tc = {.epochs = epochs, .batch = batch, .seed = seed, .out_path = out,
                          .log_path = logp, .resume_path = resume, .progress = !get(o, "quiet", NULL),
                          .max_steps = get_int(o, "max-steps", 0, 0, INT64_MAX),
                          .freeze_stages = (int)get_int(o, "freeze", 0, 0, 64),
                          .backbone_lr = (float)get_num(o, "backbone-lr", 1.0, 0, 1e3),
                          .bn_eval = get(o, "bn-eval", NULL) != NULL,
                          .winograd = get(o, "winograd", NULL) != NULL};
    const char *on = get(o, "optim", "sgd");
    if (strcmp(on, "sgd") && strcmp(on, "adamw")) die_usage("--optim must be sgd or adamw (got '%s')", on);
    sm_optim_config_default(&tc.optim, strcmp(on, "sgd") ? SM_OPTIM_ADAMW : SM_OPTIM_SGD);
    tc.optim.lr = (float)get_num(o, "lr", tc.optim.lr, 0, 1e3);
    tc.optim.momentum = (float)get_num(o, "momentum", tc.optim.momentum, 0, 0.999999);
    tc.optim.weight_decay = (float)get_num(o, "wd", tc.optim.weight_decay, 0, 10);
    bool nesterov = get(o, "nesterov", NULL), classical = get(o, "no-nesterov", NULL);
    if (nesterov && classical) die_usage("--nesterov and --no-nesterov contradict");
    if (nesterov) tc.optim.nesterov = true;
    else if (classical || tc.optim.momentum == 0.0f)
        tc.optim.nesterov = false;   /* Nesterov needs momentum: --momentum 0 alone means plain SGD */
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

    sm_head_config hc;
    if (get(o, "loss", NULL) && get(o, "head", NULL)) die_usage("give --head or --loss, not both");
    const char *head_name = get(o, "loss", get(o, "head", "arcface"));
    bool model_flags = get(o, "arch", NULL) || get(o, "spec", NULL) || get(o, "dim", NULL) ||
                       get(o, "head", NULL) || get(o, "loss", NULL) || get(o, "size", NULL) ||
                       get(o, "height", NULL) || get(o, "width", NULL) || get(o, "channels", NULL);
    if (init && model_flags)
        die_usage("--init trains the model it names as it is: no --arch, --spec, --dim, --head, --loss "
                  "or sizes with it (give them to 'simile import')");
    if (!(resume || init) || get(o, "head", NULL) || get(o, "loss", NULL)) {
        if (sm_head_config_default(&hc, head_name, &err)) die_usage("%s", err.msg);
        hc.scale = (float)get_num(o, "scale", hc.scale, 1e-6, 1e6);
        hc.margin = (float)get_num(o, "margin", hc.margin, 0, 10);
        hc.easy_margin = get(o, "easy-margin", NULL) != NULL;
        hc.margin_neg = (float)get_num(o, "margin-neg", hc.margin_neg, 0, 100);
        hc.m1 = (float)get_num(o, "m1", hc.m1, 0.01, 10);
        hc.m2 = (float)get_num(o, "m2", hc.m2, 0, 3.14);
        hc.m3 = (float)get_num(o, "m3", hc.m3, 0, 1.99);
        hc.subcenters = get_int(o, "subcenters", hc.subcenters, 1, 64);
        hc.lambda_min = (float)get_num(o, "lambda-min", hc.lambda_min, 0, 1e6);
        const char *mn = get(o, "miner", "all");
        hc.miner = !strcmp(mn, "all") ? SM_MINER_ALL : !strcmp(mn, "hard") ? SM_MINER_HARD
                 : !strcmp(mn, "semihard") ? SM_MINER_SEMIHARD : (sm_miner)-1;
        if ((int)hc.miner < 0) die_usage("--miner must be all, hard or semihard (got '%s')", mn);
        hc.raw = get(o, "raw", NULL) != NULL;
        hc.alpha = (float)get_num(o, "alpha", hc.alpha, 1e-3, 100);
        hc.beta = (float)get_num(o, "beta", hc.beta, 1e-3, 100);
        hc.base = (float)get_num(o, "base", hc.base, -1, 1);
        hc.epsilon = (float)get_num(o, "epsilon", hc.epsilon, 0, 2);
    }
    bool pairwise = !strcmp(head_name, "contrastive") || !strcmp(head_name, "triplet") ||
                    !strcmp(head_name, "multi-similarity");
    if (get(o, "pk", NULL)) {
        long long p = 0, k = 0;
        char tail;
        if (sscanf(get(o, "pk", NULL), "%lldx%lld%c", &p, &k, &tail) != 2 || p < 2 || k < 2 || p * k > batch)
            die_usage("--pk wants PxK with P, K >= 2 and P*K <= --batch (got '%s')", get(o, "pk", NULL));
        tc.pk_p = p;
        tc.pk_k = k;
    }
    bool zoo_flags = get(o, "size", NULL) || get(o, "height", NULL) || get(o, "width", NULL) || get(o, "channels", NULL);
    if (get(o, "spec", NULL) && (zoo_flags || get(o, "dim", NULL) || get(o, "arch", NULL)))
        die_usage("--spec describes the whole network: no --arch, --dim, --size, --height, --width or "
                  "--channels with it");
    check_writable_dir(out, "--out");
    check_writable_dir(logp, "--log");

    sm_dataset train = {0}, test = {0};
    if (sm_dataset_open(get(o, "data", "fashion-mnist"), &train, &test, &err)) die(&err, NULL);
    subset(&train, get(o, "classes", NULL), "--classes");
    subset(&test, get(o, "classes", NULL), "--classes");

    if (pairwise && !tc.pk_p) {   /* a random batch may hold no positive pair */
        tc.pk_p = train.n_classes < 8 ? train.n_classes : 8;
        tc.pk_k = batch / tc.pk_p;
        if (tc.pk_p < 2 || tc.pk_k < 2) tc.pk_p = tc.pk_k = 0;
    }
    sm_model *m = NULL;
    if (init) {
        if (sm_model_load(&m, init, &err)) die(&err, "--init takes a model written by 'simile import' or 'simile train'");
        if (!sm_model_head(m)) {
            snprintf(err.msg, sizeof err.msg, "'%s' has no head to train", init);
            sm_model_free(m);
            die(&err, "'simile import --head arcface --classes N --dim D' adds one");
        }
        if (sm_model_classes(m) > 0 && sm_model_classes(m) < train.n_classes) {
            snprintf(err.msg, sizeof err.msg, "'%s' has a head for %lld classes, the data have %d", init,
                     (long long)sm_model_classes(m), (int)train.n_classes);
            sm_model_free(m);
            die(&err, "import the model again with --classes set to the data's");
        }
        if (sm_model_set_classes(m, (const char *const *)train.class_names, train.n_classes, &err)) die(&err, NULL);
        remove(logp);
    } else if (resume) {
        if (sm_model_load(&m, resume, &err)) die(&err, "--resume takes a checkpoint written by 'simile train'");
        if (!sm_model_head(m)) {
            snprintf(err.msg, sizeof err.msg, "'%s' has no head to train", resume);
            die(&err, NULL);
        }
        /* flags that name a model must name the checkpoint's own */
        char *spec = NULL;
        if (get(o, "spec", NULL)) {
            spec = read_file(get(o, "spec", NULL), &err);
            if (!spec) die(&err, NULL);
        } else if (get(o, "arch", NULL) || get(o, "dim", NULL) || zoo_flags) {
            int64_t c, h, w;   /* sizes not given are the checkpoint's */
            sm_model_input_shape(m, &c, &h, &w);
            const char *zoo = zoo_arch_of(m);
            spec = arch_spec(o, zoo ? zoo : "mnist-net", dim, c, h, w);
        }
        const char *hn = get(o, "head", NULL) ? get(o, "head", NULL) : get(o, "loss", NULL);
        if ((spec && strcmp(spec, sm_model_spec(m)) != 0) ||
            (hn && strcmp(hn, sm_head_name(sm_model_head(m)->kind)) != 0)) {
            snprintf(err.msg, sizeof err.msg,
                     "'%s' holds another model than --arch/--dim/--spec/--head describe (%s head, %lld-d)",
                     resume, sm_head_name(sm_model_head(m)->kind), (long long)sm_model_dim(m));
            free(spec);
            sm_model_free(m);
            die(&err, "drop the model flags to continue the run as it was saved");
        }
        free(spec);
    } else {
        char *spec;
        if (get(o, "spec", NULL)) {
            spec = read_file(get(o, "spec", NULL), &err);
            if (!spec) die(&err, NULL);
        } else {
            spec = arch_spec(o, "mnist-net", dim, 3, train.h, train.w);
        }
        sm_status st = sm_model_new(&m, spec, &hc, train.n_classes, seed, &err);
        free(spec);
        if (st) die(&err, NULL);
        if (sm_model_set_classes(m, (const char *const *)train.class_names, train.n_classes, &err)) die(&err, NULL);
        sm_model_set_input_norm(m, SM_FASHION_MNIST_MEAN, SM_FASHION_MNIST_STD);
        remove(logp);   /* a fresh run starts a fresh log */
    }
    if (sm_model_freeze_stages(m, tc.freeze_stages, &err)) {   /* sm_train does it again; this names the flag */
        char why[sizeof err.msg];
        snprintf(why, sizeof why, "%s", err.msg);
        snprintf(err.msg, sizeof err.msg, "--freeze %d: %.480s", tc.freeze_stages, why);
        sm_model_free(m);
        die(&err, NULL);
    }
    bool fitted = zoo_fit_data(m, &train);
    zoo_fit_data(m, &test);
    if (tc.progress) {
        fprintf(stderr, "simile train: %lld train / %lld test images, %d classes, %lld parameters, %s head, %d threads",
                (long long)train.n, (long long)test.n, (int)train.n_classes, (long long)sm_model_nparams(m),
                sm_head_name(sm_model_head(m)->kind), sm_threads_set(0));
        if (fitted)
            fprintf(stderr, "; images resized to %lldx%lldx%lld", (long long)train.c, (long long)train.h, (long long)train.w);
        fputc('\n', stderr);
    }
    if (tc.progress && (tc.freeze_stages || tc.bn_eval || tc.backbone_lr != 1.0f))
        fprintf(stderr, "simile train: fine-tuning: %d of %d stages frozen, backbone lr x%g%s\n", tc.freeze_stages,
                sm_model_stages(m), (double)tc.backbone_lr, tc.bn_eval ? ", batch norms in eval mode" : "");
    sm_status st = sm_train(m, &train, test.n ? &test : NULL, &tc, &err);
    sm_model_free(m);
    sm_dataset_free(&train);
    sm_dataset_free(&test);
    if (st) die(&err, st == SM_ERR_NAN ? "the checkpoint of the last finished epoch was left as it was" : NULL);
    return 0;
}
