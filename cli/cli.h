/* cli.h - shared pieces of the `simile` command (cli/ only).
 *
 * Each verb lives in its own file (cli/cmd_<verb>.c) as `int cmd_<verb>(argc, argv)`;
 * cli/main.c dispatches. Options are `--name value`, `--name=value` or flags;
 * parse() never modifies argv. Only the CLI prints and exits. */
#ifndef SM_CLI_H
#define SM_CLI_H
#include <stdint.h>
#include <stdio.h>

#include "simile.h"

typedef struct opt {
    const char *name;      /* without the leading "--" */
    const char *arg;       /* NULL for a flag */
    const char *help;
    const char *value;     /* parsed: the value, "1" for a flag given, NULL if absent */
} opt;

/* "simile train" etc.: the prefix of every message. */
extern const char *prog_cmd;

/* Prints "<prog>: <message>" and a hint to use --help; exit 2. */
void die_usage(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;
/* Prints "<prog>: error: <err->msg>" (+ "hint: ..." when hint); exit 1. */
void die(const sm_err *err, const char *hint)
#if defined(__GNUC__)
    __attribute__((noreturn))
#endif
    ;
/* Parses argv[first..argc) into opts (terminated by a NULL name); --help prints and exits 0. */
void parse(int argc, char **argv, int first, opt *opts, const char *usage, const char *about);
const char *get(const opt *o, const char *name, const char *def);
int64_t get_int(const opt *o, const char *name, int64_t def, int64_t lo, int64_t hi);
double get_num(const opt *o, const char *name, double def, double lo, double hi);
/* Applies --threads. */
void set_threads(const opt *o);
/* Reads a whole text file (up to 1 MiB) into a malloc'd string, or NULL with err set. */
char *read_file(const char *path, sm_err *err);
/* Keeps only the classes listed in `classes` (e.g. "0-5"); exits 2 on a bad list. */
void subset(sm_dataset *ds, const char *classes, const char *what);

/* The zoo (cmd_import.c). --size S or --height H --width W, and --channels C,
 * into cfg (0 where not given); exits 2 on a bad combination. */
void zoo_input_flags(const opt *o, sm_zoo_config *cfg);
/* The torchvision architecture of the zoo ("resnet18") whose spec m has, with
 * an embedding or a classifier; NULL for mnist-net and spec files. */
const char *zoo_arch_of(const sm_model *m);
/* Converts ds in place to m's input channels and size (sm_dataset_fit) when m
 * is a torchvision zoo model and they differ: Fashion-MNIST for a 32-px
 * ResNet. Returns whether it did; exits 1 on failure. Other models keep
 * the data as it is (a mismatch is sm_train's error). */
bool zoo_fit_data(const sm_model *m, sm_dataset *ds);

int cmd_train(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export_images(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_items(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_import(int argc, char **argv);
#endif
