/* main.c - the `simile` command: one verb per job.
 *
 *   simile train  --data fashion-mnist --arch mnist-net --head arcface --epochs 5 --out M.safetensors
 *   simile embed  --model M --data fashion-mnist:test --out E.npy
 *   simile eval   --model M --data fashion-mnist [--json]
 *
 * Only this program prints and exits; the library returns statuses. Exit codes:
 * 0 success, 1 the job failed (message on stderr), 2 bad command line.
 * Each verb is in cli/cmd_<verb>.c; cli/cli.c holds the shared option
 * parsing. The CLI uses libsimile's private headers for datasets, evaluation
 * and files, which are not yet part of the public API. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------------ main */
static void usage(FILE *f)
{
    fprintf(f,
            "simile - deep metric learning and similarity search\n\n"
            "usage: simile COMMAND [options]   (simile COMMAND --help for its options)\n\n"
            "commands:\n"
            "  train    train an embedding model with a metric head (ArcFace, CosFace, ...)\n"
            "  embed    write L2-normalised embeddings of a data split to .npy\n"
            "  eval     head accuracy, 1-NN accuracy and retrieval metrics on the test split\n"
            "  plot     pictures: features on the circle/sphere per head, training curves, retrieval, ROC\n\n"
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
    if (!strcmp(argv[1], "export-images")) return cmd_export_images(argc, argv);
    if (!strcmp(argv[1], "plot")) return cmd_plot(argc, argv);
    if (!strcmp(argv[1], "enroll")) return cmd_enroll(argc, argv);
    if (!strcmp(argv[1], "remove")) return cmd_remove(argc, argv);
    if (!strcmp(argv[1], "items")) return cmd_items(argc, argv);
    if (!strcmp(argv[1], "search")) return cmd_search(argc, argv);
    if (!strcmp(argv[1], "calibrate")) return cmd_calibrate(argc, argv);
    fprintf(stderr, "simile: unknown command '%s' (known: train embed eval plot)\n", argv[1]);
    fprintf(stderr, "hint: 'simile --help' shows the usage\n");
    return 2;
}
