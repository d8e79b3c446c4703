/* dataset.h - labelled image sets in memory (private).
 *
 * An sm_dataset is N single- or multi-channel u8 images (N, C, H, W) with an
 * int32 label each, the class count and a name per class. It is what the
 * loader (loader.h) batches. Sources today: the IDX quartet of MNIST and
 * Fashion-MNIST, by name or from a directory.
 *
 * Names ("specs"):
 *   fashion-mnist  $SIMILE_DATA_ROOT/fashion-mnist, default root
 *                  /usr/share/datasets (Debian package dataset-fashion-mnist)
 *   mnist          $SIMILE_DATA_ROOT/mnist (no Debian package ships it)
 *   DIR            any directory holding train-images-idx3-ubyte,
 *                  train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
 *                  t10k-labels-idx1-ubyte, each gzipped (.gz) or not (the
 *                  dotted spelling train-images.idx3-ubyte is accepted too).
 * SIMILE_DATA_ROOT exists for tests and unusual installs; it is read at each
 * open. */
#ifndef SM_DATASET_H
#define SM_DATASET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simile.h"

typedef enum sm_split {
    SM_SPLIT_NONE = -1, /* "no split given" in sm_dataset_parse_spec */
    SM_SPLIT_TRAIN = 0,
    SM_SPLIT_TEST = 1
} sm_split;

/* Default data root of named datasets, overridden by $SIMILE_DATA_ROOT. */
#define SM_DATASET_ROOT "/usr/share/datasets"

typedef struct sm_dataset {
    int64_t n, c, h, w;   /* n images of c channels, h rows, w columns */
    uint8_t *images;      /* (n, c, h, w), row-major, owned */
    int32_t *labels;      /* (n), each in [0, n_classes), owned */
    int32_t n_classes;    /* >= 1 */
    char **class_names;   /* n_classes NUL-terminated strings, owned */
} sm_dataset;

/* Loads a dataset by spec (see the file comment) into *train and/or *test
 * (either may be NULL, not both). Images become (N, 1, 28, 28) for the
 * MNIST family. The class count is max label + 1 over the splits loaded
 * (10 for both named sets; their labels are checked to be < 10); class names
 * are Fashion-MNIST's ("T-shirt/top", ..., "Ankle boot") for fashion-mnist
 * and for a directory whose name contains "fashion" with 10 classes, else
 * the decimal class numbers ("0".."9" for MNIST).
 * On success the caller owns both outputs (sm_dataset_free each); on failure
 * both are zeroed and nothing is allocated.
 * Errors: SM_ERR_IO (dataset or file not found, with the apt-get line for
 * fashion-mnist; read errors; truncation), SM_ERR_FORMAT (a bad IDX file,
 * image and label counts that differ, labels out of range, image sizes that
 * differ between train and test), SM_ERR_ARG (NULL spec, both outputs NULL),
 * SM_ERR_NOMEM. */
sm_status sm_dataset_open(const char *spec, sm_dataset *train, sm_dataset *test, sm_err *err);

/* Splits "NAME:train" / "NAME:test" (as in `--data fashion-mnist:test`) into
 * name (copied into the caller's buffer of name_cap bytes, NUL-terminated)
 * and *split. The split is taken after the last ':'; without a ":train" or
 * ":test" suffix the whole argument is the name and *split = default_split,
 * which must not be SM_SPLIT_NONE when the caller requires a split (that
 * case is SM_ERR_ARG with a message showing the expected form).
 * Errors: SM_ERR_ARG (NULL or empty argument or name, unknown split word
 * after the last ':' such as "x:val", name longer than name_cap - 1). */
sm_status sm_dataset_parse_spec(const char *arg, char *name, size_t name_cap, sm_split *split,
                                sm_split default_split, sm_err *err);

/* Loads one split named "NAME:split" (default_split as for parse_spec) into
 * *out. Ownership and errors as sm_dataset_open plus sm_dataset_parse_spec. */
sm_status sm_dataset_open_split(const char *arg, sm_split default_split, sm_dataset *out, sm_err *err);

/* Makes *out hold the images of src whose label is one of classes[0..k)
 * (distinct values in [0, src->n_classes)), in src's order. With relabel,
 * the label of class classes[j] becomes j, out->n_classes = k and the names
 * follow the list; without it labels, class count and names are src's.
 * Used for open-set runs: train on classes 0-5, evaluate on 6-9.
 * *out is a deep copy owned by the caller (sm_dataset_free); src is not
 * changed. On failure *out is zeroed.
 * Errors: SM_ERR_ARG (k < 1, a class out of range or listed twice, no image
 * in the listed classes), SM_ERR_NOMEM. */
sm_status sm_dataset_subset(const sm_dataset *src, const int32_t *classes, int64_t k, bool relabel,
                            sm_dataset *out, sm_err *err);

/* Parses a class list such as "0-5", "6,7,8,9" or "0-2,7" into
 * classes[0..*k) (at most cap values, in the order written, each in
 * [0, 65535]). Errors: SM_ERR_ARG (syntax, a range written backwards, more
 * than cap values). Duplicates are left for sm_dataset_subset to refuse. */
sm_status sm_dataset_parse_classes(const char *s, int32_t *classes, int64_t cap, int64_t *k, sm_err *err);

/* Releases everything *d owns and zeroes it; NULL or a zeroed dataset is a
 * no-op. */
void sm_dataset_free(sm_dataset *d);

#endif
