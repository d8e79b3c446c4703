/* cli.c - option parsing and error exits shared by the `simile` verbs. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *prog_cmd = "simile";

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog_cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nhint: '%s --help' lists the options\n", prog_cmd);
    exit(2);
}

void die(const sm_err *err, const char *hint)
{
    fprintf(stderr, "%s: error: %s\n", prog_cmd, err->msg);
    if (hint) fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}

static void print_help(const char *usage, const char *about, const opt *o)
{
    printf("usage: %s\n\n%s\n\noptions:\n", usage, about);
    for (; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-24s %s\n", left, o->help);
    }
}

/* Parses argv[first..argc) into opts; never modifies argv. */
void parse(int argc, char **argv, int first, opt *opts, const char *usage, const char *about)
{
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help(usage, about, opts);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) die_usage("unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        opt *o = opts;
        for (; o->name; o++)
            if (strlen(o->name) == len && !strncmp(o->name, name, len)) break;
        if (!o->name) die_usage("unknown option '--%.*s'", (int)len, name);
        if (!o->arg) {
            if (eq) die_usage("--%s takes no value", o->name);
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else {
            if (i + 1 >= argc) die_usage("--%s needs a value (%s)", o->name, o->arg);
            o->value = argv[++i];
        }
    }
}

const char *get(const opt *o, const char *name, const char *def)
{
    for (; o->name; o++)
        if (!strcmp(o->name, name)) return o->value ? o->value : def;
    return def;
}

int64_t get_int(const opt *o, const char *name, int64_t def, int64_t lo, int64_t hi)
{
    const char *v = get(o, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die_usage("--%s must be an integer in %lld..%lld (got '%s')", name, (long long)lo,
                  (long long)hi, v);
    return x;
}

double get_num(const opt *o, const char *name, double def, double lo, double hi)
{
    const char *v = get(o, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die_usage("--%s must be a number in %g..%g (got '%s')", name, lo, hi, v);
    return x;
}

void set_threads(const opt *o)
{
    sm_threads_set((int)get_int(o, "threads", 0, 0, 1024));
}

char *read_file(const char *path, sm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err->msg, sizeof err->msg, "cannot open spec '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    return buf;
}

void subset(sm_dataset *ds, const char *classes, const char *what)
{
    if (!classes) return;
    int32_t list[1024];
    int64_t k = 0;
    sm_err err = {0};
    sm_dataset out;
    if (sm_dataset_parse_classes(classes, list, 1024, &k, &err) ||
        sm_dataset_subset(ds, list, k, false, &out, &err)) {
        fprintf(stderr, "%s: %s: %s\nhint: a class list looks like 0-5 or 6,7,8,9\n", prog_cmd, what, err.msg);
        exit(2);
    }
    sm_dataset_free(ds);
    *ds = out;
}

