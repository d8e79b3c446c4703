/* zoo.c - built-in architectures, written as model specs.
 *
 * mnist-net is a fixed text; the ResNets and MobileNetV2 are generated node
 * by node as torchvision 0.14 builds them (torchvision/models/resnet.py,
 * mobilenetv2.py), each node named after its torchvision module so that the
 * tensors carry its state_dict names. Modules without parameters (ReLU, the
 * residual additions, pooling) are unnamed nodes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simile.h"
#include "status.h"

/* The reference network of the source material for 28x28 grayscale images:
 * three blocks of [conv3x3-BN-ReLU x2, maxpool 2] with 16, 32, 64 channels
 * (28 -> 14 -> 7 -> 3), then BN2d, Dropout2d(0.5), Linear 576 -> D, BN1d.
 * Convolutions keep PyTorch's default bias so the parameter set matches
 * nn.Conv2d(..., padding=1) exactly. */
static const char mnist_net[] =
    "# mnist-net: the reference CNN for 28x28 grayscale images\n"
    "input 1 28 28\n"
    "conv 16 k=3 p=1\nbn\nrelu\nconv 16 k=3 p=1\nbn\nrelu\nmaxpool k=2\n"
    "conv 32 k=3 p=1\nbn\nrelu\nconv 32 k=3 p=1\nbn\nrelu\nmaxpool k=2\n"
    "conv 64 k=3 p=1\nbn\nrelu\nconv 64 k=3 p=1\nbn\nrelu\nmaxpool k=2\n"
    "bn\ndropout2d p=0.5\nflatten\nlinear %lld\nbn\n";

/* A growing spec text; a failed allocation sticks and is reported once. */
typedef struct text { char *s; size_t len, cap; bool nomem; } text;

static void put(text *t, const char *fmt, ...)
{
    if (t->nomem) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { t->nomem = true; return; }
        if (t->s && t->len + (size_t)n < t->cap) { t->len += (size_t)n; return; }
        size_t cap = (t->cap ? 2 * t->cap : 4096) + (size_t)n;
        char *s = realloc(t->s, cap);
        if (!s) { t->nomem = true; return; }
        t->s = s;
        t->cap = cap;
    }
}

/* The end of a torchvision backbone: its classifier (dim 0) or simile's
 * embedding, Linear -> dim then BatchNorm1d, as face recognition does. */
static void tail(text *t, const sm_zoo_config *c, int64_t classes, bool mobilenet)
{
    if (c->dim == 0 && mobilenet)
        put(t, "classifier.0: dropout p=0.2\nclassifier.1: linear %lld init=normal\n",
            (long long)classes);
    else if (c->dim == 0)
        put(t, "fc: linear %lld\n", (long long)classes);
    else
        put(t, "embedding.0: linear %lld\nembedding.1: bn\n", (long long)c->dim);
}

/* torchvision's ResNet: BasicBlock (expansion 1) for 18/34, Bottleneck
 * (expansion 4, stride on the 3x3 conv: "ResNet V1.5") for 50. */
static void resnet(text *t, const sm_zoo_config *c, int64_t classes, const int *blocks, bool bottleneck)
{
    const char *cv = "bias=0 init=fan_out";
    put(t, "# %s as torchvision 0.14 builds it\ninput %lld %lld %lld\n",
        bottleneck ? "ResNet (Bottleneck)" : "ResNet (BasicBlock)", (long long)c->channels,
        (long long)c->height, (long long)c->width);
    put(t, "conv1: conv 64 k=7 s=2 p=3 %s\nbn1: bn\nrelu\nmaxpool: maxpool k=3 s=2 p=1\n", cv);
    int64_t inplanes = 64, expansion = bottleneck ? 4 : 1;
    char in[64];
    snprintf(in, sizeof in, "maxpool");
    for (int L = 0; L < 4; L++) {
        int64_t planes = 64 << L;
        for (int b = 0; b < blocks[L]; b++) {
            int stride = b == 0 && L > 0 ? 2 : 1;
            char p[32];
            snprintf(p, sizeof p, "layer%d.%d", L + 1, b);
            const char *last;
            if (bottleneck) {
                put(t, "%s.conv1: conv %lld k=1 %s in=%s\n%s.bn1: bn\nrelu\n", p, (long long)planes,
                    cv, in, p);
                put(t, "%s.conv2: conv %lld k=3 s=%d p=1 %s\n%s.bn2: bn\nrelu\n", p,
                    (long long)planes, stride, cv, p);
                put(t, "%s.conv3: conv %lld k=1 %s\n%s.bn3: bn\n", p, (long long)(planes * 4), cv, p);
                last = "bn3";
            } else {
                put(t, "%s.conv1: conv %lld k=3 s=%d p=1 %s in=%s\n%s.bn1: bn\nrelu\n", p,
                    (long long)planes, stride, cv, in, p);
                put(t, "%s.conv2: conv %lld k=3 p=1 %s\n%s.bn2: bn\n", p, (long long)planes, cv, p);
                last = "bn2";
            }
            if (stride != 1 || inplanes != planes * expansion) {
                put(t, "%s.downsample.0: conv %lld k=1 s=%d %s in=%s\n%s.downsample.1: bn\n", p,
                    (long long)(planes * expansion), stride, cv, in, p);
                put(t, "add in=%s.%s\n", p, last);
            } else {
                put(t, "add in=%s\n", in);
            }
            put(t, "%s.relu: relu\n", p);
            snprintf(in, sizeof in, "%s.relu", p);
            inplanes = planes * expansion;
        }
    }
    put(t, "gap\n");
    tail(t, c, classes, false);
}

/* torchvision's MobileNetV2 (width 1.0): inverted residual blocks with
 * ReLU6, the depthwise 3x3 conv with groups = channels. */
static void mobilenet_v2(text *t, const sm_zoo_config *c, int64_t classes)
{
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    const char *cv = "bias=0 init=fan_out";
    put(t, "# MobileNetV2 as torchvision 0.14 builds it\ninput %lld %lld %lld\n",
        (long long)c->channels, (long long)c->height, (long long)c->width);
    put(t, "features.0.0: conv 32 k=3 s=2 p=1 %s\nfeatures.0.1: bn\nfeatures.0.2: relu6\n", cv);
    int64_t inp = 32;
    char in[64];   /* the node a block starts from */
    snprintf(in, sizeof in, "features.0.2");
    int f = 1;
    for (int g = 0; g < 7; g++)
        for (int i = 0; i < cfg[g][2]; i++, f++) {
            int64_t oup = cfg[g][1], hidden = inp * cfg[g][0];
            int stride = i == 0 ? cfg[g][3] : 1, j = 0;
            if (cfg[g][0] != 1) {
                put(t, "features.%d.conv.0.0: conv %lld k=1 %s in=%s\nfeatures.%d.conv.0.1: bn\n"
                       "features.%d.conv.0.2: relu6\n", f, (long long)hidden, cv, in, f, f);
                j = 1;
            }
            put(t, "features.%d.conv.%d.0: conv %lld k=3 s=%d p=1 g=%lld %s%s%s\n"
                   "features.%d.conv.%d.1: bn\nfeatures.%d.conv.%d.2: relu6\n",
                f, j, (long long)hidden, stride, (long long)hidden, cv, j ? "" : " in=",
                j ? "" : in, f, j, f, j);
            put(t, "features.%d.conv.%d: conv %lld k=1 %s\nfeatures.%d.conv.%d: bn\n", f, j + 1,
                (long long)oup, cv, f, j + 2);
            if (stride == 1 && inp == oup) {   /* torchvision's use_res_connect */
                put(t, "features.%d: add in=%s\n", f, in);
                snprintf(in, sizeof in, "features.%d", f);
            } else {
                snprintf(in, sizeof in, "features.%d.conv.%d", f, j + 2);
            }
            inp = oup;
        }
    put(t, "features.18.0: conv 1280 k=1 %s\nfeatures.18.1: bn\nrelu6\ngap\n", cv);
    tail(t, c, classes, true);
}

static const char *const names = "mnist-net resnet18 resnet34 resnet50 mobilenet-v2";

const char *sm_zoo_names(void) { return names; }

char *sm_zoo_build(const char *arch, const sm_zoo_config *cfg, sm_err *err)
{
    sm_zoo_config c = *cfg;
    if (c.dim < 0 || c.dim > 65536 || (c.dim == 0 && !strcmp(arch, "mnist-net"))) {
        sm_fail(err, SM_ERR_ARG, "embedding size must be 1..65536 (got %lld)", (long long)c.dim);
        return NULL;
    }
    int64_t classes = c.classes ? c.classes : 1000;
    if (classes < 1 || classes > (1 << 24)) {
        sm_fail(err, SM_ERR_ARG, "classes must be 1..2^24 (got %lld)", (long long)classes);
        return NULL;
    }
    text t = {0};
    if (!strcmp(arch, "mnist-net")) {
        if ((c.channels && c.channels != 1) || (c.height && c.height != 28) || (c.width && c.width != 28)) {
            sm_fail(err, SM_ERR_ARG, "mnist-net takes 1x28x28 images only (asked for %lldx%lldx%lld)",
                    (long long)(c.channels ? c.channels : 1), (long long)(c.height ? c.height : 28),
                    (long long)(c.width ? c.width : 28));
            return NULL;
        }
        put(&t, mnist_net, (long long)c.dim);
    } else {
        bool r18 = !strcmp(arch, "resnet18"), r34 = !strcmp(arch, "resnet34"),
             r50 = !strcmp(arch, "resnet50"), mn2 = !strcmp(arch, "mobilenet-v2");
        if (!r18 && !r34 && !r50 && !mn2) {
            sm_fail(err, SM_ERR_ARG, "unknown architecture '%s' (built in: %s; or give a spec file)",
                    arch, names);
            return NULL;
        }
        if (!c.channels) c.channels = 3;
        if (!c.height) c.height = 224;
        if (!c.width) c.width = c.height;
        if (c.channels < 1 || c.channels > 64 || c.height < 32 || c.width < 32 ||
            c.height > 4096 || c.width > 4096) {
            sm_fail(err, SM_ERR_ARG,
                    "%s takes 1..64 channels and sizes 32..4096 (asked for %lldx%lldx%lld)", arch,
                    (long long)c.channels, (long long)c.height, (long long)c.width);
            return NULL;
        }
        static const int b18[4] = {2, 2, 2, 2}, b34[4] = {3, 4, 6, 3};
        if (mn2) mobilenet_v2(&t, &c, classes);
        else resnet(&t, &c, classes, r18 ? b18 : b34, r50);
    }
    if (t.nomem) {
        free(t.s);
        sm_fail(err, SM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return t.s;
}

const char *sm_zoo_spec(const char *arch, int64_t dim, char *buf, size_t cap, sm_err *err)
{
    if (dim < 1 || dim > 65536) {
        sm_fail(err, SM_ERR_ARG, "embedding size must be 1..65536 (got %lld)", (long long)dim);
        return NULL;
    }
    char *s = sm_zoo_build(arch, &(sm_zoo_config){.dim = dim}, err);
    if (!s) return NULL;
    size_t n = strlen(s);
    if (n >= cap) {
        free(s);
        sm_fail(err, SM_ERR_ARG, "spec buffer too small (%zu bytes; the spec of %s has %zu)", cap,
                arch, n + 1);
        return NULL;
    }
    memcpy(buf, s, n + 1);
    free(s);
    return buf;
}
