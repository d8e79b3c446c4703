/* cmd_import.c - `simile import`: torchvision weights into a simile checkpoint,
 * and the zoo's pieces that train and embed share.
 *
 *   simile import --arch resnet18 --from r18.safetensors --out m.safetensors
 *
 * The file is a torchvision state_dict saved as safetensors
 * (tools/pth2safetensors.py converts a .pth). The zoo builds the same network
 * with the same tensor names (sm_zoo_build), so importing is copying tensor by
 * tensor, by name, with every shape checked: nothing is renamed, transposed or
 * guessed. With --head none the network is torchvision's own, classifier
 * included; with a head, the classifier's tensors are left out and a fresh
 * embedding and head take their place, for fine-tuning with `simile train
 * --resume`. The safetensors file is read by the private reader of ckpt.h. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "simile.h"

static const char *const torchvision_archs[] = {"resnet18", "resnet34", "resnet50", "mobilenet-v2"};
#define NARCHS (sizeof torchvision_archs / sizeof torchvision_archs[0])

/* ------------------------------------------------------------------ shared with train, embed */
void zoo_input_flags(const opt *o, sm_zoo_config *cfg)
{
    int64_t size = get_int(o, "size", 0, 1, 4096);
    int64_t h = get_int(o, "height", 0, 1, 4096), w = get_int(o, "width", 0, 1, 4096);
    if (size && (h || w)) die_usage("give --size or --height/--width, not both");
    if (!size && !h != !w) die_usage("--height and --width go together (or --size S for both)");
    cfg->height = size ? size : h;
    cfg->width = size ? size : w;
    cfg->channels = get_int(o, "channels", 0, 1, 64);
}

const char *zoo_arch_of(const sm_model *m)
{
    int64_t c, h, w, d = sm_model_dim(m);
    sm_model_input_shape(m, &c, &h, &w);
    for (size_t i = 0; i < NARCHS; i++)
        for (int cls = 0; cls < 2; cls++) {   /* an embedding of d, or a classifier of d outputs */
            sm_err err = {0};
            sm_zoo_config zc = {.dim = cls ? 0 : d, .classes = cls ? d : 0, .channels = c, .height = h, .width = w};
            char *spec = sm_zoo_build(torchvision_archs[i], &zc, &err);
            bool same = spec && !strcmp(spec, sm_model_spec(m));
            free(spec);
            if (same) return torchvision_archs[i];
        }
    return NULL;
}

bool zoo_fit_data(const sm_model *m, sm_dataset *ds)
{
    int64_t c, h, w;
    sm_model_input_shape(m, &c, &h, &w);
    if ((ds->c == c && ds->h == h && ds->w == w) || !zoo_arch_of(m)) return false;
    sm_err err = {0};
    if (sm_dataset_fit(ds, c, h, w, &err)) die(&err, NULL);
    return true;
}

/* ------------------------------------------------------------------ import */
static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < ndim && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", k ? ", " : "", (long long)shape[k]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

int cmd_import(int argc, char **argv)
{
    opt o[] = {{"arch", "NAME", "resnet18, resnet34, resnet50 or mobilenet-v2 (required)", NULL},
               {"from", "PATH", "torchvision state_dict as safetensors (tools/pth2safetensors.py; required)", NULL},
               {"out", "PATH", "simile checkpoint to write (required)", NULL},
               {"head", "NAME", "none (default: torchvision's classifier kept) or a head to train:\n"
                "                           a fresh embedding and head replace the classifier", NULL},
               {"dim", "D", "with a head: embedding size (default 512)", NULL},
               {"classes", "K", "with a head: its classes (required)", NULL},
               {"size", "S", "input size S x S (default 224)", NULL},
               {"height", "H", "input height (with --width)", NULL},
               {"width", "W", "input width (with --height)", NULL},
               {"channels", "C", "input channels (default 3)", NULL},
               {"strict", "0|1", "1 (default): tensors of the file that the model does not use are an error", NULL},
               {"seed", "N", "seed of the fresh embedding and head (default 1)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile import";
    parse(argc, argv, 2, o, "simile import --arch ARCH --from W.safetensors --out M.safetensors [--head none|arcface|...]",
          "Builds a torchvision architecture of the zoo and fills it with the weights of a torchvision\n"
          "state_dict (F32 tensors, torchvision's names), every tensor checked by name and shape.");
    const char *arch = get(o, "arch", NULL), *from = get(o, "from", NULL), *out = get(o, "out", NULL);
    if (!arch || !from || !out) die_usage("--arch, --from and --out are required");
    bool known = false;
    for (size_t i = 0; i < NARCHS; i++) known |= !strcmp(arch, torchvision_archs[i]);
    if (!known) die_usage("--arch must be resnet18, resnet34, resnet50 or mobilenet-v2 (got '%s')", arch);
    const char *head_name = get(o, "head", "none");
    bool head = strcmp(head_name, "none") != 0;
    bool strict = get_int(o, "strict", 1, 0, 1) != 0;
    sm_err err = {0};
    sm_head_config hc;
    if (head && sm_head_config_default(&hc, head_name, &err)) die_usage("%s", err.msg);
    if (!head && get(o, "dim", NULL)) die_usage("--dim needs a --head (with --head none the network ends in its classifier)");
    if (head && !get(o, "classes", NULL)) die_usage("--head %s needs --classes K", head_name);
    sm_zoo_config zc = {.dim = head ? get_int(o, "dim", 512, 1, 65536) : 0,
                        .classes = get_int(o, "classes", 0, 1, 1 << 24)};
    zoo_input_flags(o, &zc);

    sm_ckpt *ck = NULL;
    if (sm_ckpt_read(from, &ck, &err)) die(&err, NULL);
    /* the classifier: torchvision's fc (ResNets) or classifier.1 (MobileNetV2; classifier.0 is dropout) */
    bool mobilenet = !strcmp(arch, "mobilenet-v2");
    const char *cls_prefix = mobilenet ? "classifier." : "fc.", *cls_weight = mobilenet ? "classifier.1.weight" : "fc.weight";
    int64_t nfile = sm_ckpt_count(ck);
    for (int64_t j = 0; j < nfile; j++) {
        const sm_ckpt_tensor *t = sm_ckpt_tensor_at(ck, j);
        if (t->dtype == SM_DT_F32 || (t->dtype == SM_DT_I64 && ends_with(t->name, ".num_batches_tracked"))) continue;
        snprintf(err.msg, sizeof err.msg, "'%.200s': tensor '%.150s' is %s; only F32 tensors are imported", from,
                 t->name, sm_dtype_name(t->dtype));
        die(&err, "convert before saving: {k: v.float() for k, v in state_dict.items()}");
    }
    if (!head) {
        const sm_ckpt_tensor *fw = sm_ckpt_find(ck, cls_weight);
        if (!fw || fw->ndim != 2) {
            char hint[160];
            snprintf(err.msg, sizeof err.msg, "'%.200s' has no 2-D '%s': cannot tell how many classes %s's classifier has",
                     from, cls_weight, arch);
            snprintf(hint, sizeof hint, "is it a state_dict of %s (--arch)? To replace the classifier instead, "
                     "give a head: --head arcface --classes K", arch);
            die(&err, hint);
        }
        if (zc.classes && zc.classes != fw->shape[0]) {
            snprintf(err.msg, sizeof err.msg, "--classes %lld, but '%s' of '%.200s' has %lld rows", (long long)zc.classes,
                     cls_weight, from, (long long)fw->shape[0]);
            die(&err, "drop --classes: with --head none they come from the file");
        }
        zc.classes = fw->shape[0];
    }
    char *spec = sm_zoo_build(arch, &zc, &err);
    if (!spec) die(&err, NULL);
    sm_model *m = NULL;
    sm_status st = sm_model_new(&m, spec, head ? &hc : NULL, zc.classes, (uint64_t)get_int(o, "seed", 1, 0, INT64_MAX), &err);
    free(spec);
    if (st) die(&err, NULL);
    int64_t c, h, w;
    sm_model_input_shape(m, &c, &h, &w);

    /* every tensor of the backbone (all of the model with --head none) from the file */
    bool *used = calloc((size_t)nfile + 1, sizeof *used);
    if (!used) { snprintf(err.msg, sizeof err.msg, "out of memory"); die(&err, NULL); }
    int ncopied = 0;
    int64_t nvalues = 0;
    for (int i = 0; i < sm_model_ntensors(m); i++) {
        sm_tensor_info ti;
        if (sm_model_tensor(m, i, &ti)) continue;
        if (head && (has_prefix(ti.name, "embedding.") || has_prefix(ti.name, "head."))) continue;
        const sm_ckpt_tensor *t = NULL;
        int64_t j = 0;
        for (; j < nfile && !t; j++)
            if (!strcmp(sm_ckpt_tensor_at(ck, j)->name, ti.name)) t = sm_ckpt_tensor_at(ck, j);
        char want[64], have[64];
        shape_str(want, sizeof want, ti.ndim, ti.shape);
        if (!t) {
            snprintf(err.msg, sizeof err.msg, "'%.160s' has no tensor '%.100s' (%.12s %lldx%lldx%lld wants %s)", from, ti.name,
                     arch, (long long)c, (long long)h, (long long)w, want);
            die(&err, "is it a state_dict of this architecture? (--arch)");
        }
        shape_str(have, sizeof have, t->ndim, t->shape);
        if (strcmp(have, want) != 0) {
            snprintf(err.msg, sizeof err.msg, "'%.160s': tensor '%.100s' is %s, %.12s %lldx%lldx%lld wants %s", from, ti.name,
                     have, arch, (long long)c, (long long)h, (long long)w, want);
            die(&err, !strcmp(ti.name, mobilenet ? "features.0.0.weight" : "conv1.weight")
                          ? "the first convolution's input channels are --channels (default 3)"
                          : "is it a state_dict of this architecture? (--arch)");
        }
        memcpy(ti.data, t->data, t->nbytes);
        used[j - 1] = true;
        ncopied++;
        nvalues += ti.numel;
    }
    int64_t nextra = 0, first_extra = -1;
    for (int64_t j = 0; j < nfile; j++) {
        const char *name = sm_ckpt_tensor_at(ck, j)->name;
        if (used[j] || ends_with(name, ".num_batches_tracked") || (head && has_prefix(name, cls_prefix))) continue;
        if (first_extra < 0) first_extra = j;
        nextra++;
    }
    if (nextra && strict) {
        const char *name = sm_ckpt_tensor_at(ck, first_extra)->name;
        snprintf(err.msg, sizeof err.msg, "'%.200s': tensor '%.120s' is not part of %s (%lld such tensors)", from, name,
                 arch, (long long)nextra);
        die(&err, has_prefix(name, "module.") ? "saved from DataParallel: strip the 'module.' prefix of the names"
                                               : "--strict 0 leaves them out");
    }
    if (sm_model_save(m, out, NULL, &err)) die(&err, NULL);
    fprintf(stderr, "simile import: %s %lldx%lldx%lld, copied %d tensors (%lld values) from %s", arch, (long long)c,
            (long long)h, (long long)w, ncopied, (long long)nvalues, from);
    if (nextra) fprintf(stderr, ", left out %lld", (long long)nextra);
    if (head)
        fprintf(stderr, "; fresh %lld-d embedding and %s head for %lld classes", (long long)zc.dim, head_name,
                (long long)zc.classes);
    else
        fprintf(stderr, "; classifier of %lld classes", (long long)zc.classes);
    fprintf(stderr, "; %lld parameters; wrote %s\n", (long long)sm_model_nparams(m), out);
    free(used);
    sm_model_free(m);
    sm_ckpt_free(ck);
    return 0;
}
