/* cmd_export.c - `simile export-images`: a data set written out as PNG folders. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include "simile.h"

/* ---------------------------------------------------------- export-images */
int cmd_export_images(int argc, char **argv)
{
    opt o[] = {{"data", "SPEC[:split]", "data set (default fashion-mnist); without :train/:test both splits", NULL},
               {"out", "DIR", "output directory, new or empty (required)", NULL},
               {"limit", "N", "write only the first N images of each split", NULL},
               {"threads", "T", "threads decoding an image-folder source (writing uses 16 I/O threads)", NULL},
               {NULL, NULL, NULL, NULL}};
    prog_cmd = "simile export-images";
    parse(argc, argv, 2, o, "simile export-images --data fashion-mnist:test --out DIR [--limit N]",
          "Writes a data split as PNG files, DIR/<class>/<index>.png, plus DIR/classes.txt (the label order),\n"
          "so that the image-file flows can be tried on real files. Without a split (--data fashion-mnist)\n"
          "both splits go to DIR/train/... and DIR/test/...; 'simile train --data DIR' reads either layout.\n"
          "Class names become folder names with '/' and the like replaced (\"T-shirt/top\" -> T-shirt_top).");
    set_threads(o);
    const char *out = get(o, "out", NULL);
    if (!out || !*out) die_usage("--out is required");
    int64_t limit = get_int(o, "limit", 0, 1, INT64_MAX);
    const char *data = get(o, "data", "fashion-mnist");
    sm_err err = {0};
    /* refuse a non-empty DIR before loading anything (sm_folder_export checks again) */
    DIR *d = opendir(out);
    if (d) {
        struct dirent *e;
        int empty = 1;
        while (empty && (e = readdir(d))) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
        closedir(d);
        if (!empty) {
            snprintf(err.msg, sizeof err.msg, "--out '%.300s' is not empty", out);
            die(&err, "export into a new or empty directory");
        }
    } else if (errno != ENOENT) {
        snprintf(err.msg, sizeof err.msg, "--out '%.300s': %s", out, strerror(errno));
        die(&err, NULL);
    }

    const char *colon = strrchr(data, ':');
    int one = colon && (!strcmp(colon + 1, "train") || !strcmp(colon + 1, "test"));
    sm_dataset sets[2] = {{0}, {0}};
    int64_t written = 0;
    if (one) {
        if (sm_dataset_open_split(data, SM_SPLIT_TEST, &sets[0], &err)) die(&err, NULL);
        if (sm_folder_export(&sets[0], out, limit, &err)) die(&err, NULL);
        written = limit > 0 && limit < sets[0].n ? limit : sets[0].n;
    } else {
        if (sm_dataset_open(data, &sets[0], &sets[1], &err)) die(&err, NULL);
        static const char *const names[2] = { "train", "test" };
        char sub[4096];
        for (int s = 0; s < 2; s++) {
            int n = snprintf(sub, sizeof sub, "%s/%s", out, names[s]);
            if (n < 0 || (size_t)n >= sizeof sub) {
                snprintf(err.msg, sizeof err.msg, "--out '%.200s' is too long", out);
                die(&err, NULL);
            }
            if (sm_folder_export(&sets[s], sub, limit, &err)) die(&err, NULL);
            written += limit > 0 && limit < sets[s].n ? limit : sets[s].n;
        }
    }
    fprintf(stderr, "simile export-images: wrote %lld images of %d classes to %s\n", (long long)written,
            (int)sets[0].n_classes, out);
    sm_dataset_free(&sets[0]);
    sm_dataset_free(&sets[1]);
    return 0;
}
