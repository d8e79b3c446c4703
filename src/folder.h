/* folder.h - datasets of real image files: a folder per class or a CSV manifest (private).
 *
 * Layouts (PNG and JPEG files, decoded by image.h):
 *
 *   ROOT/<class>/<image>.png|.jpg|.jpeg      a folder per class
 *   ROOT/train/<class>/...  ROOT/test/<class>/...   the same, split in two
 *   FILE.csv                                 a manifest of `path,label` lines
 *
 * Folder per class. The class folders are the subdirectories of ROOT (of
 * ROOT/train and ROOT/test for a split tree) that hold at least one image;
 * names starting with '.' are skipped, as are files of other extensions
 * (case does not matter: .PNG, .JPG, .Jpeg) and anything deeper than one
 * level. Images are taken in byte order of their file names within a class,
 * classes in label order. A tree is split when ROOT/train or ROOT/test is a
 * directory; then both splits share one class list (the union of their
 * class folders), so a label means the same class in both.
 *
 * Label order. Class names are sorted, numerically when every name is a
 * decimal number ("2" before "10"), else by bytes (strcmp), and label i is
 * the i-th name. An optional ROOT/classes.txt (else ROOT/train/classes.txt,
 * else ROOT/test/classes.txt) fixes the order instead: one class per line,
 * `folder` or `folder<TAB>name`, label i on line i+1, the name (default the
 * folder) kept as the class name. Then every listed class exists even
 * without images in a split, and a class folder with images that the file
 * does not list is an error. `simile export-images` writes this file, so an
 * exported IDX set keeps its labels and names ("T-shirt/top" in the folder
 * "T-shirt_top").
 *
 * CSV manifest. One image per line, `path,label`: the label is the text
 * after the last comma (so paths may hold commas), both fields trimmed of
 * spaces and of one pair of surrounding double quotes. A first line that
 * reads `path,label` is a header and skipped; so are blank lines and lines
 * starting with '#'. A relative path is relative to the CSV file's
 * directory. Labels are names, ordered as folder names are (sorted, numeric
 * when all are numbers). Errors name the file and line.
 *
 * Size. Every image is converted (image.h: BT.601 gray, alpha composited
 * over black) and resized (area when shrinking, bilinear when enlarging,
 * aspect ratio not kept) to one (C, H, W): the target given, else that of
 * the reference image - the first image of the (train) tree or of the
 * manifest - with C = 1 for a gray (or gray + alpha) reference and 3
 * otherwise. Images are decoded in parallel (OpenMP); the result does not
 * depend on the thread count.
 *
 * Splits. sm_folder_open gives a split tree's train and test. A plain tree
 * or a manifest is one set of images: asked for both splits, both get the
 * same images (validation then measures fit, not generalisation; make
 * train/ and test/ folders for a held-out split). */
#ifndef SM_FOLDER_H
#define SM_FOLDER_H
#include <stdbool.h>
#include <stdint.h>

#include "dataset.h"
#include "simile.h"

/* The name of the optional class-order file in a tree's root. */
#define SM_FOLDER_CLASSES_FILE "classes.txt"

/* True when spec names real image files rather than IDX data: a regular
 * file ending in ".csv" (any case), or a directory that holds no IDX
 * images (no entry named train-images* or t10k-images*). */
bool sm_folder_is_source(const char *spec);

/* Loads a tree or a manifest (see the file comment) into *train and/or
 * *test (either may be NULL, not both), converted to (c, h, w) when all
 * three are > 0, else to the reference image's size (all three 0).
 * On success the caller owns both (sm_dataset_free); on failure both are
 * zeroed. Errors: SM_ERR_IO (missing root, unreadable file, no images at
 * all, a split tree without the split asked for), SM_ERR_FORMAT (an image
 * that does not decode, a bad manifest or classes.txt line: messages name
 * the file and line), SM_ERR_ARG (c not 1 or 3, sizes out of range, a
 * header over the image size limits), SM_ERR_NOMEM. */
sm_status sm_folder_open(const char *spec, int64_t c, int64_t h, int64_t w, sm_dataset *train,
                         sm_dataset *test, sm_err *err);

/* Writes the first `limit` images of ds (all when limit <= 0) as a folder
 * per class: DIR/<class>/<index>.png, the class folder named by
 * sm_folder_sanitize (a name that clashes with an earlier class's gets
 * "_<label>" appended), <index> the image's position in ds, zero-padded to
 * the width of the largest index written (so byte order = dataset order),
 * plus DIR/classes.txt listing every class of ds in label order (`folder`,
 * or `folder<TAB>name` when sanitizing changed the name). PNG is lossless:
 * sm_folder_open(DIR) gives back the same pixels, labels and class names.
 * Pixels are gray (c = 1) or RGB (c = 3) PNGs, each written atomically
 * (image.h sm_png_write), in parallel. DIR is created (with its parents)
 * when missing and must be empty. Errors: SM_ERR_ARG (DIR not empty, a
 * dataset of other than 1 or 3 channels), SM_ERR_IO (naming the path),
 * SM_ERR_NOMEM. */
sm_status sm_folder_export(const sm_dataset *ds, const char *dir, int64_t limit, sm_err *err);

/* Turns a class name into a file name: '/', '\\', control characters and
 * the characters <>:"|?* become '_', as does a leading '.'; an empty name
 * becomes "_". Writes at most cap bytes (NUL included) into out. */
void sm_folder_sanitize(const char *name, char *out, size_t cap);

#endif
