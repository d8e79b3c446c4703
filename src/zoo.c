/* zoo.c - built-in architectures, written as model specs. */
#include <stdio.h>
#include <string.h>

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

static const struct { const char *name, *fmt; } zoo[] = {
    {"mnist-net", mnist_net},
};

const char *sm_zoo_names(void) { return "mnist-net"; }

const char *sm_zoo_spec(const char *arch, int64_t dim, char *buf, size_t cap, sm_err *err)
{
    if (dim < 1 || dim > 65536) {
        sm_fail(err, SM_ERR_ARG, "embedding size must be 1..65536 (got %lld)", (long long)dim);
        return NULL;
    }
    for (size_t i = 0; i < sizeof zoo / sizeof zoo[0]; i++)
        if (strcmp(zoo[i].name, arch) == 0) {
            int n = snprintf(buf, cap, zoo[i].fmt, (long long)dim);
            if (n < 0 || (size_t)n >= cap) {
                sm_fail(err, SM_ERR_ARG, "spec buffer too small");
                return NULL;
            }
            return buf;
        }
    sm_fail(err, SM_ERR_ARG, "unknown architecture '%s' (built in: %s; or give a spec file)", arch,
            sm_zoo_names());
    return NULL;
}
