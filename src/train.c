/* train.c - the training loop. See simile.h ("training"). */
#include "simile.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loader.h"
#include "model.h"
#include "rng.h"
#include "status.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs f over ds in batches of 256 (images normalised with the model's norm). */
static sm_status each_batch(sm_model *m, const sm_dataset *ds, float *emb, int32_t *pred, sm_err *err)
{
    int64_t c, h, w;
    sm_model_input_shape(m, &c, &h, &w);
    if (ds->c != c || ds->h != h || ds->w != w)
        return sm_fail(err, SM_ERR_SHAPE, "the model takes %lldx%lldx%lld images, the data is %lldx%lldx%lld",
                       (long long)c, (long long)h, (long long)w, (long long)ds->c, (long long)ds->h,
                       (long long)ds->w);
    const int64_t B = 256, in = c * h * w, d = sm_model_dim(m);
    float *x = malloc(sizeof(float) * (size_t)(B * in));
    if (!x) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = sm_model_plan_inference(m, B, err);
    for (int64_t i = 0; i < ds->n && !st; i += B) {
        int64_t b = ds->n - i < B ? ds->n - i : B;
        sm_images_to_float(x, ds->images + i * in, b * in, m->in_mean, m->in_std);
        if (emb) st = sm_model_embed(m, x, b, emb + i * d, err);
        if (pred && !st) st = sm_model_predict(m, x, b, pred + i, err);
    }
    free(x);
    return st;
}

sm_status sm_embed_dataset(sm_model *m, const sm_dataset *ds, float *emb, sm_err *err)
{
    return each_batch(m, ds, emb, NULL, err);
}

sm_status sm_eval_head_accuracy(sm_model *m, const sm_dataset *ds, double *acc, sm_err *err)
{
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)(ds->n ? ds->n : 1));
    if (!pred) return sm_fail(err, SM_ERR_NOMEM, "out of memory");
    sm_status st = each_batch(m, ds, NULL, pred, err);
    int64_t k = 0;
    for (int64_t i = 0; i < ds->n && !st; i++) k += pred[i] == ds->labels[i];
    *acc = ds->n ? (double)k / (double)ds->n : 0.0;
    free(pred);
    return st;
}

static void fmt_time(char *buf, size_t cap, double s)
{
    int t = s > 0 && s < 3.6e6 ? (int)(s + 0.5) : 0;
    snprintf(buf, cap, "%d:%02d", t / 60 % 100000, t % 60);
}

static void progress(FILE *f, bool tty, int64_t epoch, int64_t epochs, int64_t i, int64_t nb,
                     double loss, double acc, double ips, double eta)
{
    char e[32];
    fmt_time(e, sizeof e, eta);
    if (tty) {
        int width = 24, done = (int)(width * i / (nb ? nb : 1));
        char bar[32];
        for (int k = 0; k < width; k++) bar[k] = k < done ? '=' : k == done ? '>' : ' ';
        bar[width] = '\0';
        fprintf(f, "\repoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.3f %.0f img/s eta %s  ",
                (long long)epoch, (long long)epochs, bar, (long long)i, (long long)nb, loss, acc, ips, e);
    } else {
        fprintf(f, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.3f %.0f img/s eta %s\n",
                (long long)epoch, (long long)epochs, (long long)i, (long long)nb, loss, acc, ips, e);
    }
    fflush(f);
}

/* The backbone's learning-rate multiplier: 0 in the config means "not set", 1. */
static float backbone_lr(const sm_train_config *c) { return c->backbone_lr > 0 ? c->backbone_lr : 1.0f; }

static char *config_json(const sm_train_config *c)
{
    const char *sched = c->sched.kind == SM_SCHED_COSINE ? "cosine" : c->sched.kind == SM_SCHED_STEP ? "step" : "constant";
    json_t *j = json_pack("{s:I, s:I, s:I, s:s, s:f, s:f, s:b, s:f, s:s, s:I, s:I, s:f, s:b, s:I, s:I, s:I, "
                          "s:i, s:f, s:b, s:b}",
                          "epochs", (json_int_t)c->epochs, "batch", (json_int_t)c->batch, "seed",
                          (json_int_t)c->seed, "optimizer", c->optim.kind == SM_OPTIM_SGD ? "sgd" : "adamw",
                          "lr", (double)c->optim.lr, "momentum", (double)c->optim.momentum, "nesterov",
                          (int)c->optim.nesterov, "weight_decay", (double)c->optim.weight_decay,
                          "schedule", sched, "warmup", (json_int_t)c->sched.warmup, "step_size",
                          (json_int_t)c->sched.step_size, "gamma", (double)c->sched.gamma, "flip",
                          (int)c->flip, "shift", (json_int_t)c->shift, "pk_p", (json_int_t)c->pk_p,
                          "pk_k", (json_int_t)c->pk_k, "freeze_stages", c->freeze_stages,
                          "backbone_lr", (double)backbone_lr(c),
                          "bn_eval", (int)c->bn_eval, "winograd", (int)c->winograd);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static sm_status log_line(const char *path, const char *line, sm_err *err)
{
    FILE *f = fopen(path, "a");
    if (!f) return sm_fail(err, SM_ERR_IO, "cannot open log '%s': %s", path, strerror(errno));
    int bad = fputs(line, f) < 0 || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    return bad ? sm_fail(err, SM_ERR_IO, "cannot write log '%s': %s", path, strerror(errno)) : SM_OK;
}

sm_status sm_train(sm_model *m, const sm_dataset *train, const sm_dataset *val,
                   const sm_train_config *cfg, sm_err *err)
{
    FILE *out = cfg->out ? cfg->out : stderr;
    if (cfg->epochs < 1) return sm_fail(err, SM_ERR_ARG, "epochs must be >= 1 (got %lld)", (long long)cfg->epochs);
    if (cfg->batch < 2) return sm_fail(err, SM_ERR_ARG, "batch must be >= 2 for batch norm (got %lld)", (long long)cfg->batch);
    if (!m->head) return sm_fail(err, SM_ERR_ARG, "the model has no head to train");
    if (sm_model_classes(m) > 0 && train->n_classes > sm_model_classes(m))
        return sm_fail(err, SM_ERR_ARG, "the data has %d classes but the head %lld",
                       (int)train->n_classes, (long long)sm_model_classes(m));
    sm_optim *opt = NULL;
    sm_loader *ld = NULL;
    char *cfgtxt = NULL;
    sm_status st = sm_optim_new(&opt, &cfg->optim, m->nparams, err);
    if (st) return st;
    st = sm_model_freeze_stages(m, cfg->freeze_stages, err);
    sm_model_set_bn_eval(m, cfg->bn_eval);
    sm_model_set_train_winograd(m, cfg->winograd);
    if (!st) st = sm_model_set_lr_scales(m, opt, backbone_lr(cfg), err);
    if (st) { sm_optim_free(opt); return st; }
    sm_train_state ts = {.epoch = 0, .step = 0, .optim = opt};
    if (cfg->resume_path) {
        st = sm_model_load_train_state(cfg->resume_path, &ts, err);
        if (!st && ts.epoch >= cfg->epochs)
            st = sm_fail(err, SM_ERR_ARG, "'%s' has already trained %lld of %lld epochs; ask for more with --epochs",
                         cfg->resume_path, (long long)ts.epoch, (long long)cfg->epochs);
    }
    if (!st) st = sm_loader_new(&ld, train, cfg->batch, true, false, cfg->seed, m->in_mean, m->in_std, err);
    if (!st) sm_loader_set_augment(ld, cfg->flip, cfg->shift);
    if (!st && cfg->pk_p > 0) st = sm_loader_set_pk(ld, cfg->pk_p, cfg->pk_k, err);
    if (!st) st = sm_model_plan(m, cfg->batch, err);
    if (!st && !(cfgtxt = config_json(cfg))) st = sm_fail(err, SM_ERR_NOMEM, "out of memory");
    ts.config = cfgtxt;
    int64_t nb = ld ? sm_loader_batches(ld) : 0;
    if (cfg->max_steps > 0 && nb > cfg->max_steps) nb = cfg->max_steps;
    int64_t total = nb * cfg->epochs;
    bool tty = cfg->progress && isatty(fileno(out));
    double t_run = now();
    for (int64_t ep = ts.epoch; ep < cfg->epochs && !st; ep++) {
        sm_loader_start_epoch(ld, ep);
        double t0 = now(), train_time = 0, sum_loss = 0;
        int64_t seen = 0, correct = 0, steps = 0, next_plain = nb / 4;
        const float *x;
        const int32_t *y;
        int64_t n;
        float lr = cfg->optim.lr;
        while (steps < nb && sm_loader_next(ld, &x, &y, &n)) {
            if (n < 2) break;   /* a last batch of one: batch norm cannot train on it */
            double ts0 = now();
            lr = sm_sched_lr(&cfg->sched, cfg->optim.lr, ts.step, total);
            double loss;
            int64_t ok;
            st = sm_model_train_step(m, x, y, n, sm_hash64(cfg->seed, (uint64_t)ts.step), &loss, &ok, err);
            if (st == SM_ERR_NAN) {
                sm_fail(err, SM_ERR_NAN,
                        "the loss became %s at epoch %lld, step %lld of %lld (step %lld of the run, "
                        "lr %g); nothing was saved for this epoch: lower --lr or check the data",
                        isnan(loss) ? "NaN" : "infinite", (long long)ep + 1, (long long)steps + 1,
                        (long long)nb, (long long)ts.step + 1, (double)lr);
                break;
            }
            if (st) break;
            sm_optim_step(opt, m->params, m->grads, lr);
            ts.step++;
            steps++;
            train_time += now() - ts0;
            sum_loss += loss * (double)n;
            correct += ok;
            seen += n;
            if (cfg->progress && (tty ? (steps % 5 == 0 || steps == nb) : (steps == next_plain && 4 * steps <= 3 * nb))) {
                double el = now() - t0;
                double eta = el / (double)steps * (double)(nb - steps + (cfg->epochs - ep - 1) * nb);
                progress(out, tty, ep + 1, cfg->epochs, steps, nb, sum_loss / (double)seen,
                         (double)correct / (double)seen, (double)seen / el, eta);
                if (!tty) next_plain += nb / 4;
            }
        }
        if (st) break;
        if (tty) fputc('\n', out);
        double ep_time = now() - t0;
        double val_acc = -1;
        if (val && sm_model_classes(m) > 0) st = sm_eval_head_accuracy(m, val, &val_acc, err);
        if (st) break;
        ts.epoch = ep + 1;
        double ips = seen / (train_time > 0 ? train_time : 1e-9);
        char line[512];
        snprintf(line, sizeof line,
                 "{\"epoch\": %lld, \"step\": %lld, \"loss\": %.6f, \"train_accuracy\": %.6f, "
                 "\"val_accuracy\": %.6f, \"images_per_s\": %.1f, \"lr\": %.6g, \"epoch_s\": %.2f}",
                 (long long)ts.epoch, (long long)ts.step, seen ? sum_loss / (double)seen : 0.0,
                 seen ? (double)correct / (double)seen : 0.0, val_acc, ips, (double)lr, ep_time);
        if (cfg->progress)
            fprintf(out, "epoch %lld/%lld done: loss %.4f train acc %.4f val acc %.4f %.0f img/s (%.1f s)\n",
                    (long long)ts.epoch, (long long)cfg->epochs, seen ? sum_loss / (double)seen : 0.0,
                    seen ? (double)correct / (double)seen : 0.0, val_acc, ips, ep_time);
        if (cfg->out_path) st = sm_model_save(m, cfg->out_path, &ts, err);
        if (!st && cfg->log_path) st = log_line(cfg->log_path, line, err);
    }
    if (!st && cfg->progress)
        fprintf(out, "trained %lld epochs in %.1f s%s%s\n", (long long)(cfg->epochs), now() - t_run,
                cfg->out_path ? ", saved " : "", cfg->out_path ? cfg->out_path : "");
    free(cfgtxt);
    sm_loader_free(ld);
    sm_optim_free(opt);
    return st;
}
