/* main.c - the `simile` command: one verb per job.
 *
 *   simile train  --data fashion-mnist --arch mnist-net --head arcface --epochs 5 --out M.safetensors
 *   simile embed  --model M --data fashion-mnist:test --out E.npy
 *   simile eval   --model M --data fashion-mnist [--json]
 *   simile import --arch resnet18 --from torchvision.safetensors --out M.safetensors
 *
 * Only this program prints and exits; the library returns statuses. Exit codes:
 * 0 success, 1 the job failed (message on stderr), 2 bad command line.
 * Each verb is in cli/cmd_<verb>.c; cli/cli.c holds the shared option
 * parsing. The verbs stand on include/simile.h, except for five private
 * headers not (yet) in the public API: npy.h (embed writes .npy), plot.h and
 * digits.h (the pictures of `simile plot`), status.h (sm_fail_prefix), ckpt.h
 * (import reads a torchvision state_dict saved as safetensors). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------------ main */
static const struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} verbs[] = {
    {"train", cmd_train, "train an embedding model with a metric head or a pair loss"},
    {"embed", cmd_embed, "write L2-normalised embeddings of a data split to .npy"},
    {"eval", cmd_eval, "head accuracy, 1-NN accuracy and retrieval metrics on the test split"},
    {"import", cmd_import, "torchvision weights (ResNet, MobileNetV2) as a simile model"},
    {"export-images", cmd_export_images, "write an IDX data set out as PNG folders"},
    {"enroll", cmd_enroll, "add images to a gallery (one image per item is enough)"},
    {"remove", cmd_remove, "remove items from a gallery"},
    {"items", cmd_items, "list the items of a gallery"},
    {"search", cmd_search, "top-k gallery items for an image, or \"unknown\""},
    {"calibrate", cmd_calibrate, "pick the unknown-item threshold from a labelled split"},
    {"serve", cmd_serve, "HTTP API and web page: search, enroll, embed (libmicrohttpd)"},
    {"plot", cmd_plot, "pictures: features on the sphere, training curves, retrieval, ROC"},
};
#define NVERBS (sizeof verbs / sizeof verbs[0])

static void usage(FILE *f)
{
    fprintf(f, "simile - deep metric learning and similarity search\n\n"
               "usage: simile COMMAND [options]   (simile COMMAND --help for its options)\n\n"
               "commands:\n");
    for (size_t i = 0; i < NVERBS; i++) fprintf(f, "  %-14s %s\n", verbs[i].name, verbs[i].help);
    fprintf(f, "\nexample:\n"
               "  simile train --data fashion-mnist --arch mnist-net --head arcface --epochs 5 --out m.safetensors\n"
               "  simile eval --model m.safetensors --data fashion-mnist\n");
}

int main(int argc, char **argv)
{
    /* A write past the file-size limit (ulimit -f) then fails with EFBIG, which
     * the library reports like a full disk, instead of killing the process
     * with SIGXFSZ before it can say anything or clean up. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < NVERBS; i++)
        if (!strcmp(argv[1], verbs[i].name)) return verbs[i].run(argc, argv);
    fprintf(stderr, "simile: unknown command '%s' (known:", argv[1]);
    for (size_t i = 0; i < NVERBS; i++) fprintf(stderr, " %s", verbs[i].name);
    fprintf(stderr, ")\nhint: 'simile --help' shows the usage\n");
    return 2;
}
